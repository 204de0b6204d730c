"""The field checks every self-validating value of VME uses, raising its area's error type.

A frozen dataclass checks its fields in ``__post_init__`` with a *local* path (``min``,
``reward.revenue_share``) and whoever knows where the value sits adds the rest
(:meth:`Checks.build`, :meth:`~vmenergy.errors.VmeError.within`). The rules (what counts as a
number, an integer, an identifier) and their wording live here once, so an offer, a contract, a
bid and a protocol message refuse the same mistake with the same reason; each area binds the kit
to its own error type (``check = Checks(SettlementError)``) so its callers keep catching what
they caught before.
"""

from __future__ import annotations

import math
import re
import reprlib
import unicodedata
from typing import Any, Callable, Generic, Iterable, Literal, Mapping, Optional, Sequence, TypeVar, overload

from .errors import DOCUMENT, VmeError

__all__ = ["Checks", "MAX_ID_LENGTH", "MAX_NUMBER_DIGITS", "OversizeNumber", "kind", "set_field", "show"]

#: Identifiers (offer, schedule, bill, contract ids, JIDs) are at most this many characters.
MAX_ID_LENGTH = 256

# No whitespace, no control characters, nothing XML 1.0 cannot carry in an attribute (ASCII
# text, the common case, is decided by this pattern alone; other text also by _id_char_ok).
_ID_OK = re.compile(r"[^\x00-\x20\x7f\ud800-\udfff\ufffe\uffff]+\Z")
#: Unicode categories an identifier must not contain: separators (U+00A0, U+2028, ...), controls
#: (U+0085), format characters (U+202E turns text right-to-left, U+200B is invisible: an id that
#: displays as another id), surrogates, private use and unassigned code points.
_ID_BAD_CATEGORIES = frozenset({"Zs", "Zl", "Zp", "Cc", "Cf", "Cs", "Co", "Cn"})
#: ISO 4217 currency codes: three capital letters.
_CURRENCY = re.compile(r"[A-Z]{3}\Z")
#: No number in any VME document has more digits than this (an energy of 10^12 kWh has 13, an
#: epoch second 10); longer digit strings are refused before Python converts them (converting
#: text of more than 4,300 digits to an int raises, and costs quadratic time below that).
MAX_NUMBER_DIGITS = 400
INT64_MIN, INT64_MAX = -(2 ** 63), 2 ** 63 - 1

_SHORT = reprlib.Repr()
_SHORT.maxstring = 60
_SHORT.maxother = 60
_SHORT.maxlevel = 3


class OversizeNumber:
    """A number in a document whose text has more than :data:`MAX_NUMBER_DIGITS` digits: the
    parsers hand it on unconverted, so the check of the field it sits in refuses it by path."""

    __slots__ = ("digits",)

    def __init__(self, digits: int) -> None:
        self.digits = digits

    def __repr__(self) -> str:
        return f"<a number of {self.digits} digits>"


def show(value: object) -> str:
    """``repr(value)`` for an error message, bounded: a hostile document may hold a list nested
    100,000 deep (repr would overflow the stack) or an integer of 10,000 digits."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 64:
        return f"<an integer of about {int(value.bit_length() * 0.30103) + 1} digits>"
    try:
        return _SHORT.repr(value)
    except (RecursionError, ValueError):
        return f"<a {type(value).__name__}>"


def _id_char_ok(text: str) -> bool:
    return all(unicodedata.category(c) not in _ID_BAD_CATEGORIES for c in text)

E = TypeVar("E", bound=VmeError)
T = TypeVar("T")


def kind(value: object) -> str:
    """The name of a value's type as a person writing JSON or TOML would say it."""
    if value is None:
        return "null"
    names = {dict: "object", list: "array", tuple: "array", str: "string", bool: "boolean"}
    return names.get(type(value), type(value).__name__)


def set_field(obj: object, name: str, value: object) -> None:
    """Store a checked (normalised) value on a frozen dataclass from its ``__post_init__``."""
    object.__setattr__(obj, name, value)


def _plain_number(value: object) -> object:
    """numpy scalars are numbers too (the columnar sets hand them over); anything else as is."""
    item = getattr(value, "item", None)
    dtype = getattr(value, "dtype", None)
    if item is not None and getattr(dtype, "kind", "") in ("i", "u", "f") and getattr(value, "ndim", 1) == 0:
        return item()
    return value


class Checks(Generic[E]):
    """The checks, raising ``error`` (a :class:`VmeError` subclass) with the path they are given.

    ``limit``: the largest magnitude :meth:`number` accepts unless a call gives bounds (the
    flex-offer model refuses energies beyond 10^12 kWh as certain unit errors).
    """

    def __init__(self, error: type[E], *, limit: float = math.inf) -> None:
        self.error = error
        self.limit = limit

    # -- scalars ----------------------------------------------------------------------------
    def number(self, value: object, path: str, *, minimum: Optional[float] = None, maximum: Optional[float] = None,
               positive: bool = False, limit: Optional[float] = None) -> float:
        """A finite float (ints and numpy scalars accepted, booleans refused).

        Without ``minimum``/``maximum`` the magnitude must stay within ``limit``; ``positive``
        refuses zero and below."""
        value = _plain_number(value)
        if isinstance(value, OversizeNumber):
            raise self.error(path, f"out of range: {show(value)}")
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.error(path, f"not a number: {show(value)} (must be a number)")
        try:
            out = float(value)
        except OverflowError:  # an int beyond any float
            raise self.error(path, f"out of range: {show(value)} (must be finite)") from None
        if math.isnan(out):
            raise self.error(path, "not a number (NaN)")
        if math.isinf(out):  # a bound on one side must not let the other side's infinity in
            raise self.error(path, f"out of range: {show(value)} (must be finite)")
        if minimum is not None or maximum is not None:
            lo = -math.inf if minimum is None else minimum
            hi = math.inf if maximum is None else maximum
            if not lo <= out <= hi:
                raise self.error(path, _range(lo, hi, out, "g"))
        else:
            bound = self.limit if limit is None else limit
            if abs(out) > bound:
                raise self.error(path, f"out of range: {show(value)} (magnitude above {bound:g})")
        if positive and out <= 0:
            raise self.error(path, f"must be > 0 (got {show(value)})")
        return out

    def integer(self, value: object, path: str, *, minimum: Optional[int] = None,
                maximum: Optional[int] = None) -> int:
        """An int (numpy integers accepted, booleans and floats refused) within the bounds."""
        value = _plain_number(value)
        if isinstance(value, OversizeNumber):
            raise self.error(path, f"out of range: {show(value)}")
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(path, f"must be an integer, got {show(value)}")
        if not INT64_MIN <= value <= INT64_MAX:  # every integer VME keeps fits a 64-bit column
            raise self.error(path, f"out of range: {show(value)} (beyond a 64-bit integer)")
        lo = -math.inf if minimum is None else minimum
        hi = math.inf if maximum is None else maximum
        if not lo <= value <= hi:
            raise self.error(path, _range(lo, hi, value, "d"))
        return int(value)

    def boolean(self, value: object, path: str) -> bool:
        """True or false (1, 0 and "yes" refused: a flag written as a number is a typo more often than not)."""
        if not isinstance(value, bool):
            raise self.error(path, f"must be true or false, got {show(value)}")
        return value

    def optional_integer(self, value: object, path: str, **bounds: Any) -> Optional[int]:
        return None if value is None else self.integer(value, path, **bounds)

    def text(self, value: object, path: str, *, required: bool = True) -> Optional[str]:
        """A string; with ``required`` it must be given and not empty."""
        if value is None:
            if required:
                raise self.error(path, "required")
            return None
        if not isinstance(value, str):
            raise self.error(path, f"must be a string, got {show(value)}")
        if required and not value:
            raise self.error(path, "required (empty)")
        return value

    @overload
    def identifier(self, value: object, path: str) -> str: ...
    @overload
    def identifier(self, value: object, path: str, *, required: Literal[True]) -> str: ...
    @overload
    def identifier(self, value: object, path: str, *, required: bool) -> Optional[str]: ...

    def identifier(self, value: object, path: str, *, required: bool = True) -> Optional[str]:
        """An id or JID: 1 to 256 characters, no whitespace or control characters."""
        text = self.text(value, path, required=required)
        if text is None:
            return None
        if not text:
            raise self.error(path, "must not be empty (omit it instead)")
        if len(text) > MAX_ID_LENGTH:
            raise self.error(path, f"longer than {MAX_ID_LENGTH} characters")
        if not _ID_OK.match(text) or not (text.isascii() or _id_char_ok(text)):
            raise self.error(path, "no whitespace or control characters allowed")
        return text

    def currency(self, value: object, path: str) -> str:
        """An ISO 4217 currency code (``EUR``)."""
        if not isinstance(value, str) or not _CURRENCY.match(value):
            raise self.error(path, f"must be an ISO 4217 code such as EUR, got {show(value)}")
        return value

    def choice(self, value: object, path: str, choices: Sequence[str], *, what: str = "") -> str:
        """One of ``choices``; ``what`` names a choice that selects a rule (``unknown method 'x'``)."""
        if not isinstance(value, str) or value not in choices:
            if what:
                raise self.error(path, f"unknown {what} {show(value)} (one of {', '.join(choices)})")
            raise self.error(path, f"must be one of {', '.join(choices)} (got {show(value)})")
        return value

    # -- collections ------------------------------------------------------------------------
    def items(self, value: object, path: str, what: str) -> tuple:
        """Any list-like value (not text) as a tuple; ``what`` names its items in the error."""
        if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
            raise self.error(path, f"must be a list of {what}")
        return tuple(value)

    def parts(self, value: object, path: str, cls: type[T], what: str, *, at_most: Optional[int] = None,
              if_empty: str = "") -> tuple[T, ...]:
        """A non-empty list of ``cls`` instances, at most ``at_most`` long; ``what`` names one in
        the errors (``slice``: "must be a list of slices", "at least one slice")."""
        out = self.items(value, path, f"{what}s")
        if not out:
            raise self.error(path, f"at least one {what}" + (f" ({if_empty})" if if_empty else ""))
        if at_most is not None and len(out) > at_most:
            raise self.error(path, f"more than {at_most} {what}s ({len(out)})")
        for i, item in enumerate(out):
            if not isinstance(item, cls):
                raise self.error(f"{path}[{i}]", f"must be a {cls.__name__}")
        return out

    def numbers(self, value: object, path: str, *, at_most: int, at_least: int = 0,
                limit: Optional[float] = None) -> tuple[float, ...]:
        """A list of numbers (each checked as by :meth:`number`), ``at_least`` to ``at_most`` long."""
        items = self.items(value, path, "numbers")
        out = tuple(self.number(v, f"{path}[{i}]", limit=limit) for i, v in enumerate(items))
        if len(out) < at_least:
            raise self.error(path, "at least one value" if at_least == 1 else f"at least {at_least} values")
        if len(out) > at_most:
            raise self.error(path, f"more than {at_most} values")
        return out

    def table(self, data: object, path: str, allowed: Sequence[str], *, noun: str = "an object") -> dict:
        """A mapping whose keys are all in ``allowed`` (a misspelt field must not silently default)."""
        # a dict first: isinstance against typing.Mapping goes through typing's subclass hooks,
        # which was a sixth of decoding a received offer
        if type(data) is not dict and not isinstance(data, Mapping):
            raise self.error(path or DOCUMENT, f"must be {noun}, got {kind(data)}")
        for key in data:
            if key not in allowed:
                name = str(key) or '""'  # an empty key still names a place
                where = f"{path}.{name}" if path else name
                raise self.error(where, f"unknown field (known: {', '.join(allowed)})")
        return dict(data)

    # -- nesting ----------------------------------------------------------------------------
    def build(self, path: str, make: Callable[[], T]) -> T:
        """``make()``, with any error it raises moved under ``path`` and made this area's type."""
        try:
            return make()
        except VmeError as exc:
            raise self.adopt(exc).within(path) from None

    def adopt(self, exc: VmeError) -> E:
        """``exc`` as this area's error type (same path and reason)."""
        if isinstance(exc, self.error):
            return exc
        out = self.error(exc.path, exc.reason)
        out.__cause__ = exc.__cause__
        return out


def _range(lo: float, hi: float, value: float, fmt: str) -> str:
    if math.isinf(lo):
        return f"must be <= {hi:{fmt}} (got {value:{fmt}})"
    if math.isinf(hi):
        return f"must be >= {lo:{fmt}} (got {value:{fmt}})"
    return f"must be in [{lo:{fmt}}, {hi:{fmt}}] (got {value:{fmt}})"
