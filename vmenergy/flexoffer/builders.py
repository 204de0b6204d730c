"""Builders that turn device parameters into the common representation.

Two GOFLEX extensions are not separate data types on the wire but constructions on top of the
profile: a dependency-based offer is a profile with a polytope ``A·x <= b``, and a two-mode
conditional offer is a pair of exclusive-OR profiles with their own start windows. Keeping the wire
small means a device maker implements two constraint kinds, not five.
"""

from __future__ import annotations

from typing import Optional, Sequence

from .errors import FlexOfferError, check
from .parts import Polytope, Profile, Slice, TotalEnergy

__all__ = ["dependency_profile", "battery_profile", "conditional_profiles"]


def dependency_profile(
    slices: Sequence[Slice],
    *,
    initial: float = 0.0,
    level_min: Optional[float] = None,
    level_max: Optional[float] = None,
    final_min: Optional[float] = None,
    final_max: Optional[float] = None,
    max_slope: float = 0.0,
    min_slope: float = 0.0,
) -> Profile:
    """A profile whose slice energies depend on the energy accumulated before them.

    The level after slice i is ``initial + x_0 + ... + x_i`` (a battery's state of charge, a
    storage tank's heat). Constraints, each becoming rows of ``A·x <= b``:

    - ``level_min <= level_i <= level_max`` after every slice;
    - dependent slice bounds: ``x_i <= max_i + max_slope * level_{i-1}`` and
      ``x_i >= min_i + min_slope * level_{i-1}`` (e.g. a charger that tapers as the battery fills
      has a negative ``max_slope``);
    - ``final_min <= level_n <= final_max`` becomes the profile's total constraint.

    The slices' own [min, max] remain the outer bounds.
    """
    slices = tuple(slices)
    n = len(slices)
    if n == 0:
        raise FlexOfferError("slices", "at least one slice")
    rows: list[list[float]] = []
    b: list[float] = []
    for i in range(n):
        prefix = [1.0] * (i + 1) + [0.0] * (n - i - 1)
        if level_max is not None:
            rows.append(prefix)
            b.append(level_max - initial)
        if level_min is not None:
            rows.append([-a for a in prefix])
            b.append(initial - level_min)
    for i, s in enumerate(slices):
        if max_slope:
            rows.append([-max_slope] * i + [1.0] + [0.0] * (n - i - 1))
            b.append(s.max + max_slope * initial)
        if min_slope:
            rows.append([min_slope] * i + [-1.0] + [0.0] * (n - i - 1))
            b.append(-(s.min + min_slope * initial))
    total = None
    if final_min is not None or final_max is not None:
        total = TotalEnergy(
            None if final_min is None else final_min - initial,
            None if final_max is None else final_max - initial,
        )
    polytope = Polytope(tuple(map(tuple, rows)), tuple(b)) if rows else None
    return Profile(slices, total=total, polytope=polytope)


def battery_profile(
    n_slices: int,
    *,
    capacity: float,
    soc: float,
    charge: float,
    discharge: float,
    soc_min: float = 0.0,
    soc_max: Optional[float] = None,
    final_soc_min: Optional[float] = None,
    final_soc_max: Optional[float] = None,
    duration: int = 1,
) -> Profile:
    """A battery as a dependency-based profile.

    ``capacity``, ``soc`` (state of charge now), ``soc_min``/``soc_max`` in kWh; ``charge`` and
    ``discharge`` are the most energy (kWh, both >= 0) the battery can take or give per slice of
    ``duration`` intervals. Conversion losses are not modelled: the slice energy is the change of
    stored energy seen at the meter.
    """
    soc_max = capacity if soc_max is None else soc_max
    if not 0 <= soc_min <= soc <= soc_max <= capacity:
        raise FlexOfferError("soc", f"need 0 <= soc_min <= soc <= soc_max <= capacity, got {soc_min}, {soc}, {soc_max}, {capacity}")
    if charge < 0 or discharge < 0:
        raise FlexOfferError("charge", "charge and discharge are magnitudes (>= 0)")
    slices = tuple(Slice(duration, -discharge, charge) for _ in range(n_slices))
    return dependency_profile(
        slices,
        initial=soc,
        level_min=soc_min,
        level_max=soc_max,
        final_min=final_soc_min,
        final_max=final_soc_max,
    )


def conditional_profiles(profile: Profile, switch: int, *, after_portion: float, prior_portion: float = 1.0) -> tuple[Profile, Profile]:
    """Two-mode conditional operation as two exclusive-OR profiles.

    A device that starts before interval ``switch`` (prior mode) runs ``profile`` scaled by
    ``prior_portion``; one that starts at or after ``switch`` (after mode) delivers only
    ``after_portion`` of the energy (an EV plugged in late that can only take 70 % before
    departure; a pre-heat that needs less once the building has warmed). Every energy bound, the
    total, discrete values and the polytope's right-hand side scale with the portion, so each mode
    has exactly the shape of the original.
    """
    check.integer(switch, "switch")  # an interval number
    for name, portion in (("prior_portion", prior_portion), ("after_portion", after_portion)):
        check.number(portion, name, minimum=0.0, maximum=1.0)
    prior = _scaled(profile, prior_portion, start_after=profile.start_after, start_before=switch - 1)
    after = _scaled(profile, after_portion, start_after=switch, start_before=profile.start_before)
    return prior, after


def _scaled(p: Profile, k: float, *, start_after: Optional[int], start_before: Optional[int]) -> Profile:
    slices = tuple(
        Slice(s.duration, s.min * k, s.max * k, None if s.values is None else tuple(dict.fromkeys(v * k for v in s.values)))
        for s in p.slices
    )
    total = None
    if p.total is not None:
        total = TotalEnergy(None if p.total.min is None else p.total.min * k, None if p.total.max is None else p.total.max * k)
    polytope = None if p.polytope is None else Polytope(p.polytope.A, tuple(v * k for v in p.polytope.b))
    return Profile(slices, total=total, polytope=polytope, start_after=start_after, start_before=start_before)
