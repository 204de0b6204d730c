"""summary.json: what a run did, in numbers that are the same for every run of a scenario and seed.

The schema is documented in docs/scenarios.md ("The run folder"). Rules that make it repeatable:
everything is read in sorted order (see :mod:`.collect`), floats are rounded once to
:data:`DECIMALS` decimals when the document is finished, keys are sorted when it is written, and
nothing from the wall clock, the machine or the run directory goes in (timings.json has those).
"""

from __future__ import annotations

import json
import math
from collections import Counter
from typing import Any, Iterable

import numpy as np

from vmenergy.flexoffer import State
from vmenergy.flexoffer.timeutil import format_utc
from vmenergy.protocol.billing import settle_records
from vmenergy.protocol.prosumer import ProsumerEngine
from vmenergy.settlement import SettlementError, kpis, kpis_to_json
from vmenergy.settlement.money import format_eur

from .collect import AggregatorData, MarketData, RunData, final_schedules, natural_key, prosumer_offers_held
from .grid import dso_flows, dso_recon, dso_summary
from .outcome import Outcome
from .series import Series

__all__ = ["SCHEMA", "DECIMALS", "FINAL_STATES", "build_summary", "summary_json", "clean"]

SCHEMA = "vmenergy.run-summary/1"
#: Every float in summary.json is rounded to this many decimals (kWh, EUR/kWh, MW, ratios).
DECIMALS = 6
#: States after which nothing more happens to an offer.
FINAL_STATES = frozenset({State.SETTLED.value, State.REJECTED.value, State.WITHDRAWN.value})
#: An offer the prosumer has but its aggregator does not (never sent, or refused on receipt).
NOT_HELD = "not held"
#: Offers of a prosumer whose store does not exist (the agent never ran).
NOT_STARTED = "not started"


def clean(value: Any) -> Any:
    """``value`` with every float rounded to :data:`DECIMALS` decimals (-0.0 written as 0.0) and
    NaN/infinity as null; tuples become lists."""
    if isinstance(value, bool) or value is None or isinstance(value, (int, str)):
        return value
    if isinstance(value, (float, np.floating)):
        x = float(value)
        if not math.isfinite(x):
            return None
        return round(x, DECIMALS) + 0.0
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, dict):
        return {str(k): clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean(v) for v in value]
    raise TypeError(f"summary value of type {type(value).__name__} is not plain data")


def summary_json(summary: dict) -> str:
    """The bytes of summary.json (sorted keys, one space indent, trailing newline)."""
    return json.dumps(summary, indent=1, sort_keys=True, ensure_ascii=False, allow_nan=False) + "\n"


def _money(cents: int) -> dict:
    return {"cents": int(cents), "eur": format_eur(cents)}


def _states(values: Iterable[str]) -> dict[str, int]:
    return dict(sorted(Counter(values).items()))


# -- offers ------------------------------------------------------------------------------------
def _offers(run: RunData) -> tuple[dict, dict]:
    """The offers block and the offers part of the reconciliation."""
    prosumer_view: dict[str, str] = {}
    why: dict[str, str] = {}  # offer id -> why it was rejected (the prosumer's word first)
    infeasible: list[str] = []
    assigned = checked = from_devices = 0
    for p in run.prosumers:
        have = {rec.offer.id: rec for rec in p.offers}
        planned_ids = set(p.planned)
        from_devices += sum(1 for rec in p.offers if rec.offer.id not in planned_ids)
        for oid in p.planned:
            if oid not in have:
                prosumer_view[oid] = NOT_STARTED if not p.started else State.INITIAL.value
        for rec in p.offers:
            prosumer_view[rec.offer.id] = rec.state.value
            if rec.state is State.REJECTED and rec.reason:
                why[rec.offer.id] = rec.reason
            if rec.schedule is not None:
                assigned += 1
                checked += 1
                v = ProsumerEngine.window_offer(rec).check(rec.schedule, now=rec.schedule.start)
                if v:
                    infeasible.append(f"{rec.offer.id}: " + "; ".join(map(str, v)))
    aggregator_view: dict[str, str] = {}
    measured = 0
    for a in run.aggregators:
        for rec in prosumer_offers_held(a, run):
            aggregator_view[rec.offer.id] = rec.offer.state.value
            if rec.offer.state is State.REJECTED and rec.note:
                why.setdefault(rec.offer.id, rec.note)
            measured += rec.measurement is not None
    differ = []
    agree = 0
    for oid in sorted(set(prosumer_view) | set(aggregator_view), key=natural_key):
        p_state = prosumer_view.get(oid, NOT_HELD)
        a_state = aggregator_view.get(oid, NOT_HELD)
        if _agree(p_state, a_state):
            agree += 1
        else:
            differ.append({"offer": oid, "prosumer": p_state, "aggregator": a_state})
    planned = sum(len(p.planned) for p in run.prosumers)
    runs = [r for p in run.prosumers for r in p.default_runs]
    offers = {
        "planned": planned,
        "from_devices": from_devices,
        "by_prosumers": _states(prosumer_view.values()),
        "by_aggregators": _states(aggregator_view.get(oid, NOT_HELD) for oid in prosumer_view),
        "rejected_reasons": dict(sorted(Counter(why.values()).items())),
        "assigned": assigned,
        "measured": measured,
        "default_runs": {"count": len(runs), "kwh": float(sum(sum(r.energy) for r in runs))},
    }
    recon = {
        "offers": {"ok": not differ, "agree": agree, "differ": differ},
        "assignments_feasible": {"ok": not infeasible, "checked": checked, "infeasible": infeasible},
    }
    return offers, recon


def _agree(prosumer: str, aggregator: str) -> bool:
    """Whether the two roles' views of one offer are consistent at the end of a run."""
    if prosumer == aggregator:
        return True
    if aggregator == NOT_HELD:
        # refused on receipt (the prosumer got the rejection), or never sent
        return prosumer in (State.REJECTED.value, State.INITIAL.value, State.WITHDRAWN.value, NOT_STARTED)
    return False


# -- money -------------------------------------------------------------------------------------
def _market_amounts(m: MarketData) -> dict[str, dict[str, int]]:
    """participant -> {"billed": cents, "pending": cents} the market pays it (+) or charges (-):
    billed for sessions whose bills went out, pending for cleared sessions billed later."""
    billed = {r.notice.session_id for r in m.sessions if r.billed}
    out: dict[str, dict[str, int]] = {}
    sessions: dict[str, set[str]] = {}
    for b in m.bids:
        if b.status not in ("accepted", "partial"):
            continue
        row = out.setdefault(b.participant, {"billed": 0, "pending": 0, "bills": 0})
        row["billed" if b.bid.session_id in billed else "pending"] += -b.billed_cents
        if b.bid.session_id in billed:  # the market bills each participant once per session
            sessions.setdefault(b.participant, set()).add(b.bid.session_id)
    for participant, row in out.items():
        row["bills"] = len(sessions.get(participant, ()))
    return out


def _money_and_bills(run: RunData) -> tuple[dict, dict]:
    flows = []
    received_by: dict[str, dict[str, int]] = {}  # addressee -> bill id -> cents (as received)
    for p in run.prosumers:
        received_by[p.jid] = {b.bill_id: b.total_cents for b in p.bills}
    for a in run.aggregators:
        received_by[a.jid] = {b.bill_id: b.total_cents for b in a.upstream_bills}
    missing, unexpected, differ = [], [], []
    sent_ids: set[tuple[str, str]] = set()
    aggregators = []
    market_rows = {m.jid: _market_amounts(m) for m in run.markets}
    for a in run.aggregators:
        by_role: dict[str, list[int]] = {}
        for to, bill in a.bills:
            by_role.setdefault(run.role_of(to), []).append(bill.total_cents)
            sent_ids.add((to, bill.bill_id))
            got = received_by.get(to, {}).get(bill.bill_id)
            if got is None:
                missing.append({"bill": bill.bill_id, "from": a.jid, "to": to})
            elif got != bill.total_cents:
                differ.append({"bill": bill.bill_id, "from": a.jid, "to": to, "sent_cents": bill.total_cents,
                               "received_cents": got})
        for role, totals in sorted(by_role.items()):
            flows.append({"from": a.jid, "to": f"{role}s", "bills": len(totals), "state": "billed", **_money(sum(totals))})
        up = market_rows.get(a.upstream_jid or "", {}).get(a.jid, {"billed": 0, "pending": 0})
        paid = sum(b.total_cents for _, b in a.bills)
        received = sum(b.total_cents for b in a.upstream_bills)
        from_dsos = sum(s.total_cents for s in a.flex_settlements)
        aggregators.append({
            "jid": a.jid, "paid_to_members": _money(paid), "received_from_upstream": _money(received),
            "received_from_dsos": _money(from_dsos),
            "pending_from_upstream": _money(up["pending"]) if a.upstream == "market" else _money(0),
            "market_revenue_recorded": _money(sum(r.revenue_cents for r in a.aggregates)),
            "balance": _money(received + from_dsos + (up["pending"] if a.upstream == "market" else 0) - paid),
        })
    from_markets: set[tuple[str, str]] = set()  # prosumers trading peer to peer get the market's bills too
    for m in run.markets:
        billed = {r.notice.session_id for r in m.sessions if r.billed}
        for b in m.bids:
            if b.status in ("accepted", "partial") and b.bid.session_id in billed:
                from_markets.add((b.participant, f"bill-{b.bid.session_id}-{b.participant.split('@')[0]}"))
            if b.imbalance_bill is not None:
                from_markets.add((b.participant, b.imbalance_bill))
    for addressee, bills in sorted(received_by.items()):
        if run.role_of(addressee) == "prosumer" or any(a.jid == addressee and a.upstream == "parent" for a in run.aggregators):
            for bid in sorted(bills, key=natural_key):
                if (addressee, bid) not in sent_ids and (addressee, bid) not in from_markets:
                    unexpected.append({"bill": bid, "to": addressee})
    market_recon = []
    for m in run.markets:
        for participant, row in sorted(market_rows[m.jid].items()):
            flows.append({"from": m.jid, "to": participant, "bills": row["bills"], "state": "billed",
                          **_money(row["billed"])})
            if row["pending"]:
                flows.append({"from": m.jid, "to": participant, "bills": 0, "state": "cleared, not billed yet",
                              **_money(row["pending"])})
            agg = next((a for a in run.aggregators if a.jid == participant), None)
            if agg is not None:
                got = sum(b.total_cents for b in agg.upstream_bills)
                market_recon.append({"market": m.jid, "participant": participant, "billed_cents": row["billed"],
                                     "received_cents": got, "ok": got == row["billed"]})
    flows += dso_flows(run)
    prosumers = [{"jid": p.jid, "aggregator": p.aggregator, "bills": len(p.bills),
                  "received": _money(sum(b.total_cents for b in p.bills))} for p in run.prosumers]
    money = {
        "convention": ("cents > 0: 'from' pays 'to'; cents < 0: 'to' pays 'from'. A prosumer's or "
                       "aggregator's 'received' > 0: it was paid. Integer cents; eur is the same amount as text."),
        "flows": flows, "prosumers": prosumers, "aggregators": aggregators,
    }
    recon = {
        "bills": {"ok": not (missing or unexpected or differ), "sent": len(sent_ids),
                  "received": sum(len(v) for k, v in received_by.items() if run.role_of(k) == "prosumer")
                  + sum(len(a.upstream_bills) for a in run.aggregators if a.upstream == "parent"),
                  "missing": missing, "unexpected": unexpected, "differ": differ},
        "market_bills": {"ok": all(r["ok"] for r in market_recon), "participants": market_recon},
        "clearing": _clearing_recon(run),
        "dso_settlements": dso_recon(run),
    }
    return money, recon


def _clearing_recon(run: RunData) -> dict:
    """What each aggregator recorded as earned per cleared bid vs what the market will bill."""
    recorded = {(a.jid, f"bid-{r.aggregate_id}"): r.revenue_cents for a in run.aggregators for r in a.aggregates}
    differ, checked = [], 0
    for m in run.markets:
        for b in m.bids:
            if b.status not in ("accepted", "partial") or (b.participant, b.bid.bid_id) not in recorded:
                continue
            checked += 1
            mine = recorded[(b.participant, b.bid.bid_id)]
            if mine != -b.amount_cents:
                differ.append({"bid": b.bid.bid_id, "participant": b.participant, "market_cents": -b.amount_cents,
                               "aggregator_cents": mine})
    return {"ok": not differ, "checked": checked, "differ": differ}


# -- market ------------------------------------------------------------------------------------
def _market_paid(m: MarketData) -> list[dict]:
    """Per participant, what the market's clearings come to (+: the market pays it): energy
    traded, flexibility reserved and activated, imbalance, with the kWh of each."""
    rows: dict[str, dict[str, float]] = {}
    for b in m.bids:
        if b.status not in ("accepted", "partial") or b.clearing is None:
            continue
        row = rows.setdefault(b.participant, {"energy_kwh": 0.0, "energy": 0, "reserved_kwh": 0.0, "reserved": 0,
                                              "activated_kwh": 0.0, "activated": 0, "imbalance_kwh": 0.0,
                                              "imbalance": 0})
        kind = "reserved" if b.reservation is not None else "energy"
        row[f"{kind}_kwh"] += b.clearing.volume
        row[kind] += -b.amount_cents
        if b.activation is not None:
            row["activated_kwh"] += b.activation.volume * (b.activation.end - b.activation.start)
            row["activated"] += -b.activated_cents
        row["imbalance_kwh"] += b.imbalance_kwh
        row["imbalance"] += -b.imbalance_cents
    return [{"participant": p, "energy_kwh": round(r["energy_kwh"], 6), "energy": _money(int(r["energy"])),
             "reserved_kwh": round(r["reserved_kwh"], 6), "reserved": _money(int(r["reserved"])),
             "activated_kwh": round(r["activated_kwh"], 6), "activated": _money(int(r["activated"])),
             "imbalance_kwh": round(r["imbalance_kwh"], 6), "imbalance": _money(int(r["imbalance"])),
             "total": _money(int(r["energy"] + r["reserved"] + r["activated"] + r["imbalance"]))}
            for p, r in sorted(rows.items(), key=lambda x: natural_key(x[0]))]


def _market(run: RunData) -> dict:
    sessions = []
    for m in run.markets:
        for rec in m.sessions:
            n = rec.notice
            mine = [b for b in m.bids if b.bid.session_id == n.session_id]
            if not mine:
                continue
            acc = [b for b in mine if b.status in ("accepted", "partial") and b.clearing is not None]
            volume = sum(b.clearing.volume for b in acc)
            priced = [b for b in acc if b.clearing.price is not None]
            weight = sum(abs(b.clearing.volume) for b in priced)
            price = None
            if priced:
                price = (sum(b.clearing.price * abs(b.clearing.volume) for b in priced) / weight if weight > 0
                         else sum(b.clearing.price for b in priced) / len(priced))
            sessions.append({
                "market": m.jid, "id": n.session_id, "mechanism": n.mechanism, "state": n.state,
                "gate_closure": format_utc(n.gate_closure),
                "delivery_start": format_utc(n.delivery_start * n.resolution),
                "delivery_end": format_utc(n.delivery_end * n.resolution),
                "bids": len(mine), "accepted": len(acc), "rejected": sum(1 for b in mine if b.status == "rejected"),
                "volume_kwh": volume, "price_eur_per_kwh": price,
                "paid_by_participants": _money(sum(b.amount_cents for b in acc)), "billed": rec.billed,
            })
    return {
        "markets": [{"jid": m.jid, "mechanism": m.sessions[0].notice.mechanism if m.sessions else None,
                     "participants": len(m.participants), "sessions_opened": len(m.sessions),
                     "bids": len(m.bids), "cleared": sum(1 for b in m.bids if b.status in ("accepted", "partial")),
                     "cleared_kwh": sum(x["volume_kwh"] for x in sessions if x["market"] == m.jid),
                     "paid": _market_paid(m),
                     "unanswered_messages": m.unanswered} for m in run.markets],
        "sessions": sessions,
        "cleared_kwh": sum(s["volume_kwh"] for s in sessions),
    }


# -- aggregators, energy, KPIs -----------------------------------------------------------------
def _aggregator_row(a: AggregatorData, run: RunData) -> dict:
    held = prosumer_offers_held(a, run)
    return {
        "jid": a.jid, "upstream": a.upstream, "upstream_jid": a.upstream_jid,
        "offers": _states(r.offer.state.value for r in held),
        "aggregates": len(a.aggregates), "aggregate_status": _states(r.status for r in a.aggregates),
        "members": sum(len(r.members) for r in a.aggregates),
        "scheduled_alone": sum(1 for r in held if r.aggregate_id == "(single)"),
        "bills_sent": len(a.bills), "unanswered_messages": a.unanswered,
    }


def _energy(run: RunData, s: Series) -> dict:
    measured = {a.jid: sum(sum(r.measurement.energy) for r in prosumer_offers_held(a, run) if r.measurement is not None)
                for a in run.aggregators}
    per = [{"aggregator": name, "baseline": float(np.nansum(s.baseline[i])), "scheduled": float(s.scheduled[i].sum()),
            "measured": measured[name], "shifted": float(np.nansum(np.abs(s.scheduled[i] - s.baseline[i]))) / 2}
           for i, name in enumerate(s.aggregators)]
    return {
        "sign": "+ consumption, - production (kWh)",
        "baseline": sum(r["baseline"] for r in per), "scheduled": sum(r["scheduled"] for r in per),
        "measured": sum(r["measured"] for r in per), "shifted": sum(r["shifted"] for r in per),
        "by_aggregator": per,
        "baseline_is": "the offers' default schedules (their baseline, else the scheduled energies at the earliest start)",
        "shifted_is": "half the sum over intervals of |scheduled - baseline|: energy moved from one interval to "
                      "another (a change of the total counts half)",
    }


def _kpis(run: RunData) -> list[dict]:
    finals = final_schedules(run)
    out = []
    for a in run.aggregators:
        records = [r for r in prosumer_offers_held(a, run) if r.schedule is not None and r.schedule_confirmed
                   and r.offer.id in finals]
        if not records:
            out.append({"aggregator": a.jid, "not_computed": "no offer with a confirmed schedule"})
            continue
        try:
            settlement = settle_records(records, a.contract, aggregator=a.jid,
                                        aggregates={r.aggregate_id: r for r in a.aggregates})
            report = kpis(settlement, [r.offer for r in records], participants=(a.jid,))
        except SettlementError as exc:
            out.append({"aggregator": a.jid, "not_computed": str(exc)})
            continue
        d = json.loads(kpis_to_json(report))
        d["aggregator"] = a.jid
        # the core's KPIs count market sales; a DSO pays for flexibility outside the market
        d["received_from_dsos_eur"] = format_eur(sum(s.total_cents for s in a.flex_settlements))
        d["basis"] = "the aggregator's confirmed schedules settled as one period (bills were settled in batches)"
        out.append(d)
    return out


# -- outcome -----------------------------------------------------------------------------------
def _outcome(run: RunData, outcome: Outcome, offers: dict, recon: dict) -> dict:
    unfinished: list[str] = []
    open_states = {k: v for k, v in offers["by_prosumers"].items() if k not in FINAL_STATES}
    if open_states:
        n = sum(open_states.values())
        total = offers["planned"] + offers["from_devices"]
        unfinished.append(f"{n} of {total} offers not in a final state as the prosumers see them ("
                          + ", ".join(f"{k} {v}" for k, v in open_states.items()) + ")")
    for who in (*run.aggregators, *run.markets, *run.dsos):
        if who.unanswered:
            unfinished.append(f"{who.unanswered} messages of {who.jid} still wait for an acknowledgement")
    never = [x.jid for x in (*run.prosumers, *run.aggregators, *run.markets, *run.dsos) if not x.started]
    if never:
        unfinished.append(f"{len(never)} agents never started: " + ", ".join(never[:10]) + (" ..." if len(never) > 10 else ""))
    for key, label in (("offers", "offers"), ("bills", "bills"), ("market_bills", "market bills"),
                       ("dso_settlements", "flex settlements")):
        if not recon[key]["ok"]:
            unfinished.append(f"{label} do not reconcile between the roles (see reconciled.{key})")
    pending: list[str] = []
    for m in run.markets:
        waiting = [r for r in m.sessions if r.notice.state == "cleared" and not r.billed
                   and any(b.bid.session_id == r.notice.session_id and b.status in ("accepted", "partial") for b in m.bids)]
        if waiting:
            due = min(r.notice.delivery_end * r.notice.resolution + m.bill_after for r in waiting)
            pending.append(f"{m.jid}: sessions {', '.join(r.notice.session_id for r in waiting)} cleared; their bills "
                           f"are due after delivery, from {format_utc(due)}")
    return {
        "stopped_by": outcome.stopped_by, "sim_end": format_utc(outcome.sim_end), "detail": outcome.detail,
        "finished": outcome.stopped_by == "done" and not unfinished, "unfinished": unfinished, "pending": pending,
        "restarts": [{"part": r.part, "at": format_utc(r.at), "exit_code": r.exit_code} for r in outcome.restarts],
    }


def build_summary(run: RunData, s: Series, outcome: Outcome) -> dict:
    """The summary document (plain data, floats rounded: see module docstring)."""
    offers, recon_offers = _offers(run)
    money, recon_money = _money_and_bills(run)
    recon = {**recon_offers, **recon_money}
    recon["ok"] = all(v["ok"] for v in recon.values())
    doc = {
        "schema": SCHEMA,
        "scenario": {
            "name": run.name, "seed": run.seed, "start": format_utc(run.start), "until": format_utc(run.until),
            "clock": run.clock_mode, "resolution_s": run.resolution,
            "agents": _states(run.role_of(j) for j in run.roles),
        },
        "outcome": _outcome(run, outcome, offers, recon),
        "offers": offers,
        "aggregators": [_aggregator_row(a, run) for a in run.aggregators],
        "reconciled": recon,
        "energy_kwh": _energy(run, s),
        "money": money,
        "market": _market(run),
        "dso": dso_summary(run),
        "kpis": _kpis(run),
    }
    return clean(doc)
