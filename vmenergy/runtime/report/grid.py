"""The DSOs in the report: each congestion point's loading without and with flexibility, and
what each DSO requested, ordered and paid.

*Without flexibility* is a counterfactual computed from the offers' baselines (their default
schedules: what the devices behind the point would have done on their own), not a second run;
*with* is the measured load: the readings of the offers behind the point plus the normal
programmes devices ran for offers that were not scheduled. Both use the placement of
:mod:`vmenergy.protocol.gridload` (a slice's energy spread evenly over its intervals), the one
the DSO and its aggregators use.
"""

from __future__ import annotations

import numpy as np

from vmenergy.flexoffer import State
from vmenergy.flexoffer.timeutil import format_utc
from vmenergy.protocol.gridload import default_load, place
from vmenergy.settlement.money import format_eur

from .collect import DsoData, RunData

__all__ = ["point_loading", "dso_summary", "dso_flows", "dso_recon"]


def point_loading(run: RunData, d: DsoData, point: str) -> tuple[int, np.ndarray, np.ndarray]:
    """(first interval, kWh per interval without flexibility, with flexibility (measured))."""
    behind = set(d.behind.get(point, ()))
    parts: list[tuple[int, int, np.ndarray]] = []  # (0 without | 1 with, first interval, kWh)
    for a in run.aggregators:
        for rec in a.offers:
            if rec.owner not in behind or rec.offer.state is State.WITHDRAWN:
                continue
            first, values = default_load(rec.offer)
            parts.append((0, first, values))
            if rec.measurement is not None:
                parts.append((1, rec.measurement.start, np.asarray(rec.measurement.energy)))
    for p in run.prosumers:
        if p.jid in behind:
            for r in p.default_runs:
                parts.append((1, r.start, np.asarray(r.energy)))
    if not parts:
        return run.start // run.resolution, np.zeros(0), np.zeros(0)
    start = min(first for _, first, _ in parts)
    T = max(first + len(v) for _, first, v in parts) - start
    out = np.zeros((2, T))
    for which, first, values in parts:
        place(out[which], start, first, values)
    return start, out[0], out[1]


def _money(cents: int) -> dict:
    return {"cents": int(cents), "eur": format_eur(cents)}


def dso_flows(run: RunData) -> list[dict]:
    """The money flows of summary.json's ``money``: what each DSO paid each aggregator for its
    orders (incentives less penalties)."""
    flows = []
    for d in run.dsos:
        paid: dict[str, list[int]] = {}
        for o in d.orders:
            if o.settlement is not None:
                paid.setdefault(o.to, []).append(o.settlement.total_cents)
        for to, totals in sorted(paid.items()):
            flows.append({"from": d.jid, "to": to, "bills": len(totals), "state": "flex settlements",
                          **_money(sum(totals))})
    return flows


def dso_recon(run: RunData) -> dict:
    """Every flex settlement a DSO sent arrived at its aggregator, the same."""
    received = {(a.jid, s.settlement_id): s for a in run.aggregators for s in a.flex_settlements}
    missing, differ, sent = [], [], 0
    for d in run.dsos:
        for o in d.orders:
            if o.settlement is None:
                continue
            sent += 1
            got = received.get((o.to, o.settlement.settlement_id))
            if got is None:
                missing.append({"settlement": o.settlement.settlement_id, "from": d.jid, "to": o.to})
            elif got != o.settlement:
                differ.append({"settlement": o.settlement.settlement_id, "from": d.jid, "to": o.to})
    return {"ok": not (missing or differ), "sent": sent, "received": len(received), "missing": missing,
            "differ": differ}


def dso_summary(run: RunData) -> dict:
    """The ``dso`` section of summary.json (schema in docs/scenarios.md)."""
    res = run.resolution
    dsos, points = [], []
    for d in run.dsos:
        ordered = [o for o in d.orders if o.msg.status == "ordered"]
        settled = [o.settlement for o in ordered if o.settlement is not None]
        dsos.append({
            "jid": d.jid, "points": list(d.points), "requests": d.requests, "replies": d.replies,
            "orders": len(ordered), "declined": sum(1 for o in d.orders if o.msg.status == "declined"),
            "cleared_kwh": sum(o.ordered_kwh for o in ordered),
            "delivered_kwh": sum(s.delivered_kwh for s in settled),
            "settled": len(settled),
            "incentives": _money(sum(s.incentive_cents for s in settled)),
            "penalties": _money(sum(s.penalty_cents for s in settled)),
            "paid": _money(sum(s.total_cents for s in settled)),
            "unanswered_messages": d.unanswered,
        })
        for name, point in d.points.items():
            start, without, with_ = point_loading(run, d, name)
            limit = point.upper_at(start, len(without))
            points.append({
                "dso": d.jid, "point": name, "prosumers": len(d.behind.get(name, ())),
                "limit_kwh": list(point.limit) if isinstance(point.limit, tuple) else point.limit,
                "peak_without_kwh": float(without.max()) if len(without) else 0.0,
                "peak_with_kwh": float(with_.max()) if len(with_) else 0.0,
                "intervals_over_without": int((without > limit + 1e-9).sum()),
                "intervals_over_with": int((with_ > limit + 1e-9).sum()),
                "loading": {"start": format_utc(start * res), "resolution_s": res, "limit_kwh": limit.tolist(),
                            "without_kwh": without.tolist(), "with_kwh": with_.tolist()},
            })
    return {"dsos": dsos, "points": points,
            "without_is": "the offers' baselines behind the point (computed, not a second run)",
            "with_is": "the measured load behind the point"}
