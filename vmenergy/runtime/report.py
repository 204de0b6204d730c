"""The run report: what happened in a swarm, read back from every agent's store.

It also checks what can be checked after the fact: every assignment a prosumer accepted is
feasible for its offer, every offer the aggregator assigned reached its prosumer, and the bills
the aggregator sent add up to what the prosumers received, to the cent.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from vmenergy.flexoffer.timeutil import format_utc
from vmenergy.protocol.aggregator import SINGLE
from vmenergy.protocol.prosumer import ProsumerEngine
from vmenergy.runtime.scenario import Plan
from vmenergy.store import read_ledger

__all__ = ["collect", "write_report"]


def _eur(cents: int) -> str:
    sign = "-" if cents < 0 else ""
    return f"{sign}{abs(cents) // 100}.{abs(cents) % 100:02d}"


def collect(plan: Plan) -> dict:
    """Everything the report shows, as plain data (also written as report.json)."""
    out: dict = {"scenario": plan.name, "server": plan.server.get("kind"), "agents": Counter(a.role for a in plan.agents)}
    offers_by_state: Counter = Counter()
    infeasible: list[str] = []
    assignments = measurements = 0
    scheduled_kwh = measured_kwh = 0.0
    prosumer_bills_cents = 0
    bills_received = 0
    rejected_reasons: Counter = Counter()
    prosumers = []
    for spec in plan.by_role("prosumer"):
        ledger = read_ledger(spec.store)
        if ledger is None:
            offers_by_state["not started"] += len(spec.offers)
            continue
        row = {"jid": spec.jid, "offers": {}, "bill_cents": 0}
        for rec in ledger.values("offers"):
            offers_by_state[rec.state.value] += 1
            row["offers"][rec.offer.id] = rec.state.value
            if rec.reason:
                rejected_reasons[rec.reason] += 1
            if rec.schedule is not None:
                assignments += 1
                scheduled_kwh += rec.schedule.total
                v = ProsumerEngine.window_offer(rec).check(rec.schedule, now=rec.schedule.start)
                if v:
                    infeasible.append(f"{rec.offer.id}: " + "; ".join(map(str, v)))
        for bill in ledger.values("bills"):
            bills_received += 1
            prosumer_bills_cents += bill.total_cents
            row["bill_cents"] += bill.total_cents
        prosumers.append(row)
    aggregators = []
    sent_bills_cents = 0
    for spec in plan.by_role("aggregator"):
        ledger = read_ledger(spec.store)
        if ledger is None:
            continue
        aggs = list(ledger.values("aggregates"))
        states = Counter(r.offer.state.value for r in ledger.values("offers"))
        for rec in ledger.values("offers"):
            if rec.measurement is not None:
                measurements += 1
                measured_kwh += sum(rec.measurement.energy)
        bills = list(ledger.values("bills"))
        paid = sum(b.total_cents for _, b in bills)
        sent_bills_cents += paid
        aggregators.append({
            "jid": spec.jid, "upstream": spec.config.get("upstream"), "offers": dict(states),
            "aggregates": len(aggs), "aggregate_status": dict(Counter(r.status for r in aggs)),
            "members": sum(len(r.members) for r in aggs), "revenue_cents": sum(r.revenue_cents for r in aggs),
            "scheduled_alone": sum(1 for r in ledger.values("offers") if r.aggregate_id == SINGLE),
            "bills": len(bills), "paid_out_cents": paid, "pending_messages": len(ledger.table("outbox")),
        })
    markets = []
    for spec in plan.by_role("market"):
        ledger = read_ledger(spec.store)
        if ledger is None:
            continue
        from vmenergy.protocol.market import market_summary  # noqa: PLC0415 - only runs with a market

        markets.append({"jid": spec.jid, **market_summary(ledger)})
    parts = {}
    for part in plan.parts:
        f = Path(plan.run_dir) / "parts" / f"{part}.json"
        if f.exists():
            parts[part] = json.loads(f.read_text())
    out.update(
        offers=dict(offers_by_state), rejected_reasons=dict(rejected_reasons), assignments=assignments,
        infeasible_assignments=infeasible, scheduled_kwh=round(scheduled_kwh, 3), measurements=measurements,
        measured_kwh=round(measured_kwh, 3), bills_received=bills_received,
        prosumer_bills_cents=prosumer_bills_cents, aggregator_bills_cents=sent_bills_cents,
        reconciled=prosumer_bills_cents == sent_bills_cents, aggregators=aggregators, markets=markets,
        parts=parts, prosumers=prosumers,
    )
    out["agents"] = dict(out["agents"])
    return out


def write_report(plan: Plan, run_dir: Path) -> Path:
    data = collect(plan)
    (run_dir / "report.json").write_text(json.dumps(data, indent=1, default=str))
    lines = [f"# VME run report: {plan.name}", ""]
    lines.append(f"Server: {data['server']}; simulated period {format_utc(plan.start)} to "
                 f"{format_utc(plan.until)}, {plan.clock['mode']} time"
                 + (f" at {plan.clock['speed']:g}x" if plan.clock.get("speed") else "") + "; agents: "
                 + ", ".join(f"{n} {r}" for r, n in data["agents"].items()) + ".")
    lines += ["", "## Start-up", ""]
    for part, p in data["parts"].items():
        lines.append(f"- {part}: {p['agents']} agents in {p['start_seconds']} s ({p['per_agent_ms']} ms per agent), pid {p['pid']}")
    lines += ["", "## Offers (as the prosumers see them)", ""]
    for state, n in sorted(data["offers"].items()):
        lines.append(f"- {state}: {n}")
    for reason, n in data["rejected_reasons"].items():
        lines.append(f"  - rejected because {reason}: {n}")
    lines += ["", "## Aggregators", ""]
    for a in data["aggregators"]:
        lines.append(f"- {a['jid']} ({a['upstream']}): offers {a['offers']}; {a['aggregates']} aggregates of "
                     f"{a['members']} members {a['aggregate_status']}, {a['scheduled_alone']} offers scheduled on their own; market revenue EUR {_eur(a['revenue_cents'])}; "
                     f"{a['bills']} bills, paid out EUR {_eur(a['paid_out_cents'])}; unanswered messages {a['pending_messages']}")
    if data["markets"]:
        lines += ["", "## Market", ""]
        for m in data["markets"]:
            lines.append(f"- {m['jid']}: participants {m['participants']}; sessions {m['sessions']}")
            for s in m["session_details"]:
                lines.append(f"  - session {s['id']} ({s['mechanism']}, {s['state']}): {s['bids']} bids, "
                             f"{s['accepted']} accepted, {s['rejected']} rejected, clearing price {s['price']}, "
                             f"volume {s['volume']} kWh")
    lines += ["", "## Assignments, execution, bills", ""]
    lines.append(f"- assignments: {data['assignments']} ({data['scheduled_kwh']} kWh scheduled)")
    if data["infeasible_assignments"]:
        lines.append(f"- INFEASIBLE assignments: {len(data['infeasible_assignments'])}")
        lines += [f"  - {x}" for x in data["infeasible_assignments"][:20]]
    else:
        lines.append("- every assignment is feasible for its offer (checked again from the prosumers' stores)")
    lines.append(f"- measurements: {data['measurements']} ({data['measured_kwh']} kWh metered)")
    lines.append(f"- bills: {data['bills_received']} received by prosumers, total EUR {_eur(data['prosumer_bills_cents'])}; "
                 f"aggregators sent EUR {_eur(data['aggregator_bills_cents'])}: "
                 + ("reconciled to the cent" if data["reconciled"] else "DO NOT MATCH"))
    lines += ["", "## Prosumers", ""]
    for row in data["prosumers"][:50]:
        lines.append(f"- {row['jid']}: " + ", ".join(f"{k} {v}" for k, v in row["offers"].items())
                     + f"; bills EUR {_eur(row['bill_cents'])}")
    if len(data["prosumers"]) > 50:
        lines.append(f"- ... {len(data['prosumers']) - 50} more in report.json")
    path = run_dir / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path
