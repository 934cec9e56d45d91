"""The ``q`` filtering formula (§4.3): a small recursive-descent compiler.

Grammar (whitespace is free between tokens)::

    formula := or
    or      := and ("||" and)*
    and     := unary ("&&" unary)*
    unary   := "!" unary | "(" or ")" | filter
    filter  := NAME OP VALUE
    OP      := "~~~" | "~~" | "~" | "===" | "==" | "<=" | "=<" | ">=" | "=>"
             | "=" | "<" | ">" | ":"
    VALUE   := '"..."' | "'...'" | raw text up to "&&", "||", ")" or the end

Filters (aliases → meaning):

* ``id`` image id; ``=``/``:`` equal; ``<``/``>``/``<=``/``>=`` compare numeric
  ids numerically with a numeric bound (other ids never match), else
  alphabetically.
* ``d``/``date`` (``YEAR-MONTH-DAY``), ``r``/``ratio``/``aspect_ratio``,
  ``n``/``n_people``/``n_faces``, ``width``, ``height``: comparisons.
* ``ai`` (``ai_generated``), ``nsfw``, ``model_release``, ``property_release``:
  ``=`` true/false.
* ``t``/``txt``/``text``: ``~`` (any word shared), ``~~`` (half the words),
  ``~~~`` (all words) over title, headline, caption and keywords.
* ``k``/``key``/``keywords``, ``cat``/``categories``, ``col``/``collections``:
  ``=`` contains all of the comma-separated values, ``:`` at least one,
  ``~`` a sub-word of any element.
* ``i``/``img``/``image``: ``=`` that image id, ``~`` text-similar to it.
* ``p``/``person``: images with faces whose text shares a word with the name.
* ``status`` and every other string field by name (``city``, ``author``, ...):
  ``=``/``:`` case-insensitive equal, ``==``/``===`` exact, ``~`` substring,
  ``<``/``>``... alphabetical.

A compiled :class:`Query` is a predicate over store records plus a similarity
score (for ``sort_by=similarity``) when the formula has ``~`` text filters.
"""

from __future__ import annotations

import datetime as dt
import functools
import operator
import re
from collections.abc import Callable
from typing import Any

from wesog_async.emulator.store import (
    BOOL_FIELDS,
    LIST_FIELDS,
    STRING_FIELDS,
    ImageStore,
    Record,
    parse_date,
    tokens,
)

Predicate = Callable[[Record], bool]

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_OPS = ("~~~", "~~", "~", "===", "==", "<=", "=<", ">=", "=>", "=", "<", ">", ":")
_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "<": operator.lt,
    ">": operator.gt,
    "<=": operator.le,
    "=<": operator.le,
    ">=": operator.ge,
    "=>": operator.ge,
    "=": operator.eq,
    "==": operator.eq,
    "===": operator.eq,
    ":": operator.eq,
}
_ORDER_OPS = frozenset(_COMPARE)
_EQ_OPS = frozenset({"=", "==", "===", ":"})
_SIM_OPS = frozenset({"~", "~~", "~~~"})
# Fraction of the query's words an image must share for ~, ~~ and ~~~.
_SIM_THRESHOLD = {"~": 1e-9, "~~": 0.5, "~~~": 1.0}
_TRUE = frozenset({"true", "1", "yes"})
_FALSE = frozenset({"false", "0", "no"})

_ALIASES: dict[str, str] = {
    "id": "id",
    "d": "date",
    "date": "date",
    "r": "aspect_ratio",
    "ratio": "aspect_ratio",
    "aspect_ratio": "aspect_ratio",
    "n": "n_faces",
    "n_people": "n_faces",
    "n_faces": "n_faces",
    "width": "width",
    "height": "height",
    "ai": "ai_generated",
    "ai_generated": "ai_generated",
    "nsfw": "nsfw",
    "model_release": "model_release",
    "property_release": "property_release",
    "t": "text",
    "txt": "text",
    "text": "text",
    "k": "keywords",
    "key": "keywords",
    "keywords": "keywords",
    "cat": "categories",
    "categories": "categories",
    "col": "collections",
    "collections": "collections",
    "i": "image",
    "img": "image",
    "image": "image",
    "p": "person",
    "person": "person",
}
# Every stored field can be filtered by its own name (the store defines them).
_STRING_FILTERS = STRING_FIELDS
_BOOL_FILTERS = BOOL_FIELDS
_LIST_FILTERS = LIST_FIELDS


class FormulaError(ValueError):
    """A malformed formula; ``pos`` is the 0-based character where it broke."""

    def __init__(self, pos: int, message: str) -> None:
        super().__init__(f"invalid formula at position {pos}: {message}")
        self.pos = pos


class Query:
    """A compiled formula: ``match(record)`` and, for ``~`` filters, ``score``."""

    def __init__(self, predicate: Predicate | None, similar: list[frozenset[str]]) -> None:
        self.predicate = predicate
        self._similar = similar

    @property
    def has_similarity(self) -> bool:
        return bool(self._similar)

    def score(self, record: Record) -> float:
        """Summed fraction of each ``~`` filter's words found in the image."""
        text = record.text
        return sum(len(words & text) / len(words) for words in self._similar)


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


class _Parser:
    def __init__(self, text: str, store: ImageStore) -> None:
        self.text = text
        self.pos = 0
        self.store = store
        self.similar: list[frozenset[str]] = []

    # -- lexing helpers ------------------------------------------------------
    def _skip(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1

    def _peek(self, token: str) -> bool:
        self._skip()
        return self.text.startswith(token, self.pos)

    def _found(self) -> str:
        if self.pos >= len(self.text):
            return "end of formula"
        return repr(self.text[self.pos : self.pos + 10])

    def _fail(self, expected: str, pos: int | None = None) -> FormulaError:
        if pos is not None:
            self.pos = pos
        return FormulaError(self.pos, f"expected {expected}, found {self._found()}")

    # -- grammar -----------------------------------------------------------------
    def parse(self) -> Predicate:
        predicate = self._or()
        self._skip()
        if self.pos < len(self.text):
            raise self._fail("'&&', '||' or the end of the formula")
        return predicate

    def _or(self) -> Predicate:
        parts = [self._and()]
        while self._peek("||"):
            self.pos += 2
            parts.append(self._and())
        return functools.reduce(_either, parts)

    def _and(self) -> Predicate:
        parts = [self._unary()]
        while self._peek("&&"):
            self.pos += 2
            parts.append(self._unary())
        return functools.reduce(_both, parts)

    def _unary(self) -> Predicate:
        self._skip()
        if self._peek("!"):
            self.pos += 1
            inner = self._unary()
            return lambda rec: not inner(rec)
        if self._peek("("):
            self.pos += 1
            inner = self._or()
            if not self._peek(")"):
                raise self._fail("')'")
            self.pos += 1
            return inner
        return self._filter()

    def _filter(self) -> Predicate:
        self._skip()
        match = _NAME.match(self.text, self.pos)
        if match is None:
            raise self._fail("a filter name, '(' or '!'")
        name_pos, name = self.pos, match.group()
        self.pos = match.end()
        self._skip()
        op = next((o for o in _OPS if self.text.startswith(o, self.pos)), None)
        if op is None:
            raise self._fail("an operator (=, <, >, <=, >=, ~, :)")
        op_pos = self.pos
        self.pos += len(op)
        value_pos, value = self._value()
        key = name.lower()
        target = _ALIASES.get(key, key if key in _STRING_FILTERS else None)
        if target is None:
            raise FormulaError(name_pos, f"unknown filter {name!r}")
        return self._build(target, op, op_pos, value, value_pos)

    def _value(self) -> tuple[int, str]:
        self._skip()
        start = self.pos
        if start < len(self.text) and self.text[start] in "\"'":
            quote, chars, i = self.text[start], [], start + 1
            while i < len(self.text) and self.text[i] != quote:
                if self.text[i] == "\\" and i + 1 < len(self.text):
                    i += 1
                chars.append(self.text[i])
                i += 1
            if i >= len(self.text):
                raise FormulaError(start, "unterminated quoted value")
            self.pos = i + 1
            return start, "".join(chars)
        end = len(self.text)
        for stop in ("&&", "||", ")"):
            found = self.text.find(stop, start)
            if found != -1:
                end = min(end, found)
        value = self.text[start:end].strip()
        if not value:
            raise self._fail("a value")
        self.pos = end
        return start, value

    # -- filters -------------------------------------------------------------------
    def _check_op(self, op: str, allowed: frozenset[str], what: str, op_pos: int) -> None:
        if op not in allowed:
            raise FormulaError(op_pos, f"operator {op!r} is not allowed for {what}")

    def _build(self, target: str, op: str, op_pos: int, value: str, pos: int) -> Predicate:
        if target == "id":
            return self._id(op, op_pos, value)
        if target == "date":
            self._check_op(op, _ORDER_OPS, "dates", op_pos)
            day = parse_date(value)
            if day is None:
                raise FormulaError(pos, f"expected a date YEAR-MONTH-DAY, found {value!r}")
            return _compare_attr(lambda rec: rec.date, _COMPARE[op], day)
        if target in ("aspect_ratio", "n_faces", "width", "height"):
            self._check_op(op, _ORDER_OPS, "numbers", op_pos)
            number = _number(value)
            if number is None:
                raise FormulaError(pos, f"expected a number, found {value!r}")
            if target == "aspect_ratio":
                return _compare_attr(lambda rec: rec.aspect_ratio, _COMPARE[op], number)
            return _compare_attr(lambda rec: rec.doc[target], _COMPARE[op], number)
        if target in _BOOL_FILTERS:
            self._check_op(op, _EQ_OPS, "booleans", op_pos)
            low = value.lower()
            if low not in _TRUE and low not in _FALSE:
                raise FormulaError(pos, f"expected true or false, found {value!r}")
            wanted = low in _TRUE
            return lambda rec: rec.doc[target] is wanted
        if target == "text":
            self._check_op(op, _SIM_OPS, "text", op_pos)
            return self._similar_to(tokens(value), op, pos)
        if target in _LIST_FILTERS:
            return self._list(target, op, op_pos, value)
        if target == "image":
            return self._image(op, op_pos, value, pos)
        if target == "person":
            self._check_op(op, _SIM_OPS | {"="}, "person", op_pos)
            similar = self._similar_to(tokens(value), "~", pos)
            return lambda rec: bool(rec.doc["n_faces"]) and similar(rec)
        return self._string(target, op, value)

    def _similar_to(self, words: frozenset[str], op: str, pos: int) -> Predicate:
        if not words:
            raise FormulaError(pos, "expected some words to compare")
        self.similar.append(words)
        threshold = _SIM_THRESHOLD[op]
        size = len(words)
        return lambda rec: len(words & rec.text) / size >= threshold

    def _id(self, op: str, op_pos: int, value: str) -> Predicate:
        self._check_op(op, _ORDER_OPS, "id", op_pos)
        compare = _COMPARE[op]
        number = _number(value)
        if op in _EQ_OPS:
            return lambda rec: rec.doc["image_id"] == value

        def by_id(rec: Record) -> bool:
            image_id: str = rec.doc["image_id"]
            if number is None:
                return compare(image_id, value)
            # A numeric bound compares numeric ids only: "abc" is not > 2.
            mine = _number(image_id)
            return mine is not None and compare(mine, number)

        return by_id

    def _list(self, target: str, op: str, op_pos: int, value: str) -> Predicate:
        self._check_op(op, _EQ_OPS | {"~"}, "list filters", op_pos)
        wanted = frozenset(v.strip().casefold() for v in value.split(",") if v.strip())
        if target == "keywords":

            def elements(rec: Record) -> frozenset[str]:
                return rec.keywords
        else:

            def elements(rec: Record) -> frozenset[str]:
                return frozenset(v.casefold() for v in rec.doc[target] or ())

        if op == "~":
            return lambda rec: any(w in e for e in elements(rec) for w in wanted)
        if op == ":":
            return lambda rec: not wanted.isdisjoint(elements(rec))
        return lambda rec: wanted <= elements(rec)

    def _image(self, op: str, op_pos: int, value: str, pos: int) -> Predicate:
        self._check_op(op, _EQ_OPS | _SIM_OPS, "image", op_pos)
        if op in _EQ_OPS:
            return lambda rec: rec.doc["image_id"] == value
        reference = self.store.record(value)
        words = reference.text if reference is not None else frozenset()
        if not words:
            return lambda rec: False  # an unknown or text-less image matches nothing
        return self._similar_to(words, op, pos)

    def _string(self, target: str, op: str, value: str) -> Predicate:
        if op in ("==", "==="):
            return lambda rec: rec.doc[target] == value
        folded = value.casefold()
        if op in ("=", ":"):
            return lambda rec: isinstance(v := rec.doc[target], str) and v.casefold() == folded
        if op in _SIM_OPS:
            return lambda rec: isinstance(v := rec.doc[target], str) and folded in v.casefold()
        compare = _COMPARE[op]
        return lambda rec: isinstance(v := rec.doc[target], str) and compare(v.casefold(), folded)


# Binary closures are cheaper per record than all()/any() over a generator.
def _both(left: Predicate, right: Predicate) -> Predicate:
    return lambda rec: left(rec) and right(rec)


def _either(left: Predicate, right: Predicate) -> Predicate:
    return lambda rec: left(rec) or right(rec)


def _compare_attr(
    get: Callable[[Record], Any], compare: Callable[[Any, Any], bool], bound: float | dt.date
) -> Predicate:
    def predicate(rec: Record) -> bool:
        mine = get(rec)
        return mine is not None and compare(mine, bound)

    return predicate


def compile_formula(text: str, store: ImageStore) -> Query:
    """Compile ``q`` once per request; raises :class:`FormulaError`."""
    if not text.strip():
        return Query(None, [])
    parser = _Parser(text, store)
    predicate = parser.parse()
    return Query(predicate, parser.similar)
