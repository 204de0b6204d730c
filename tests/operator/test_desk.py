"""The operator desk without a server: chat commands by role and access, arguments, steering as
engine steps with an audit, and strangers refused with nothing changed. (The same commands over
XMPP, as chat and as ad-hoc commands: tests/integration/test_operators.py.)"""

from __future__ import annotations

from dataclasses import replace

import pytest

from tests.protocol.test_engines import NOW, offer
from tests.protocol.test_market_engine import LIQ
from vmenergy.agents import AggregatorAgent, MarketAgent, ProsumerAgent
from vmenergy.agents.operator.commands import COMMANDS, objective_spec, parse_when, ArgError
from vmenergy.protocol.aggregator import AggregatorConfig
from vmenergy.protocol.market import MarketConfig
from vmenergy.protocol.operators import Operators
from vmenergy.protocol.steering import STEERING
from vmenergy.runtime.clock import VirtualClock

ALICE, BOB, MALLORY = "alice@example.org", "bob@example.org", "mallory@example.org"
OPS = Operators((ALICE,), (BOB,))
AGG = "agg@localhost"


def prosumer(operators=OPS, offers=2):
    fos = [replace(offer(("ev-overnight", "dishwasher-xor")[i % 2], i), issuer="p0@localhost") for i in range(offers)]
    return ProsumerAgent("p0@localhost", "pw", aggregator=AGG, offers=[(NOW, fo) for fo in fos],
                         clock=VirtualClock(NOW), operators=operators)


def aggregator(**config):
    return AggregatorAgent(AGG, "pw", config=AggregatorConfig(**config), clock=VirtualClock(NOW), operators=OPS)


def market():
    return MarketAgent("market@localhost", "pw", config=MarketConfig(liquidity=LIQ, time_limit=10),
                       clock=VirtualClock(NOW), operators=OPS)


async def say(agent, sender, text):
    return await agent.desk.chat(f"{sender}/phone", text)


async def test_help_lists_the_commands_of_the_role_that_the_sender_may_use():
    p, a, m = prosumer(), aggregator(), market()
    viewer = await say(p, BOB, "help")
    assert "you are a viewer" in viewer and "offers [state]" in viewer and "devices" in viewer
    assert "pause" not in viewer and "withdraw" not in viewer
    controller = await say(p, ALICE, "help")
    assert "withdraw ID [ID ...]" in controller and "pause                 stop sending new offers" in controller
    assert "aggregates" not in controller and "bill [ID]" in controller
    agg = await say(a, ALICE, "help")
    assert "aggregates" in agg and "objective KIND [args]" in agg and "withdraw" not in agg
    assert "market" not in agg.split()  # an aggregator that plans itself has no market to show
    mkt = await say(m, ALICE, "?")
    for usage in ("open", "close [session]", "clear [session]", "market", "bill [participant]"):
        assert usage in mkt
    assert "offers" not in mkt
    # every command is reachable by its name from chat
    assert {c.name for c in COMMANDS} >= {"status", "pause", "resume", "watch", "kpi"}


async def test_a_stranger_is_told_once_and_changes_nothing():
    p = prosumer()
    p.engine.ledger.take_changes()
    assert await say(p, MALLORY, "pause") == "not authorized"
    assert await say(p, MALLORY, "status") is None  # told already: no second answer (no reply loops)
    assert p.engine.ledger.take_changes() == [] and not p.engine.paused
    assert await say(prosumer(Operators()), ALICE, "status") == "not authorized"  # no table: nobody


async def test_a_viewer_reads_but_cannot_steer():
    p = prosumer()
    p.engine.ledger.take_changes()
    assert await say(p, BOB, "pause") == "not authorized: pause is for controllers"
    assert p.engine.ledger.take_changes() == [] and len(p.engine.ledger[STEERING]) == 0
    assert (await say(p, BOB, "status")).startswith("prosumer p0@localhost\n")


async def test_case_and_spaces_do_not_matter_and_mistakes_get_the_closest_command_and_usage():
    p = prosumer()
    assert (await say(p, BOB, "   STATUS  ")).startswith("prosumer p0@localhost")
    assert await say(p, ALICE, "paws") == "unknown command 'paws'; closest: pause\nhelp lists your commands"
    assert "closest: pause" not in await say(p, BOB, "paws")  # a viewer is not pointed at steering
    reply = await say(p, BOB, "offers acceptd")
    assert reply.startswith("state: 'acceptd' is not one of initial, offered, accepted")
    assert "did you mean accepted?" in reply and reply.endswith("usage: offers [state]")
    assert (await say(p, BOB, "watch maybe")).endswith("usage: watch on|off")
    assert await say(p, BOB, "offer") == "id: required\nusage: offer ID"
    assert "too many words" in await say(p, BOB, "status now please")


async def test_pause_stops_a_prosumers_new_offers_resume_restarts_them_and_both_are_audited():
    p = prosumer()
    assert await say(p, ALICE, "Pause") == "paused: sending new offers stopped until resume"
    await p.handle(p.engine.on_tick)
    assert p.engine.counts() == {"initial": 2}
    status = await say(p, BOB, "status")
    assert "paused (sending new offers held)" in status and f"by {ALICE}: pause" in status
    assert p.status_text().endswith("(paused)")
    assert await say(p, ALICE, "pause") == "pause: already paused (resume restarts it) (nothing changed)"
    assert await say(p, ALICE, "resume") == "resumed: sending new offers restarted"
    await p.handle(p.engine.on_tick)
    assert p.engine.counts() == {"offered": 2}
    audit = p.engine.ledger[STEERING].values()
    assert [(r.operator, r.action, r.at) for r in audit] == [(ALICE, "pause", NOW), (ALICE, "resume", NOW)]


async def test_withdraw_by_chat_matches_ids_without_regard_to_case():
    p = prosumer()
    first = sorted(p.engine.ledger.table("offers"))[0]
    reply = await say(p, ALICE, f"withdraw {first.upper()}")
    assert reply == f"withdrew {first}"
    assert p.engine.ledger.get("offers", first).state.value == "withdrawn"
    assert (await say(p, ALICE, f"withdraw {first}")).startswith("offers: ")  # no longer a choice


async def test_views_of_a_prosumer_after_its_offers_went_out():
    p = prosumer()
    await p.handle(p.engine.on_tick)
    offers = await say(p, BOB, "offers")
    assert offers.splitlines()[0] == "2 offers: 2 offered"
    assert offers.splitlines()[1].split() == ["offer", "state", "start", "kWh"]
    oid = sorted(p.engine.ledger.table("offers"))[0]
    detail = await say(p, BOB, f"offer {oid}")
    assert detail.startswith(f"offer     {oid} v0\nstate     offered")
    assert await say(p, BOB, "schedule") == "no schedules"
    assert await say(p, BOB, "bill") == "no bills"
    assert (await say(p, BOB, "devices")).startswith("executor: SimulatedExecutor")
    assert "2 offered" in await say(p, BOB, "kpi")


async def test_an_aggregators_objective_is_changed_by_chat_and_a_bad_one_names_the_argument():
    a = aggregator()
    reply = await say(a, ALICE, "objective target 5 5,4 from 18:00")
    assert reply == "objective target from the next plan on"
    day = NOW - NOW % 86400
    assert a.engine.objective() == {"kind": "target", "values": [5.0, 5.0, 4.0], "start": (day + 18 * 3600) // 900}
    reply = await say(a, ALICE, "objective target x")
    assert reply.startswith("values: 'x' is not a number\nusage: objective KIND [args]\nKIND [args]: peak [weight]")
    assert (await say(a, ALICE, "objective cheapest")).startswith("kind: one of peak, target")
    assert await say(a, ALICE, "objective peak 2") == "objective peak from the next plan on"
    assert a.engine.objective() == {"kind": "peak", "weight": 2.0}
    assert [r.params for r in a.engine.ledger[STEERING].values()][-1] == {"objective": {"kind": "peak", "weight": 2.0}}


async def test_trading_is_switched_by_chat_and_status_says_it_and_a_plan_only_aggregator_has_no_such_command():
    a = aggregator(upstream="market", upstream_jid="market@localhost")
    assert "trading  on (market market@localhost)" in await say(a, BOB, "status")
    assert await say(a, BOB, "trading off") == "not authorized: trading is for controllers"
    assert a.engine.trading_on
    reply = await say(a, ALICE, "trading off")
    assert reply == "trading off: new aggregates are planned here from the next round; placed bids stand"
    assert "trading  off (new aggregates planned here)" in await say(a, BOB, "status")
    assert await say(a, ALICE, "trading off") == "trading: off already (nothing changed)"
    assert (await say(a, ALICE, "trading on")).startswith("trading on: new aggregates go to market")
    assert [r.params for r in a.engine.ledger[STEERING].values()] == [{"on": False}, {"on": True}]
    plain = aggregator()
    assert "trading" not in await say(plain, ALICE, "help")
    assert "trading" not in await say(plain, ALICE, "status")


async def test_a_market_is_opened_closed_and_cleared_by_chat():
    m = market()
    assert (await say(m, ALICE, "open")).startswith("opened s-1 (gate closure ")
    assert (await say(m, ALICE, "close")).startswith("closed s-1 with 0 bids")
    assert await say(m, ALICE, "close") == "close: no session is open (nothing changed)"
    assert await say(m, ALICE, "clear s-1") == "cleared s-1: 0 of 0 bids accepted"
    market_view = await say(m, BOB, "market")
    assert "s-1" in market_view and "cleared" in market_view
    assert [r.action for r in m.engine.ledger[STEERING].values()] == ["open", "close", "clear"]


def test_times_and_objectives_from_an_operators_words():
    assert parse_when("18:00", NOW) == NOW - NOW % 86400 + 18 * 3600
    assert parse_when("2026-11-22T18:00:00Z", NOW) == NOW - NOW % 86400 + 18 * 3600
    with pytest.raises(ArgError) as info:
        parse_when("25:00", NOW)
    assert info.value.path == "from"
    assert objective_spec({"kind": "energy_min"}, NOW) == {"kind": "energy_min"}
    assert objective_spec({"kind": "cost", "values": "0.1 0.2"}, NOW) == {
        "kind": "cost", "prices": [0.1, 0.2], "start": NOW // 900}
    with pytest.raises(ArgError, match="a number >= 0"):
        objective_spec({"kind": "peak", "weight": "-1"}, NOW)


async def test_a_dso_operator_sees_the_grid_and_pauses_the_flex_requests():
    from vmenergy.agents import DsoAgent
    from vmenergy.protocol.dso import DsoConfig

    d = DsoAgent("dso@localhost", "pw", config=DsoConfig(points={"feeder-1": {"limit": 40.0}},
                                                         aggregators={AGG: ["feeder-1"]}),
                 clock=VirtualClock(NOW), operators=OPS)
    help_text = await say(d, ALICE, "help")
    assert "grid" in help_text and "stop sending flex requests" in help_text and "offers" not in help_text
    grid = await say(d, BOB, "grid")
    assert "feeder-1" in grid and "40" in grid and "no orders yet" in grid
    assert (await say(d, ALICE, "pause")).startswith("paused: flex requests stopped")
    assert d.engine.paused and d.engine.next_due(NOW) is None  # no request goes out while paused
