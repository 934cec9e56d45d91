"""Library logs for the command line: off by default (the CLI reports outcomes
itself), on stderr with ``--verbose`` or ``--log-format json``."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any, Final

# The attributes every LogRecord has; anything else came in through ``extra=``.
_STANDARD: Final = frozenset(
    vars(logging.LogRecord("x", logging.INFO, "x", 0, "x", None, None)).keys()
) | {"message", "asctime", "taskName"}


class JSONFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message and the
    record's ``extra`` fields (values JSON cannot hold become strings)."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and key not in data:
                data[key] = value
        if record.exc_info:
            data["exc_info"] = self.formatException(record.exc_info)
        return json.dumps(data, ensure_ascii=False, default=str)


def _level(verbose: int) -> int:
    return logging.DEBUG if verbose >= 2 else logging.INFO


@contextlib.contextmanager
def library_logs(args: argparse.Namespace) -> Iterator[None]:
    """Route ``wesog_async`` log records to stderr for the command's duration,
    as ``args.log_format`` asks; swallow them when logging is off."""
    verbose: int = getattr(args, "verbose", 0) or 0
    log_format: str = getattr(args, "log_format", "text")
    logger = logging.getLogger("wesog_async")
    level = logger.level
    handler: logging.Handler
    if verbose or log_format == "json":
        handler = logging.StreamHandler(sys.stderr)
        if log_format == "json":
            handler.setFormatter(JSONFormatter())
        else:
            handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        logger.setLevel(_level(verbose))
    else:
        handler = logging.NullHandler()
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


__all__ = ["JSONFormatter", "library_logs"]
