"""The fault registry of one emulator: rules, scripts, and the pick per request."""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Iterable
from typing import Any

from wesog_async.emulator.faults.rules import (
    FaultRule,
    FaultSpecError,
    ScriptAction,
    check_route,
    route_matches,
)
from wesog_async.emulator.faults.spec import parse_action, parse_spec


class _Armed:
    """A rule and how many more times it may fire."""

    __slots__ = ("remaining", "rule")

    def __init__(self, rule: FaultRule) -> None:
        self.rule = rule
        self.remaining = rule.times


class FaultInjector:
    """The faults of one emulator: ``add`` rules, ``script`` routes, ``clear``."""

    def __init__(self, seed: int = 0) -> None:
        self.rng = random.Random(seed)
        self._rules: list[_Armed] = []
        self._scripts: dict[str, deque[FaultRule | None]] = {}

    # -- configuring -----------------------------------------------------------------
    def add(self, *rules: FaultRule) -> None:
        """Add rules (tried in the order added)."""
        self._rules.extend(_Armed(rule) for rule in rules)

    def script(self, route: str, actions: Iterable[ScriptAction]) -> None:
        """Queue ``actions`` for the next calls to ``route``, one per call.

        An action is a :class:`FaultRule` (its route is ignored), an ACTION of
        the SPEC language (``"503"``, ``"429(ra=1)"``, ``"reset_after"``) or
        ``None``/``"pass"`` for a call that goes through untouched.
        """
        check_route(None, None, route)
        queue = self._scripts.setdefault(route, deque())
        queue.extend(
            a if isinstance(a, FaultRule) or a is None else parse_action(a) for a in actions
        )

    def load_spec(self, spec: str) -> None:
        """Add the rules and scripts of a SPEC string."""
        rules, scripts = parse_spec(spec)
        self.add(*rules)
        for route, actions in scripts:
            self.script(route, actions)

    def load_json(self, data: Any) -> None:
        """Add faults from the JSON accepted by ``POST /_emulator/faults``."""
        if not isinstance(data, dict):
            raise FaultSpecError("expected a JSON object")
        unknown = set(data) - {"spec", "rules", "scripts", "replace", "seed"}
        if unknown:
            raise FaultSpecError(f"unknown keys: {sorted(unknown)}")
        try:
            rules = [FaultRule(**r) for r in data.get("rules", [])]
            scripts = {
                route: [FaultRule(**a) if isinstance(a, dict) else a for a in actions]
                for route, actions in dict(data.get("scripts", {})).items()
            }
        except TypeError as exc:
            raise FaultSpecError(str(exc)) from None
        spec = data.get("spec", "")
        parsed = parse_spec(spec) if spec else ([], [])
        if data.get("replace"):
            self.clear()
        if "seed" in data:
            self.rng.seed(data["seed"])
        self.add(*rules, *parsed[0])
        for route, actions in [*scripts.items(), *parsed[1]]:
            self.script(route, actions)

    def clear(self) -> None:
        """Remove every rule and script."""
        self._rules.clear()
        self._scripts.clear()

    def to_json(self) -> dict[str, Any]:
        """The rules (with ``remaining``) and the scripts still pending."""
        return {
            "rules": [dict(a.rule.to_json(), remaining=a.remaining) for a in self._rules],
            "scripts": {
                route: [None if a is None else a.to_json() for a in actions]
                for route, actions in self._scripts.items()
            },
        }

    # -- picking ----------------------------------------------------------------------
    def pick(self, route: str) -> FaultRule | None:
        """The fault for this request to ``route``, or ``None``."""
        if self._scripts:
            method = route.partition(" ")[0]
            for pattern in (route, f"{method} *", route.partition(" ")[2], "*"):
                queue = self._scripts.get(pattern)
                if queue:
                    action = queue.popleft()
                    if not queue:
                        del self._scripts[pattern]
                    return action
        for armed in self._rules:
            if armed.remaining == 0 or not route_matches(armed.rule.route, route):
                continue
            if armed.rule.probability < 1.0 and self.rng.random() >= armed.rule.probability:
                continue
            if armed.remaining is not None:
                armed.remaining -= 1
            return armed.rule
        return None
