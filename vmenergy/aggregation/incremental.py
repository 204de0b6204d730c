"""Incremental aggregation: an aggregator's stream of inserts, updates and deletes.

Each change rebuilds only the cell (grouping cell, see :mod:`.grouping`) the offer leaves and the
cell it joins, with exactly the code a from-scratch run uses for that cell, so the aggregates
always equal ``aggregate(offers_in_arrival_order, params, keys=...)``; the property tests check
that. A rebuild costs time proportional to the cell (a few ms for thousands of members), never to
the whole population. The result of every operation says which aggregates were added, updated
(their ``version`` goes up, so they can be sent as flex-offer updates) and removed.

Arrival order matters only for start alignment's bins (arrival order is its bin order). An update
keeps the offer's place; a delete followed by an insert puts it last, as a from-scratch run over
the aggregator's current offers would.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field, replace
from typing import Hashable, Optional

import numpy as np

from vmenergy.flexoffer import FlexOffer, FlexOfferError, FlexOfferSet

from .pipeline import _aggregate_set
from .grouping import Cell, cell_of, cell_sort_key
from .members import energy_flexibility_before, prepare
from .metrics import FlexibilityLoss, flexibility_loss
from .offer import AggregatedFlexOffer
from .params import AggregationParams

__all__ = ["IncrementalAggregator", "Changes"]


@dataclass
class Changes:
    """What one operation changed: aggregates to send as inserts, updates and deletes, and the
    offers of this operation that could not be aggregated (id -> reason)."""

    added: list[AggregatedFlexOffer] = field(default_factory=list)
    updated: list[AggregatedFlexOffer] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    excluded: dict[str, str] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.added or self.updated or self.removed or self.excluded)

    def merge(self, other: "Changes") -> "Changes":
        """This change followed by ``other`` (an aggregate added then updated is still added)."""
        added = {a.id: a for a in self.added}
        updated = {a.id: a for a in self.updated}
        removed = dict.fromkeys(self.removed)
        for a in other.added:
            if a.id in removed:
                del removed[a.id]
                updated[a.id] = a
            else:
                added[a.id] = a
        for a in other.updated:
            if a.id in added:
                added[a.id] = a
            else:
                updated[a.id] = a
        for i in other.removed:
            if i in added:
                del added[i]
            else:
                updated.pop(i, None)
                removed[i] = None
        return Changes(list(added.values()), list(updated.values()), list(removed), {**self.excluded, **other.excluded})


@dataclass(eq=False)
class _Entry:
    offer: FlexOffer
    key: Hashable
    seq: int
    single: FlexOfferSet
    cell: Optional[Cell]
    reason: Optional[str] = None
    tf_before: float = 0.0
    ef_before: float = 0.0


_KEEP = object()


class _BoxCache(dict):
    """(offer id, version, profile) -> inner box or reason, droppable by offer id."""

    def __init__(self) -> None:
        super().__init__()
        self._by_id: dict[str, list] = {}

    def __setitem__(self, key, value) -> None:
        super().__setitem__(key, value)
        self._by_id.setdefault(key[0], []).append(key)

    def drop(self, offer_id: str) -> None:
        for k in self._by_id.pop(offer_id, []):
            self.pop(k, None)


class IncrementalAggregator:
    """Keeps the aggregates of a changing set of offers (see the module docstring).

    ``keyed``: offers carry grouping keys (pass ``key=`` to :meth:`insert`/:meth:`update`); the
    aggregates then equal ``aggregate(..., keys=...)``.
    """

    def __init__(self, params: Optional[AggregationParams] = None, *, keyed: bool = False) -> None:
        self.params = AggregationParams() if params is None else params
        if not isinstance(self.params, AggregationParams):
            raise FlexOfferError("params", f"expected AggregationParams, got {type(params).__name__}")
        self.keyed = keyed
        self._entries: dict[str, _Entry] = {}
        self._cells: dict[Cell, _CellState] = {}
        self._seq = 0
        self._box_cache = _BoxCache()

    # -- reading ----------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, offer_id: object) -> bool:
        return offer_id in self._entries

    @property
    def offers(self) -> list[FlexOffer]:
        """The current offers in arrival order (what a from-scratch run should be given)."""
        return [e.offer for e in self._entries.values()]

    @property
    def keys(self) -> list[Hashable]:
        return [e.key for e in self._entries.values()]

    @property
    def aggregates(self) -> list[AggregatedFlexOffer]:
        """All aggregates, in the order :func:`aggregate` returns them."""
        out: list[AggregatedFlexOffer] = []
        for cell in sorted(self._cells, key=cell_sort_key):
            out.extend(self._cells[cell].aggregates)
        return out

    @property
    def excluded(self) -> dict[str, str]:
        return {oid: e.reason for oid, e in self._entries.items() if e.reason is not None}

    def flexibility_loss(self) -> FlexibilityLoss:
        ex = [e for e in self._entries.values() if e.reason is not None]
        return flexibility_loss(self.aggregates, self.excluded,
                                excluded_flexibility=(sum(e.tf_before for e in ex), sum(e.ef_before for e in ex)))

    # -- changing ---------------------------------------------------------------------------
    def insert(self, offer: FlexOffer, key: Hashable = None) -> Changes:
        """Add a new offer. Repeating an identical insert changes nothing (idempotent receivers)."""
        self._check_offer(offer)
        old = self._entries.get(offer.id)
        if old is not None:
            if old.offer == offer and old.key == key:
                return Changes()
            raise FlexOfferError("id", f"offer {offer.id!r} is already aggregated; send an update")
        entry = self._entry(offer, key, self._next_seq())
        self._entries[offer.id] = entry
        return self._place(entry)

    def update(self, offer: FlexOffer, key: Hashable = _KEEP) -> Changes:
        """Replace an offer by a newer version (``version`` must go up); it keeps its place."""
        self._check_offer(offer)
        old = self._entries.get(offer.id)
        if old is None:
            raise FlexOfferError("id", f"unknown offer {offer.id!r}; send an insert")
        key = old.key if key is _KEEP else key
        if old.offer == offer and old.key == key:
            return Changes()
        if offer.version <= old.offer.version:
            raise FlexOfferError("version",
                                 f"an update must raise the version (have {old.offer.version}, got {offer.version})")
        self._box_cache.drop(offer.id)
        entry = self._entry(offer, key, old.seq)
        self._entries[offer.id] = entry
        if old.cell is not None and old.cell == entry.cell:
            self._cells[entry.cell].add(entry)  # replaces the row in place
            return self._rebuild(entry.cell)  # same cell: one rebuild
        return self._unplace(old).merge(self._place(entry))

    def delete(self, offer_id: str) -> Changes:
        """Remove an offer (withdrawn, rejected, expired)."""
        old = self._entries.get(offer_id) if isinstance(offer_id, str) else None
        if old is None:
            raise FlexOfferError("offer_id", f"unknown offer {offer_id!r}")
        del self._entries[offer_id]
        self._box_cache.drop(offer_id)
        return self._unplace(old)

    # -- internals --------------------------------------------------------------------------
    def _check_offer(self, offer: object) -> None:
        if not isinstance(offer, FlexOffer):
            raise FlexOfferError("offer", f"expected a FlexOffer, got {type(offer).__name__}")

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def _entry(self, offer: FlexOffer, key: Hashable, seq: int) -> _Entry:
        single = FlexOfferSet.from_offers([offer])
        mem = prepare(single, self.params, self._box_cache)
        entry = _Entry(offer, key, seq, single, None, tf_before=float(mem.tf_before[0]),
                       ef_before=float(energy_flexibility_before(mem, single)[0]))
        if mem.ok[0]:
            entry.cell = cell_of(self.params, key if self.keyed else None, offer.resolution, int(mem.direction[0]),
                                 int(mem.est[0]), int(mem.tf[0]))
        else:
            path, reason = mem.reasons[0]
            if self.params.strict:
                raise FlexOfferError(path, reason)
            entry.reason = f"{path}: {reason}"
        return entry

    def _place(self, entry: _Entry) -> Changes:
        if entry.cell is None:
            return Changes(excluded={entry.offer.id: entry.reason or "not aggregated"})
        state = self._cells.setdefault(entry.cell, _CellState())
        state.add(entry)
        return self._rebuild(entry.cell)

    def _unplace(self, entry: _Entry) -> Changes:
        if entry.cell is None:
            return Changes()
        self._cells[entry.cell].remove(entry.offer.id)
        return self._rebuild(entry.cell)

    def _rebuild(self, cell: Cell) -> Changes:
        state = self._cells[cell]
        old = {a.id: a for a in state.aggregates}
        if not state.ids:
            del self._cells[cell]
            return Changes(removed=list(old))
        keys = list(state.keys) if self.keyed else None
        result = _aggregate_set(state.offers, list(state.objects), self.params, keys, self._box_cache)
        changes = Changes()
        new_list = []
        for agg in result:
            prev = old.pop(agg.id, None)
            if prev is None:
                changes.added.append(agg)
            elif _same(prev, agg):
                agg = prev
            else:
                agg = replace(agg, version=prev.version + 1)
                changes.updated.append(agg)
            new_list.append(agg)
        changes.removed.extend(old)
        state.aggregates = new_list
        return changes


class _CellState:
    """One cell: its members in arrival order, as ids and as one columnar set kept up to date
    (an insert appends one row instead of re-copying every member), and its aggregates."""

    def __init__(self) -> None:
        self.ids: list[str] = []
        self.seqs: list[int] = []
        self.objects: list[FlexOffer] = []
        self.keys: list[Hashable] = []
        self.offers: FlexOfferSet = FlexOfferSet.from_offers([])
        self.aggregates: list[AggregatedFlexOffer] = []

    def _splice(self, i: int, j: int, middle: list[FlexOfferSet]) -> None:
        n = len(self.ids) + (j - i) - len(middle)  # rows before this change
        parts = []
        if i > 0:
            parts.append(self.offers.take(np.arange(0, i)))
        parts += middle
        if j < n:
            parts.append(self.offers.take(np.arange(j, n)))
        self.offers = FlexOfferSet.concat(parts) if parts else FlexOfferSet.from_offers([])

    def add(self, entry: _Entry) -> None:
        i = bisect.bisect(self.seqs, entry.seq)
        if entry.offer.id in self.ids:  # an update in place
            k = self.ids.index(entry.offer.id)
            self.objects[k], self.keys[k] = entry.offer, entry.key
            self._splice(k, k + 1, [entry.single])
            return
        self.ids.insert(i, entry.offer.id)
        self.seqs.insert(i, entry.seq)
        self.objects.insert(i, entry.offer)
        self.keys.insert(i, entry.key)
        if i == len(self.ids) - 1:
            self.offers = FlexOfferSet.concat([self.offers, entry.single]) if i else entry.single
        else:
            self._splice(i, i, [entry.single])

    def remove(self, offer_id: str) -> None:
        k = self.ids.index(offer_id)
        del self.ids[k], self.seqs[k], self.objects[k], self.keys[k]
        self._splice(k, k + 1, [])


def _same(a: AggregatedFlexOffer, b: AggregatedFlexOffer) -> bool:
    """Same offer content and the same members with the same boxes and offsets."""
    if (a.profiles, a.start_after, a.start_before, a.acceptance_before, a.assignment_before, a.label) != (
        b.profiles, b.start_after, b.start_before, b.acceptance_before, b.assignment_before, b.label
    ):
        return False
    run_a, run_b = a.require_run(), b.require_run()
    ra, rb = run_a.member_rows(a.position), run_b.member_rows(b.position)
    if len(ra) != len(rb) or run_a.offers.ids[ra].tolist() != run_b.offers.ids[rb].tolist():
        return False
    if not np.array_equal(run_a.offset[ra], run_b.offset[rb]):
        return False
    la, ha = run_a.box(ra)
    lb, hb = run_b.box(rb)
    return np.array_equal(la, lb) and np.array_equal(ha, hb) and np.array_equal(
        run_a.members.profile[ra], run_b.members.profile[rb])
