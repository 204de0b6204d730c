"""A schedule (assignment): when an offer starts, which profile it runs and the energy per slice."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Optional

from .errors import FlexOfferError
from .model import MAX_PROFILES, MAX_SLICES, check_identifier, check_integer, check_number, _set
from .timeutil import DEFAULT_RESOLUTION

__all__ = ["Schedule"]


@dataclass(frozen=True, slots=True)
class Schedule:
    """An assignment of a flex-offer.

    ``start`` is an interval number at ``resolution`` seconds; ``energy[i]`` is the kWh of slice
    ``i`` of profile ``profile`` over its whole duration. ``schedule_id`` and ``update_id`` let a
    receiver tell a repeated message (same ids: ignore) from a re-assignment (higher update id).
    """

    offer_id: str
    start: int
    energy: tuple[float, ...]
    schedule_id: Optional[str] = None
    update_id: int = 0
    profile: int = 0
    resolution: int = DEFAULT_RESOLUTION

    def __post_init__(self) -> None:
        _set(self, "offer_id", check_identifier(self.offer_id, "offer_id"))
        _set(self, "schedule_id", check_identifier(self.schedule_id, "schedule_id", required=False))
        _set(self, "start", check_integer(self.start, "start"))
        if isinstance(self.energy, (str, bytes)) or not isinstance(self.energy, Iterable):
            raise FlexOfferError("energy", "must be a list of numbers")
        energy = tuple(check_number(e, f"energy[{i}]") for i, e in enumerate(self.energy))
        if len(energy) > MAX_SLICES:
            raise FlexOfferError("energy", f"more than {MAX_SLICES} values")
        _set(self, "energy", energy)
        _set(self, "update_id", check_integer(self.update_id, "update_id", minimum=0))
        _set(self, "profile", check_integer(self.profile, "profile", minimum=0, maximum=MAX_PROFILES - 1))
        res = check_integer(self.resolution, "resolution")
        if res <= 0:
            raise FlexOfferError("resolution", f"must be > 0 (got {res} s)")
        _set(self, "resolution", res)

    @property
    def total(self) -> float:
        import math

        return math.fsum(self.energy)

    @classmethod
    def from_json(cls, text: str | bytes, resolution: int | None = None) -> "Schedule":
        from vmenergy.wire.json import parse_schedule

        return parse_schedule(text, resolution=resolution)

    def to_json(self, *, indent: int | None = None) -> str:
        from vmenergy.wire.json import schedule_to_json

        return schedule_to_json(self, indent=indent)

    def to_dict(self) -> dict:
        from vmenergy.wire.json import schedule_to_dict

        return schedule_to_dict(self)




