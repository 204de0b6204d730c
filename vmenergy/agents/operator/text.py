"""How operator replies look: short lines in aligned columns, fit for a phone's chat window.

Chat clients show plain text in a proportional font more often than not, so columns are only
approximately aligned there; they line up in a terminal client (profanity) and in the
monospaced result fields of ad-hoc commands. Long lists are cut at :data:`MAX_ROWS` with a
line saying how many more there are and how to narrow the list.
"""

from __future__ import annotations

from typing import Iterable, Optional, Sequence

from vmenergy.flexoffer.timeutil import format_utc

__all__ = ["MAX_ROWS", "table", "when", "kwh", "pairs"]

#: Rows of a list reply before it is cut (a phone screen and a bit).
MAX_ROWS = 20


def table(rows: Sequence[Sequence[object]], header: Optional[Sequence[str]] = None, *,
          limit: int = MAX_ROWS, narrow: str = "") -> str:
    """``rows`` as aligned columns (two spaces apart; a column of numbers right-aligned); at
    most ``limit`` rows, then "... N more" and the hint ``narrow`` (how to see other rows)."""
    body = [[_cell(c) for c in row] for row in rows[:limit]]
    every = ([[str(h) for h in header]] if header else []) + body
    ncol = max((len(r) for r in every), default=0)
    width = [max((len(r[i]) for r in every if i < len(r)), default=0) for i in range(ncol)]
    numeric = [bool(body) and all(_is_number(r[i]) for r in body if i < len(r)) for i in range(ncol)]
    lines = ["  ".join(text.rjust(width[i]) if numeric[i] else text.ljust(width[i])
                       for i, text in enumerate(row)).rstrip() for row in every]
    if len(rows) > limit:
        lines.append(f"... {len(rows) - limit} more" + (f" ({narrow})" if narrow else ""))
    return "\n".join(lines)


def pairs(items: Iterable[tuple[str, object]]) -> str:
    """``name  value`` lines with the names padded to one width (a record's details)."""
    items = [(k, _cell(v)) for k, v in items if v is not None and v != ""]
    width = max((len(k) for k, _ in items), default=0)
    return "\n".join(f"{k.ljust(width)}  {v}" for k, v in items)


def when(seconds: Optional[int], now: Optional[int] = None) -> str:
    """A time in UTC as ``18:30`` on ``now``'s day, else ``11-23 18:30`` (``-`` for None)."""
    if seconds is None:
        return "-"
    text = format_utc(seconds)
    if now is not None and text[:10] == format_utc(now)[:10]:
        return text[11:16]
    return f"{text[5:10]} {text[11:16]}"


def kwh(value: float) -> str:
    """Energy for a reply: three significant decimals at most, no trailing zeros."""
    return f"{round(value, 3):g}"


def _cell(value: object) -> str:
    if isinstance(value, float):
        return kwh(value)
    return "-" if value is None else str(value)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
