"""The columnar record of one aggregation run, shared by the aggregates it made.

An aggregate keeps a reference to it (:attr:`AggregatedFlexOffer.run
<vmenergy.aggregation.offer.AggregatedFlexOffer.run>`): disaggregation, metrics and incremental
rebuilds read member data from these arrays instead of from a million Python objects.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Optional, Sequence

import numpy as np

from vmenergy.flexoffer import FlexOffer, FlexOfferSet
from vmenergy.flexoffer.ragged import expand_rows

from .grouping import Groups
from .members import Members
from .params import AggregationParams

__all__ = ["AggregationRun", "CHUNK"]

#: Slices per pass of the slice-level loops: about 0.5 MB per float column, so the temporaries
#: stay in cache and no pass allocates (and page-faults) arrays the size of the whole input.
CHUNK = 1 << 16


@dataclass(eq=False)
class AggregationRun:
    """Everything a run computed, as arrays, shared by its aggregates.

    Per offer row (n): ``group`` (aggregate or -1), ``offset`` (start offset inside the aggregate),
    ``ishift`` (global interval index of the member's first interval; excluded rows point past
    the end). Per aggregate (G): ``est``, ``tf`` (its window), ``int_offsets`` (G+1, intervals),
    ``slice_offsets`` (G+1, aggregate slices). Per aggregate slice: ``duration``, ``L``, ``U``.
    ``slice_of_interval``: interval -> aggregate slice, None when they coincide.
    """

    params: AggregationParams
    offers: FlexOfferSet
    source: Optional[Sequence[FlexOffer]]
    members: Members
    groups: Groups
    offset: np.ndarray
    ishift: np.ndarray
    est: np.ndarray
    tf: np.ndarray
    int_offsets: np.ndarray
    slice_of_interval: Optional[np.ndarray]
    slice_offsets: np.ndarray
    duration: np.ndarray
    L: np.ndarray
    U: np.ndarray
    aggregates: list

    def __len__(self) -> int:
        return len(self.est)

    @property
    def n_slices(self) -> int:
        return len(self.L)

    def member_rows(self, a: int) -> np.ndarray:
        g = self.groups
        return g.rows[g.offsets[a] : g.offsets[a + 1]]

    def chunks(self) -> Iterator[tuple[int, int]]:
        """Row ranges [a, b) of about CHUNK slices each, covering every offer row."""
        so = self.members.slice_offsets
        n = len(so) - 1
        cuts = np.searchsorted(so, np.arange(CHUNK, int(so[-1]), CHUNK))
        bounds = [0, *sorted(set(cuts.tolist()) - {0, n}), n] if n else [0]
        return zip(bounds[:-1], bounds[1:])

    def positions(self, a: int, b: int) -> np.ndarray:
        """Interval (not yet merged into slices) of every box slice of rows [a, b), in order."""
        mem = self.members
        so = mem.slice_offsets
        s0, s1 = int(so[a]), int(so[b])
        counts = np.diff(so[a : b + 1])
        if mem.rel is None:
            pos = np.repeat(self.ishift[a:b] - so[a:b], counts)
            pos += np.arange(s0, s1, dtype=np.int64)
        else:
            pos = np.repeat(self.ishift[a:b], counts)
            pos += mem.rel[s0:s1]
        return pos

    def targets_range(self, a: int, b: int) -> np.ndarray:
        """Aggregate slice of every box slice of rows [a, b); excluded rows give ``n_slices``."""
        pos = self.positions(a, b)
        if self.slice_of_interval is not None:
            return self.slice_of_interval[pos]
        np.minimum(pos, len(self.L), out=pos)
        return pos

    def targets(self, rows: np.ndarray) -> np.ndarray:
        """Aggregate slice of every box slice of ``rows``, concatenated in that order."""
        mem = self.members
        so = mem.slice_offsets
        counts = so[rows + 1] - so[rows]
        if mem.rel is None:
            total = int(counts.sum())
            pos = np.repeat(self.ishift[rows] - (np.cumsum(counts) - counts), counts) + np.arange(total, dtype=np.int64)
        else:
            pos = np.repeat(self.ishift[rows], counts) + mem.rel[expand_rows(so, rows)]
        if self.slice_of_interval is not None:
            pos = self.slice_of_interval[pos]
        return pos

    def box(self, rows: Optional[np.ndarray] = None) -> tuple[np.ndarray, np.ndarray]:
        """Members' box bounds (all slices, or those of ``rows`` concatenated)."""
        mem = self.members
        if rows is None:
            return mem.lo, mem.hi
        sl = expand_rows(mem.slice_offsets, rows)
        return mem.lo[sl], mem.hi[sl]
