"""report.html: one self-contained page (inline style, no scripts, nothing fetched from the
network; the plots are PNG files beside it, linked relatively) with the summary tables, the
plots and notes on what did not finish. Every text from the run is HTML-escaped."""

from __future__ import annotations

from html import escape
from typing import Iterable, Mapping, Optional

from .text import agents_line, eur, flow_line, kwh, limit_text, notes, ordered_states, price, states_line

__all__ = ["report_html", "DATA_FILES"]

#: The run folder's files the page links to, with what each holds.
DATA_FILES = (
    ("summary.json", "this summary as data (schema in docs/scenarios.md)"),
    ("timings.json", "wall-clock figures (start-up, run time)"),
    ("timeseries.csv", "per aggregator and interval: baseline, scheduled, measured kWh, envelope, price"),
    ("offers.jsonl", "every offer, wire JSON, one per line"),
    ("schedules.jsonl", "every final schedule, wire JSON (vmenergy validate offers.jsonl schedules.jsonl)"),
    ("bills.csv", "every bill line"),
)

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 75em; padding: 0 1em; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 1.8em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; margin: 0.5em 0 1em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; vertical-align: top; }
td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; }
.bad { color: #b00; font-weight: bold; } .ok { color: #070; }
figure { margin: 1em 0; } figure img { max-width: 100%; border: 1px solid #ddd; }
figcaption { color: #555; font-size: 0.9em; }
"""


def _e(x: object) -> str:
    return escape(str(x), quote=True)


def _table(head: Iterable[str], rows: Iterable[Iterable[object]], numeric: Iterable[int] = ()) -> str:
    num = set(numeric)
    h = "".join(f'<th{" class=n" if i in num else ""}>{_e(c)}</th>' for i, c in enumerate(head))
    body = "".join("<tr>" + "".join(f'<td{" class=n" if i in num else ""}>{_e(c)}</td>' for i, c in enumerate(r))
                   + "</tr>\n" for r in rows)
    return f"<table><tr>{h}</tr>\n{body}</table>\n"


def _yes(ok: bool, yes: str = "yes", no: str = "NO") -> str:
    return f'<span class="ok">{_e(yes)}</span>' if ok else f'<span class="bad">{_e(no)}</span>'


def report_html(summary: dict, plots: Mapping[str, Optional[str]], timings: Mapping) -> str:
    sc, oc, of, recon = summary["scenario"], summary["outcome"], summary["offers"], summary["reconciled"]
    parts = [f"<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8><title>VME run {_e(sc['name'])}</title>"
             f"<style>{_STYLE}</style></head><body>\n",
             f"<h1>VME run {_e(sc['name'])}</h1>\n",
             _table(("", ""), (
                 ("scenario time", f"{sc['start']} .. {sc['until']} (UTC)"),
                 ("seed, clock", f"{sc['seed']}, {sc['clock']}"),
                 ("agents", agents_line(sc["agents"])),
                 ("stopped by", f"{oc['stopped_by']} at {oc['sim_end']}" + (f": {oc['detail']}" if oc["detail"] else "")),
             ))]
    parts.append(f"<p>Outcome: {_yes(oc['finished'], 'finished', 'NOT FINISHED')}</p>\n")
    if oc.get("restarts"):
        parts.append("<p>Restarted while the run went on (from their stores; the XMPP server on its port):</p>\n")
        parts.append(_table(("part", "found dead at (scenario time)", "exit code"),
                            ((r["part"], r["at"], r["exit_code"]) for r in oc["restarts"]), (2,)))
    problems = notes(summary)
    if problems or oc["pending"]:
        parts.append("<h2>What did not finish or does not add up</h2>\n<ul>")
        parts += [f'<li class="bad">{_e(p)}</li>' for p in problems]
        parts += [f"<li>pending: {_e(p)}</li>" for p in oc["pending"]]
        parts.append("</ul>\n")

    parts.append(f"<h2>Offers ({of['planned']} planned)</h2>\n")
    rows = [(s, of["by_prosumers"].get(s, 0), of["by_aggregators"].get(s, 0))
            for s in ordered_states(of["by_prosumers"], of["by_aggregators"])]
    parts.append(_table(("state", "as the prosumers see them", "as the aggregators hold them"), rows, (1, 2)))
    ro = recon["offers"]
    parts.append(f"<p>The two views agree for {ro['agree']} offers: {_yes(ro['ok'])}.</p>\n")
    if ro["differ"]:
        parts.append(_table(("offer", "prosumer", "aggregator"),
                            ((d["offer"], d["prosumer"], d["aggregator"]) for d in ro["differ"][:200])))
    if of["rejected_reasons"]:
        parts.append(_table(("rejected because", "offers"), of["rejected_reasons"].items(), (1,)))
    feas = recon["assignments_feasible"]
    parts.append(f"<p>Assignments: {of['assigned']}; feasible for their offers (checked again from the prosumers' "
                 f"stores): {_yes(feas['ok'], 'all', str(len(feas['infeasible'])) + ' INFEASIBLE')}. "
                 f"Measured: {of['measured']}.</p>\n")
    if feas["infeasible"]:
        parts.append("<ul>" + "".join(f"<li>{_e(x)}</li>" for x in feas["infeasible"][:50]) + "</ul>\n")
    parts.append(_table(
        ("aggregator", "upstream", "offers", "aggregates", "members", "scheduled alone", "bills sent", "unanswered"),
        ((a["jid"], a["upstream"] + (f" ({a['upstream_jid']})" if a["upstream_jid"] else ""), states_line(a["offers"]),
          f"{a['aggregates']} ({states_line(a['aggregate_status'])})", a["members"], a["scheduled_alone"],
          a["bills_sent"], a["unanswered_messages"]) for a in summary["aggregators"]), (4, 5, 6, 7)))

    en = summary["energy_kwh"]
    parts.append("<h2>Energy</h2>\n<p>kWh, + consumption, - production. Baseline: "
                 f"{_e(en['baseline_is'])}.</p>\n")
    rows = [(r["aggregator"], kwh(r["baseline"]), kwh(r["scheduled"]), kwh(r["measured"]), kwh(r["shifted"]))
            for r in en["by_aggregator"]]
    rows.append(("all", kwh(en["baseline"]), kwh(en["scheduled"]), kwh(en["measured"]), kwh(en["shifted"])))
    parts.append(_table(("aggregator", "baseline kWh", "scheduled kWh", "measured kWh", "shifted kWh"), rows,
                        (1, 2, 3, 4)))
    parts.append(f"<p>Shifted: {_e(en['shifted_is'])}.</p>\n")

    money = summary["money"]
    parts.append("<h2>Money: who pays whom</h2>\n")
    rows = []
    for f in money["flows"]:
        payer, payee, amount = flow_line(f)
        rows.append((payer, payee, amount, f["state"], f["bills"] if f.get("bills") else ""))
    parts.append(_table(("payer", "payee", "EUR", "state", "bills"), rows, (2, 4)))
    rb, rm = recon["bills"], recon["market_bills"]
    parts.append(f"<p>Bills sent {rb['sent']}, received {rb['received']}; sent and received amounts agree to the cent: "
                 f"{_yes(rb['ok'])}. Market bills agree with what the aggregators received: {_yes(rm['ok'])}. "
                 f"Aggregators' recorded market earnings agree with the market's amounts: "
                 f"{_yes(recon['clearing']['ok'])}.</p>\n")
    parts.append(_table(("aggregator", "received from upstream EUR", "pending from upstream EUR", "paid to members EUR",
                         "balance EUR"),
                        ((a["jid"], eur(a["received_from_upstream"]["cents"]), eur(a["pending_from_upstream"]["cents"]),
                          eur(a["paid_to_members"]["cents"]), eur(a["balance"]["cents"])) for a in money["aggregators"]),
                        (1, 2, 3, 4)))
    shown = money["prosumers"][:200]
    parts.append(_table(("prosumer", "aggregator", "bills", "received EUR"),
                        ((p["jid"], p["aggregator"], p["bills"], eur(p["received"]["cents"])) for p in shown), (2, 3)))
    if len(money["prosumers"]) > len(shown):
        parts.append(f"<p>... {len(money['prosumers']) - len(shown)} more prosumers in summary.json.</p>\n")

    mk = summary["market"]
    if mk["markets"]:
        parts.append("<h2>Market sessions</h2>\n")
        parts.append(_table(("market", "sessions opened", "bids", "cleared", "cleared kWh"),
                            ((m["jid"], m["sessions_opened"], m["bids"], m["cleared"], kwh(m["cleared_kwh"]))
                             for m in mk["markets"]), (1, 2, 3, 4)))
        parts.append(_table(
            ("session", "mechanism", "gate closure", "delivery", "bids", "accepted", "rejected", "kWh", "EUR/kWh",
             "paid by participants EUR", "billed"),
            ((s["id"], s["mechanism"], s["gate_closure"], f"{s['delivery_start']} .. {s['delivery_end']}", s["bids"],
              s["accepted"], s["rejected"], kwh(s["volume_kwh"]), price(s["price_eur_per_kwh"]),
              eur(s["paid_by_participants"]["cents"]), "yes" if s["billed"] else "not yet") for s in mk["sessions"]),
            (4, 5, 6, 7, 8, 9)))
        paid = [(m["jid"], r) for m in mk["markets"] for r in m["paid"]]
        if paid:
            parts.append("<h3>Who was paid what (+: the market pays the participant)</h3>\n")
            parts.append(_table(
                ("market", "participant", "energy kWh", "energy EUR", "reserved kWh", "reserved EUR", "activated kWh",
                 "activated EUR", "imbalance kWh", "imbalance EUR", "total EUR"),
                ((jid, r["participant"], kwh(r["energy_kwh"]), eur(r["energy"]["cents"]), kwh(r["reserved_kwh"]),
                  eur(r["reserved"]["cents"]), kwh(r["activated_kwh"]), eur(r["activated"]["cents"]),
                  kwh(r["imbalance_kwh"]), eur(r["imbalance"]["cents"]), eur(r["total"]["cents"]))
                 for jid, r in paid), (2, 3, 4, 5, 6, 7, 8, 9, 10)))

    grid = summary["dso"]
    if grid["dsos"]:
        parts.append("<h2>DSOs and congestion points</h2>\n")
        parts.append(_table(("DSO", "requests", "replies", "orders", "declined", "cleared kWh", "delivered kWh",
                             "settled", "paid EUR", "of which penalties EUR"),
                            ((d["jid"], d["requests"], d["replies"], d["orders"], d["declined"], kwh(d["cleared_kwh"]),
                              kwh(d["delivered_kwh"]), d["settled"], eur(d["paid"]["cents"]),
                              eur(d["penalties"]["cents"])) for d in grid["dsos"]), (1, 2, 3, 4, 5, 6, 7, 8, 9)))
        parts.append(_table(("point", "DSO", "prosumers", "limit kWh", "peak without kWh", "peak with kWh",
                             "intervals over without", "intervals over with"),
                            ((p["point"], p["dso"], p["prosumers"], limit_text(p["limit_kwh"]), kwh(p["peak_without_kwh"]),
                              kwh(p["peak_with_kwh"]), p["intervals_over_without"], p["intervals_over_with"])
                             for p in grid["points"]), (2, 3, 4, 5, 6, 7)))
        parts.append(f"<p>Without flexibility: {_e(grid['without_is'])}; with: {_e(grid['with_is'])}.</p>\n")

    parts.append("<h2>KPIs</h2>\n")
    for k in summary["kpis"]:
        if "not_computed" in k:
            parts.append(f"<p>{_e(k['aggregator'])}: not computed ({_e(k['not_computed'])}).</p>\n")
            continue
        per_mw = "-" if k["eur_per_mw_year"] is None else f"{k['eur_per_mw_year']:.0f}"
        parts.append(f"<p>{_e(k['aggregator'])}, {_e(k['period_start'])} .. {_e(k['period_end'])}; "
                     f"{_e(k['basis'])}.</p>\n")
        parts.append(_table(("KPI", "value"), (
            ("flexible capacity (MW)", f"{k['flexible_capacity_mw']:.3f}"),
            ("peak demand (kW)", f"{k['peak_demand_kw']:.3f}"),
            ("adaptation planned (MWh)", f"{sum(k['adaptation_planned_mwh']):.3f}"),
            ("adaptation delivered (MWh)", f"{sum(k['adaptation_delivered_mwh']):.3f}"),
            ("revenue from flexibility sold on the market (EUR)", k["revenue_eur"]),
            ("paid by DSOs for flexibility (EUR)", k["received_from_dsos_eur"]),
            ("imbalance cost (EUR)", k["imbalance_cost_eur"]),
            ("payouts to prosumers (EUR)", k["payouts_eur"]),
            ("margin (EUR)", k["margin_eur"]),
            ("market earnings per MW and year (EUR)", per_mw),
        ), (1,)))

    parts.append("<h2>Plots</h2>\n")
    for caption, name in plots.items():
        if name is None:
            parts.append(f"<p>{_e(caption)}: nothing to plot in this run.</p>\n")
        else:
            parts.append(f'<figure><img src="{_e(name)}" alt="{_e(caption)}"><figcaption>{_e(caption)}'
                         f"</figcaption></figure>\n")

    parts.append("<h2>Files</h2>\n<ul>")
    parts += [f'<li><a href="{_e(n)}">{_e(n)}</a>: {_e(what)}</li>' for n, what in DATA_FILES]
    parts.append("</ul>\n")
    if timings:
        parts.append("<h2>Wall-clock timings</h2>\n")
        rows = []
        for part, t in timings.get("parts", {}).items():
            rows.append((f"start-up of {part}", f"{t.get('start_seconds', '-')} s, {t.get('agents', '-')} agents, "
                                                f"{t.get('per_agent_ms', '-')} ms per agent"))
        rows += [(k, f"{v} s") for k, v in timings.items() if k not in ("parts", "work")]
        rows += [(f"{k.replace('_', ' ')} (count)", f"{v:,}") for k, v in timings.get("work", {}).items()]
        parts.append(_table(("what", "seconds"), rows))
    parts.append("</body></html>\n")
    return "".join(parts)
