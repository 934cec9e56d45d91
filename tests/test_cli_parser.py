"""The ``wesog-async`` parser: version, help text and defaults on every option,
the exit-code table in ``--help``, and the CLI's use of the public API only."""

from __future__ import annotations

import argparse
import ast
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import wesog_async
import wesog_async.scale
from wesog_async import _wire
from wesog_async.bulk import inputs as _inputs
from wesog_async.cli import _common, build_parser, main

CLI_DIR = Path(wesog_async.__file__).parent / "cli"


def parsers(
    parser: argparse.ArgumentParser, path: str = "wesog-async"
) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield from parsers(child, f"{path} {name}")


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == f"wesog-async {wesog_async.__version__}"


def test_version_as_a_subprocess(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    result = subprocess.run(
        [sys.executable, "-m", "wesog_async", "--version"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("wesog-async ")


def test_every_command_and_option_has_help_and_shows_its_default() -> None:
    seen = 0
    for path, parser in parsers(build_parser()):
        assert parser.description, path
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction | argparse._HelpAction):
                continue
            name = "/".join(action.option_strings) or action.dest
            assert action.help and action.help.strip(), f"{path} {name}: no help"
            default = action.default
            if (
                action.option_strings
                and default not in (None, "", argparse.SUPPRESS)
                and not isinstance(default, bool)
                and not isinstance(action, argparse._CountAction | argparse._VersionAction)
            ):
                text = parser.formatter_class(prog=path)._get_help_string(action)
                assert "default" in text, f"{path} {name}: default {default!r} not shown"
            seen += 1
    assert seen > 80


def test_help_shows_defaults_and_the_exit_code_table(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["upload", "--help"])
    text = capsys.readouterr().out
    assert "records per request (default: 100)" in text
    assert "write requests in flight (default: 4)" in text
    assert "(default: auto)" in text and "jsonl" in text
    assert "(default: False)" not in text and "(default: None)" not in text
    assert "exit codes (every command):" in text
    for code, _ in _common.EXIT_CODES:
        assert f"  {code:>3}  " in text
    with pytest.raises(SystemExit):
        main(["--help"])
    top = capsys.readouterr().out
    assert "--version" in top and "connection failure" in top and "not found (404)" in top


def test_exit_code_table_is_distinct() -> None:
    codes = [code for code, _ in _common.EXIT_CODES]
    assert len(set(codes)) == len(codes) and codes[0] == 0


def test_cli_copies_of_library_constants_agree() -> None:
    assert _common.ENV_API_KEY == _wire.ENV_API_KEY
    assert _common.ENV_BASE_URL == _wire.ENV_BASE_URL
    assert _common.DEFAULT_BASE_URL == _wire.DEFAULT_BASE_URL
    assert set(_common.WRITE_LANGS) == _wire.WRITE_LANGS
    assert set(_common.SEARCH_LANGS) == _wire.SEARCH_LANGS
    assert set(_common.SORT_ORDERS) == _wire.SORT_ORDERS
    assert _common.INPUT_FORMATS == _inputs.FORMATS


# Private imports the CLI still needs: none.
ALLOWED_PRIVATE: set[tuple[str, str]] = set()


def test_the_cli_imports_only_the_public_api() -> None:
    public = set(wesog_async.__all__)
    modules = sorted(CLI_DIR.glob("*.py"))
    assert {p.name for p in modules} >= {
        "__init__.py", "_common.py", "progress.py", "upload.py", "demo.py", "emulator.py",
        "delete.py", "get.py", "search.py", "ops.py",
    }  # fmt: skip
    for path in modules:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    assert not alias.name.startswith("wesog_async."), (path.name, alias.name)
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("wesog_async"):
                module = node.module or ""
                names = {alias.name for alias in node.names}
                if module == "wesog_async":
                    assert names <= public, (path.name, names - public)
                elif module.startswith(("wesog_async.cli", "wesog_async.emulator")):
                    continue
                elif module == "wesog_async.scale":  # a public package
                    assert names <= set(wesog_async.scale.__all__), (path.name, names)
                else:
                    assert {(module, n) for n in names} <= ALLOWED_PRIVATE, (path.name, module)


def test_the_library_root_has_no_progress_module() -> None:
    assert not (CLI_DIR.parent / "_progress.py").exists()
    assert not (CLI_DIR.parent / "_cli_commands.py").exists()
