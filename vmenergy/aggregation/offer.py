"""The aggregate: a flex-offer that also knows its members.

:class:`AggregatedFlexOffer` *is* a :class:`FlexOffer` (a subclass, validated by the same
constructor), so it can be planned, traded, serialised and aggregated again like any other offer.
What it adds is a reference to the columnar record of the run that made it, which is what
disaggregation needs; the wire forms carry only the flex-offer fields, so a market never sees the
members. Member data stay in arrays shared by all aggregates of a run (a million members as Python
objects would cost more than the aggregation itself); :attr:`members` builds objects on demand.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from vmenergy.flexoffer import FlexOffer, FlexOfferError

from .run import AggregationRun

__all__ = ["AggregatedFlexOffer", "Member", "AggregationResult"]


@dataclass(frozen=True, slots=True)
class Member:
    """One member of an aggregate: it runs ``profile`` from ``aggregate start + offset`` and was
    aggregated with the slice bounds ``lo``/``hi`` (its own, or a box inside its constraints)."""

    offer_id: str
    profile: int
    offset: int
    lo: tuple[float, ...]
    hi: tuple[float, ...]


@dataclass(frozen=True, slots=True)
class AggregatedFlexOffer(FlexOffer):
    """A flex-offer made by :func:`vmenergy.aggregation.aggregate` from member offers.

    ``run``/``position``: the run that made it and its index there (not compared, not on the
    wire). Copies made with ``dataclasses.replace`` or :meth:`FlexOffer.with_state` keep them.
    """

    run: Optional[AggregationRun] = field(default=None, compare=False, repr=False)
    position: int = field(default=-1, compare=False, repr=False)

    def require_run(self) -> AggregationRun:
        """The run that made this aggregate; a copy without one (rebuilt from the wire) has no members."""
        if self.run is None:
            raise FlexOfferError("aggregate", f"{self.id} has no member information (was it rebuilt from the wire?)")
        return self.run

    @property
    def _rows(self) -> np.ndarray:
        return self.require_run().member_rows(self.position)

    @property
    def n_members(self) -> int:
        return len(self._rows)

    @property
    def member_ids(self) -> list[str]:
        return self.require_run().offers.ids[self._rows].tolist()

    @property
    def method(self) -> str:
        return self.run.params.method if self.run is not None else ""

    @property
    def members(self) -> list[Member]:
        """The members as objects, in aggregate order (built on demand)."""
        run = self.require_run()
        rows = self._rows
        mem = run.members
        out = []
        for r in rows.tolist():
            a, b = int(mem.slice_offsets[r]), int(mem.slice_offsets[r + 1])
            out.append(Member(run.offers.ids[r], int(mem.profile[r]), int(run.offset[r]),
                              tuple(mem.lo[a:b].tolist()), tuple(mem.hi[a:b].tolist())))
        return out

    def member_offers(self) -> list[FlexOffer]:
        """The member offers themselves (the objects given to :func:`aggregate` when it was given
        objects, so members that are aggregates keep their own members)."""
        run = self.require_run()
        rows = self._rows.tolist()
        if run.source is not None:
            return [run.source[r] for r in rows]
        return [run.offers.offer(r) for r in rows]

    def plain(self) -> FlexOffer:
        """The same offer as a plain :class:`FlexOffer` (what the wire carries)."""
        return FlexOffer(**{f: getattr(self, f) for f in FlexOffer.__dataclass_fields__})


class AggregationResult(list):
    """What :func:`aggregate` returns: the list of aggregates, plus

    - ``excluded``: offer id -> reason, for every offer that could not be aggregated soundly;
    - ``runs``: the columnar records behind the aggregates (for bulk disaggregation and metrics).
    """

    def __init__(self, aggregates=(), excluded: Optional[dict[str, str]] = None, runs=()):
        super().__init__(aggregates)
        self.excluded: dict[str, str] = dict(excluded or {})
        self.runs = list(runs)

    @property
    def n_members(self) -> int:
        return sum(int(r.members.ok.sum()) for r in self.runs)
