"""Per aggregator and interval: baseline, scheduled and measured energy, the flexibility
envelope and the market price. timeseries.csv, the load and envelope plots and the energy totals
of the summary are all read from here, so they agree.

Placement is settlement's (:func:`vmenergy.settlement.assignments_from_offers` and its raster):
a slice's energy is spread evenly over its intervals, and an offer's *baseline* is its default
schedule (its ``baseline`` field, else the scheduled energies at its earliest start). kWh per
interval, + consumption, - production.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vmenergy.flexoffer import FlexOffer, Schedule, State
from vmenergy.settlement import MeterData, assignments_from_offers
from vmenergy.settlement.kpis import flexibility_envelope
from vmenergy.settlement.raster import rasterise

from .collect import RunData, final_schedules, prosumer_offers_held

__all__ = ["Series", "series"]

#: Offers that count in the envelope: every one the aggregator accepted and did not give up.
_ENVELOPE_STATES = frozenset(State) - {State.REJECTED, State.WITHDRAWN, State.INITIAL, State.OFFERED}


@dataclass(eq=False)
class Series:
    """Arrays of (aggregators x T) over intervals ``start .. start + T`` (NaN: no value).

    ``measured`` is NaN where an offer scheduled in the interval has no reading for it;
    ``price`` (EUR/kWh) is the energy-weighted mean clearing price of the aggregator's cleared
    market bids running in the interval, NaN where none runs."""

    aggregators: tuple[str, ...]
    start: int
    resolution: int
    baseline: np.ndarray
    scheduled: np.ndarray
    measured: np.ndarray
    flex_min: np.ndarray
    flex_max: np.ndarray
    price: np.ndarray

    @property
    def n_intervals(self) -> int:
        return self.baseline.shape[1]

    def times(self) -> np.ndarray:
        """Epoch seconds at which each interval starts."""
        return (self.start + np.arange(self.n_intervals)) * self.resolution


def _span(fo: FlexOffer, s: Schedule) -> tuple[int, int]:
    return s.start, s.start + fo.profiles[s.profile].duration


def series(run: RunData) -> Series:
    res = run.resolution
    finals = final_schedules(run)
    names = tuple(a.jid for a in run.aggregators)
    held = {a.jid: prosumer_offers_held(a, run) for a in run.aggregators}
    scheduled_pairs = [(a.jid, rec.offer, finals[rec.offer.id]) for a in run.aggregators for rec in held[a.jid]
                       if rec.offer.id in finals]
    envelope_offers = {a.jid: [rec.offer for rec in held[a.jid] if rec.offer.state in _ENVELOPE_STATES]
                       for a in run.aggregators}
    bids = _cleared_bids(run)
    # the period: everything that runs (schedules, defaults, readings, offers' windows, bids)
    bounds: list[tuple[int, int]] = [_span(fo, s) for _, fo, s in scheduled_pairs]
    for offers in envelope_offers.values():
        for fo in offers:
            lo, hi = fo.earliest_start(), fo.latest_start()
            if lo is not None and hi is not None:
                bounds.append((lo, hi + max(p.duration for p in fo.profiles)))
            if fo.baseline is not None and fo.baseline.start is not None:
                bounds.append((fo.baseline.start, fo.baseline.start + fo.profiles[fo.baseline.profile].duration))
    for a in run.aggregators:
        for rec in held[a.jid]:
            if rec.measurement is not None:
                bounds.append((rec.measurement.start, rec.measurement.start + len(rec.measurement.energy)))
    for _, t0, e in bids:
        bounds.append((t0, t0 + len(e)))
    start = min((b[0] for b in bounds), default=run.start // res)
    T = max((b[1] for b in bounds), default=start) - start
    n = len(names)
    row = {name: i for i, name in enumerate(names)}
    baseline = np.zeros((n, T))
    scheduled = np.zeros((n, T))
    if scheduled_pairs:
        meter = MeterData(prosumers=np.array(names, dtype=object), start=start, resolution=res, energy=np.zeros((n, T)))
        asg = assignments_from_offers([fo for _, fo, _ in scheduled_pairs], [s for _, _, s in scheduled_pairs], meter,
                                      prosumer_of={fo.id: agg for agg, fo, _ in scheduled_pairs})
        ras = rasterise(asg, 0, n, start, T, default=True)
        baseline = ras.default
        scheduled = ras.requested + ras.default
    measured = np.zeros((n, T))
    missing = np.zeros((n, T), dtype=bool)
    for a in run.aggregators:
        i = row[a.jid]
        for rec in held[a.jid]:
            s = finals.get(rec.offer.id)
            read = np.zeros(T, dtype=bool)
            m = rec.measurement
            if m is not None:
                measured[i, m.start - start:m.start - start + len(m.energy)] += np.asarray(m.energy)
                read[m.start - start:m.start - start + len(m.energy)] = True
            if s is not None:
                a0, a1 = _span(rec.offer, s)
                missing[i, a0 - start:a1 - start] |= ~read[a0 - start:a1 - start]
    measured[missing] = np.nan
    flex_min = np.zeros((n, T))
    flex_max = np.zeros((n, T))
    for name, offers in envelope_offers.items():
        if offers and T:
            flex_min[row[name]], flex_max[row[name]] = flexibility_envelope(offers, start, T, res)
    price = _price(bids, row, start, T)
    return Series(names, start, res, baseline, scheduled, measured, flex_min, flex_max, price)


def _cleared_bids(run: RunData) -> list[tuple[tuple[str, float], int, np.ndarray]]:
    """((participant, price), first interval, kWh per interval) of every cleared bid."""
    out = []
    for m in run.markets:
        for b in m.bids:
            c = b.clearing
            if b.status not in ("accepted", "partial") or c is None or c.price is None:
                continue
            if b.bid.offer is not None and c.schedule is not None:
                energy = b.bid.offer.profiles[c.schedule.profile].spread(c.schedule.energy)
                out.append(((b.participant, c.price), c.schedule.start, energy))
            elif b.bid.start is not None:
                end = b.bid.end if b.bid.end is not None else b.bid.start + 1
                out.append(((b.participant, c.price), b.bid.start, np.full(end - b.bid.start, c.volume / (end - b.bid.start))))
    return out


def _price(bids, row: dict, start: int, T: int) -> np.ndarray:
    """Energy-weighted mean price of the bids running in each interval; where they all run at
    zero energy there, their plain mean (they still traded at that price); NaN where none runs."""
    n = len(row)
    weighted, weight, total, count = (np.zeros((n, T)) for _ in range(4))
    for (who, price), t0, e in bids:
        if who not in row:
            continue
        i, sl = row[who], slice(t0 - start, t0 - start + len(e))
        weighted[i, sl] += price * np.abs(e)
        weight[i, sl] += np.abs(e)
        total[i, sl] += price
        count[i, sl] += 1
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(weight > 0, weighted / weight, np.where(count > 0, total / count, np.nan))
