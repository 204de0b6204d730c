"""Flexibility measures of a single offer (after the TotalFlex "measuring flexibility" work).

- time flexibility: how many intervals the start can move (latest start - earliest start);
- energy flexibility: the sum over slices of (max - min), in kWh;
- product flexibility: time x energy flexibility, one number that ranks offers that are flexible
  in both dimensions above offers flexible in one only;
- total energy range: smallest and largest total energy a schedule can have, after the total
  constraint.

With several exclusive-OR profiles the offer is as flexible as its most flexible profile, so each
measure is the maximum over profiles (each profile with its own start window).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from .errors import FlexOfferError

if TYPE_CHECKING:  # pragma: no cover
    from .model import FlexOffer, Profile

__all__ = [
    "time_flexibility",
    "energy_flexibility",
    "product_flexibility",
    "profile_time_flexibility",
    "profile_energy_flexibility",
    "summary",
]


def profile_time_flexibility(offer: "FlexOffer", profile: int, now: int | None = None) -> int:
    lo = offer.earliest_start(now, profile)
    hi = offer.latest_start(now, profile)
    if lo is None or hi is None:
        if offer.start_before is None and offer.profiles[profile].start_before is None:
            # window is [now, now + duration]: its width does not depend on now
            return offer.start_before_duration or 0
        raise FlexOfferError("start_after", "time flexibility of this implicit window depends on now; pass now")
    return max(0, hi - lo)


def profile_energy_flexibility(profile: "Profile") -> float:
    return math.fsum(s.max - s.min for s in profile.slices)


def time_flexibility(offer: "FlexOffer", now: int | None = None) -> int:
    """Intervals the start can move (max over profiles)."""
    return max(profile_time_flexibility(offer, i, now) for i in range(len(offer.profiles)))


def energy_flexibility(offer: "FlexOffer") -> float:
    """kWh between the slice minima and maxima (max over profiles)."""
    return max(profile_energy_flexibility(p) for p in offer.profiles)


def product_flexibility(offer: "FlexOffer", now: int | None = None) -> float:
    """Time flexibility x energy flexibility (max over profiles), in interval·kWh."""
    return max(
        profile_time_flexibility(offer, i, now) * profile_energy_flexibility(p) for i, p in enumerate(offer.profiles)
    )


def summary(offer: "FlexOffer", now: int | None = None) -> dict:
    """All measures in one dict (what ``vmenergy show`` prints)."""
    try:
        tf: int | None = time_flexibility(offer, now)
        pf: float | None = product_flexibility(offer, now)
    except FlexOfferError:
        tf = pf = None
    return {
        "time_flexibility": tf,
        "energy_flexibility": energy_flexibility(offer),
        "product_flexibility": pf,
        "min_total_energy": offer.min_total_energy,
        "max_total_energy": offer.max_total_energy,
        "direction": offer.direction,
    }
