"""Strict reading of the model's JSON form: the rules every field of it shares.

Parsing is strict: unknown fields, duplicate keys, ``NaN``/``Infinity`` literals, booleans where
numbers belong, naive or off-grid times and oversize documents are all refused with a
:class:`~vmenergy.flexoffer.errors.FlexOfferError` that names the field path; nothing else
escapes (:func:`guard`). Each class of the model reads and writes its own fields with these
helpers (``FlexOffer.from_dict``, ``Schedule.from_dict``, ...); nothing here knows the classes.
"""

from __future__ import annotations

import json as _json
from typing import Any, Callable, Optional, Sequence, TypeVar

from vmenergy.validation import MAX_NUMBER_DIGITS, OversizeNumber, kind

from .errors import DOCUMENT, FlexOfferError, check
from .timeutil import DEFAULT_RESOLUTION, parse_utc, seconds_to_interval

__all__ = ["MAX_DOCUMENT_BYTES", "loads", "dumps", "guard", "obj", "array", "join", "time_field", "instant_field",
           "resolution_field"]

#: Largest JSON or XML document a parser looks at (bytes). A 10,000-slice offer is about 0.6 MB.
MAX_DOCUMENT_BYTES = 4 * 1024 * 1024

T = TypeVar("T")


def loads(text: str | bytes) -> Any:
    """``json.loads`` that refuses what the contract refuses and raises only FlexOfferError."""
    if isinstance(text, (bytes, bytearray)):
        if len(text) > MAX_DOCUMENT_BYTES:
            raise FlexOfferError(DOCUMENT, f"oversize document ({len(text)} bytes > {MAX_DOCUMENT_BYTES})")
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise FlexOfferError(DOCUMENT, f"not UTF-8: {exc}") from None
    if not isinstance(text, str):
        raise FlexOfferError(DOCUMENT, f"expected JSON text, got {type(text).__name__}")
    if len(text) > MAX_DOCUMENT_BYTES:
        raise FlexOfferError(DOCUMENT, f"oversize document ({len(text)} characters > {MAX_DOCUMENT_BYTES})")
    try:
        return _json.loads(text, parse_constant=_bad_constant, object_pairs_hook=_no_duplicates,
                           parse_int=_integer, parse_float=_float)
    except FlexOfferError:
        raise
    except RecursionError:
        raise FlexOfferError(DOCUMENT, "malformed JSON: nested too deeply") from None
    except ValueError as exc:
        raise FlexOfferError(DOCUMENT, f"malformed JSON: {exc}") from None


def dumps(data: Any, *, indent: Optional[int] = None) -> str:
    """JSON text of a dict form; floats as ``repr`` (exact round trip), NaN refused."""
    return _json.dumps(data, indent=indent, allow_nan=False)


def _integer(text: str) -> Any:
    """An integer literal; one too long for any field is handed on as :class:`OversizeNumber`,
    so the field's check names it (json would raise for the whole document)."""
    if len(text) > MAX_NUMBER_DIGITS:
        return OversizeNumber(len(text.lstrip("-")))
    return int(text)


def _float(text: str) -> Any:
    if len(text) > MAX_NUMBER_DIGITS:
        return OversizeNumber(len(text))
    return float(text)


def _bad_constant(name: str) -> Any:
    raise FlexOfferError(DOCUMENT, f"malformed JSON: {name} is not a number in JSON")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict:
    out: dict = {}
    for k, v in pairs:
        if k in out:
            # an empty key still names a place (a path of "" would say nowhere)
            raise FlexOfferError(k or '""', "duplicate key")
        out[k] = v
    return out


def guard(fn: Callable[[], T]) -> T:
    """Run a parse step; any non-FlexOfferError is a bug or an input we did not foresee, and the
    contract promises callers a single exception type, so it is wrapped (cause kept)."""
    try:
        return fn()
    except FlexOfferError:
        raise
    except (RecursionError, MemoryError) as exc:
        raise FlexOfferError(DOCUMENT, f"document too complex: {type(exc).__name__}") from exc
    except Exception as exc:  # noqa: BLE001 - see docstring
        raise FlexOfferError(DOCUMENT, f"could not parse: {type(exc).__name__}: {exc}") from exc


def obj(data: Any, path: str, allowed: Sequence[str], required: Sequence[str] = ()) -> dict:
    """A JSON object with only ``allowed`` fields and every ``required`` one (not null)."""
    d = check.table(data, path, allowed, noun="a JSON object")
    for key in required:
        if d.get(key) is None:
            raise FlexOfferError(join(path, key), "required")
    return d


def array(data: Any, path: str) -> list:
    if not isinstance(data, list):
        raise FlexOfferError(path, f"must be a JSON array, got {kind(data)}")
    return data


def join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def time_field(d: dict, key: str, path: str, resolution: int) -> Optional[int]:
    """Interval number of an on-grid time field, or None when absent."""
    if key not in d or d[key] is None:
        return None
    p = join(path, key)
    return seconds_to_interval(parse_utc(d[key], p), resolution, p)


def instant_field(d: dict, key: str) -> Optional[int]:
    """Epoch seconds of a time field (any second), or None when absent."""
    if key not in d or d[key] is None:
        return None
    return parse_utc(d[key], key)


def resolution_field(d: dict, default: int = DEFAULT_RESOLUTION) -> int:
    """The document's ``resolution`` (seconds, > 0), read first because every time needs it."""
    res = check.integer(d.get("resolution", default), "resolution")
    if res <= 0:
        raise FlexOfferError("resolution", f"must be > 0 (got {res} s)")
    return res
