"""A schedule (assignment): when an offer starts, which profile it runs and the energy per slice."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Optional

from vmenergy.validation import set_field

from . import jsontext as jt
from .checked import is_checked
from .errors import FlexOfferError, check
from .limits import MAX_PROFILES, MAX_SLICES
from .timeutil import DEFAULT_RESOLUTION, format_utc

__all__ = ["Schedule"]

SCHEDULE_FIELDS = ("offer_id", "schedule_id", "update_id", "profile", "start", "energy", "resolution")


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
        if is_checked():
            return
        set_field(self, "offer_id", check.identifier(self.offer_id, "offer_id"))
        set_field(self, "schedule_id", check.identifier(self.schedule_id, "schedule_id", required=False))
        set_field(self, "start", check.integer(self.start, "start"))
        set_field(self, "energy", check.numbers(self.energy, "energy", at_least=1, at_most=MAX_SLICES))
        set_field(self, "update_id", check.integer(self.update_id, "update_id", minimum=0))
        set_field(self, "profile", check.integer(self.profile, "profile", minimum=0, maximum=MAX_PROFILES - 1))
        res = check.integer(self.resolution, "resolution")
        if res <= 0:
            raise FlexOfferError("resolution", f"must be > 0 (got {res} s)")
        set_field(self, "resolution", res)

    @classmethod
    def of_columns(cls, offer_id: str, start: int, energy: tuple[float, ...], schedule_id: Optional[str],
                   update_id: int, profile: int, resolution: int) -> "Schedule":
        """A schedule from values that were checked already: rows of a validated columnar
        computation (``int`` start, profile, update id and resolution, a tuple of ``float``),
        ids that are already valid. Checking each field again is most of the cost of building
        a million member schedules; anything else goes through the constructor."""
        s = object.__new__(cls)
        for name, value in (("offer_id", offer_id), ("start", start), ("energy", energy),
                            ("schedule_id", schedule_id), ("update_id", update_id), ("profile", profile),
                            ("resolution", resolution)):
            object.__setattr__(s, name, value)
        return s

    @property
    def total(self) -> float:
        return math.fsum(self.energy)

    # -- JSON form (the canonical form, like the offer's) --------------------------------------
    @classmethod
    def from_json(cls, text: str | bytes, resolution: int | None = None) -> "Schedule":
        """JSON text of one schedule. ``resolution`` (seconds) is used when the document has none."""
        return jt.guard(lambda: cls.from_dict(jt.loads(text), resolution=resolution))

    def to_json(self, *, indent: int | None = None) -> str:
        return jt.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_dict(cls, data: Any, resolution: Optional[int] = None) -> "Schedule":
        """A decoded JSON object to a schedule (strict, like :meth:`from_json`; only
        :class:`FlexOfferError` escapes)."""
        return jt.guard(lambda: cls._from_dict(data, resolution))

    @classmethod
    def _from_dict(cls, data: Any, resolution: Optional[int]) -> "Schedule":
        d = jt.obj(data, "", SCHEDULE_FIELDS, required=("offer_id", "start", "energy"))
        res = jt.resolution_field(d, DEFAULT_RESOLUTION if resolution is None else resolution)
        energy = jt.array(d["energy"], "energy")
        start = jt.time_field(d, "start", "", res)
        if start is None:  # pragma: no cover - refused as required above; narrows the type
            raise FlexOfferError("start", "required")
        return cls(
            offer_id=d["offer_id"],
            schedule_id=d.get("schedule_id"),
            update_id=d.get("update_id", 0),
            profile=d.get("profile", 0),
            start=start,
            energy=tuple(energy),
            resolution=res,
        )

    def to_dict(self) -> dict:
        d: dict[str, Any] = {"offer_id": self.offer_id}
        if self.schedule_id is not None:
            d["schedule_id"] = self.schedule_id
        d["update_id"] = self.update_id
        d["profile"] = self.profile
        d["start"] = format_utc(self.start * self.resolution)
        d["energy"] = list(self.energy)
        if self.resolution != DEFAULT_RESOLUTION:
            d["resolution"] = self.resolution
        return d
