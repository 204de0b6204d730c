"""The scenario option ``hardware = "modbus-tcp"`` / ``"modbus-rtu"``: a population's schedules
run on emulated Modbus devices (the device models' physics behind a Modbus server per house)
under coordinated virtual time, and the run ends reconciled, every schedule measured through
the meters' registers."""

from __future__ import annotations

import json

import pytest

from tests.conftest import ROOT
from tests.integration.conftest import run_to_done
from vmenergy.flexoffer import State
from vmenergy.runtime.scenario import Plan
from vmenergy.store import read_ledger

pytestmark = pytest.mark.integration

SCENARIO = """
[scenario]
name = "hw"
start = "2026-11-22T11:00:00Z"
until = "2026-11-23T14:00:00Z"
seed = 3

[inputs]
weather = "{inputs}/piedmont-2026-11-weather.csv"
prices = "{inputs}/piedmont-2026-11-prices.csv"
timezone = "Europe/Rome"

[[aggregator]]
name = "hwsc-agg"
objective = {{ kind = "peak" }}

[[prosumers]]
count = 2
name = "hwsc-tcp{{i}}"
aggregator = "hwsc-agg"
hardware = "modbus-tcp"
deviation = 0.0
[prosumers.devices]
heat_pump = 1.0
battery = 1.0
base_load = 1.0

[[prosumers]]
count = 1
name = "hwsc-rtu{{i}}"
aggregator = "hwsc-agg"
hardware = "modbus-rtu"
deviation = 0.0
[prosumers.devices]
boiler = 1.0
ev = 1.0
[prosumers.ev]
home_probability = 1.0
"""


def test_a_population_runs_its_schedules_on_emulated_modbus_devices(prosody_server, tmp_path):
    # the JIDs are this test's own on the session's server (another test's hw-agg has its password)
    path = tmp_path / "hw.toml"
    path.write_text(SCENARIO.format(inputs=ROOT / "scenarios" / "inputs"))
    summary, _, folder = run_to_done(path, tmp_path / "run", prosody_server, timeout=900)

    plan = Plan.load(folder / "plan.json")
    measured = 0
    for spec in plan.by_role("prosumer"):
        assert spec.config["hardware"] in ("modbus-tcp", "modbus-rtu")
        ledger = read_ledger(spec.store)
        for oid, rec in ledger.table("offers").items():
            if rec.state in (State.EXECUTED, State.SETTLED):
                measured += 1
    assert measured >= 3
    # what the emulated meters measured is what the schedules asked (the models could follow them)
    (agg,) = plan.by_role("aggregator")
    close = 0
    for key, rec in read_ledger(agg.store).table("offers").items():
        if rec.measurement is None or rec.schedule is None:
            continue
        asked = sum(rec.schedule.energy)
        got = sum(rec.measurement.energy)
        if abs(asked) > 0.5 and abs(got - asked) <= 0.05 * abs(asked):
            close += 1
    assert close >= 3, close
    logs = "".join(p.read_text() for p in (folder / "logs").glob("*.log"))
    assert "event=hardware-schedule" in logs and "modbus tcp 127.0.0.1" in logs and "modbus rtu /dev/pts/" in logs
    assert "event=device-fault" not in logs


def test_emulated_hardware_gives_the_same_results_in_one_or_two_processes(tmp_path):
    from vmenergy.runtime.orchestrator import run_scenario
    from vmenergy.runtime.servers import check_kind

    ok, reason = check_kind("prosody")
    if not ok:
        pytest.skip(reason)
    text = SCENARIO.format(inputs=ROOT / "scenarios" / "inputs")
    one, two = tmp_path / "one.toml", tmp_path / "two.toml"
    one.write_text(text)
    two.write_text(text.replace('hardware = "modbus-tcp"', 'hardware = "modbus-tcp"\nprocesses = 2'))
    summaries = []
    for scenario in (one, two):
        run_scenario(scenario, tmp_path / scenario.stem, timeout=600, out=lambda line: None)
        summaries.append((tmp_path / scenario.stem / "summary.json").read_text())
    assert summaries[0] == summaries[1]
    assert json.loads(summaries[0])["outcome"]["finished"]
