"""A local emulator of the Wesog API, for tests, benchmarks and demos.

``create_app(config)`` builds the aiohttp application; ``EmulatorServer``
runs it on a loopback port; ``app[STATE_KEY]`` (an :class:`EmulatorState`)
gives tests the store (``images(key)``), the counters, pause/resume and fault
injection (``state.faults``). It follows decisions D1-D24 of the project's API
notes; see :mod:`.query` for the ``q`` grammar, :mod:`.search` for the sort
defaults and :mod:`.faults` for fault kinds and the SPEC language.

Counters are keyed by route: ``"GET /imgs"``, ``"POST /imgs"``,
``"GET /imgs/{image_id}"``, ``"POST /imgs/{image_id}"`` (and PUT, PATCH,
DELETE of both), ``"GET /ops"``, ``"GET /ops/{op_id}"``, ``"DELETE /ops/{op_id}"``,
``"POST /tag/image"``; unknown paths count as ``"<METHOD> <unmatched>"``.
Every request is counted before authentication and faults; the internal
``/_emulator/`` routes (``GET stats``, ``POST reset``, ``GET/POST/DELETE
faults``) need no key and are never counted or faulted.

``pause_processing()`` stops workers from *starting* queued operations (one
already running finishes); ``resume_processing()`` releases them.
"""

from wesog_async.emulator.app import create_app
from wesog_async.emulator.config import EmulatorConfig
from wesog_async.emulator.counters import Counters
from wesog_async.emulator.faults import (
    FaultInjector,
    FaultRule,
    FaultSpecError,
    parse_action,
    parse_spec,
)
from wesog_async.emulator.http import STATE_KEY
from wesog_async.emulator.query import FormulaError
from wesog_async.emulator.server import EmulatorServer, run_emulator
from wesog_async.emulator.state import EmulatorState

__all__ = [
    "Counters",
    "EmulatorConfig",
    "EmulatorServer",
    "EmulatorState",
    "FaultInjector",
    "FaultRule",
    "FaultSpecError",
    "FormulaError",
    "STATE_KEY",
    "create_app",
    "parse_action",
    "parse_spec",
    "run_emulator",
]
