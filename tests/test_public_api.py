"""The public surface: ``__all__`` is complete and sorted, and the package is typed."""

from __future__ import annotations

import importlib.metadata
import re
import tomllib
import types
from importlib import resources
from pathlib import Path
from typing import Any

import wesog_async


def _public_names() -> set[str]:
    """Public names bound in the package that come from the package's own modules."""
    names = set()
    for name, obj in vars(wesog_async).items():
        if name.startswith("_") or isinstance(obj, types.ModuleType):
            continue
        module = getattr(obj, "__module__", None) or getattr(type(obj), "__module__", "")
        if module == "wesog_async" or module.startswith("wesog_async."):
            names.add(name)
    return names


def _isort_key(name: str) -> tuple[int, str]:
    # ruff's RUF022 "isort-style": CONSTANTS, then CamelCase, then everything else.
    if name.isupper():
        return 0, name
    if name[:1].isupper():
        return 1, name
    return 2, name


def test_every_name_in_all_exists() -> None:
    missing = [name for name in wesog_async.__all__ if not hasattr(wesog_async, name)]
    assert missing == []


def test_all_has_no_duplicates() -> None:
    assert len(wesog_async.__all__) == len(set(wesog_async.__all__))


def test_all_is_sorted() -> None:
    assert wesog_async.__all__ == sorted(wesog_async.__all__, key=_isort_key)


# Type aliases carry no __module__ of their own; they are listed here.
TYPE_ALIASES = {"IngestMode"}


def test_all_is_complete() -> None:
    assert set(wesog_async.__all__) == _public_names() | {"__version__"} | TYPE_ALIASES


def test_star_import_gives_exactly_all() -> None:
    namespace: dict[str, object] = {}
    exec("from wesog_async import *", namespace)
    namespace.pop("__builtins__")
    assert set(namespace) == set(wesog_async.__all__)


def test_version_comes_from_the_installed_metadata() -> None:
    assert wesog_async.__version__ == importlib.metadata.version("wesog-async")


def test_py_typed_ships() -> None:
    marker = resources.files("wesog_async").joinpath("py.typed")
    assert marker.is_file()


def test_public_classes_report_the_package_as_their_module() -> None:
    import pickle

    for name in wesog_async.__all__:
        obj = getattr(wesog_async, name)
        if isinstance(obj, type):
            assert obj.__module__ == "wesog_async", name
    err = wesog_async.NotFoundError("gone", status=404)
    assert type(pickle.loads(pickle.dumps(err))) is wesog_async.NotFoundError
    assert repr(wesog_async.RetryPolicy()).startswith("RetryPolicy(")


ROOT = Path(wesog_async.__file__).parent


def _architecture_section() -> str:
    readme = (ROOT.parent / "README.md").read_text(encoding="utf-8")
    return readme.split("## Architecture", 1)[1].split("\n## ", 1)[0]


def _contracts() -> list[dict[str, Any]]:
    config = tomllib.loads((ROOT.parent / "pyproject.toml").read_text(encoding="utf-8"))
    contracts: list[dict[str, Any]] = config["tool"]["importlinter"]["contracts"]
    return contracts


def _top_level_modules() -> set[str]:
    names = {p.stem for p in ROOT.glob("*.py") if p.stem not in ("__init__", "__main__")}
    return names | {p.name for p in ROOT.iterdir() if p.is_dir() and (p / "__init__.py").exists()}


def test_the_readme_architecture_table_is_the_layers_contract() -> None:
    names = _top_level_modules()
    rows = [
        line.split("|")[2]
        for line in _architecture_section().splitlines()
        if line.startswith("| ") and not line.startswith("| layer")
    ]
    in_rows = [{n for n in re.findall(r"`(\w+)(?:\.py|/)", row) if n in names} for row in rows]
    (layers,) = [c["layers"] for c in _contracts() if c["type"] == "layers"]
    in_contract = [{m.strip() for m in re.split(r"[|:]", layer)} for layer in layers]
    # One table row per layer, in the contract's order, then the emulator.
    assert in_rows == [*in_contract, {"emulator"}]
    assert set().union(*in_rows) == names


def test_the_readme_describes_every_import_contract() -> None:
    section = _architecture_section()
    for contract in _contracts():
        assert f"**{contract['name']}**" in section, contract["name"]
        assert f"(`{contract['type']}`" in section, contract["type"]


def test_the_emulator_contract_forbids_every_client_module() -> None:
    (forbidden,) = [c for c in _contracts() if c["type"] == "forbidden"]
    assert forbidden["source_modules"] == ["wesog_async.emulator"]
    client = {f"wesog_async.{name}" for name in _top_level_modules() - {"emulator"}}
    assert set(forbidden["forbidden_modules"]) == client


def test_the_acyclic_contract_covers_the_whole_package() -> None:
    (acyclic,) = [c for c in _contracts() if c["type"] == "acyclic_siblings"]
    assert acyclic["ancestors"] == ["wesog_async"]
    # Neither skipped packages nor ignored imports: every cycle counts.
    assert not acyclic.get("skip_descendants") and not acyclic.get("ignore_imports")
    assert acyclic.get("depth", 10) >= 3  # wesog_async.bulk.journal.* at least
    config = tomllib.loads((ROOT.parent / "pyproject.toml").read_text(encoding="utf-8"))
    assert not config["tool"]["importlinter"].get("exclude_type_checking_imports")


def test_the_docs_architecture_page_is_the_readme_section() -> None:
    page = (ROOT.parent / "docs" / "architecture.md").read_text(encoding="utf-8")
    assert page.split("# Architecture", 1)[1].strip() == _architecture_section().strip()
