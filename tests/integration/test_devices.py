"""Prosumers whose FOAs make their own offers from device models, over three days on Prosody:
offers every day, every final schedule feasible for its offer, rejected offers running the
devices' normal programme (metered), and load shifted against the baseline in the report."""

from __future__ import annotations

import io
import json
import os
from collections import defaultdict

import numpy as np
import pytest

from tests.conftest import ROOT
from tests.integration.conftest import run_to_done
from vmenergy import cli
from vmenergy.devices.models import KINDS
from vmenergy.flexoffer import FlexOffer, State
from vmenergy.flexoffer.timeutil import format_utc
from vmenergy.protocol.engine import bare
from vmenergy.runtime.priority import SWARM_NICENESS
from vmenergy.runtime.scenario import Plan
from vmenergy.store import read_ledger

pytestmark = pytest.mark.integration

SCENARIO = """
[scenario]
name = "{name}"
start = "2026-11-22T11:00:00Z"
until = "2026-11-25T18:00:00Z"
seed = 5

[inputs]
weather = "{inputs}/piedmont-2026-11-weather.csv"
prices = "{inputs}/piedmont-2026-11-prices.csv"
timezone = "Europe/Rome"

[market]
name = "{name}-market"
mechanism = "many-to-many"
session_every = 3600
gate_closure = 1800
delivery_length = 90000
liquidity.sell = {{ volume = 200.0, prices = [0.08, 0.08, 0.08, 0.08, 0.08, 0.09, 0.18, 0.24, 0.22, 0.16, 0.14, 0.12,
                                              0.12, 0.13, 0.15, 0.18, 0.26, 0.32, 0.34, 0.30, 0.22, 0.16, 0.12, 0.10] }}
liquidity.buy = {{ volume = 200.0, prices = [0.03, 0.03, 0.03, 0.03, 0.03, 0.04, 0.06, 0.08, 0.07, 0.05, 0.04, 0.03,
                                             0.03, 0.03, 0.04, 0.06, 0.10, 0.14, 0.15, 0.12, 0.08, 0.05, 0.04, 0.03] }}

[[aggregator]]
name = "{name}-agg"
upstream = "market"
lead = 1800
objective = {{ kind = "peak" }}

[[prosumers]]                        # every kind of device in every house
count = 3
name = "{name}-h{{i}}"
aggregator = "{name}-agg"
deviation = 0.01
[prosumers.devices]
{every}
[prosumers.ev]
home_probability = 1.0
[prosumers.washer]
cycles_per_day = 1.0
[prosumers.dishwasher]
cycles_per_day = 1.0
[prosumers.dryer]
cycles_per_day = 1.0

[[prosumers]]                        # offers that start at once: the aggregator refuses them
count = 1
name = "{name}-late{{i}}"
aggregator = "{name}-agg"
offer_lead = 0
deviation = 0.0
[prosumers.devices]
heat_pump = 1.0
battery = 1.0
boiler = 1.0
"""

CONTINUOUS = {"heat_pump", "boiler", "freezer", "battery", "pv", "base_load"}


def test_three_days_of_device_offers_are_made_scheduled_executed_and_settled(prosody_server, tmp_path):
    name = "devs"
    path = tmp_path / "devices.toml"
    every = "\n".join(f"{kind} = 1.0" for kind in KINDS)
    path.write_text(SCENARIO.format(name=name, inputs=ROOT / "scenarios" / "inputs", every=every))
    summary, plan, folder = run_to_done(path, tmp_path / "run", prosody_server, timeout=900)
    assert summary["outcome"]["finished"], summary["outcome"]
    assert summary["reconciled"]["assignments_feasible"]["ok"]

    # every final schedule is feasible for its offer, from the run folder alone
    out = io.StringIO()
    assert cli.main(["validate", str(folder / "offers.jsonl"), str(folder / "schedules.jsonl")],
                    out) == 0, out.getvalue()[-2000:]

    offers = [FlexOffer.from_dict(json.loads(line)) for line in (folder / "offers.jsonl").read_text().splitlines()]
    mine = [fo for fo in offers if fo.issuer and "-agg" not in fo.issuer]
    # offers are generated each day, by every kind of device
    days = defaultdict(set)
    for fo in mine:
        days[format_utc(fo.creation_time)[:10]].add(fo.label)
    daily = sorted(day for day, kinds in days.items() if CONTINUOUS <= kinds)
    assert daily == ["2026-11-22", "2026-11-23", "2026-11-24"]  # the next day's event offers may come later
    assert set(KINDS) <= {fo.label for fo in mine}
    for fo in mine:
        if fo.label in CONTINUOUS and fo.issuer.startswith(f"{name}-h"):
            # the daily offers start an hour after they are made and cover the day ahead
            assert fo.start_after * fo.resolution == fo.creation_time + 3600

    # rejected offers ran the devices' normal programme, metered as their baseline says
    plan = Plan.load(folder / "plan.json")
    rejected = 0
    for spec in plan.by_role("prosumer"):
        ledger = read_ledger(spec.store)
        runs = dict(ledger.table("default_runs").items())
        for oid, rec in ledger.table("offers").items():
            if rec.state is not State.REJECTED:
                continue
            rejected += 1
            run = runs[oid]
            fo = rec.offer
            assert run.start == fo.baseline.start
            starts = np.cumsum([0] + [s.duration for s in fo.profiles[0].slices[:-1]])
            assert np.allclose(np.add.reduceat(run.energy, starts), fo.baseline.energy, atol=1e-6), oid
    assert rejected >= 9  # the late house's three devices, each day
    assert summary["offers"]["default_runs"]["count"] == rejected
    assert summary["offers"]["rejected_reasons"]

    # the load moved against the baseline, and the report shows it
    energy = summary["energy_kwh"]
    assert energy["shifted"] > 1.0
    assert (folder / "load.png").exists()
    assert "shifted" in (folder / "report.html").read_text()
    assert bare(plan.by_role("prosumer")[0].jid)

    # the prosumer processes ran below the aggregators' and the run's (runtime/priority.py): they
    # share the run's session (one CPU share between them, under autogroup scheduling) at a
    # raised niceness; the aggregators' process leads a session of its own
    parts = json.loads((folder / "timings.json").read_text())["parts"]
    roles = {p: {s.role for s in plan.of_part(p)} for p in plan.parts}
    yielding = [p for p in parts if roles[p] == {"prosumer"}]
    serial = [p for p in parts if "aggregator" in roles[p]]
    assert yielding and serial
    ours = os.getpriority(os.PRIO_PROCESS, 0)
    for p in yielding:
        assert parts[p]["niceness"] == min(19, ours + SWARM_NICENESS), (p, parts[p])
        assert not parts[p]["session_leader"], (p, parts[p])
    for p in serial:
        assert parts[p]["niceness"] == ours and parts[p]["session_leader"], (p, parts[p])
