"""The report of a run with a DSO, made by the real engines on the in-memory network: the
feeder's loading without flexibility (baselines) and with it (measured), what the DSO ordered
and paid, and the settlements reconciled with what the aggregator received."""

from __future__ import annotations

import json

from tests.protocol.test_dso import AGG, DSO, NOW, ev, settled
from vmenergy.flexoffer.timeutil import parse_utc
from vmenergy.runtime.report import run_data, write_run_folder
from vmenergy.runtime.report.outcome import Outcome
from vmenergy.runtime.scenario import AgentSpec, Plan

END = parse_utc("2026-11-23T06:00:00Z", "end")


def test_the_report_shows_the_feeder_with_and_without_flexibility_and_what_the_dso_paid(tmp_path):
    dso, agg, pros, net = settled(limit=10.0)
    specs = [AgentSpec("dso", "dso", DSO, "pw", "dso", "unused", {"points": {"feeder-1": {"limit": 10.0}},
                                                                     "aggregators": {AGG: ["feeder-1"]}}),
             AgentSpec("aggregator", "agg", AGG, "pw", "aggregators", "unused",
                       {"upstream": "plan", "locations": {p.jid: "feeder-1" for p in pros},
                        "dsos": {"feeder-1": DSO}})]
    for i, p in enumerate(pros):
        specs.append(AgentSpec("prosumer", f"p{i}", p.jid, "pw", "prosumers-0", "unused", {"aggregator": AGG},
                               [{"release": NOW, "offer": ev(i).to_dict()}]))
    plan = Plan("grid", "unused", {}, {"mode": "virtual"}, NOW, END, specs, ["dso", "aggregators", "prosumers-0"], 5)
    run = run_data(plan, {jid: e.ledger for jid, e in net.engines.items()})
    html = write_run_folder(run, tmp_path, Outcome("done", END), {}).read_text()
    summary = json.loads((tmp_path / "summary.json").read_text())
    (d,) = summary["dso"]["dsos"]
    (point,) = summary["dso"]["points"]
    assert d["cleared_kwh"] == round(dso.cleared_kwh(), 6) > 0
    assert d["settled"] == d["orders"] == 1 and d["penalties"]["cents"] == 0
    assert point["peak_without_kwh"] == 11.0 > point["limit_kwh"] >= point["peak_with_kwh"]
    assert point["intervals_over_with"] == 0 < point["intervals_over_without"]
    assert len(point["loading"]["without_kwh"]) == len(point["loading"]["with_kwh"])
    assert {"from": DSO, "to": AGG, "bills": 1, "state": "flex settlements", "cents": d["paid"]["cents"],
            "eur": d["paid"]["eur"]} in summary["money"]["flows"]
    assert summary["reconciled"]["dso_settlements"] == {"ok": True, "sent": 1, "received": 1, "missing": [],
                                                       "differ": []}
    assert (tmp_path / "dso.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "DSOs and congestion points" in html and '<img src="dso.png"' in html
