"""Sphinx configuration of the wesog-async docs site.

Build (what ``.ci/run`` does; warnings are errors)::

    python -m pip install -e ".[docs]"
    python -m sphinx -W --keep-going -b html docs docs/_build/html
"""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from sphinx.application import Sphinx

# Document this checkout's package, not whichever copy is installed.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from wesog_async import __version__

project = "wesog-async"
author = "wesog_async developers"
copyright = "2026, wesog_async developers"
release = __version__
version = ".".join(__version__.split(".")[:2])

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.intersphinx",
    "sphinxarg.ext",
]

source_suffix = {".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build"]
myst_enable_extensions = ["colon_fence", "deflist"]
# Headings get anchors, so pages can link to "file.md#section".
myst_heading_anchors = 3

html_theme = "furo"
html_title = f"wesog-async {release}"
add_module_names = False
# Option names like --failed-out must not become en dashes, nor quotes curly.
smartquotes = False

# -- API reference ---------------------------------------------------------------------
# The reference documents the public names (``wesog_async.__all__`` and the
# emulator's and plugin's own ``__all__``), never the private modules they live in:
# those are refactored freely. Signatures show type hints, descriptions stay prose.
autodoc_default_options = {"members": True}
autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_preserve_defaults = True

# -- Links to Python, aiohttp and attrs --------------------------------------------------
# intersphinx downloads each project's objects.inv when the build starts, and an
# inventory it cannot reach is a warning, so an offline build with -W would fail
# (CI and developer machines have no general internet access). Sphinx has no option
# to make that one warning non-fatal, and shipping copies of other projects'
# inventories would go stale. So each mapping is enabled only when its host
# answers a TCP connection within INTERSPHINX_PROBE_S; offline, references to
# those projects render as plain code instead of links (nitpicky stays off, so an
# unresolved external reference is not a warning). Online, an inventory that
# fails to load is still a warning, i.e. an error under -W.
# WESOG_DOCS_INTERSPHINX=0 turns the links off, =1 skips the probe (always fetch).
INTERSPHINX = {
    "python": ("https://docs.python.org/3", None),
    "aiohttp": ("https://docs.aiohttp.org/en/stable", None),
    "attrs": ("https://www.attrs.org/en/stable", None),
}
INTERSPHINX_PROBE_S = 2.0
intersphinx_timeout = 10


def _reachable(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    try:
        socket.create_connection((host, 443), timeout=INTERSPHINX_PROBE_S).close()
    except OSError:
        return False
    return True


_mode = os.environ.get("WESOG_DOCS_INTERSPHINX", "auto")
if _mode == "0":
    intersphinx_mapping: dict[str, tuple[str, None]] = {}
elif _mode == "1":
    intersphinx_mapping = dict(INTERSPHINX)
else:
    intersphinx_mapping = {k: v for k, v in INTERSPHINX.items() if _reachable(v[0])}


# -- Endpoint namespaces -----------------------------------------------------------------
# ``client.images``, ``client.ops`` and ``client.tag`` are instances of classes that
# wesog_async does not export, and their private modules move during refactors. So the
# reference finds the classes from a client (constructing one does no I/O) and puts
# their dotted paths where api.md says |client.images|, |client.ops| and |client.tag|.
def _endpoint_paths() -> dict[str, str]:
    from wesog_async import WesogClient

    client = WesogClient(api_key="docs", base_url="http://127.0.0.1:1")
    paths: dict[str, str] = {}
    for attr in ("images", "ops", "tag"):
        cls = type(getattr(client, attr))
        paths[f"|client.{attr}|"] = f"{cls.__module__}.{cls.__qualname__}"
    return paths


def _fill_endpoint_paths(app: Sphinx, docname: str, source: list[str]) -> None:
    if docname == "api":
        for marker, path in _endpoint_paths().items():
            source[0] = source[0].replace(marker, path)


# -- CLI reference ---------------------------------------------------------------------
# sphinx-argparse parses every description and epilog as reStructuredText, but the
# parser marks some as preformatted (RawDescriptionHelpFormatter: the fault SPEC
# table of `wesog-async emulator`), which reST mangles into warnings. Those texts
# become literal blocks, as argparse itself prints them.
def _literal_preformatted_texts() -> None:
    import argparse

    import sphinxarg.ext  # type: ignore[import-untyped]
    import sphinxarg.parser  # type: ignore[import-untyped]

    original = sphinxarg.parser.parse_parser
    raw = (argparse.RawDescriptionHelpFormatter, argparse.RawTextHelpFormatter)

    def parse_parser(
        parser: argparse.ArgumentParser, data: dict[str, Any] | None = None, **kwargs: Any
    ) -> dict[str, Any]:
        result: dict[str, Any] = original(parser, data, **kwargs)
        formatter = parser.formatter_class
        if isinstance(formatter, type) and issubclass(formatter, raw):
            for key in ("description", "epilog"):
                text = result.get(key)
                if text and "\n" in text.strip():
                    body = "\n".join("    " + line for line in text.strip("\n").splitlines())
                    result[key] = "::\n\n" + body
        return result

    # parse_parser calls itself (through its module) for each subcommand.
    sphinxarg.parser.parse_parser = parse_parser
    sphinxarg.ext.parse_parser = parse_parser


_literal_preformatted_texts()


def setup(app: Sphinx) -> dict[str, bool]:
    app.connect("source-read", _fill_endpoint_paths)
    return {"parallel_read_safe": True}
