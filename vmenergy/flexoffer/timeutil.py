"""Conversions between wire time (ISO 8601 UTC text, aware datetimes) and core time (integers).

The core counts time in whole intervals of a resolution (default 900 s) since the Unix epoch, so
that arithmetic on windows and slices is exact and no float or timezone ever enters a feasibility
decision. Lifecycle deadlines (creation, acceptance, assignment) are whole seconds since the epoch,
because a device may create an offer at 18:03:27 and the grid does not apply to them.

Nothing here reads a clock: "now" is always passed in by the shell.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

from .errors import FlexOfferError

__all__ = [
    "DEFAULT_RESOLUTION",
    "parse_utc",
    "format_utc",
    "parse_duration",
    "format_duration",
    "seconds_to_interval",
    "interval_to_datetime",
    "datetime_to_interval",
    "datetime_to_seconds",
]

DEFAULT_RESOLUTION = 900

_ISO_TIME = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(Z|[+-]00:?00)\Z"
)
_ISO_DURATION = re.compile(r"P(?:(\d+)W)?(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?\Z")
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
# Years 1..9999 only (datetime's range); anything else is certainly a typo on the wire.
_MAX_DURATION_SECONDS = 10 * 366 * 86400


def parse_utc(text: object, path: str) -> int:
    """Parse an ISO 8601 UTC time (``2026-11-22T22:00:00Z``) into whole epoch seconds.

    Only UTC is accepted (``Z`` or ``+00:00``): the contract says times are UTC on the wire, and a
    naive time is ambiguous. Sub-second precision is refused rather than silently dropped.
    """
    if not isinstance(text, str):
        raise FlexOfferError(path, f"not an ISO 8601 UTC time (expected a string, got {_kind(text)})")
    m = _ISO_TIME.match(text)
    if not m:
        raise FlexOfferError(path, f"not an ISO 8601 UTC time: {text!r} (expected e.g. 2026-11-22T22:00:00Z)")
    year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
    frac = m.group(7)
    if frac and int(frac) != 0:
        raise FlexOfferError(path, f"not an ISO 8601 UTC time with whole seconds: {text!r}")
    try:
        dt = datetime(year, month, day, hour, minute, second, tzinfo=timezone.utc)
    except ValueError as exc:
        raise FlexOfferError(path, f"not an ISO 8601 UTC time: {text!r} ({exc})") from None
    return int((dt - _EPOCH) // timedelta(seconds=1))


def format_utc(seconds: int) -> str:
    """Format epoch seconds as ISO 8601 UTC with a ``Z`` suffix (the canonical wire form).

    The year always has four digits: ``strftime('%Y')`` writes the year 1 as ``1``, which
    :func:`parse_utc` (rightly) refuses, so a stored time before the year 1000 could not be
    read back."""
    dt = _EPOCH + timedelta(seconds=int(seconds))
    return f"{dt.year:04d}-{dt.month:02d}-{dt.day:02d}T{dt.hour:02d}:{dt.minute:02d}:{dt.second:02d}Z"


def parse_duration(text: object, path: str) -> int:
    """Parse an ISO 8601 duration (``PT2H``, ``P1DT30M``) into whole seconds.

    Years and months are refused because their length in seconds depends on the calendar.
    """
    if not isinstance(text, str):
        raise FlexOfferError(path, f"not an ISO 8601 duration (expected a string, got {_kind(text)})")
    m = _ISO_DURATION.match(text)
    if not m or text in ("P", "PT") or text.endswith("T"):
        raise FlexOfferError(
            path, f"not an ISO 8601 duration: {text!r} (expected e.g. PT2H; years and months are not allowed)"
        )
    weeks, days, hours, minutes, secs = (int(g) if g else 0 for g in m.groups())
    total = (((weeks * 7 + days) * 24 + hours) * 60 + minutes) * 60 + secs
    if total > _MAX_DURATION_SECONDS:
        raise FlexOfferError(path, f"duration {text!r} is longer than 10 years")
    return total


def format_duration(seconds: int) -> str:
    """Format whole seconds as the shortest ISO 8601 duration using days, hours, minutes, seconds."""
    seconds = int(seconds)
    if seconds < 0:
        raise ValueError("negative duration")
    if seconds == 0:
        return "PT0S"
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    out = "P" + (f"{days}D" if days else "")
    clock = (f"{hours}H" if hours else "") + (f"{minutes}M" if minutes else "") + (f"{secs}S" if secs else "")
    return out + ("T" + clock if clock else "")


def seconds_to_interval(seconds: int, resolution: int, path: str) -> int:
    """Whole epoch seconds to an interval number; refuses times off the resolution grid."""
    q, r = divmod(int(seconds), int(resolution))
    if r:
        raise FlexOfferError(path, f"not on the resolution grid ({format_utc(seconds)} is not a multiple of {resolution} s)")
    return q


def interval_to_datetime(interval: int, resolution: int = DEFAULT_RESOLUTION) -> datetime:
    """Interval number to the aware UTC datetime at which it starts."""
    return _EPOCH + timedelta(seconds=int(interval) * int(resolution))


def datetime_to_seconds(dt: datetime) -> int:
    """Aware datetime to whole epoch seconds; naive datetimes are refused (ambiguous)."""
    if dt.tzinfo is None or dt.utcoffset() is None:
        raise FlexOfferError("time", "naive datetime: give a timezone-aware (UTC) datetime")
    return int((dt - _EPOCH) // timedelta(seconds=1))


def datetime_to_interval(dt: datetime, resolution: int = DEFAULT_RESOLUTION, *, floor: bool = False) -> int:
    """Aware datetime to an interval number.

    With ``floor=True`` a time inside an interval maps to that interval (useful for "now");
    otherwise the time must sit on the grid.
    """
    seconds = datetime_to_seconds(dt)
    if floor:
        return seconds // int(resolution)
    return seconds_to_interval(seconds, resolution, "time")


def _kind(value: object) -> str:
    return "null" if value is None else type(value).__name__
