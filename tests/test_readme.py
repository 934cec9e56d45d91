"""The Python examples of the README and the docs site (docs/*.md) stay true:
every block passes ``mypy --strict``, blocks with ``asyncio.run(`` run against
the emulator (and print what the page says they print), and example tests run
with the pytest plugin."""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import sys
import tempfile
from pathlib import Path

import attrs
import pytest

from wesog_async.emulator import EmulatorConfig, EmulatorServer

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").glob("*.md"))]


@attrs.frozen
class Block:
    page: Path
    line: int  # of the opening fence, 1-based
    code: str
    output: tuple[str, ...] | None  # the "Output:" block right after it, if any

    @property
    def id(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"

    @property
    def module(self) -> str:
        return re.sub(r"\W", "_", self.id)


_FENCE = re.compile(r"^```python\n(.*?)^```\n(?:\s*Output:\s*\n+```text\n(.*?)^```)?", re.S | re.M)


def python_blocks(page: Path) -> list[Block]:
    text = page.read_text(encoding="utf-8")
    blocks = []
    for m in _FENCE.finditer(text):
        output = None if m[2] is None else tuple(m[2].splitlines())
        line = text.count("\n", 0, m.start()) + 1
        blocks.append(Block(page, line, m[1], output))
    return blocks


ALL_BLOCKS = [b for page in PAGES for b in python_blocks(page)]

# Misspelt options must not pass the type checker (checked in the same mypy run).
TYPO_MODULE = "typo_in_ingest_options"
TYPO_CODE = """
from wesog_async import IngestReport, WesogClient


async def upload(client: WesogClient) -> IngestReport:
    return await client.images.ingest_all([], mode="create", batch_sise=500)
"""
RUNNABLE = [b for b in ALL_BLOCKS if "asyncio.run(" in b.code]
EXAMPLE_TESTS = [b for b in ALL_BLOCKS if re.search(r"^async def test_", b.code, re.M)]


def test_pages_have_examples() -> None:
    assert len(PAGES) > 1, "docs/*.md not found"
    assert RUNNABLE and any(b.page == README for b in RUNNABLE)
    assert EXAMPLE_TESTS


@pytest.fixture(scope="module")
def mypy_errors(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[str]]:
    """One ``mypy --strict`` run over every block (one per block would take minutes):
    the error lines of each block, by module name."""
    from mypy import api

    src = tmp_path_factory.mktemp("doc_blocks")
    files = []
    for block in ALL_BLOCKS:
        path = src / f"{block.module}.py"
        path.write_text(block.code, encoding="utf-8")
        files.append(str(path))
    (src / f"{TYPO_MODULE}.py").write_text(TYPO_CODE, encoding="utf-8")
    files.append(str(src / f"{TYPO_MODULE}.py"))
    # A cache per checkout, in the temp dir: a rerun takes seconds instead of the
    # cold ~15 s (aiohttp's inline types dominate), and another checkout's mypy
    # never shares it.
    key = hashlib.sha256(str(ROOT).encode()).hexdigest()[:12]
    cache = Path(tempfile.gettempdir()) / f"wesog-async-doc-mypy-{key}"
    env_path = os.environ.get("MYPYPATH")
    os.environ["MYPYPATH"] = str(ROOT)  # this checkout's wesog_async, not an installed one
    try:
        out, err, status = api.run(
            ["--strict", "--cache-dir", str(cache), "--config-file", str(ROOT / "pyproject.toml"),
             "--show-error-codes", "--no-error-summary", "--no-pretty", *files]
        )  # fmt: skip
    finally:
        if env_path is None:
            os.environ.pop("MYPYPATH", None)
        else:
            os.environ["MYPYPATH"] = env_path
    assert status in (0, 1), f"mypy did not run: {err}{out}"
    errors: dict[str, list[str]] = {}
    for line in out.splitlines():
        name = Path(line.partition(":")[0]).stem
        errors.setdefault(name, []).append(line)
    return errors


@pytest.mark.parametrize("block", ALL_BLOCKS, ids=lambda b: b.id)
def test_block_type_checks(block: Block, mypy_errors: dict[str, list[str]]) -> None:
    lines = mypy_errors.get(block.module, [])
    errors = [line for line in lines if ": error:" in line]  # not the notes
    report = "\n".join(lines) + "\n--- block ---\n" + block.code
    assert not errors, f"{block.id} fails mypy --strict:\n{report}"


def test_a_misspelt_ingest_option_is_a_type_error(mypy_errors: dict[str, list[str]]) -> None:
    errors = mypy_errors.get(TYPO_MODULE, [])
    assert any('"batch_sise"' in e for e in errors), errors


@pytest.mark.parametrize("block", RUNNABLE, ids=lambda b: b.id)
async def test_block_runs(block: Block, tmp_path: Path) -> None:
    config = EmulatorConfig(api_keys=("demo",), item_delay_ms=1)
    async with EmulatorServer(config, host="127.0.0.1", port=0) as server:
        env = {**os.environ, "WESOG_API_KEY": "demo", "WESOG_BASE_URL": server.url}
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", block.code, env=env, cwd=tmp_path,  # files it writes
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode == 0, err.decode()
    if block.output is not None:
        assert tuple(out.decode().splitlines()) == block.output, f"{block.id}: stale output"


def test_example_tests_pass_with_the_plugin(pytester: pytest.Pytester) -> None:
    # Each example test file as a user would save it; strict mode, pytest-asyncio's
    # default, so the examples show the markers they need.
    for block in EXAMPLE_TESTS:
        pytester.makepyfile(**{f"test_{block.module}": block.code})
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    expected = sum(len(re.findall(r"^async def test_", b.code, re.M)) for b in EXAMPLE_TESTS)
    result.assert_outcomes(passed=expected)


def test_api_reference_lists_every_public_name() -> None:
    # docs/api.md documents wesog_async's names one directive each (grouped by
    # topic); the emulator and the plugin modules are documented whole.
    import wesog_async

    api = (ROOT / "docs" / "api.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"^\.\. auto\w+:: (\w+)", api, re.M))
    assert set(wesog_async.__all__) - documented == set()
    assert ".. automodule:: wesog_async.emulator\n   :members:" in api
    assert ".. automodule:: wesog_async.testing\n   :members:" in api


# -- the fault matrix names the files its tests live in ---------------------------

_DASH = "\N{EN DASH}"  # the pages write a range of faults with it
_FILE = r"`(tests/test_\w+\.py)`(?: \([^)]*\))?"
_CLAIM = re.compile(
    rf"((?:F\d+(?:{_DASH}F\d+)?(?:, | and )?)+) in " + _FILE + r"(?: and " + _FILE + ")?"
)


def _claimed(text: str) -> dict[int, set[str]]:
    """``{fault number: test files}`` as a paragraph names them
    (``F28-F31, F33 and F34 in `tests/x.py```, with an en dash)."""
    claimed: dict[int, set[str]] = {}
    for match in _CLAIM.finditer(" ".join(text.split())):
        files = {Path(f).name for f in match.groups()[1:] if f}
        for first, last in re.findall(rf"F(\d+)(?:{_DASH}F(\d+))?", match[1]):
            for n in range(int(first), int(last or first) + 1):
                claimed.setdefault(n, set()).update(files)
    return claimed


def _tested() -> dict[int, set[str]]:
    """``{fault number: test files}`` from the tests themselves: a ``test_fN_``
    function, or ``FN`` in the module docstring."""
    import ast

    tested: dict[int, set[str]] = {}
    for path in sorted((ROOT / "tests").glob("test_*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        numbers = re.findall(r"\bF(\d+)\b", ast.get_docstring(tree) or "")
        numbers += [
            m[1]
            for node in ast.walk(tree)
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
            if (m := re.match(r"test_f(\d+)_", node.name))
        ]
        for n in numbers:
            tested.setdefault(int(n), set()).add(path.name)
    return tested


@pytest.mark.parametrize(
    ("page", "start", "end"),
    [
        ("README.md", "## Reliability", "\n- "),
        ("docs/reliability.md", "## The fault matrix", "\n| "),
    ],
    ids=["README", "docs-reliability"],
)
def test_the_fault_matrix_names_the_files_of_its_tests(page: str, start: str, end: str) -> None:
    paragraph = (ROOT / page).read_text(encoding="utf-8").split(start, 1)[1].split(end, 1)[0]
    assert _claimed(paragraph) == _tested()


def test_the_fault_matrix_has_every_row() -> None:
    page = (ROOT / "docs" / "reliability.md").read_text(encoding="utf-8")
    rows = [int(n) for n in re.findall(r"^\| F(\d+) \|", page, flags=re.MULTILINE)]
    assert rows == list(range(1, max(_tested()) + 1))
