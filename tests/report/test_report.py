"""The run report built from ledgers the real engines made on the in-memory network: counts that
reconcile across roles, money that adds up, files anyone can re-check, a summary that is the
same bytes for the same run, and pages without Python notation."""

from __future__ import annotations

import csv
import io
import json
import re
from collections import defaultdict
from dataclasses import replace

import pytest

from tests.report.world import END, full_run, make_world, until_assigned
from vmenergy import cli
from vmenergy.flexoffer import State
from vmenergy.protocol.engine import Ledger
from vmenergy.runtime.report import Outcome, ReportError, format_summary, read_summary, run_data, write_run_folder
from vmenergy.runtime.report.plots import PLOTS

DONE = Outcome("done", END, "every offer in a final state", {"run_seconds": 12.5})


@pytest.fixture(scope="module")
def world():
    return full_run()


@pytest.fixture(scope="module")
def folder(world, tmp_path_factory):
    d = tmp_path_factory.mktemp("run")
    html = write_run_folder(world.run(), d, DONE, {"run_seconds": 12.5})
    return d, html


def test_offer_counts_of_prosumers_and_aggregators_reconcile(folder):
    s = read_summary(folder[0])
    offers = s["offers"]
    assert offers["planned"] == 4
    # the PV offer is refused on receipt: the prosumer has it rejected, the aggregator never held it
    assert offers["by_prosumers"] == {"settled": 3, "rejected": 1}
    assert offers["by_aggregators"] == {"settled": 3, "not held": 1}
    assert offers["rejected_reasons"] and sum(offers["rejected_reasons"].values()) == 1
    assert s["reconciled"]["offers"] == {"ok": True, "agree": 4, "differ": []}
    assert s["reconciled"]["assignments_feasible"] == {"ok": True, "checked": 3, "infeasible": []}
    assert s["reconciled"]["ok"] and s["outcome"]["finished"]


def test_views_that_differ_are_listed_and_the_run_is_not_finished(world, tmp_path):
    ledgers = world.ledgers()
    agg = Ledger()
    for table, rows in ledgers[world.aggregator.jid].tables.items():
        for key, value in rows.items():
            agg.load(table, key, value)
    rec = next(r for r in agg.values("offers") if r.offer.state is State.SETTLED)
    # the aggregator gave up on an offer its prosumer still has settled
    agg.load("offers", rec.offer.id, replace(rec, offer=replace(rec.offer, state=State.REJECTED), note="not assigned in time"))
    ledgers[world.aggregator.jid] = agg
    write_run_folder(run_data(world.plan, ledgers), tmp_path, DONE, {})
    s = read_summary(tmp_path)
    assert s["reconciled"]["offers"]["differ"] == [{"offer": rec.offer.id, "prosumer": "settled", "aggregator": "rejected"}]
    assert not s["reconciled"]["ok"] and not s["outcome"]["finished"]
    assert any("do not reconcile" in u for u in s["outcome"]["unfinished"])


def test_money_flows_add_up_to_the_bill_lines_and_the_market_awards(world, folder):
    d, _ = folder
    s = read_summary(d)
    by_pair: dict[tuple[str, str], int] = defaultdict(int)
    with open(d / "bills.csv", newline="") as f:
        for row in csv.DictReader(f):
            by_pair[(row["from"], row["to"])] += int(row["amount_cents"])
            assert row["amount_eur"] == f"{int(row['amount_cents']) / 100:.2f}"
    flows = {(f["from"], f["to"], f["state"]): f for f in s["money"]["flows"]}
    to_prosumers = flows[(world.aggregator.jid, "prosumers", "billed")]
    assert to_prosumers["cents"] == sum(c for (frm, to), c in by_pair.items() if frm == world.aggregator.jid)
    assert to_prosumers["cents"] == sum(p["received"]["cents"] for p in s["money"]["prosumers"])
    assert to_prosumers["cents"] == sum(b.total_cents for p in world.prosumers for b in p.ledger.values("bills"))
    # the market's side, from its own ledger: participants pay +amount_cents for their awards
    awards = sum(b.amount_cents for b in world.market.ledger.values("bids") if b.status in ("accepted", "partial"))
    market_flow = flows[(world.market.jid, world.aggregator.jid, "billed")]
    assert market_flow["cents"] == -awards == by_pair[(world.market.jid, world.aggregator.jid)]
    assert market_flow["eur"] == f"{market_flow['cents'] / 100:.2f}"
    (agg,) = s["money"]["aggregators"]
    assert agg["balance"]["cents"] == agg["received_from_upstream"]["cents"] - agg["paid_to_members"]["cents"]
    assert s["reconciled"]["bills"]["ok"] and s["reconciled"]["market_bills"]["ok"] and s["reconciled"]["clearing"]["ok"]


def test_offers_and_schedules_files_revalidate_with_vmenergy_validate(folder, tmp_path):
    d, _ = folder
    offers, schedules = d / "offers.jsonl", d / "schedules.jsonl"
    out = io.StringIO()
    assert cli.main(["validate", str(offers), str(schedules)], out) == 0, out.getvalue()
    n_schedules = len(schedules.read_text().splitlines())
    assert n_schedules >= 3 + 1  # three prosumer offers and at least one aggregate
    assert out.getvalue().count("(feasible for ") == n_schedules
    # the check has teeth: a schedule pushed past its offer's bounds is reported
    docs = [json.loads(line) for line in schedules.read_text().splitlines()]
    docs[0]["energy"] = [e + 1000.0 for e in docs[0]["energy"]]
    bad = tmp_path / "bad.jsonl"
    bad.write_text("".join(json.dumps(x) + "\n" for x in docs))
    out = io.StringIO()
    assert cli.main(["validate", str(offers), str(bad)], out) == 1
    assert f"INFEASIBLE {bad}" in out.getvalue()


def test_summary_is_the_same_bytes_for_the_same_run_whatever_the_store_order(world, tmp_path):
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    write_run_folder(world.run(), a, DONE, {"run_seconds": 1.0})
    write_run_folder(world.run(), b, replace(DONE, timings={"run_seconds": 99.0}), {"run_seconds": 99.0})
    # the same records loaded in the opposite order (a store returns rows in insertion order)
    reversed_ledgers = {}
    for jid, led in world.ledgers().items():
        r = Ledger()
        for table, rows in reversed(list(led.tables.items())):
            for key, value in reversed(list(rows.items())):
                r.load(table, key, value)
        reversed_ledgers[jid] = r
    write_run_folder(run_data(world.plan, reversed_ledgers), c, DONE, {})
    for name in ("summary.json", "timeseries.csv", "offers.jsonl", "schedules.jsonl", "bills.csv"):
        assert (a / name).read_bytes() == (b / name).read_bytes() == (c / name).read_bytes(), name
    # and for an independent run of the same inputs
    again = tmp_path / "again"
    write_run_folder(full_run().run(), again, DONE, {})
    assert (again / "summary.json").read_bytes() == (a / "summary.json").read_bytes()


def test_wall_clock_figures_go_to_timings_json_only(folder):
    d, _ = folder
    assert "timings" not in read_summary(d) and "run_seconds" not in (d / "summary.json").read_text()
    assert json.loads((d / "timings.json").read_text()) == {"run_seconds": 12.5}


def test_timeseries_has_every_interval_and_matches_the_energy_totals(folder):
    d, _ = folder
    s = read_summary(d)
    rows = list(csv.DictReader(open(d / "timeseries.csv", newline="")))
    assert rows and {r["aggregator"] for r in rows} == {"agg@localhost"}
    times = [r["interval_start"] for r in rows]
    assert times == sorted(times) and len(set(times)) == len(times)
    for col, key in (("scheduled_kwh", "scheduled"), ("baseline_kwh", "baseline")):
        assert sum(float(r[col]) for r in rows) == pytest.approx(s["energy_kwh"][key], abs=1e-4)
    measured = [float(r["measured_kwh"]) for r in rows if r["measured_kwh"]]
    assert sum(measured) == pytest.approx(s["energy_kwh"]["measured"], abs=1e-4)
    priced = [r for r in rows if r["price_eur_per_kwh"]]
    assert priced and all(0 < float(r["price_eur_per_kwh"]) < 1 for r in priced)
    assert any(not r["price_eur_per_kwh"] for r in rows)  # no price where no cleared bid runs
    for r in rows:  # the schedule lies inside the envelope of the accepted offers
        assert float(r["flex_min_kwh"]) - 1e-6 <= float(r["scheduled_kwh"]) <= float(r["flex_max_kwh"]) + 1e-6


def test_html_shows_every_plot_and_no_python_notation(folder):
    d, html_path = folder
    html = html_path.read_text()
    for name, caption, _ in PLOTS:
        if name == "dso.png":  # this run has no DSO (tests/report/test_dso_report.py has one)
            assert f"{caption}: nothing to plot in this run." in html
            continue
        assert f'<img src="{name}" alt="{caption}">' in html
        assert (d / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "http://" not in html and "https://" not in html and "<script" not in html  # self-contained
    text = format_summary(read_summary(d), html_path)
    for page in (html, text):
        assert "None" not in page and "{'" not in page and "[]" not in page
        assert not re.search(r"\bnan\b|\binf\b", page, re.IGNORECASE)
    assert text.rstrip().endswith(f"report: {html_path}")
    assert "who pays whom" in text and "views agree" in text


def test_without_a_market_the_page_says_there_is_no_market_plot(tmp_path):
    w = full_run(market=False)
    html = write_run_folder(w.run(), tmp_path, DONE, {}).read_text()
    assert not (tmp_path / "market.png").exists()
    assert "Market sessions: nothing to plot in this run." in html
    assert read_summary(tmp_path)["market"] == {"markets": [], "sessions": [], "cleared_kwh": 0}


def test_a_run_stopped_by_until_with_work_left_says_so(tmp_path):
    w = make_world()
    t = until_assigned(w)  # assigned, never executed
    write_run_folder(w.run(), tmp_path, Outcome("until", t, "scenario time reached until"), {})
    s = read_summary(tmp_path)
    assert s["outcome"]["stopped_by"] == "until" and not s["outcome"]["finished"]
    assert any(u.startswith("3 of 4 offers not in a final state") and "assigned 3" in u
               for u in s["outcome"]["unfinished"])
    assert "NOT FINISHED" in format_summary(s)
    # offers a prosumer's devices made (none planned in the scenario) count the same way
    run = w.run()
    run = replace(run, prosumers=tuple(replace(p, planned=()) for p in run.prosumers))
    write_run_folder(run, tmp_path / "devices", Outcome("until", t, "scenario time reached until"), {})
    d = read_summary(tmp_path / "devices")
    assert d["offers"]["planned"] == 0 and d["offers"]["from_devices"] == 4
    assert any(u.startswith("3 of 4 offers not in a final state") for u in d["outcome"]["unfinished"])
    assert "cleared" in " ".join(s["outcome"]["pending"])  # the market has not billed yet
    assert any(f["state"] == "cleared, not billed yet" for f in s["money"]["flows"])


def test_an_agent_that_never_started_is_counted_and_named(world, tmp_path):
    ledgers = world.ledgers()
    ledgers["p1@localhost"] = None
    write_run_folder(run_data(world.plan, ledgers), tmp_path, DONE, {})
    s = read_summary(tmp_path)
    assert s["offers"]["by_prosumers"]["not started"] == 1
    assert any("never started: p1@localhost" in u for u in s["outcome"]["unfinished"])
    # its bills were sent but never arrived
    assert not s["reconciled"]["bills"]["ok"] and s["reconciled"]["bills"]["missing"]


@pytest.mark.parametrize("kwargs, path", [
    ({"stopped_by": "finished", "sim_end": 0}, "outcome.stopped_by"),
    ({"stopped_by": "done", "sim_end": True}, "outcome.sim_end"),
    ({"stopped_by": "done", "sim_end": 1.5}, "outcome.sim_end"),
    ({"stopped_by": "done", "sim_end": 0, "timings": {"run": float("nan")}}, "outcome.timings.run"),
])
def test_a_bad_outcome_is_refused_naming_the_field(kwargs, path):
    with pytest.raises(ReportError) as exc:
        Outcome(**kwargs)
    assert exc.value.path == path


def _stored_plan(world, tmp_path):
    """The world's ledgers written to SQLite stores as the agents write them, and the plan
    pointing at them."""
    from vmenergy.store import Store
    specs = []
    for spec in world.plan.agents:
        path = tmp_path / "stores" / f"{spec.name}.sqlite"
        with Store(path) as store:
            led = world.ledgers()[spec.jid]
            store.flush((table, key, value) for table, rows in led.tables.items() for key, value in rows.items())
        specs.append(replace(spec, store=str(path)))
    return replace(world.plan, agents=specs)


def test_the_report_read_from_the_stores_is_the_report_of_the_ledgers(world, tmp_path):
    from vmenergy.runtime.report import collect
    mem, disk = tmp_path / "mem", tmp_path / "disk"
    write_run_folder(world.run(), mem, DONE, {})
    write_run_folder(collect(_stored_plan(world, tmp_path)), disk, DONE, {})
    for name in ("summary.json", "timeseries.csv", "offers.jsonl", "schedules.jsonl", "bills.csv"):
        assert (mem / name).read_bytes() == (disk / name).read_bytes(), name


def test_the_report_reads_no_table_beyond_those_it_loads_for_each_role(world):
    from vmenergy.runtime.report.collect import REPORT_TABLES
    asked: dict[str, set] = defaultdict(set)

    class Recording(Ledger):
        def __init__(self, role):
            super().__init__()
            self.role, self.loaded = role, False

        def table(self, name):
            if self.loaded:
                asked[self.role].add(name)
            return super().table(name)

    ledgers = {}
    for spec in world.plan.agents:
        r = Recording(spec.role)
        for table, rows in world.ledgers()[spec.jid].tables.items():
            for key, value in rows.items():
                r.load(table, key, value)
        r.loaded = True
        ledgers[spec.jid] = r
    run_data(world.plan, ledgers)
    assert asked and all(names <= set(REPORT_TABLES[role]) for role, names in asked.items()), dict(asked)


def test_the_text_says_who_pays_the_market_and_who_is_paid_without_signs(folder):
    """The market's paid list is signed from the market's side (+: the market pays); printed bare,
    "aggregator paid -27.91 EUR" read as a negative payment by the aggregator."""
    d, _ = folder
    s = read_summary(d)
    text = format_summary(s)
    rows = [r for m in s["market"]["markets"] for r in m["paid"]]
    assert rows
    for r in rows:
        cents = r["total"]["cents"]
        verb = "is paid" if cents >= 0 else "pays"
        amount = f"{abs(cents) // 100}.{abs(cents) % 100:02d}"
        assert re.search(rf"{re.escape(r['participant'])}\s+{verb}\s+{re.escape(amount)} EUR:", text), r
    assert not re.search(r"(pays|paid)\s+-\d", text)
