"""What the console's pages and the REST interface read: an agent's ledger as JSON-able data.

Each function only reads (it runs between engine steps, under ``agent.read``), so it sees a
consistent ledger. Times go out as ISO 8601 UTC strings, energy as kWh per interval (+
consumption, - production) and money as EUR text with two decimals (``format_eur``), as on the
wire. The per-interval series are the portfolio's: every offer of the aggregator summed.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Optional

import numpy as np

from vmenergy.flexoffer import FlexOffer, State
from vmenergy.flexoffer.timeutil import format_utc
from vmenergy.protocol.aggregator import AGG_BILLS, AGG_OFFERS, AGGREGATES, UPSTREAM_BILLS
from vmenergy.protocol.market import BIDS, MARKET_SESSIONS, market_summary
from vmenergy.protocol.prosumer import PROSUMER_BILLS, PROSUMER_OFFERS
from vmenergy.protocol.records import AggOffer
from vmenergy.protocol.steering import STEERING
from vmenergy.settlement.money import format_eur

__all__ = ["OfferFilter", "offer_rows", "offer_detail", "series", "kpi", "bills", "contract", "prosumers",
           "settings", "trading", "market_view", "market_clearing", "prosumer_view", "MAX_SERIES_INTERVALS", "SERIES_KINDS"]

#: The longest series one request gets (a week of quarter hours): a chart of a year is asked for
#: in pieces, and a request cannot make the agent build arrays of any size.
MAX_SERIES_INTERVALS = 7 * 96
#: The series of the dashboard chart, in its legend's order.
SERIES_KINDS = ("baseline", "scheduled", "min", "max", "market", "measured")
#: Offers that no longer stand for flexibility (not in the envelope, nor in the KPIs).
_GONE = (State.WITHDRAWN, State.REJECTED)


def _iso(seconds: Optional[int]) -> Optional[str]:
    return None if seconds is None else format_utc(int(seconds))


def _records(agent: Any) -> list[AggOffer]:
    if agent.role != "aggregator":
        return []
    return sorted(agent.engine.ledger[AGG_OFFERS].values(), key=lambda r: r.offer.id)


def _span(fo: FlexOffer) -> tuple[Optional[int], Optional[int]]:
    """First and last+1 interval the offer may run in (None for an implicit window)."""
    first, last = fo.earliest_start(), fo.latest_start()
    if first is None or last is None:
        return None, None
    return first, last + max(p.duration for p in fo.profiles)


# -- loads ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class OfferFilter:
    """Which offers a list shows: by owner (bare JID), state, and a period [start, end) in epoch
    seconds that the offer's window overlaps. Checked by the caller (the REST layer names the
    query parameter that is wrong)."""

    prosumer: Optional[str] = None
    state: Optional[str] = None
    start: Optional[int] = None
    end: Optional[int] = None

    def keeps(self, rec: AggOffer) -> bool:
        if self.prosumer is not None and rec.owner != self.prosumer:
            return False
        if self.state is not None and rec.offer.state.value != self.state:
            return False
        if self.start is not None or self.end is not None:
            a, b = _span(rec.offer)
            if a is None or b is None:
                return False
            res = rec.offer.resolution
            if self.end is not None and a * res >= self.end:
                return False
            if self.start is not None and b * res <= self.start:
                return False
        return True


def offer_row(rec: AggOffer) -> dict:
    """One line of the loads table."""
    fo = rec.offer
    a, b = _span(fo)
    res = fo.resolution
    return {"id": fo.id, "owner": rec.owner, "owner_id": rec.owner_id, "state": fo.state.value,
            "version": fo.version, "window_start": _iso(None if a is None else a * res),
            "window_end": _iso(None if b is None else b * res), "min_kwh": round(fo.min_total_energy, 6),
            "max_kwh": round(fo.max_total_energy, 6), "aggregate": rec.aggregate_id,
            "scheduled_kwh": None if rec.schedule is None else round(rec.schedule.total, 6),
            "measured_kwh": None if rec.measurement is None else round(sum(rec.measurement.energy), 6),
            "bill": rec.bill_id, "note": rec.note}


def offer_rows(agent: Any, flt: OfferFilter = OfferFilter(), limit: int = 1000) -> dict:
    rows = [offer_row(r) for r in _records(agent) if flt.keeps(r)]
    return {"count": len(rows), "offers": rows[:limit]}


def find_offer(agent: Any, offer_id: str, owner: Optional[str] = None) -> Optional[AggOffer]:
    """The offer kept under ``offer_id``, or the one ``owner`` knows by that id."""
    offers = agent.engine.ledger[AGG_OFFERS]
    rec = offers.get(offer_id)
    if rec is not None and (owner is None or rec.owner == owner):
        return rec
    if owner is not None:
        return offers.get(f"{offer_id}/{owner}")
    return None


def offer_detail(rec: AggOffer) -> dict:
    """One offer: its row, the offer as the wire has it, its schedule and its measurement."""
    m = rec.measurement
    out = offer_row(rec)
    out["offer"] = rec.offer.to_dict()
    out["schedule"] = None if rec.schedule is None else rec.schedule.to_dict()
    out["schedule_confirmed"] = rec.schedule_confirmed
    out["measurement"] = None if m is None else measurement_dict(m)
    return out


def measurement_dict(m: Any) -> dict:
    """A measurement in the REST interface's JSON (the XML attributes' names, snake_case)."""
    return {"id": m.measurement_id, "offer_id": m.offer_id, "start": format_utc(m.start * m.resolution),
            "resolution": m.resolution, "energy": list(m.energy)}


# -- the portfolio per interval ----------------------------------------------------------------
def _add(target: np.ndarray, start: int, first: int, values: np.ndarray) -> None:
    """``values`` (per interval from ``start``) added into ``target`` (per interval from ``first``)."""
    a = start - first
    lo, hi = max(0, a), min(len(target), a + len(values))
    if hi > lo:
        target[lo:hi] += values[lo - a:hi - a]


def series(agent: Any, now: int, start: Optional[int] = None, end: Optional[int] = None,
           prosumer: Optional[str] = None, offer: Optional[str] = None) -> dict:
    """The dashboard chart: per interval, the portfolio's ``baseline``, ``scheduled``, ``min`` and
    ``max`` (what the offers could place there), ``market`` (schedules of aggregates traded on a
    market) and ``measured`` energy, over [start, end) epoch seconds (by default the span of the
    offers, at most :data:`MAX_SERIES_INTERVALS`); with ``prosumer`` or ``offer``, that prosumer's
    offers or that one offer only (and no market series: aggregates mix prosumers)."""
    from vmenergy.settlement.kpis import flexibility_envelope

    recs = [r for r in _records(agent) if (prosumer is None or r.owner == prosumer)
            and (r.offer.id == offer if offer is not None else r.offer.state not in _GONE)]
    res = recs[0].offer.resolution if recs else 900
    recs = [r for r in recs if r.offer.resolution == res]
    spans = [s for s in (_span(r.offer) for r in recs) if s[0] is not None]
    if start is None:
        start = min((a for a, _ in spans), default=now // res) * res  # type: ignore[type-var]
    if end is None:
        end = max((b for _, b in spans), default=now // res + 1) * res  # type: ignore[type-var]
    first = int(start) // res
    n = max(1, min(MAX_SERIES_INTERVALS, -(-int(end) // res) - first))
    out = {k: np.zeros(n) for k in SERIES_KINDS}
    explicit = [r.offer for r in recs if r.offer.earliest_start() is not None]
    if explicit:
        out["min"], out["max"] = flexibility_envelope(explicit, first, n, res)
    for r in recs:
        fo = r.offer
        if fo.baseline is not None:
            b = fo.baseline
            at = b.start if b.start is not None else fo.earliest_start()
            if at is not None:
                _add(out["baseline"], at, first, fo.profiles[b.profile].spread(b.energy))
        if r.schedule is not None:
            s = r.schedule
            _add(out["scheduled"], s.start, first, fo.profiles[s.profile].spread(s.energy))
        if r.measurement is not None:
            _add(out["measured"], r.measurement.start, first, np.asarray(r.measurement.energy, dtype=float))
    for agg in (agent.engine.ledger[AGGREGATES].values() if prosumer is None and offer is None else ()):
        s = agg.schedule
        if agg.session_id is not None and s is not None and agg.offer.resolution == res:
            _add(out["market"], s.start, first, agg.offer.profiles[s.profile].spread(s.energy))
    return {"resolution": res, "start": format_utc(first * res), "now": format_utc(now),
            "t": [(first + i) * res for i in range(n)],
            **{k: [round(float(x), 6) for x in v] for k, v in out.items()}}


# -- KPIs, bills, contract -------------------------------------------------------------------------
def kpi(agent: Any, now: int) -> dict:
    """The portfolio's KPIs (``vmenergy.settlement.kpis``) over its confirmed schedules, plus the
    offer counts and the averages the dashboard shows; ``kpis`` is None until something is
    scheduled (``why`` says so)."""
    from vmenergy.protocol.billing import settle_records
    from vmenergy.settlement import SettlementError, kpis

    engine = agent.engine
    recs = _records(agent)
    counts: dict[str, int] = {}
    for r in recs:
        counts[r.offer.state.value] = counts.get(r.offer.state.value, 0) + 1
    out: dict[str, Any] = {"now": format_utc(now), "offers": counts, "kpis": None, "why": None}
    s = series(agent, now)
    for k in ("baseline", "scheduled", "measured"):
        v = s[k]
        out[f"average_{k}_kwh"] = round(sum(v) / len(v), 6) if v else 0.0
    confirmed = [r for r in recs if r.schedule is not None and r.schedule_confirmed]
    if not confirmed:
        out["why"] = "no offer has a confirmed schedule yet"
        return out
    try:
        settlement = settle_records(confirmed, engine.contract, aggregator=engine.jid,
                                    aggregates=engine.ledger[AGGREGATES].mapping())
        k = kpis(settlement, [r.offer for r in confirmed], participants=(engine.jid,))
    except SettlementError as exc:
        out["why"] = f"not computed: {exc}"
        return out
    d = k.to_dict()
    adapt = [x for x in (k.load_adaptability or ()) if x is not None]
    var = list(k.demand_variation_kwh or ())
    d["average_adaptability"] = round(sum(adapt) / len(adapt), 6) if adapt else None
    d["average_variation_kwh"] = round(sum(var) / len(var), 6) if var else None
    out["kpis"] = d
    return out


def bills(agent: Any, prosumer: Optional[str] = None) -> dict:
    """The bills the aggregator sent (optionally to one prosumer) and those it received."""
    ledger = agent.engine.ledger
    sent = sorted(ledger[AGG_BILLS].values(), key=lambda ob: (ob[1].period_start, ob[1].bill_id))
    rows = [bill_dict(b, owner) for owner, b in sent if prosumer is None or owner == prosumer]
    up = [bill_dict(b, None) for b in sorted(ledger[UPSTREAM_BILLS].values(), key=lambda b: b.bill_id)]
    return {"bills": rows, "upstream": up if prosumer is None else []}


def bill_dict(b: Any, to: Optional[str]) -> dict:
    return {"id": b.bill_id, "to": to, "period_start": _iso(b.period_start), "period_end": _iso(b.period_end),
            "currency": b.currency, "total": format_eur(b.total_cents),
            "lines": [{"kind": ln.code, "amount": format_eur(ln.amount_cents), "description": ln.description,
                       "offer_id": ln.offer_id} for ln in b.lines]}


def contract(agent: Any) -> dict:
    c = getattr(agent.engine, "contract", None)
    return {"contract": None if c is None else c.to_dict()}


def prosumers(agent: Any, now: int) -> dict:
    """One row per prosumer that sent offers (or is enrolled): counts, energy, bills, and what
    it was billed for the current month (UTC; by the bills' periods)."""
    ledger = agent.engine.ledger
    month = format_utc(now)[:7]
    per: dict[str, dict] = {}
    enrolled = getattr(agent.engine.config, "enrolment", "open")
    for jid in (() if enrolled == "open" else enrolled):
        per.setdefault(jid, {"jid": jid, "offers": 0, "scheduled_kwh": 0.0, "bills": 0, "billed": 0})
    for r in _records(agent):
        p = per.setdefault(r.owner, {"jid": r.owner, "offers": 0, "scheduled_kwh": 0.0, "bills": 0, "billed": 0})
        p["offers"] += 1
        if r.schedule is not None:
            p["scheduled_kwh"] = round(p["scheduled_kwh"] + r.schedule.total, 6)
    for owner, b in ledger[AGG_BILLS].values():
        p = per.setdefault(owner, {"jid": owner, "offers": 0, "scheduled_kwh": 0.0, "bills": 0, "billed": 0})
        p["bills"] += 1
        p["billed"] += b.total_cents
        if format_utc(b.period_start)[:7] == month:
            p["month"] = p.get("month", 0) + b.total_cents
    rows = sorted(per.values(), key=lambda p: p["jid"])
    for p in rows:
        p["billed"] = format_eur(p["billed"])
        p["month"] = format_eur(p.get("month", 0))
    return {"month": month, "prosumers": rows}


# -- settings, trading ------------------------------------------------------------------------------
def settings(agent: Any) -> dict:
    """What an operator may change now, and who changed what (the steering audit table)."""
    engine = agent.engine
    objective = engine.objective() if hasattr(engine, "objective") else None
    log = [{"seq": r.seq, "at": _iso(r.at), "by": r.operator, "action": r.action, "params": r.params,
            "outcome": r.outcome} for r in sorted(engine.ledger[STEERING].values(), key=lambda r: r.seq)]
    upstream = getattr(getattr(engine, "config", None), "upstream", None)
    trades = agent.role == "aggregator" and engine.trades_upstream
    return {"role": agent.role, "paused": engine.paused, "actions": list(engine.steering_actions()),
            "objective": objective, "upstream": upstream,
            "trading": engine.trading_on if trades else None,
            "trading_settings": asdict(engine.config.trading_settings()) if trades else None,
            "log": log[-200:]}


def trading(agent: Any) -> dict:
    """The aggregates and how they fared upstream (bids, schedules, revenue), newest first."""
    ledger = agent.engine.ledger
    offers = ledger[AGG_OFFERS]
    aggs = sorted(ledger[AGGREGATES].values(), key=lambda r: r.aggregate_id, reverse=True)
    rows = []
    for r in aggs:
        # what the members' meters say, against what the aggregate was scheduled (or sold) for
        members = [m for m in (offers.get(k) for k in r.members) if m is not None]
        metered = [m for m in members if m.measurement is not None]
        rows.append({"id": r.aggregate_id, "status": r.status, "session": r.session_id, "members": len(r.members),
                     "min_kwh": round(r.offer.min_total_energy, 6), "max_kwh": round(r.offer.max_total_energy, 6),
                     "scheduled_kwh": None if r.schedule is None else round(r.schedule.total, 6),
                     "measured_kwh": round(sum(sum(m.measurement.energy) for m in metered), 6) if metered else None,
                     "metered": f"{len(metered)}/{len(members)}", "revenue": format_eur(r.revenue_cents)})
    up = ledger[UPSTREAM_BILLS].values()
    return {"aggregates": rows[:500], "last": rows[0] if rows else None,
            "revenue": format_eur(sum(r.revenue_cents for r in aggs)),
            "upstream_bills": format_eur(sum(b.total_cents for b in up))}


def market_view(agent: Any) -> dict:
    """A market's sessions and bids (its order book), with each bid's clearing."""
    ledger = agent.engine.ledger
    sessions = sorted(ledger[MARKET_SESSIONS].values(), key=lambda r: (r.opened, r.notice.session_id))
    bids = sorted(ledger[BIDS].values(), key=lambda b: b.bid.bid_id)
    return {"summary": market_summary(ledger),
            "sessions": [{"id": s.notice.session_id, "opened": _iso(s.opened), "state": s.notice.state}
                         for s in sessions],
            "bids": [{"id": b.bid.bid_id, "session": b.bid.session_id, "participant": b.participant,
                      "status": b.status, "amount": format_eur(b.amount_cents),
                      "volume_kwh": None if b.clearing is None else b.clearing.volume} for b in bids]}


def prosumer_view(agent: Any) -> dict:
    """A prosumer box: its devices (what its executor says of itself, what runs now), its offers
    with their schedules and its bills."""
    ledger = agent.engine.ledger
    executor = getattr(agent, "executor", None)
    describe = getattr(executor, "describe", None)
    recs = sorted(ledger[PROSUMER_OFFERS].values(), key=lambda r: (r.release, r.offer.id))
    offers = []
    for r in recs:
        fo = r.offer
        a, b = _span(fo)
        res = fo.resolution
        offers.append({"id": fo.id, "state": fo.state.value, "release": _iso(r.release),
                       "window_start": _iso(None if a is None else a * res),
                       "window_end": _iso(None if b is None else b * res),
                       "min_kwh": round(fo.min_total_energy, 6), "max_kwh": round(fo.max_total_energy, 6),
                       "schedule": None if r.schedule is None else r.schedule.to_dict(),
                       "reason": r.reason, "measurement": r.measurement_id, "bill": r.bill_id})
    bills_ = sorted(ledger[PROSUMER_BILLS].values(), key=lambda b: (b.period_start, b.bill_id))
    return {"aggregator": getattr(agent, "aggregator", None),
            "devices": describe() if callable(describe) else type(executor).__name__,
            "running": agent.running() if hasattr(agent, "running") else [],
            "offers": offers, "bills": [bill_dict(b, None) for b in bills_],
            "received": format_eur(sum(b.total_cents for b in bills_))}


def market_clearing(agent: Any) -> dict:
    """Per interval of the market's delivery periods: the volume awarded (kWh; flex-offer bids by
    their cleared schedules, simple orders spread evenly over their period) and the price it
    cleared at (EUR/kWh, the volume-weighted price of the awards in that interval)."""
    ledger = agent.engine.ledger
    awarded = [b for b in ledger[BIDS].values()
               if b.status in ("accepted", "partial") and b.clearing is not None]
    res = 900
    placed: list[tuple[int, np.ndarray, float]] = []  # (first interval, kWh per interval, price)
    for b in awarded:
        c, bid = b.clearing, b.bid
        price = c.price if c.price is not None else (c.clearing_price or 0.0)
        if c.schedule is not None and bid.offer is not None:
            s = c.schedule
            res = s.resolution
            energy = np.abs(bid.offer.profiles[s.profile].spread(s.energy))
            placed.append((s.start, energy, price))
        elif bid.start is not None and bid.end is not None and bid.end > bid.start:
            res = bid.resolution
            first, last = bid.start // res, -(-bid.end // res)
            n = max(1, last - first)
            placed.append((first, np.full(n, abs(c.volume) / n), price))
    if not placed:
        return {"resolution": res, "t": [], "volume": [], "price": []}
    first = min(a for a, _, _ in placed)
    n = min(MAX_SERIES_INTERVALS, max(a + len(v) for a, v, _ in placed) - first)
    volume, value = np.zeros(n), np.zeros(n)
    for a, v, price in placed:
        _add(volume, a, first, v)
        _add(value, a, first, v * price)
    price_per = [round(float(value[i] / volume[i]), 6) if volume[i] > 0 else None for i in range(n)]
    return {"resolution": res, "t": [(first + i) * res for i in range(n)],
            "volume": [round(float(x), 6) for x in volume], "price": price_per}
