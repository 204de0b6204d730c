"""The summary as a plain-text table for the terminal (what ``make demo`` and ``vmenergy run``
print), and the number formats the text and the HTML page share: EUR with two decimals from
integer cents, kWh with three, prices with four. Nothing is printed with ``str()`` of a
container, so no Python notation (``{'settled': 3}``, ``None``) reaches a reader."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from vmenergy.settlement.money import format_eur

__all__ = ["format_summary", "eur", "kwh", "price", "states_line", "agents_line", "ordered_states", "flow_line", "limit_text",
           "notes", "STATE_ORDER"]

#: Market sessions listed one per line; the rest are counted.
MAX_SESSIONS = 12
#: Lifecycle order for tables of offers by state (unknown ones follow, alphabetically).
STATE_ORDER = ("not started", "initial", "offered", "accepted", "assigned", "executing", "executed", "settled",
               "rejected", "withdrawn", "not held")


def eur(cents: int) -> str:
    return format_eur(cents)


def kwh(x: Optional[float]) -> str:
    return "-" if x is None else f"{x:.3f}"


def price(x: Optional[float]) -> str:
    return "-" if x is None else f"{x:.4f}"


def agents_line(counts: dict) -> str:
    """``1 market, 2 aggregators, 40 prosumers``."""
    return ", ".join(f"{n} {role}{'' if n == 1 else 's'}" for role, n in counts.items())


def ordered_states(*counts: dict) -> list[str]:
    seen = set().union(*(c.keys() for c in counts))
    return [s for s in STATE_ORDER if s in seen] + sorted(seen - set(STATE_ORDER))


def states_line(counts: dict) -> str:
    """``settled 30, rejected 6`` (lifecycle order); ``none`` for no offers."""
    return ", ".join(f"{s} {counts[s]}" for s in ordered_states(counts)) or "none"


def flow_line(flow: dict) -> tuple[str, str, str]:
    """(payer, payee, EUR) of a money flow, the amount turned positive by naming who pays."""
    c = flow["cents"]
    payer, payee = (flow["from"], flow["to"]) if c >= 0 else (flow["to"], flow["from"])
    return payer, payee, eur(abs(c))


def limit_text(limit) -> str:
    """A congestion point's limit as configured: one number, or a day's profile (its range)."""
    if isinstance(limit, list):
        return f"{kwh(min(limit))}..{kwh(max(limit))} (a day's profile)"
    return kwh(limit)


def notes(summary: dict) -> list[str]:
    """What did not finish or does not add up, in sentences (empty when all is well)."""
    out = list(summary["outcome"]["unfinished"])
    recon = summary["reconciled"]
    if not recon["assignments_feasible"]["ok"]:
        out.append(f"{len(recon['assignments_feasible']['infeasible'])} assignments are infeasible for their offers")
    if not recon["clearing"]["ok"]:
        d = recon["clearing"]["differ"]
        out.append(f"for {len(d)} cleared bids the aggregator recorded other earnings than the market bills: "
                   + "; ".join(f"{x['bid']} market {eur(x['market_cents'])}, aggregator {eur(x['aggregator_cents'])}"
                               for x in d[:5]) + (" ..." if len(d) > 5 else "") + " (EUR, + paid to the aggregator)")
    for k in summary["kpis"]:
        if "not_computed" in k:
            out.append(f"KPIs of {k['aggregator']} not computed: {k['not_computed']}")
    return out


def format_summary(summary: dict, report: Optional[Path] = None) -> str:
    sc, oc, of = summary["scenario"], summary["outcome"], summary["offers"]
    recon = summary["reconciled"]
    lines = [f"VME run {sc['name']} (seed {sc['seed']}, {sc['clock']} clock): {sc['start']} .. {sc['until']}",
             "agents: " + agents_line(sc["agents"])]
    status = "finished" if oc["finished"] else "NOT FINISHED"
    detail = f" ({oc['detail']})" if oc["detail"] else ""
    lines.append(f"outcome: {oc['stopped_by']}{detail} at {oc['sim_end']}; {status}")
    for r in oc.get("restarts", []):
        lines.append(f"  restarted: {r['part']} at {r['at']} (it had ended with exit code {r['exit_code']})")
    made = f", {of['from_devices']} from devices" if of.get("from_devices") else ""
    lines += ["", f"{'offers (' + str(of['planned']) + ' planned' + made + ')':<28}{'prosumers':>10}{'aggregators':>13}"]
    for s in ordered_states(of["by_prosumers"], of["by_aggregators"]):
        lines.append(f"  {s:<26}{of['by_prosumers'].get(s, 0):>10}{of['by_aggregators'].get(s, 0):>13}")
    ro = recon["offers"]
    lines.append(f"  {'views agree':<26}" + ("yes" if ro["ok"] else f"NO, {len(ro['differ'])} differ: " + "; ".join(
        f"{d['offer']} {d['prosumer']} / {d['aggregator']}" for d in ro["differ"][:4]) + (" ..." if len(ro["differ"]) > 4 else "")))
    for reason, n in of["rejected_reasons"].items():
        lines.append(f"  rejected: {reason}: {n}")
    feas = recon["assignments_feasible"]
    lines.append(f"{'assignments':<28}{of['assigned']}, " + ("all feasible" if feas["ok"] else
                                                           f"{len(feas['infeasible'])} INFEASIBLE"))
    lines.append(f"{'measured':<28}{of['measured']}")
    runs = of.get("default_runs", {})
    if runs.get("count"):
        lines.append(f"{'normal programme instead':<28}{runs['count']} (rejected offers), {kwh(runs['kwh'])} kWh metered")
    for a in summary["aggregators"]:
        lines.append(f"aggregator {a['jid']} (upstream {a['upstream']}): {a['aggregates']} aggregate{'s' if a['aggregates'] != 1 else ''} "
                     f"({states_line(a['aggregate_status'])}) of {a['members']} offers, "
                     f"{a['scheduled_alone']} offers scheduled alone")
    en = summary["energy_kwh"]
    lines += ["", "energy (kWh, + consumption, - production)",
              f"  {'baseline':<26}{kwh(en['baseline']):>12}", f"  {'scheduled':<26}{kwh(en['scheduled']):>12}",
              f"  {'measured':<26}{kwh(en['measured']):>12}",
              f"  {'shifted vs baseline':<26}{kwh(en['shifted']):>12}"]
    mk = summary["market"]
    for m in mk["markets"]:
        lines += ["", f"market {m['jid']}: {m['sessions_opened']} sessions opened, {m['cleared']} of {m['bids']} bids cleared, "
                      f"{kwh(m['cleared_kwh'])} kWh"]
        mine = [x for x in mk["sessions"] if x["market"] == m["jid"]]
        for s in mine[:MAX_SESSIONS]:
            lines.append(f"  {s['id']:<6}{s['gate_closure']}  {s['mechanism']:<13}{s['accepted']:>3}/{s['bids']:<3} bids "
                         f"{kwh(s['volume_kwh']):>11} kWh  {price(s['price_eur_per_kwh']):>7} EUR/kWh  "
                         + ("billed" if s["billed"] else "not billed yet"))
        if len(mine) > MAX_SESSIONS:
            lines.append(f"  ... {len(mine) - MAX_SESSIONS} more sessions with bids in summary.json")
        for r in m["paid"]:
            # the market's view (+: the market pays the participant); a bare "paid -0.24" read as
            # the participant having paid a negative amount
            cents = r["total"]["cents"]
            lines.append(f"  {r['participant']:<34} {'is paid' if cents >= 0 else 'pays':<8}{eur(abs(cents)):>9} EUR: "
                         f"energy {kwh(r['energy_kwh'])} kWh, "
                         f"reserved {kwh(r['reserved_kwh'])} kWh, activated {kwh(r['activated_kwh'])} kWh, "
                         f"imbalance {kwh(r['imbalance_kwh'])} kWh")
    grid = summary["dso"]
    for d in grid["dsos"]:
        lines += ["", f"dso {d['jid']}: {d['requests']} flex requests, {d['orders']} orders ({d['declined']} declined), "
                      f"{kwh(d['cleared_kwh'])} kWh cleared, {kwh(d['delivered_kwh'])} delivered, "
                      f"paid EUR {d['paid']['eur']}"]
        for p in (x for x in grid["points"] if x["dso"] == d["jid"]):
            lines.append(f"  {p['point']}: limit {limit_text(p['limit_kwh'])} kWh per interval, peak without flexibility "
                         f"{kwh(p['peak_without_kwh'])} ({p['intervals_over_without']} intervals over), with "
                         f"{kwh(p['peak_with_kwh'])} ({p['intervals_over_with']} over)")
    lines += ["", "money (EUR): who pays whom"]
    for f in summary["money"]["flows"]:
        payer, payee, amount = flow_line(f)
        bills = f", {f['bills']} bill{'s' if f['bills'] != 1 else ''}" if f.get("bills") else ""
        lines.append(f"  {payer + ' -> ' + payee:<52}{amount:>10}  {f['state']}{bills}")
    rb = recon["bills"]
    lines.append(f"  {'bills reconciled':<52}" + ("yes, to the cent" if rb["ok"] and recon["market_bills"]["ok"] else "NO"))
    for k in summary["kpis"]:
        if "not_computed" in k:
            continue
        per_mw = "-" if k["eur_per_mw_year"] is None else f"{k['eur_per_mw_year']:.0f}"
        lines.append(f"KPIs {k['aggregator']}: flexible capacity {k['flexible_capacity_mw']:.3f} MW, peak "
                     f"{k['peak_demand_kw']:.1f} kW, flexibility sold on the market EUR {k['revenue_eur']}, "
                     f"paid by DSOs EUR {k['received_from_dsos_eur']}, market earnings {per_mw} EUR/MW/year")
    if oc["pending"]:
        lines += ["", "pending:"] + [f"  {p}" for p in oc["pending"]]
    problems = notes(summary)
    if problems:
        lines += ["", "not finished or not adding up:"] + [f"  {p}" for p in problems]
    if report is not None:
        lines += ["", f"report: {report}"]
    return "\n".join(lines) + "\n"
