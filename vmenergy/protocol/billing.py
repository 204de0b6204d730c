"""Turning an aggregator's executed offers into prosumer bills with :mod:`vmenergy.settlement`.

The aggregator settles in batches: every offer whose schedule ended and was measured (or whose
measurement is overdue) is settled once. Metering arrives per offer (a sub-metered device), so a
prosumer's meter row is the sum of its offers' measurements; intervals where none of its offers
was scheduled read 0 (the flexible devices were idle) and scheduled intervals without a reading
stay NaN, which settlement flags instead of guessing.
"""

from __future__ import annotations

from typing import Mapping, Optional, Sequence

import numpy as np

from dataclasses import replace

from vmenergy.settlement import (
    allocate,
    cents,
    format_eur,
    BaselineRule,
    Contract,
    MarketSales,
    MeterData,
    Settlement,
    SettlementError,
    assignments_from_offers,
    settle,
)

from .gridload import default_load, place, schedule_load
from .messages import BillMessage, BillLine
from .records import AggOffer, AggregateRecord

__all__ = ["settle_records", "settle_offers", "correction_bill", "dso_share_bills", "metering_history",
           "BASELINE_FALLBACK", "BILL_OFFER_LINES"]

#: The note of a batch settled by the offers' default because the history was too short.
BASELINE_FALLBACK = "baseline-from-offers"

#: The most offers one bill names (its ``offer`` lines, ~110 bytes each on the wire). A prosumer
#: with more in one settlement gets the statement and the first ones in one bill, the rest in
#: bills of offer lines only (total 0). The day's bill of an FOA of 1,000 households named 2,610
#: offers, ~300 KB: over the 256 KiB stanza limit of Prosody 0.12 (``c2s_stanza_size_limit``)
#: and of the private ejabberd (``max_stanza_size``), so the server closed the aggregator's
#: stream at every resend and the bills never arrived (bench/RESULTS.md, "A million devices").
BILL_OFFER_LINES = 1000


def metering_history(owners: Sequence[str], start: int, end: int, resolution: int, need: int,
                     history_from: Sequence[AggOffer]) -> tuple[Optional[np.ndarray], int]:
    """The metering history day-based baselines read: owners x ``need`` days x the intervals
    [start, end) on each of the ``need`` previous days (oldest first), from the measurements
    the aggregator holds (intervals without one read 0: the flexible devices were idle), and how
    many whole days of history there are (counted from each owner's first measurement, the
    least over the owners); None when that is fewer than ``need``."""
    per_day = 86400 // resolution
    row = {o: i for i, o in enumerate(owners)}
    first: dict[str, int] = {}
    for r in history_from:
        m = r.measurement
        if m is not None and r.owner in row:
            first[r.owner] = min(first.get(r.owner, m.start), m.start)
    have = min(((start - first[o]) // per_day if o in first else 0) for o in owners) if owners else 0
    have = max(0, have)
    if have < need:
        return None, have
    hist = np.zeros((len(owners), need, end - start))
    lo = start - need * per_day
    for r in history_from:
        m = r.measurement
        if m is None or r.owner not in row:
            continue
        for k, e in enumerate(m.energy):
            t = m.start + k
            if lo <= t < start:
                d, q = divmod(t - lo, per_day)
                if q < end - start:
                    hist[row[r.owner], d, q] += e
    return hist, have


def settle_records(
    records: Sequence[AggOffer],
    contract: Contract,
    *,
    aggregator: str,
    aggregates: Mapping[str, AggregateRecord],
    history_from: Sequence[AggOffer] = (),
    notes: Optional[list[str]] = None,
) -> Settlement:
    """The :class:`Settlement` of ``records`` (offers with a schedule) over the span of their
    schedules: the one computation behind the bills (:func:`settle_offers`) and the run report.

    A contract whose baseline reads past days (X-of-Y, comparative day) gets them from the
    measurements in ``history_from`` (every offer the aggregator holds); while there are not
    enough days yet, the batch is settled by the offers' own default (their baselines), and
    ``notes`` (if given) gets one line saying so."""
    if not records:
        raise SettlementError("records", "nothing to settle (no offer with a schedule)")
    res = records[0].offer.resolution
    spans = []
    schedules = []
    for r in records:
        s = r.schedule
        if s is None:
            raise ValueError(f"settle_records: offer {r.offer.id} has no schedule; only scheduled offers are settled")
        schedules.append(s)
        spans.append((s.start, s.start + r.offer.profiles[s.profile].duration))
    start = min(a for a, _ in spans)
    end = max(b for _, b in spans)
    owners = sorted({r.owner for r in records})
    row = {o: i for i, o in enumerate(owners)}
    energy = np.zeros((len(owners), end - start))
    measured = np.zeros_like(energy, dtype=bool)
    scheduled = np.zeros_like(energy, dtype=bool)
    for r, (a, b) in zip(records, spans):
        i = row[r.owner]
        scheduled[i, a - start:b - start] = True
        m = r.measurement
        if m is not None:
            lo, hi = max(m.start, start), min(m.start + len(m.energy), end)
            if hi > lo:
                energy[i, lo - start:hi - start] += np.asarray(m.energy[lo - m.start:hi - m.start])
                measured[i, lo - start:hi - start] = True
    energy[scheduled & ~measured] = np.nan
    need = contract.baseline.history_days
    history = None
    if need:
        history, have = metering_history(owners, start, end, res, need, history_from)
        if history is None:
            if notes is not None:
                notes.append(f"{BASELINE_FALLBACK}: contract {contract.id!r} ({contract.baseline.method}) needs {need} "
                             f"days of metering history, the aggregator has {have}; settled by the offers' default")
            contract = replace(contract, baseline=BaselineRule())
    meter = MeterData(prosumers=np.array(owners, dtype=object), start=start, resolution=res, energy=energy,
                      history=history)
    offers = [r.offer for r in records]
    asg = assignments_from_offers(offers, schedules, meter, prosumer_of={r.offer.id: r.owner for r in records})
    market = _market_sales(records, aggregates, aggregator, start, end)
    return settle(meter, asg, [contract], [0] * len(owners), market)


def settle_offers(
    records: Sequence[AggOffer],
    contract: Contract,
    *,
    aggregator: str,
    first_bill: int,
    aggregates: Mapping[str, AggregateRecord],
    history_from: Sequence[AggOffer] = (),
) -> tuple[list[tuple[str, BillMessage, list[str]]], dict]:
    """Settle ``records`` (offers with a schedule) in one period.

    Returns ``[(owner, bill, offer_ids)]`` and a summary for the log. Bills carry the settlement
    lines (codes and amounts in cents, descriptions a person can check) plus one zero-amount line
    per settled offer, so the prosumer knows which offers the bill closes; a prosumer with more
    than :data:`BILL_OFFER_LINES` offers gets the rest in further bills of offer lines only.
    """
    notes: list[str] = []
    result = settle_records(records, contract, aggregator=aggregator, aggregates=aggregates,
                            history_from=history_from, notes=notes)
    res, start, end = result.resolution, result.period_start, result.period_end
    owners = [str(o) for o in result.prosumers]
    bills: list[tuple[str, BillMessage, list[str]]] = []
    n = first_bill
    for i, owner in enumerate(owners):
        statement = result.bills.bill(i)
        mine = [r for r in records if r.owner == owner]
        lines = [BillLine(ln.code, _describe(ln), ln.amount_cents) for ln in statement.lines]
        for first in range(0, max(1, len(mine)), BILL_OFFER_LINES):
            part = mine[first:first + BILL_OFFER_LINES]
            # the prosumer knows each offer by the id it gave it (records.AggOffer.owner_id)
            lines += [BillLine("offer", f"settles offer {r.owner_id}", 0, r.owner_id) for r in part]
            bill = BillMessage(f"bill-{aggregator.split('@')[0]}-{n}", start * res, end * res, tuple(lines))
            n += 1
            bills.append((owner, bill, [r.offer.id for r in part]))
            lines = []  # the statement is in the first bill only
    participants = {p.participant: p for p in result.participants}
    me = participants.get(contract.aggregator)
    summary: dict[str, object] = {
        "offers": len(records), "prosumers": len(owners),
        "paid_out_cents": sum(b.total_cents for _, b, _ in bills),
        "flags": int(np.count_nonzero(result.flags.bits)) if hasattr(result.flags, "bits") else 0,
    }
    if me is not None:
        summary.update(earned_cents=me.earnings_cents, margin_cents=me.margin_cents)
    summary["baseline_used"] = "offer" if notes else contract.baseline.method
    if notes:
        summary["baseline"] = notes[0]
    return bills, summary


def _describe(line) -> str:
    rate = "" if line.rate is None else f" at {line.rate:g} EUR/{line.unit}"
    text = f"{line.label}: {line.quantity:g} {line.unit}{rate}"
    return text + (f" ({line.note})" if line.note else "")


def _market_sales(records, aggregates, aggregator: str, start: int, end: int) -> Optional[MarketSales]:
    """What the aggregator sold on the market for these offers: the cleared aggregates that
    earned money (energy sold), per interval, at their clearing revenue spread evenly over the
    kWh. Energy the portfolio bought is a cost, not revenue to share with prosumers."""
    sold = np.zeros(end - start)
    revenue = 0.0
    seen = set()
    for r in records:
        agg = aggregates.get(r.aggregate_id) if r.aggregate_id else None
        if agg is None or agg.revenue_cents <= 0 or agg.aggregate_id in seen or agg.schedule is None:
            continue
        seen.add(agg.aggregate_id)
        s = agg.schedule
        per = np.abs(agg.offer.profiles[s.profile].spread(s.energy))
        lo, hi = max(s.start, start), min(s.start + len(per), end)
        if hi > lo:
            sold[lo - start:hi - start] += per[lo - s.start:hi - s.start]
        revenue += agg.revenue_cents / 100
    if not seen or sold.sum() <= 0:
        return None
    price = np.full(end - start, revenue / sold.sum())
    return MarketSales(aggregator, sold, price)


def correction_bill(before: AggOffer, after: AggOffer, contract: Contract, *, aggregator: str,
                    bill_id: str, aggregates: Mapping[str, AggregateRecord]) -> Optional[BillMessage]:
    """A bill for the difference a late measurement makes to an offer that was already billed
    (it was settled as unverified when its measurement was overdue). Both settlements are of
    this one offer alone, so the difference is exactly the late measurement's effect; None if it
    changes nothing."""
    (_, old, _), = settle_offers([before], contract, aggregator=aggregator, first_bill=0, aggregates=aggregates)[0]
    (_, new, _), = settle_offers([after], contract, aggregator=aggregator, first_bill=0, aggregates=aggregates)[0]
    old_by_code = {line.code: line.amount_cents for line in old.lines}
    lines = []
    for line in new.lines:
        delta = line.amount_cents - old_by_code.get(line.code, 0)
        if delta and line.code != "offer":
            lines.append(BillLine(line.code, f"correction after late metering: {line.description}", delta))
    if not lines:
        return None
    lines.append(BillLine("offer", f"corrects the bill of offer {after.owner_id}", 0, after.owner_id))
    return BillMessage(bill_id, old.period_start, old.period_end, tuple(lines), old.currency)


def dso_share_bills(members: Sequence[AggOffer], contract: Contract, *, paid_cents: int, order_id: str,
                    aggregator: str, first_bill: int) -> list[tuple[str, BillMessage]]:
    """The prosumers' share of what a DSO paid (or charged: a penalty beyond the incentive) for
    flex order ``order_id``, as their contract shares market revenue (``reward.revenue_share``,
    delegated contracts; direct ones are paid by price and share nothing): the aggregator's
    share of ``paid_cents`` is split over the order's member offers in proportion to the energy
    their schedules move away from their default load (sum over intervals of |scheduled -
    default|, the adaptation the DSO bought), equally if none moves any, in whole cents that
    add up to the pot exactly. One bill per prosumer, a line per offer; none for a zero share."""
    share = contract.reward.revenue_share if contract.mode == "delegated" and contract.reward is not None else 0.0
    pot = cents(share * paid_cents / 100.0, "revenue_share")  # rounded half away from zero, as all money
    done = [(r, r.schedule) for r in members if r.schedule is not None]
    if pot == 0 or not done:
        return []
    moved = []
    for r, schedule in done:
        first, sched = schedule_load(r.offer, schedule)
        d_first, default = default_load(r.offer)
        lo, hi = min(first, d_first), max(first + len(sched), d_first + len(default))
        diff = place(np.zeros(hi - lo), lo, first, sched) - place(np.zeros(hi - lo), lo, d_first, default)
        moved.append(float(np.abs(diff).sum()))
    w = np.asarray(moved) if sum(moved) > 0 else np.ones(len(done))
    cents_each = allocate(pot * w / w.sum(), np.zeros(len(done), dtype=np.int64), np.asarray([pot]))
    by_owner: dict[str, list[BillLine]] = {}
    span: dict[str, tuple[int, int]] = {}
    for (r, s), kwh, c in zip(done, moved, cents_each.tolist()):
        if c == 0:
            continue
        res = r.offer.resolution
        by_owner.setdefault(r.owner, []).append(BillLine(
            "dso_share", f"Share of the DSO's payment for flex order {order_id} ({share:.0%} of "
                         f"{format_eur(paid_cents)} EUR): your offer {r.owner_id} moved {round(kwh, 3):g} kWh", c))
        a, b = s.start * res, (s.start + r.offer.profiles[s.profile].duration) * res
        lo_hi = span.get(r.owner, (a, b))
        span[r.owner] = (min(lo_hi[0], a), max(lo_hi[1], b))
    out = []
    n = first_bill
    for owner in sorted(by_owner):
        out.append((owner, BillMessage(f"bill-{aggregator.split('@')[0]}-{n}", *span[owner], tuple(by_owner[owner]))))
        n += 1
    return out
