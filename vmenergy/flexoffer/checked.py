"""Reading back what VME itself wrote: offers and schedules that passed every rule once.

Each part of an offer checks itself when it is built, so an object that exists is valid. A run's
report reads every offer and schedule back from the agents' stores, which the agents wrote from
objects that had passed those rules (on arrival, or when a device model made them); checking
them all again was most of the report's CPU (bench/RESULTS.md, "A million devices": a heat
pump's day is a 48 x 24 polytope whose baseline is checked against every row). Inside
:func:`already_checked` the parts skip their rules and keep only the conversions a decoded value
needs (an offer's state from its text). The JSON is still parsed field by field, so a field that
is missing or misspelt still raises.

Only for data VME wrote itself: never around anything received from a peer, a user or a device.
"""

from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar
from typing import Iterator

__all__ = ["already_checked", "is_checked"]

_CHECKED: ContextVar[bool] = ContextVar("already_checked", default=False)


@contextmanager
def already_checked() -> Iterator[None]:
    """Offers, profiles, baselines and schedules built in this block skip their rules (see the
    module docstring)."""
    token = _CHECKED.set(True)
    try:
        yield
    finally:
        _CHECKED.reset(token)


def is_checked() -> bool:
    """Whether parts built now skip their rules (inside :func:`already_checked`)."""
    return _CHECKED.get()
