"""wesog_async: the asyncio client for the Wesog image-search API."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("wesog-async")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"

__all__ = ["__version__"]
