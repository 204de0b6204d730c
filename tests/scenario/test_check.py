"""`vmenergy check`: every problem of a scenario file with its line, key and reason, before
anything starts; `vmenergy run` refuses the same files without leaving a run folder."""

from __future__ import annotations

import dataclasses
import io
from pathlib import Path

import pytest

from tests.conftest import ROOT
from vmenergy.cli import main
from vmenergy.runtime.scenario import Scenario, ScenarioError, check_file, load_scenario

PRICES = ", ".join(["0.1"] * 24)

# line numbers below refer to this text
VALID = f"""\
[scenario]
name = "t"
start = "2026-11-22T18:00:00Z"
until = "2026-11-23T18:00:00Z"
seed = 3

[server]
kind = "prosody"

[market]
name = "market"
mechanism = "many-to-many"
pricing = "uniform"
liquidity.sell = {{ volume = 60.0, prices = [{PRICES}] }}

[[aggregator]]
name = "north"
cycle = 900
objective = {{ kind = "peak" }}

[[aggregator]]
name = "south"
upstream = "parent"
parent = "north"

[[prosumers]]
count = 2
name = "h{{i}}"
aggregator = "north"
offers = ["examples/ev-overnight.json"]
"""


def run(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    rc = main(list(argv), out=out)
    return rc, out.getvalue()


def write(tmp_path: Path, text: str, name: str = "s.toml") -> Path:
    f = tmp_path / name
    f.write_text(text)
    return f


def broken(*changes: tuple[str, str]) -> str:
    text = VALID
    for old, new in changes:
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    return text


def check(tmp_path: Path, text: str) -> tuple[int, str, str]:
    f = write(tmp_path, text)
    rc, out = run("check", str(f))
    return rc, out, str(f)


def test_the_valid_scenario_passes(tmp_path):
    rc, out, f = check(tmp_path, VALID)
    assert (rc, out) == (0, f"OK {f}\n")


# -- each broken scenario of the issue, with its key and line ---------------------------------
@pytest.mark.parametrize("changes, expected", [
    pytest.param([("seed = 3", "sped = 1500")],
                 ":5: scenario.sped: unknown key (known: clock, name, seed, spade_metadata, speed, start, until) (did you mean speed?)",
                 id="unknown key with suggestion"),
    pytest.param([("count = 2", 'count = "two"')], ':27: prosumers[0].count: must be an integer, got "two"',
                 id="wrong type"),
    pytest.param([("cycle = 900", "cycle = -5")], ":18: aggregator[0].cycle: seconds, an integer >= 1 (got -5)",
                 id="negative cycle"),
    pytest.param([("count = 2", "count = 0")], ":27: prosumers[0].count: must be >= 1, got 0", id="count zero"),
    pytest.param([('start = "2026-11-22T18:00:00Z"', 'start = "22.11.2026 18:00"')],
                 ":3: scenario.start: not an ISO 8601 UTC time: '22.11.2026 18:00'", id="bad date"),
    pytest.param([('start = "2026-11-22T18:00:00Z"', "start = 2026-11-22T18:00:00")],
                 ":3: scenario.start: not an ISO 8601 UTC time: 2026-11-22T18:00:00 has no offset",
                 id="local date-time"),
    pytest.param([('start = "2026-11-22T18:00:00Z"', "start = 2026-11-22T19:00:00+01:00")],
                 ":3: scenario.start: not an ISO 8601 UTC time: 2026-11-22T19:00:00+01:00 (write it in UTC, with Z)",
                 id="date not in UTC"),
    pytest.param([('start = "2026-11-22T18:00:00Z"', 'start = "1900-01-01T00:00:00Z"')],
                 ':3: scenario.start: "1900-01-01T00:00:00Z" is outside 1970-2200', id="date out of range"),
    pytest.param([('until = "2026-11-23T18:00:00Z"', 'until = "2026-11-22T17:00:00Z"')],
                 ":4: scenario.until: must be after scenario.start", id="until before start"),
    pytest.param([('mechanism = "many-to-many"', 'mechanism = "many_to_many"')],
                 ":12: market.mechanism: must be one of one-sided, two-sided, many-to-many, implicit-capacity (got 'many_to_many') "
                 "(did you mean many-to-many?)", id="bad mechanism"),
    pytest.param([('pricing = "uniform"', 'pricing = "pay_as_bid"')],
                 ":13: market.pricing: must be uniform or pay-as-bid (got 'pay_as_bid') (did you mean pay-as-bid?)",
                 id="bad pricing"),
    pytest.param([("prices = [", "prices = [0.1, ")], ":14: market.liquidity.sell.prices: 24 hourly prices",
                 id="market liquidity"),
    pytest.param([("cycle = 900", 'colour = "red"')], ":18: aggregator[0].colour: unknown key (known: acceptance, aggregation, ",
                 id="unknown aggregator key"),
    pytest.param([("cycle = 900", "cycel = 900")], (":18: aggregator[0].cycel: unknown key", "(did you mean cycle?)"),
                 id="misspelt aggregator key"),
    pytest.param([('kind = "peak"', 'kind = "peek"')],
                 ":19: aggregator[0].objective.kind: unknown objective 'peek'", id="objective kind"),
    pytest.param([("cycle = 900", 'aggregation = { method = "flexx" }')],
                 ":18: aggregator[0].aggregation.method: unknown method 'flexx' (one of start, flex) "
                 "(did you mean flex?)",
                 id="aggregation parameters"),
    pytest.param([("cycle = 900", 'contract = { mode = "delegated", reward = { per_kwh = 1.0 } }')],
                 ":18: aggregator[0].contract.reward.per_kwh: unknown field", id="contract"),
    pytest.param([("cycle = 900", 'solver = "gurobi"')], ":18: aggregator[0].solver: unknown solver 'gurobi'",
                 id="solver"),
    pytest.param([('upstream = "parent"', 'upstream = "sideways"')],
                 ":23: aggregator[1].upstream: must be plan, market, parent or direct (got 'sideways')", id="upstream"),
    pytest.param([('offers = ["examples/ev-overnight.json"]', 'offers = ["examples/nope.json"]')],
                 ":30: prosumers[0].offers[0]: offer template not found (looked in ", id="missing template"),
    pytest.param([('aggregator = "north"', 'aggregator = "nort"')],
                 ':29: prosumers[0].aggregator: no aggregator named "nort" (did you mean north?)',
                 id="group names an unknown aggregator"),
    pytest.param([('parent = "north"', 'parent = "nord"')],
                 ':24: aggregator[1].parent: no aggregator named "nord" (did you mean north?)', id="unknown parent"),
    pytest.param([('parent = "north"', 'parent = "south"')],
                 ":24: aggregator[1].parent: an aggregator cannot be its own parent", id="own parent"),
    pytest.param([('parent = "north"', '')], ':21: aggregator[1].parent: required with upstream = "parent"',
                 id="missing parent (the line of its table)"),
    pytest.param([('name = "h{i}"', 'name = "h"')],
                 ':28: prosumers[0].name: "h" gives every prosumer the same name: put {i} in it',
                 id="name without {i}"),
    pytest.param([('name = "h{i}"', 'name = "h{x}"')], ':28: prosumers[0].name: "h{x}" is not a name pattern',
                 id="bad placeholder"),
    pytest.param([('name = "south"', 'name = "h1"'), ('parent = "north"', 'parent = "north"')],
                 ':28: prosumers[0].name: agent name "h1" is also used at aggregator[1].name',
                 id="two agents with one name"),
    pytest.param([("[[aggregator]]\nname = \"south\"", "[[aggregators]]\nname = \"south\"")],
                 ":21: aggregators: unknown table (known: aggregator, dso, inputs, market, operators, prosumers, scenario, "
                 "server, web) "
                 "(did you mean aggregator?)", id="unknown table"),
    pytest.param([('kind = "prosody"', 'kind = "prosodie"')],
                 ':8: server.kind: must be one of prosody, ejabberd, embedded, external, got "prosodie" '
                 "(did you mean prosody?)", id="server kind"),
    pytest.param([('kind = "prosody"', 'kind = "external"')], ':7: server.host: required with kind = "external"',
                 id="external server without host"),
])
def test_a_broken_scenario_is_refused_with_key_and_line(tmp_path, changes, expected):
    rc, out, f = check(tmp_path, broken(*changes))
    assert rc == 1
    where, *more = (expected,) if isinstance(expected, str) else expected
    line = next((line for line in out.splitlines() if line.startswith(f"{f}{where}")), None)
    assert line is not None and all(m in line for m in more), out
    assert out.rstrip().splitlines()[-1].startswith(f"INVALID {f} (")


def test_every_problem_is_reported_not_just_the_first(tmp_path):
    rc, out, f = check(tmp_path, broken(("seed = 3", "sped = 1"), ("cycle = 900", "cycle = -5"),
                                        ('pricing = "uniform"', 'pricing = "pay_as_bid"'),
                                        ('aggregator = "north"', 'aggregator = "nort"')))
    lines = out.splitlines()
    assert [line.split(": ")[0].rsplit(":", 1)[1] for line in lines[:-1]] == ["5", "13", "18", "29"]
    assert lines[-1] == f"INVALID {f} (4 errors)"


def test_aggregator_with_several_bad_settings_gets_each_reported(tmp_path):
    rc, out, f = check(tmp_path, broken(("cycle = 900", 'cycle = -5\nlead = -1\nsolver = "x"')))
    assert "aggregator[0].cycle:" in out and "aggregator[0].lead:" in out and "aggregator[0].solver:" in out
    assert out.rstrip().endswith("(3 errors)")


def test_a_toml_syntax_error_names_its_line(tmp_path):
    rc, out, f = check(tmp_path, broken(("seed = 3", "seed = = 3")))
    assert rc == 1 and out.startswith(f"{f}:5: (toml): not valid TOML: ")


def test_a_missing_file_is_invalid(tmp_path):
    rc, out = run("check", str(tmp_path / "nope.toml"))
    assert rc == 1 and "(file): cannot read" in out and f"INVALID {tmp_path / 'nope.toml'} (1 error)" in out


def test_several_files_each_get_a_verdict_and_one_bad_file_fails_the_call(tmp_path):
    good, bad = write(tmp_path, VALID, "good.toml"), write(tmp_path, broken(("count = 2", "count = 0")), "bad.toml")
    rc, out = run("check", str(good), str(bad))
    assert rc == 1 and f"OK {good}\n" in out and f"INVALID {bad} (1 error)" in out


# -- warnings: keys that have no effect --------------------------------------------------------
def test_speed_with_the_virtual_clock_is_a_warning(tmp_path):
    rc, out, f = check(tmp_path, broken(("seed = 3", "speed = 1500")))
    assert rc == 0
    assert f'{f}:5: warning: scenario.speed: has no effect with clock = "virtual"' in out
    assert out.rstrip().endswith(f"OK {f} (1 warning)")
    rc, out, f = check(tmp_path, broken(("seed = 3", 'speed = 1500\nclock = "accelerated"')))
    assert (rc, out) == (0, f"OK {f}\n")


def test_server_address_keys_of_a_private_server_are_warnings(tmp_path):
    rc, out, f = check(tmp_path, broken(('kind = "prosody"', 'kind = "prosody"\nport = 5333')))
    assert rc == 0 and f'{f}:9: warning: server.port: has no effect with kind = "prosody"' in out


def test_parent_without_upstream_parent_is_a_warning(tmp_path):
    rc, out, f = check(tmp_path, broken(('upstream = "parent"', 'upstream = "plan"')))
    assert rc == 0 and f'{f}:24: warning: aggregator[1].parent: has no effect with upstream = "plan"' in out


# -- rules between tables ----------------------------------------------------------------------
def test_parents_must_form_a_tree(tmp_path):
    text = broken(("cycle = 900", 'cycle = 900\nupstream = "parent"\nparent = "south"'))
    rc, out, f = check(tmp_path, text)
    assert rc == 1 and "parents form a loop: " in out and "(they must form a tree)" in out


def test_upstream_market_needs_a_market(tmp_path):
    start, end = VALID.index("[market]"), VALID.index("[[aggregator]]")
    text = VALID[:start] + VALID[end:]
    text = text.replace('name = "north"\n', 'name = "north"\nupstream = "market"\n')
    rc, out, f = check(tmp_path, text)
    assert rc == 1 and 'aggregator[0].upstream: market, but the scenario has no [market] table' in out


def test_upstream_jid_is_not_written_in_a_scenario(tmp_path):
    rc, out, f = check(tmp_path, broken(("cycle = 900", 'upstream_jid = "x@y"')))
    assert rc == 1 and f"{f}:18: aggregator[0].upstream_jid: set by the scenario from upstream" in out


def test_required_tables(tmp_path):
    rc, out, f = check(tmp_path, 'title = "nothing"\n')
    assert rc == 1
    for problem in ("title: unknown table", "scenario: required", "aggregator: required", "prosumers: required"):
        assert problem in out
    rc, out, f = check(tmp_path, VALID.replace("[[aggregator]]", "[aggregator]", 1).replace(
        '[[aggregator]]\nname = "south"\nupstream = "parent"\nparent = "north"\n', ""))
    assert rc == 1 and f"{f}:16: aggregator: must be an array of tables, written [[aggregator]]" in out


def test_an_external_server_is_checked_and_passed_on(tmp_path):
    (tmp_path / "ca.crt").write_text("-----BEGIN CERTIFICATE-----\n")
    external = 'kind = "external"\nhost = "xmpp.example.org"\nport = 5223\ndomain = "example.org"\nca_file = "ca.crt"'
    f = write(tmp_path, broken(('kind = "prosody"', external)))
    scenario = load_scenario(f)
    assert scenario.server.as_plan() == {"kind": "external", "domain": "example.org", "host": "xmpp.example.org",
                                         "port": 5223, "ca_file": str(tmp_path / "ca.crt"), "accounts": "register"}
    rc, out, f = check(tmp_path, broken(('kind = "prosody"', external.replace("ca.crt", "missing.crt")
                                         + '\naccounts = "accounts.toml"')))
    assert rc == 1 and "server.ca_file: CA file not found" in out and "server.accounts: accounts file not found" in out


# -- the same code as the agents ---------------------------------------------------------------
def test_a_field_added_to_the_aggregator_config_is_accepted_without_a_list_here(tmp_path, monkeypatch):
    import vmenergy.protocol.aggregator as agg

    @dataclasses.dataclass(frozen=True)
    class WithForecast(agg.AggregatorConfig):
        forecast: str = "persistence"

    monkeypatch.setattr(agg, "AggregatorConfig", WithForecast)
    rc, out, f = check(tmp_path, broken(("cycle = 900", 'forecast = "weather"')))
    assert (rc, out) == (0, f"OK {f}\n")
    rc, out, f = check(tmp_path, broken(("cycle = 900", 'forcast = "weather"')))
    assert rc == 1 and "aggregator[0].forcast: unknown key" in out and "(did you mean forecast?)" in out


# -- the files of the project ------------------------------------------------------------------
def test_every_scenario_and_example_node_config_in_the_tree_passes():
    files = sorted((ROOT / "scenarios").glob("*.toml")) + sorted((ROOT / "agents").glob("*/*.toml"))
    assert len(files) >= 4
    rc, out = run("check", *map(str, files))
    assert rc == 0, out
    assert out.count("OK ") == len(files)
    assert "warning" not in out


def test_a_broken_node_config_is_reported_with_lines(tmp_path):
    text = (ROOT / "agents" / "market" / "market.toml").read_text()
    f = write(tmp_path, text.replace('pricing = "uniform"', 'pricing = "pay_as_bid"').replace("tick = 0.5",
                                                                                               "tik = 0.5"))
    rc, out = run("check", str(f))
    lines = f.read_text().splitlines()
    tick, pricing = lines.index("tik = 0.5") + 1, next(n for n, t in enumerate(lines, 1) if t.startswith("pricing"))
    assert rc == 1
    assert f"{f}:{tick}: agent.tik: unknown key" in out and "(did you mean tick?)" in out
    assert f"{f}:{pricing}: market.pricing: must be uniform or pay-as-bid" in out


# -- the API runners use -----------------------------------------------------------------------
def test_load_scenario_gives_the_typed_model_or_every_problem(tmp_path):
    scenario = load_scenario(write(tmp_path, VALID))
    assert isinstance(scenario, Scenario)
    assert scenario.scenario.clock == "virtual" and scenario.scenario.seed == 3
    assert [a.name for a in scenario.aggregators] == ["north", "south"]
    assert scenario.aggregators[1].config.upstream_jid == "north@localhost"
    assert scenario.market.config.mechanism == "many-to-many"
    assert scenario.prosumers[0].templates[0].id == "fo-ev-17"
    with pytest.raises(dataclasses.FrozenInstanceError):
        scenario.scenario.seed = 4  # type: ignore[misc]
    with pytest.raises(ScenarioError) as info:
        load_scenario(write(tmp_path, broken(("count = 2", "count = 0"), ("seed = 3", "sped = 1"))))
    assert info.value.path == "scenario.sped"
    assert [p.path for p in info.value.problems] == ["scenario.sped", "prosumers[0].count"]


def test_check_file_creates_nothing(tmp_path):
    f = write(tmp_path, VALID)
    before = sorted(tmp_path.rglob("*"))
    assert check_file(f)[0] is not None
    assert sorted(tmp_path.rglob("*")) == before


# -- `vmenergy run` ------------------------------------------------------------------------------
def test_run_refuses_an_invalid_scenario_and_leaves_no_run_folder(tmp_path, monkeypatch):
    f = write(tmp_path, broken(("cycle = 900", "cycle = -5")))
    rc, out = run("run", str(f), "--out", str(tmp_path / "out"))
    assert rc == 1
    assert f"{f}:18: aggregator[0].cycle: seconds, an integer >= 1 (got -5)" in out
    assert f"INVALID {f} (1 error)" in out
    assert not (tmp_path / "out").exists()
    monkeypatch.chdir(tmp_path)  # the default run folder is run/NAME-TIMESTAMP under the current one
    rc, out = run("run", str(f))
    assert rc == 1 and not (tmp_path / "run").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.toml"]


def test_an_agent_node_loads_through_the_same_check(tmp_path):
    from vmenergy.agents.config import ConfigError, load_config

    text = (ROOT / "agents" / "aggregator" / "aggregator.toml").read_text()
    f = write(tmp_path, text.replace("cycle = 900", "cycel = 900"))
    with pytest.raises(ConfigError) as info:
        load_config(f)
    line = next(n for n, t in enumerate(f.read_text().splitlines(), 1) if t.startswith("cycel"))
    assert info.value.path == "aggregator.cycel"
    assert f"(line {line}); did you mean cycle?" in info.value.reason
