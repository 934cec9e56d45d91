"""The emulator stands alone: it imports nothing of the client package."""

from __future__ import annotations

import ast
from pathlib import Path

import wesog_async.emulator

EMULATOR = Path(wesog_async.emulator.__file__).parent


def _imported(path: Path) -> list[str]:
    names: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            names.append("." * node.level + (node.module or ""))
    return names


def test_the_emulator_imports_no_client_module() -> None:
    sources = sorted(EMULATOR.rglob("*.py"))
    assert len(sources) > 10  # the walk found the package
    outside = [
        (str(path.relative_to(EMULATOR)), name)
        for path in sources
        for name in _imported(path)
        if name.startswith(".")  # relative imports could climb out of the package
        or (name.split(".")[0] == "wesog_async" and not name.startswith("wesog_async.emulator"))
    ]
    assert outside == []
