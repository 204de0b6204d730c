"""Flexibility measures of a single offer (after the TotalFlex "measuring flexibility" work).

- time flexibility: how many intervals the start can move (latest start - earliest start);
- energy flexibility: the sum over slices of (max - min), in kWh;
- product flexibility: time x energy flexibility, one number that ranks offers that are flexible
  in both dimensions above offers flexible in one only;
- total energy range: smallest and largest total energy a schedule can have, after the total
  constraint.

With several exclusive-OR profiles the offer is as flexible as its most flexible profile, so each
measure is the maximum over profiles (each profile with its own start window). The definitions
are methods of the model (:class:`~.model.FlexOffer`, :class:`~.parts.Profile`; the ``*_at(now)``
forms for offers whose window is only known relative to now); this module sums them up.
"""

from __future__ import annotations

from .errors import FlexOfferError
from .model import FlexOffer

__all__ = ["summary"]


def summary(offer: FlexOffer, now: int | None = None) -> dict:
    """All measures in one dict (what ``vmenergy show`` prints); the time measures are None for
    an implicit window that depends on a ``now`` not given."""
    try:
        tf: int | None = offer.time_flexibility_at(now)
        pf: float | None = offer.product_flexibility_at(now)
    except FlexOfferError:
        tf = pf = None
    return {
        "time_flexibility": tf,
        "energy_flexibility": offer.energy_flexibility,
        "product_flexibility": pf,
        "min_total_energy": offer.min_total_energy,
        "max_total_energy": offer.max_total_energy,
        "direction": offer.direction,
    }
