"""Configuration of the emulator: one frozen attrs class, plus delay sampling."""

from __future__ import annotations

import math
import random
from collections.abc import Iterable
from typing import Literal

import attrs

from wesog_async.emulator.faults.spec import parse_spec

DelayDistribution = Literal["fixed", "exponential", "lognormal"]

_DISTRIBUTIONS = ("fixed", "exponential", "lognormal")

# Spread of the lognormal distribution (sigma of the underlying normal). 0.5 gives
# a realistic right tail without making benchmark runs wildly variable.
_LOGNORMAL_SIGMA = 0.5


def _to_keys(keys: Iterable[str]) -> tuple[str, ...]:
    # A lone string would otherwise become a tuple of characters.
    return (keys,) if isinstance(keys, str) else tuple(keys)


def _check_keys(
    _inst: object, _attr: attrs.Attribute[tuple[str, ...]], keys: tuple[str, ...]
) -> None:
    if not keys:
        raise ValueError("EmulatorConfig.api_keys needs at least one key")
    if any(not isinstance(k, str) or not k for k in keys):
        raise ValueError("every API key must be a non-empty string")
    if len(set(keys)) != len(keys):
        raise ValueError("API keys must be unique (each key is its own tenant)")


def _check_distribution(_inst: object, _attr: attrs.Attribute[str], value: str) -> None:
    if value not in _DISTRIBUTIONS:
        raise ValueError(f"delay_distribution must be one of {_DISTRIBUTIONS}, got {value!r}")


def _non_negative(_inst: object, attr: attrs.Attribute[float], value: float) -> None:
    if value < 0 or math.isnan(value):
        raise ValueError(f"{attr.name} must be >= 0, got {value!r}")


def _check_faults(_inst: object, _attr: attrs.Attribute[str], spec: str) -> None:
    if spec:
        parse_spec(spec)  # raises FaultSpecError, a ValueError


def _positive(_inst: object, attr: attrs.Attribute[int], value: int) -> None:
    if value < 1:
        raise ValueError(f"{attr.name} must be >= 1, got {value!r}")


@attrs.frozen(kw_only=True)
class EmulatorConfig:
    """Everything that shapes one emulator instance.

    Delays are in milliseconds (the unit of the API's ``idle_ms``/``exec_ms``);
    ``item_delay_ms`` is spent per item, ``op_delay_ms`` once per operation:
    an operation of N items takes N item delays (never less, on any event
    loop; items are applied in chunks of about 1 ms as their time comes).
    With a random ``delay_distribution`` the value is the mean (exponential) or
    the median (lognormal), drawn from an RNG seeded with ``seed``.
    ``faults`` is a fault SPEC (see :mod:`wesog_async.emulator.faults`)
    installed when the app is created.
    """

    api_keys: tuple[str, ...] = attrs.field(
        default=("demo",), converter=_to_keys, validator=_check_keys
    )
    item_delay_ms: float = attrs.field(default=0.0, validator=_non_negative)
    op_delay_ms: float = attrs.field(default=0.0, validator=_non_negative)
    delay_distribution: DelayDistribution = attrs.field(
        default="fixed", validator=_check_distribution
    )
    workers_per_tenant: int = attrs.field(default=1, validator=_positive)
    max_batch_items: int = attrs.field(default=10000, validator=_positive)
    max_body_bytes: int = attrs.field(default=50_000_000, validator=_positive)
    seed: int = 0
    access_log: bool = False
    faults: str = attrs.field(default="", validator=_check_faults)

    def __repr__(self) -> str:
        # Never show API keys, even in a test failure report.
        return (
            f"EmulatorConfig(api_keys=<{len(self.api_keys)} keys>, "
            f"item_delay_ms={self.item_delay_ms}, op_delay_ms={self.op_delay_ms}, "
            f"delay_distribution={self.delay_distribution!r}, "
            f"workers_per_tenant={self.workers_per_tenant}, "
            f"max_batch_items={self.max_batch_items}, max_body_bytes={self.max_body_bytes}, "
            f"seed={self.seed}, access_log={self.access_log}, faults={self.faults!r})"
        )


def sample_delay_s(mean_ms: float, distribution: str, rng: random.Random) -> float:
    """Draw one delay in seconds around ``mean_ms`` from ``distribution``."""
    if mean_ms <= 0:
        return 0.0
    if distribution == "exponential":
        return rng.expovariate(1.0 / mean_ms) / 1000.0
    if distribution == "lognormal":
        # median = exp(mu) = mean_ms
        return rng.lognormvariate(math.log(mean_ms), _LOGNORMAL_SIGMA) / 1000.0
    return mean_ms / 1000.0
