"""The import-linter contracts of pyproject.toml catch what they are meant to:
run against a copy of the package with one import planted in it."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import wesog_async

ROOT = Path(wesog_async.__file__).parent
# The `lint-imports` command, run by the interpreter of the tests.
LINT = "import sys; from importlinter.cli import lint_imports_command as c; sys.exit(c())"
ACYCLIC = "No import cycles among the modules of any package"
LAYERS = "Client layers: each layer imports only the layers below it"


def lint(tmp_path: Path, plant: dict[str, str]) -> str:
    """``lint-imports`` over a copy of the package with ``plant`` lines appended
    (module path -> line); the output, ``BROKEN`` lines and all."""
    copy = tmp_path / "wesog_async"
    shutil.copytree(ROOT, copy, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT.parent / "pyproject.toml", tmp_path / "pyproject.toml")
    for module, line in plant.items():
        with (copy / module).open("a", encoding="utf-8") as fh:
            fh.write(f"\n{line}\n")
    proc = subprocess.run(
        [sys.executable, "-c", LINT, "--no-cache", "--no-logo"],
        cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    out = proc.stdout + proc.stderr
    assert "Analyzed" in out, out  # it ran against the copy, not failed to start
    assert (proc.returncode == 0) == ("BROKEN" not in out), out
    return out


def test_the_package_as_it_is_keeps_every_contract(tmp_path: Path) -> None:
    out = lint(tmp_path, {})
    assert "BROKEN" not in out and out.count(" KEPT") == 3, out


@pytest.mark.parametrize(
    ("module", "line"),
    [
        # Same layer (`_models : _errors : _wire`), so the layers contract allows it.
        ("_models.py", "from wesog_async import _errors"),
        # Two modules of bulk/: pipeline imports batcher already.
        ("bulk/batcher.py", "from wesog_async.bulk import pipeline"),
        # Even an import only for type checking.
        ("emulator/worker.py", "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
         "    from wesog_async.emulator import state"),
        # One level further down.
        ("bulk/journal/base.py", "from wesog_async.bulk.journal import sqlite"),
    ],
)  # fmt: skip
def test_a_cycle_inside_a_layer_breaks_the_acyclic_contract(
    tmp_path: Path, module: str, line: str
) -> None:
    out = lint(tmp_path, {module: line})
    assert f"{ACYCLIC} BROKEN" in out, out
    assert f"{LAYERS} KEPT" in out, "the layers contract alone would have let it through"


def test_a_cycle_across_layers_still_breaks_the_layers_contract(tmp_path: Path) -> None:
    out = lint(tmp_path, {"_transport.py": "from wesog_async import _client"})
    assert f"{LAYERS} BROKEN" in out, out
