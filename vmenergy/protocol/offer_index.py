"""What the aggregator's timed steps and status need of the offers it holds, kept as they change.

An aggregator of a city holds 10^5 offers; scanning them all on every message (the status line's
counts) and on every tick (the next deadline, what is ready to settle) made its per-message work
grow with the offers held (51-65 % of its CPU at 5,000 offers, bench/RESULTS.md). The index
follows every write of the offers table (:meth:`vmenergy.protocol.ledger.Ledger.watch`), so
each question costs O(log n) or less:

- counts by state (the status line);
- the *open* offers (accepted, not yet in an aggregate) with their assignment deadlines, in a
  heap: the next expiry, and what expired;
- the offers waiting for settlement (a confirmed schedule, no bill yet) with the time each
  becomes due, in a heap.

Heaps are invalidated lazily: an entry counts only while the offer still has that due time, so a
change is one dict write and at most one heap push.
"""

from __future__ import annotations

import heapq
from collections import Counter
from typing import Callable, Iterator, Optional

from vmenergy.flexoffer import State

from .records import AggOffer

__all__ = ["AggOfferIndex", "MEASURED"]

#: The settlement due time of an offer whose measurement arrived: settle at once, whatever ``now``.
MEASURED = -1


class _DueHeap:
    """Keys with a due time: the earliest, and the ones due, in (due, key) order."""

    __slots__ = ("due", "_heap")

    def __init__(self) -> None:
        self.due: dict[str, int] = {}
        self._heap: list[tuple[int, str]] = []

    def set(self, key: str, due: Optional[int]) -> None:
        if due is None:
            self.due.pop(key, None)
            return
        if self.due.get(key) != due:
            self.due[key] = due
            heapq.heappush(self._heap, (due, key))

    def _clean(self) -> None:
        heap = self._heap
        while heap and self.due.get(heap[0][1]) != heap[0][0]:
            heapq.heappop(heap)
        if len(heap) > 64 and len(heap) > 4 * len(self.due):  # mostly stale: rebuild, keep memory bounded
            self._heap = sorted((d, k) for k, d in self.due.items())

    def first(self) -> Optional[int]:
        self._clean()
        return self._heap[0][0] if self._heap else None

    def upto(self, t: int) -> list[str]:
        """Keys due at or before ``t``, earliest first; they stay until their record changes
        (popped and pushed back: the work is in the keys due, not in the keys held)."""
        heap, out, seen = self._heap, [], set()
        while heap and heap[0][0] <= t:
            due, key = heapq.heappop(heap)
            if self.due.get(key) == due and key not in seen:
                seen.add(key)
                out.append((due, key))
        for entry in out:
            heapq.heappush(heap, entry)
        return [key for _, key in out]

    def __len__(self) -> int:
        return len(self.due)

    def __iter__(self) -> Iterator[str]:
        return iter(self.due)


class AggOfferIndex:
    """Counts, deadlines and settlement due times of an aggregator's offers (see the module).

    ``deadline(offer)`` is the last moment (epoch s) an open offer can still be assigned;
    ``settle_after`` how long after a schedule's end an unmeasured offer is settled anyway."""

    def __init__(self, deadline: Callable[..., int], settle_after: int) -> None:
        self._deadline = deadline
        self._settle_after = settle_after
        self.counts: Counter[str] = Counter()
        self.open = _DueHeap()  # open offer -> its assignment deadline
        self.unbilled = _DueHeap()  # confirmed, unbilled offer -> when it is settled

    def rebuild(self, rows: dict[str, AggOffer]) -> None:
        """Start over from the table (after the ledger was loaded from the store)."""
        self.counts.clear()
        self.open = _DueHeap()
        self.unbilled = _DueHeap()
        for key, rec in rows.items():
            self.changed(key, None, rec)

    def changed(self, key: str, old: Optional[AggOffer], new: Optional[AggOffer]) -> None:
        """The ledger's watcher: ``key`` went from ``old`` to ``new`` (None: absent)."""
        if old is not None:
            self.counts[old.offer.state.value] -= 1
        if new is not None:
            self.counts[new.offer.state.value] += 1
        self.open.set(key, self._open_deadline(new))
        self.unbilled.set(key, self._settle_at(new))

    def _open_deadline(self, rec: Optional[AggOffer]) -> Optional[int]:
        if rec is None or rec.offer.state is not State.ACCEPTED or rec.aggregate_id is not None:
            return None
        return self._deadline(rec.offer)

    def _settle_at(self, rec: Optional[AggOffer]) -> Optional[int]:
        if rec is None or rec.bill_id is not None or rec.schedule is None or not rec.schedule_confirmed:
            return None
        if rec.measurement is not None:
            return MEASURED
        fo = rec.offer
        return (rec.schedule.start + fo.profiles[rec.schedule.profile].duration) * fo.resolution + self._settle_after

    def state_counts(self) -> dict[str, int]:
        """Offers by state value (states with none left out)."""
        return {s: n for s, n in self.counts.items() if n}

    # -- deadlines ------------------------------------------------------------------------------
    def next_expiry(self) -> Optional[int]:
        """Just after the earliest assignment deadline of an open offer."""
        first = self.open.first()
        return None if first is None else first + 1

    def expired(self, now: int) -> list[str]:
        """Open offers whose deadline passed (``now`` after it), earliest deadline first."""
        return self.open.upto(now - 1)

    # -- settlement -------------------------------------------------------------------------------
    def next_settlement(self, now: int) -> Optional[int]:
        """When the next offer is to be settled (``now`` if one is measured and waiting)."""
        first = self.unbilled.first()
        if first is None:
            return None
        return now if first == MEASURED else first

    def settleable(self, now: int) -> list[str]:
        """Offers to settle at ``now``: measured ones, and ones ``settle_after`` past their end."""
        return self.unbilled.upto(now)
