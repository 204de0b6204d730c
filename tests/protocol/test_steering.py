"""Steering actions of the role engines (an operator's pause, resume, withdraw, objective, open,
close, clear), their audit in the ledger, and the ``[operators]`` access list."""

from __future__ import annotations

from dataclasses import replace

import pytest

from tests.protocol.net import Net
from tests.protocol.test_engines import AGG, NOW, offer, setup
from tests.protocol.test_market_engine import LIQ, MKT, run_until_cleared, world
from vmenergy.flexoffer import FlexOfferError
from vmenergy.protocol.aggregator import AggregatorConfig, AggregatorEngine
from vmenergy.protocol.engine import Note, Send
from vmenergy.protocol.market import MarketConfig, MarketEngine, market_summary
from vmenergy.protocol.messages import BidMessage, MarketSessionNotice, OfferMessage
from vmenergy.protocol.operators import Access, Operators
from vmenergy.protocol.prosumer import ProsumerEngine
from vmenergy.protocol.steering import STEERING, SteeringError
from vmenergy.protocol.strategies import AggregatorStrategies, ObjectivePlanning
from vmenergy.store import Store

ALICE = "alice@example.org"


def changes_of(engine, action):
    """Run ``action`` and return what it changed in the ledger (after clearing earlier changes)."""
    engine.ledger.take_changes()
    action()
    return engine.ledger.take_changes()


# -- prosumer --------------------------------------------------------------------------------
def test_a_paused_prosumer_holds_its_new_offers_and_sends_them_on_resume():
    agg = AggregatorEngine(AGG)
    p = ProsumerEngine("p0@localhost", AGG)
    net = Net(agg, p)
    effects, outcome = p.steer("Alice@Example.org/phone", "pause", now=NOW)
    assert "paused" in outcome and p.paused
    net.take(p.jid, p.add_offer(offer("ev-overnight", 0), NOW, NOW))
    net.tick(NOW)
    net.run(NOW)
    assert p.counts() == {"initial": 1} and agg.counts() == {}
    assert p.next_due(NOW) is None  # nothing to wake a virtual clock for while paused
    effects, outcome = p.steer(ALICE, "resume", now=NOW + 60)
    assert p.next_due(NOW + 60) <= NOW + 60  # the held offer is due at once
    net.tick(NOW + 60)
    assert p.counts() == {"accepted": 1} and agg.counts() == {"accepted": 1}
    audit = p.ledger[STEERING].values()
    assert [(r.seq, r.at, r.operator, r.action) for r in audit] == [
        (1, NOW, ALICE, "pause"), (2, NOW + 60, ALICE, "resume")]
    assert p.last_steering().action == "resume"


def test_pausing_a_paused_engine_is_refused_and_changes_nothing():
    p = ProsumerEngine("p0@localhost", AGG)
    p.steer(ALICE, "pause", now=NOW)
    with pytest.raises(SteeringError, match="already paused"):
        assert changes_of(p, lambda: p.steer(ALICE, "pause", now=NOW + 1)) == []
    assert p.ledger.take_changes() == []
    with pytest.raises(SteeringError, match="cannot objective") as info:
        p.steer(ALICE, "objective", {"objective": {"kind": "peak"}}, now=NOW)
    assert info.value.path == "action" and "pause, resume, withdraw" in info.value.reason
    assert len(p.ledger[STEERING]) == 1


def test_withdraw_takes_all_named_offers_or_none():
    agg, pros, net = setup(1)
    p = pros[0]
    net.take(p.jid, p.add_offer(replace(offer("dishwasher-xor", 0), id="second"), NOW, NOW))
    net.run(NOW)
    first = next(iter(p.ledger.table("offers")))
    before = dict(p.ledger.table("offers"))
    with pytest.raises(SteeringError) as info:
        p.steer(ALICE, "withdraw", {"offers": (first, "nope")}, now=NOW)
    assert info.value.path == "offers[1]" and "no offer nope" in info.value.reason
    assert dict(p.ledger.table("offers")) == before and len(p.ledger[STEERING]) == 0
    effects, outcome = p.steer(ALICE, "withdraw", {"offers": (first, "second")}, now=NOW)
    deletes = [e.msg for e in effects if isinstance(e, Send) and isinstance(e.msg, OfferMessage)]
    assert [(m.op, m.offer_id) for m in deletes] == [("delete", first), ("delete", "second")]
    net.take(p.jid, effects)
    net.run(NOW)
    assert agg.counts() == {"withdrawn": 2} and p.counts() == {"withdrawn": 2}
    assert outcome == f"withdrew {first}, second"
    (rec,) = p.ledger[STEERING].values()
    assert rec.params == {"offers": (first, "second")}
    with pytest.raises(SteeringError, match="withdrawn: it can no longer be withdrawn"):
        p.steer(ALICE, "withdraw", {"offers": ("second",)}, now=NOW)


def test_the_audit_and_the_pause_outlive_a_restart_from_the_store(tmp_path):
    p = ProsumerEngine("p0@localhost", AGG)
    p.steer(ALICE, "pause", now=NOW)
    with Store(tmp_path / "p.sqlite") as store:
        store.flush(p.ledger.take_changes())
    with Store(tmp_path / "p.sqlite") as store:
        again = ProsumerEngine("p0@localhost", AGG, ledger=store.load())
    assert again.paused and again.last_steering() == p.last_steering()


# -- aggregator -------------------------------------------------------------------------------
def test_a_paused_aggregator_runs_no_round_until_resumed():
    agg, pros, net = setup(2)
    agg.steer(ALICE, "pause", now=NOW)
    assert [s.due(NOW) for s in agg.timed_steps() if s.name == "round"] == [None]
    net.tick(NOW)
    assert agg.counts() == {"accepted": 2} and not net.executions
    agg.steer(ALICE, "resume", now=NOW + 60)
    net.tick(NOW + 60)
    assert agg.counts() == {"assigned": 2}


def test_an_operator_changes_the_objective_it_applies_to_the_next_plan_and_outlives_a_restart(tmp_path):
    agg, pros, net = setup(2)
    assert agg.objective() == {"kind": "peak"}
    with pytest.raises(SteeringError) as info:
        agg.steer(ALICE, "objective", {"objective": {"kind": "cheapest"}}, now=NOW)
    assert info.value.path == "objective.kind" and "unknown objective" in info.value.reason
    with pytest.raises(SteeringError) as info:
        agg.steer(ALICE, "objective", {"objective": {"kind": "target", "values": [1.0], "start": 0, "bogus": 1}},
                  now=NOW)
    assert info.value.path == "objective"
    assert agg.ledger.get("overrides", "objective") is None and len(agg.ledger[STEERING]) == 0
    spec = {"kind": "energy_max"}
    _, outcome = agg.steer(ALICE, "objective", {"objective": spec}, now=NOW)
    assert outcome == "objective energy_max from the next plan on"
    assert agg.strategies.planning.objective.name == "energy_max" and agg.objective() == spec
    net.tick(NOW)
    # energy_max: every offer is given as much energy as it can take
    for _, e in net.executions:
        fo, s = e.offer, e.schedule
        assert sum(s.energy) == pytest.approx(max(p.total.max for p in fo.profiles if p.total) if any(
            p.total for p in fo.profiles) else sum(sl.max for sl in fo.profiles[s.profile].slices), rel=1e-6)
    with Store(tmp_path / "a.sqlite") as store:
        store.flush(agg.ledger.take_changes())
    with Store(tmp_path / "a.sqlite") as store:
        again = AggregatorEngine(AGG, agg.config, ledger=store.load())
    assert again.objective() == spec and again.strategies.planning.objective.name == "energy_max"


def test_trading_off_plans_new_aggregates_here_and_on_again_bids_and_the_switch_outlives_a_restart(tmp_path):
    mkt, agg, pros, net = world()
    assert agg.trading_on
    for params, path in (({"on": "no"}, "on"), ({}, "on")):
        with pytest.raises(SteeringError) as info:
            agg.steer(ALICE, "trading", params, now=NOW)
        assert info.value.path == path
    _, outcome = agg.steer(ALICE, "trading", {"on": False}, now=NOW)
    assert outcome.startswith("trading off") and not agg.trading_on
    with pytest.raises(SteeringError, match="off already"):
        agg.steer(ALICE, "trading", {"on": False}, now=NOW)
    run_until_cleared(net)
    # nothing bid: the aggregator planned its aggregates itself, and every member has a schedule
    assert market_summary(mkt.ledger)["bids"] == 0
    assert agg.counts() == {"assigned": 4} and len(net.executions) == 4
    with Store(tmp_path / "a.sqlite") as store:
        store.flush(agg.ledger.take_changes())
    with Store(tmp_path / "a.sqlite") as store:
        again = AggregatorEngine(AGG, agg.config, ledger=store.load())
    assert not again.trading_on
    # on again: the next offers are bid
    mkt2, agg2, pros2, net2 = world()
    agg2.steer(ALICE, "trading", {"on": False}, now=NOW)
    agg2.steer(ALICE, "trading", {"on": True}, now=NOW)
    run_until_cleared(net2)
    assert market_summary(mkt2.ledger)["bids"] == 2


def test_an_aggregator_that_plans_itself_has_no_trading_to_switch():
    agg, pros, net = setup(1)
    with pytest.raises(SteeringError, match="no upstream to trade with"):
        agg.steer(ALICE, "trading", {"on": False}, now=NOW)


def test_the_objective_of_a_users_planning_class_is_not_the_operators_to_change():
    class Mine:
        def plan(self, offers, now):  # pragma: no cover - never called here
            return []

    config = AggregatorConfig()
    strategies = replace(AggregatorStrategies.from_config(config, AGG), planning=Mine())
    agg = AggregatorEngine(AGG, config, strategies=strategies)
    assert agg.objective() is None
    with pytest.raises(SteeringError, match="user's class"):
        agg.steer(ALICE, "objective", {"objective": {"kind": "peak"}}, now=NOW)
    assert isinstance(AggregatorEngine(AGG).strategies.planning, ObjectivePlanning)


# -- market -----------------------------------------------------------------------------------
def notices(effects, state):
    return [e.msg.session_id for e in effects if isinstance(e, Send) and isinstance(e.msg, MarketSessionNotice)
            and e.msg.state == state]


def test_a_paused_market_opens_no_session_by_itself_but_an_operator_can_open_one():
    mkt = MarketEngine(MKT, MarketConfig(liquidity=LIQ, time_limit=10))
    mkt.steer(ALICE, "pause", now=NOW)
    assert mkt.tick(NOW) == [] and len(mkt.ledger.table("sessions")) == 0
    _, outcome = mkt.steer(ALICE, "open", now=NOW)
    assert outcome.startswith("opened s-1 (gate closure ")
    assert mkt.ledger.get("meta", "next_open", 0) == 0  # the calendar did not move
    mkt.steer(ALICE, "resume", now=NOW + 10)
    mkt.tick(NOW + 10)
    assert sorted(mkt.ledger.table("sessions")) == ["s-1", "s-2"]
    assert mkt.ledger.get("meta", "next_open") == NOW + 10 + mkt.config.session_every


def test_a_session_closed_early_takes_no_bids_and_clears_at_its_gate_closure():
    mkt, agg, pros, net = world()
    net.tick(NOW)
    net.tick(NOW + 900)  # the aggregator bids into s-1
    assert len(mkt.ledger.table("bids")) == 2
    effects, outcome = mkt.steer(ALICE, "close", now=NOW + 901)
    assert outcome.startswith("closed s-1 with 2 bids; it clears at ")
    assert notices(effects, "closed") == ["s-1"]
    net.take(MKT, effects)
    net.run(NOW + 901)
    fo = replace(offer("ev-overnight", 0), issuer=AGG)
    out = mkt.receive(AGG, BidMessage("late", "s-1", "buy", offer=fo), NOW + 902)
    (ack,) = [e.msg for e in out if isinstance(e, Send)]
    assert not ack.accepted and "no bids after close" in ack.reason
    with pytest.raises(SteeringError, match="only a session that is open can be closed"):
        mkt.steer(ALICE, "close", {"session": "s-1"}, now=NOW + 903)
    gate = mkt.ledger.get("sessions", "s-1").notice.gate_closure
    assert mkt.next_due(NOW + 903) <= gate
    assert [e for e in mkt.run_step("clearing", gate - 1) if not isinstance(e, Note)] == []
    run_until_cleared(net, gate, 2)
    assert market_summary(mkt.ledger)["cleared"] == 2 and agg.counts() == {"assigned": 4}


def test_clear_now_closes_and_clears_and_a_closed_session_survives_a_restart(tmp_path):
    mkt, agg, pros, net = world()
    net.tick(NOW)
    net.tick(NOW + 900)
    effects, _ = mkt.steer(ALICE, "close", now=NOW + 901)
    with Store(tmp_path / "m.sqlite") as store:
        store.flush(mkt.ledger.take_changes())
    with Store(tmp_path / "m.sqlite") as store:
        again = MarketEngine(MKT, mkt.config, ledger=store.load())
    net.engines[MKT] = again
    effects, outcome = again.steer(ALICE, "clear", now=NOW + 902)
    assert outcome == "cleared s-1: 2 of 2 bids accepted"
    assert notices(effects, "closed") == [] and notices(effects, "cleared") == ["s-1"]
    net.take(MKT, effects)
    net.run(NOW + 902)
    assert agg.counts() == {"assigned": 4}
    with pytest.raises(SteeringError, match="no session is open or closed"):
        again.steer(ALICE, "clear", now=NOW + 903)
    with pytest.raises(SteeringError, match="no session s-9"):
        again.steer(ALICE, "clear", {"session": "s-9"}, now=NOW + 903)
    assert [r.action for r in again.ledger[STEERING].values()] == ["close", "clear"]


def test_an_engine_that_is_never_steered_runs_exactly_as_before():
    """No operator, no difference: the tables exist but stay empty, and a run's messages are
    the same with or without the steering code (a lifecycle of the market world)."""
    mkt, agg, pros, net = world()
    run_until_cleared(net)
    for e in net.engines.values():
        assert len(e.ledger[STEERING]) == 0 and not e.paused
        assert e.ledger.get("meta", "steer_seq") is None


# -- operators --------------------------------------------------------------------------------
def test_operators_name_bare_jids_and_give_access_by_list():
    ops = Operators.from_dict({"controllers": ["Alice@Example.org"], "viewers": ["bob@example.org"]})
    assert ops.controllers == (ALICE,)
    assert ops.access("alice@example.org/phone") is Access.CONTROL
    assert ops.access("BOB@example.org") is Access.VIEW
    assert ops.access("mallory@example.org") is Access.NONE
    assert ALICE in ops and "mallory@example.org" not in ops
    assert Operators().access(ALICE) is Access.NONE  # no table: nobody
    assert ops.with_controller("bob@example.org").access("bob@example.org") is Access.CONTROL
    assert Operators.from_dict(ops.to_dict()) == ops


@pytest.mark.parametrize("table, path, reason", [
    ({"controllers": "alice@example.org"}, "controllers", "a list of bare JIDs"),
    ({"viewers": ["bob"]}, "viewers[0]", "not a bare JID"),
    ({"viewers": ["bob@example.org/phone"]}, "viewers[0]", "has a resource"),
    ({"controllers": [ALICE], "viewers": ["ALICE@example.org"]}, "viewers[0]", "already listed in controllers"),
    ({"controllers": [3]}, "controllers[0]", "a bare JID"),
    ({"admins": []}, "admins", "unknown operators setting"),
])
def test_operator_lists_refuse_what_is_not_a_bare_jid(table, path, reason):
    with pytest.raises(FlexOfferError) as info:
        Operators.from_dict(table)
    assert info.value.path == path and reason in info.value.reason
