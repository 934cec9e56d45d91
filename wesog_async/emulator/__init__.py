"""A local emulator of the Wesog API, for tests, benchmarks and demos.

``create_app(config)`` builds the aiohttp application; ``EmulatorServer``
runs it on a loopback port; ``app[STATE_KEY]`` (an :class:`EmulatorState`)
gives tests the store, the counters, pause/resume and fault injection. It
follows decisions D1-D24 of the project's API notes; see the submodules for
the formula grammar (:mod:`.query`) and the fault SPEC (:mod:`.faults`).
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
