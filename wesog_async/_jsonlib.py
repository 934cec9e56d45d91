"""The fastest JSON codec available: orjson (extra ``speedups``) or the stdlib."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

dumps: Callable[[Any], bytes]
loads: Callable[[bytes | str], Any]

try:
    import orjson

    dumps = orjson.dumps
    loads = orjson.loads
    JSON_DECODE_ERRORS: tuple[type[Exception], ...] = (orjson.JSONDecodeError, UnicodeDecodeError)
    BACKEND = "orjson"
except ImportError:  # pragma: no cover - depends on the installed extras
    _encoder = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)

    def dumps(obj: Any) -> bytes:
        return _encoder.encode(obj).encode("utf-8")

    loads = json.loads
    JSON_DECODE_ERRORS = (ValueError, UnicodeDecodeError)
    BACKEND = "json"
