"""The public surface: ``__all__`` is complete and sorted, and the package is typed."""

from __future__ import annotations

import importlib.metadata
import types
from importlib import resources

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


def test_the_readme_architecture_names_every_module_and_the_contract_too() -> None:
    import re
    import tomllib
    from pathlib import Path

    root = Path(wesog_async.__file__).parent
    readme = (root.parent / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Architecture", 1)[1].split("\n## ", 1)[0]
    names = {p.stem for p in root.glob("*.py") if p.stem not in ("__init__", "__main__")}
    names |= {p.name for p in root.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    listed = set(re.findall(r"`([\w]+)(?:\.py|/)", section))
    assert names <= listed, names - listed
    config = tomllib.loads((root.parent / "pyproject.toml").read_text(encoding="utf-8"))
    layers = config["tool"]["importlinter"]["contracts"][0]["layers"]
    in_contract = {m.strip() for layer in layers for m in re.split(r"[|:]", layer)}
    assert names - {"emulator"} <= in_contract, (names - {"emulator"}) - in_contract
