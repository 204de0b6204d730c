"""Reading TOML tables into frozen dataclasses, where the dataclass is the schema.

A field's annotation says what its key takes (``int``, ``float``, ``str``, ``bool``,
``Literal[...]``, ``tuple[str, ...]``, ``dict``, :data:`Instant`), ``field(metadata=...)``
adds a range (:func:`limits`); a field without a default is required. One definition per table
means the docs, the check and the run cannot disagree about which keys exist.

The same type reading serves the agents' own config classes (``MarketConfig``,
``AggregatorConfig``, ``AggregationParams``): :func:`check_keys` refuses keys those classes do
not have and values of the wrong type before the class is built, so a new field added to such a
class is accepted here the moment it exists.
"""

from __future__ import annotations

import dataclasses
import json
import math
from datetime import datetime
from typing import Any, Iterable, Literal, NewType, Optional, Union, get_args, get_origin, get_type_hints

from vmenergy.flexoffer import FlexOfferError
from vmenergy.flexoffer.timeutil import format_utc, parse_utc

from .locate import KeyPath
from .problems import Problems, suggest

__all__ = ["Instant", "limits", "read_table", "check_keys", "show"]

#: Epoch seconds (UTC), written in TOML as ISO 8601 UTC text or a TOML offset date-time.
Instant = NewType("Instant", int)

# Dates outside these years are typos, and years below 1000 do not survive strftime (STACK-NOTES).
_EARLIEST, _LATEST = parse_utc("1970-01-01T00:00:00Z", "-"), parse_utc("2200-01-01T00:00:00Z", "-")

_NAMES = {bool: "true or false", int: "an integer", float: "a number", str: "a string", dict: "a table"}


def limits(*, ge: Optional[float] = None, gt: Optional[float] = None, le: Optional[float] = None,
           lt: Optional[float] = None, **extra: Any) -> dict:
    """Field metadata bounding a number: ``field(default=1, metadata=limits(ge=1))``."""
    return {k: v for k, v in dict(ge=ge, gt=gt, le=le, lt=lt, **extra).items() if v is not None}


def show(value: Any) -> str:
    """A value as it would be written in TOML (for messages: no Python reprs)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def _required(f: dataclasses.Field) -> bool:
    return f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING


def _hints(cls: type) -> dict[str, Any]:
    try:
        return get_type_hints(cls)
    except Exception:  # an annotation this module cannot resolve: leave its checks to the class
        return {}


def read_table(cls: type, table: Any, at: KeyPath, problems: Problems) -> Optional[Any]:
    """``table`` as an instance of the dataclass ``cls``, or None after adding every problem.

    Fields with ``metadata={"derived": True}`` are filled in by the caller, not read."""
    if not isinstance(table, dict):
        problems.error(at, f"must be a table, got {show(table)}")
        return None
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init and not f.metadata.get("derived")}
    hints = _hints(cls)
    ok = True
    for key in table:
        if key not in fields:
            problems.unknown_key(at + (key,), fields)
            ok = False
    values = {}
    for name, f in fields.items():
        if name not in table:
            if _required(f):
                problems.error(at + (name,), "required")
                ok = False
            continue
        good, value = _convert(hints.get(name, Any), table[name], at + (name,), problems, f.metadata)
        ok = ok and good
        values[name] = value
    return cls(**values) if ok else None


def check_keys(cls: type, table: Any, at: KeyPath, problems: Problems, *, also: Iterable[str] = (),
               exclude: Iterable[str] = ()) -> dict:
    """The part of ``table`` that has keys of ``cls``'s fields (minus ``exclude``) and values of
    their annotated types; adds a problem for every other key (``also``: keys the caller reads
    itself, named among the known keys). Values are not converted: the class gets them as written
    and checks the rest itself."""
    if not isinstance(table, dict):
        problems.error(at, f"must be a table, got {show(table)}")
        return {}
    fields = {f.name for f in dataclasses.fields(cls) if f.init} - set(exclude)
    hints = _hints(cls)
    good = {}
    for key, value in table.items():
        if key not in fields:
            problems.unknown_key(at + (key,), fields | set(also))
        elif _convert(hints.get(key, Any), value, at + (key,), problems, {})[0]:
            good[key] = value
    return good


def _convert(hint: Any, value: Any, at: KeyPath, problems: Problems, meta: Any) -> tuple[bool, Any]:
    origin = get_origin(hint)
    if origin is Union:
        options = [a for a in get_args(hint) if a is not type(None)]
        hint = options[0] if len(options) == 1 else Any
        origin = get_origin(hint)
    if hint is Any or isinstance(hint, str):  # unresolved forward reference: the class decides
        return True, value
    if origin is Literal:
        choices = get_args(hint)
        if value in choices and type(value) is type(choices[0]):
            return True, value
        hint_word = suggest(value, choices) if isinstance(value, str) else None
        problems.error(at, f"must be one of {', '.join(map(str, choices))}, got {show(value)}", hint_word)
        return False, value
    if hint is Instant:
        return _instant(value, at, problems)
    if origin in (tuple, list):
        if not isinstance(value, list):
            problems.error(at, f"must be an array, got {show(value)}")
            return False, value
        (item,) = get_args(hint)[:1] or (Any,)
        results = [_convert(item, v, at + (i,), problems, {}) for i, v in enumerate(value)]
        return all(ok for ok, _ in results), tuple(v for _, v in results)
    if hint is dict or origin is dict:
        hint = dict
    if hint not in _NAMES:
        return True, value  # a type this reader does not know (e.g. an enum): the class decides
    good = isinstance(value, hint) and not (isinstance(value, bool) and hint is not bool)
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        try:
            good, value = True, float(value)
        except OverflowError:  # TOML integers are unbounded; past a float's range is no number here
            problems.error(at, f"must be a finite number, got {show(value)}")
            return False, value
    if not good:
        problems.error(at, f"must be {_NAMES[hint]}, got {show(value)}")
        return False, value
    if hint is float and not math.isfinite(value):
        problems.error(at, f"must be a finite number, got {show(value)}")
        return False, value
    return _in_limits(value, at, problems, meta), value


def _in_limits(value: Any, at: KeyPath, problems: Problems, meta: Any) -> bool:
    tests = (("ge", lambda v, b: v >= b, ">="), ("gt", lambda v, b: v > b, ">"),
             ("le", lambda v, b: v <= b, "<="), ("lt", lambda v, b: v < b, "<"))
    for key, test, sign in tests:
        if key in meta and not test(value, meta[key]):
            problems.error(at, f"must be {sign} {meta[key]}, got {show(value)}")
            return False
    return True


def _instant(value: Any, at: KeyPath, problems: Problems) -> tuple[bool, Any]:
    if isinstance(value, datetime):  # a TOML date-time written without quotes
        if value.tzinfo is None or value.utcoffset() is None:
            problems.error(at, f"not an ISO 8601 UTC time: {show(value)} has no offset "
                               "(write e.g. 2026-11-22T18:00:00Z)")
            return False, value
        if value.utcoffset().total_seconds() != 0:
            problems.error(at, f"not an ISO 8601 UTC time: {show(value)} (write it in UTC, with Z)")
            return False, value
        value = value.isoformat()  # pads the year to 4 digits, unlike strftime
    elif not isinstance(value, str):
        problems.error(at, f"not an ISO 8601 UTC time: {show(value)} (write e.g. \"2026-11-22T18:00:00Z\")")
        return False, value
    try:
        t = parse_utc(value, "-")
    except FlexOfferError as exc:
        problems.error(at, exc.reason)
        return False, value
    if not _EARLIEST <= t < _LATEST:
        problems.error(at, f"{show(value)} is outside {format_utc(_EARLIEST)[:4]}-{format_utc(_LATEST)[:4]}")
        return False, value
    return True, Instant(t)
