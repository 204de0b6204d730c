"""scenarios/dso-congestion.toml end to end on a private Prosody: a feeder overloaded at the
evening peak without flexibility stays under its limit in the measured load once the DSO's
orders are carried out, and summary.json gives the DSO's cleared kWh."""

from __future__ import annotations

import json

import pytest

from tests.conftest import ROOT
from vmenergy.runtime.orchestrator import run_scenario
from vmenergy.runtime.servers import check_kind

pytestmark = pytest.mark.integration

SCENARIO = ROOT / "scenarios" / "dso-congestion.toml"


@pytest.fixture(autouse=True)
def _prosody():
    ok, reason = check_kind("prosody")
    if not ok:
        pytest.skip(reason)


def test_the_dso_keeps_the_measured_feeder_load_under_its_limit(tmp_path):
    run_scenario(SCENARIO, tmp_path / "run", timeout=600, out=lambda line: None)
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["outcome"]["finished"], summary["outcome"]
    assert summary["offers"]["by_prosumers"] == {"settled": 30}
    (dso,) = summary["dso"]["dsos"]
    (point,) = summary["dso"]["points"]
    # overloaded at the evening peak without flexibility (the offers' baselines) ...
    assert point["peak_without_kwh"] > max(point["limit_kwh"]) and point["intervals_over_without"] > 0
    # ... and under the limit (the feeder's, per interval) in the measured load with it
    assert point["intervals_over_with"] == 0
    load = point["loading"]
    assert all(w <= lim for w, lim in zip(load["with_kwh"], load["limit_kwh"]))
    assert dso["orders"] > 0 and dso["cleared_kwh"] > 0
    # delivery checked against the baseline and paid; nothing left unanswered
    assert dso["settled"] == dso["orders"] and dso["delivered_kwh"] > 0 and dso["paid"]["cents"] > 0
    assert dso["unanswered_messages"] == 0
    # the aggregator's balance counts the DSO's payment, and its prosumers got their share of it
    # in bills of their own (settled offers' bills plus dso_share bills), which reconcile
    (agg,) = summary["money"]["aggregators"]
    assert agg["received_from_dsos"] == dso["paid"]
    # and the KPIs say so beside the market revenue (which a DSO scenario does not have)
    (kpi,) = summary["kpis"]
    assert kpi["received_from_dsos_eur"] == dso["paid"]["eur"]
    assert "paid by DSOs for flexibility" in (tmp_path / "run" / "report.html").read_text()
    assert summary["reconciled"]["bills"]["ok"]
    assert summary["reconciled"]["bills"]["sent"] > summary["offers"]["by_prosumers"]["settled"]
    assert (tmp_path / "run" / "dso.png").stat().st_size > 0
    assert "DSOs and congestion points" in (tmp_path / "run" / "report.html").read_text()
