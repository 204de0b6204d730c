"""``Engine.next_due``: a virtual clock jumps from one due time to the next, so an engine must
never have timed work before the time it announced, and must announce every piece of it.

The lifecycles here run the way the coordinator runs them: time jumps to the smallest
``next_due`` of all engines, the engines due then are ticked, messages are delivered, and
executions end at their schedule's end. Before each jump, every engine is ticked one second
before its due time and must do nothing (no effect, no change to its ledger).
"""

from __future__ import annotations

import pytest

from tests.protocol.net import Net
from tests.protocol.test_engines import AGG, NOW, offer
from vmenergy.devices.executor import SimulatedExecutor
from vmenergy.protocol.aggregator import AggregatorConfig, AggregatorEngine
from vmenergy.protocol.engine import Engine, Execute
from vmenergy.protocol.market import MarketConfig, MarketEngine
from vmenergy.protocol.messages import OfferMessage
from vmenergy.protocol.prosumer import ProsumerEngine

MKT = "market@localhost"
LIQ = {"sell": {"volume": 50.0, "prices": [0.08] * 6 + [0.22] * 3 + [0.15] * 7 + [0.32] * 5 + [0.12] * 3},
       "buy": {"volume": 50.0, "prices": [0.04] * 24}}


def assert_quiet_before(engine: Engine, t: int) -> None:
    """Ticking ``engine`` at ``t`` (before its announced due time) does nothing."""
    engine.ledger.take_changes()  # what earlier steps changed (the shell would have persisted it)
    effects = engine.tick(t)
    changes = engine.ledger.take_changes()
    assert effects == [] and changes == [], f"{engine.jid} had work at {t}, before its next_due"


def all_settled(net: Net) -> bool:
    return all(e.counts() == {"settled": 1} for e in net.engines.values() if isinstance(e, ProsumerEngine))


def run_by_jumps(net: Net, start: int, until: int) -> list[int]:
    """The coordinator's loop on the in-memory network, until every offer is settled; returns
    the instants visited."""
    ex = SimulatedExecutor(deviation=0.01)
    ends: list[tuple[int, str, Execute]] = []  # (schedule end, prosumer, execution)
    t = start
    instants = []
    while t <= until:
        instants.append(t)
        for jid, e in net.engines.items():
            due = e.next_due(t)
            if due is not None and due <= t:
                net.take(jid, e.tick(t))
        for end, jid, ex_eff in [x for x in ends if x[0] <= t]:
            ends.remove((end, jid, ex_eff))
            s = ex_eff.schedule
            net.take(jid, net.engines[jid].executed(ex_eff.offer.id, s.start, ex.meter(ex_eff.offer, s), t))
        net.run(t)
        for jid, e in net.executions:
            s = e.schedule
            ends.append(((s.start + e.offer.profiles[s.profile].duration) * s.resolution, jid, e))
        net.executions.clear()
        if all_settled(net):
            break
        dues = [d for d in (e.next_due(t) for e in net.engines.values()) if d is not None]
        dues += [end for end, _, _ in ends]
        if not dues:
            break
        nxt = max(min(dues), t + 1)
        for e in net.engines.values():
            due = e.next_due(t)
            probe = (due if due is not None else nxt) - 1
            if probe > t and probe < nxt:
                assert_quiet_before(e, probe)
        t = nxt
    return instants


def test_plan_mode_lifecycle_completes_by_jumping_between_due_times():
    agg = AggregatorEngine(AGG, AggregatorConfig())
    pros = [ProsumerEngine(f"p{i}@localhost", AGG) for i in range(4)]
    net = Net(agg, *pros)
    for i, p in enumerate(pros):
        net.take(p.jid, p.add_offer(offer(("ev-overnight", "dishwasher-xor")[i % 2], i), NOW + 900 * i, NOW))
    instants = run_by_jumps(net, NOW, NOW + 3 * 86400)
    assert all(p.counts() == {"settled": 1} for p in pros), [p.counts() for p in pros]
    assert agg.counts() == {"settled": 4}
    # each offer was released at its own time: the clock visited every release
    assert {NOW + 900 * i for i in range(4)} <= set(instants)
    # a jump, not a crawl: the cycles of the first day and the settlement, not every minute
    assert len(instants) < 2 * 96


def test_market_mode_lifecycle_completes_by_jumping_between_due_times():
    mkt = MarketEngine(MKT, MarketConfig(liquidity=LIQ, time_limit=10))
    agg = AggregatorEngine(AGG, AggregatorConfig(upstream="market", upstream_jid=MKT))
    pros = [ProsumerEngine(f"p{i}@localhost", AGG) for i in range(4)]
    net = Net(mkt, agg, *pros)
    for i, p in enumerate(pros):
        net.take(p.jid, p.add_offer(offer(("ev-overnight", "dishwasher-xor")[i % 2], i), NOW, NOW))
    run_by_jumps(net, NOW, NOW + 3 * 86400)
    assert all(p.counts() == {"settled": 1} for p in pros), [p.counts() for p in pros]
    assert any(r.status == "accepted" for r in mkt.ledger.values("bids"))


def test_prosumer_is_due_at_its_releases_and_then_only_for_resends():
    p = ProsumerEngine("p0@localhost", AGG)
    p.add_offer(offer("ev-overnight", 0), NOW + 3600, NOW)
    p.add_offer(offer("dishwasher-xor", 1), NOW + 7200, NOW)
    assert p.next_due(NOW) == NOW + 3600
    p.tick(NOW + 3600)  # sends the first offer; its answer is outstanding
    due = p.next_due(NOW + 3600)
    assert due == NOW + 3600 + p.resend_after  # the resend of the unanswered offer comes first
    p.presence(AGG, False, NOW + 3600)  # the aggregator went away: no resends while it is gone
    assert p.next_due(NOW + 3600) == NOW + 7200


def test_aggregator_is_due_at_cycles_expiries_and_settlements():
    agg = AggregatorEngine(AGG, AggregatorConfig(cycle=900))
    assert agg.next_due(NOW) == 0  # never ran a cycle: at once
    agg.tick(NOW)
    assert agg.next_due(NOW) == NOW + 900
    fo = offer("ev-overnight", 0)
    agg.receive("p0@localhost", OfferMessage("insert", fo.id, fo), NOW)
    expiry = AggregatorEngine._assignment_deadline(agg.ledger.get("offers", fo.id).offer) + 1
    assert agg.next_due(NOW) == min(NOW + 900, expiry)


def test_market_is_due_at_openings_gate_closures_and_bills():
    mkt = MarketEngine(MKT, MarketConfig(liquidity=LIQ, session_every=3600, gate_closure=1800, time_limit=5))
    assert mkt.next_due(NOW) == 0
    mkt.tick(NOW)  # opens the first session
    assert mkt.next_due(NOW) == NOW + 1800  # its gate closure comes before the next opening
    mkt.tick(NOW + 1800)
    assert mkt.next_due(NOW + 1800) == NOW + 3600


@pytest.mark.parametrize("attempts", [1, 2, 3])
def test_resend_time_matches_the_resend_rule(attempts):
    """The announced resend time is exactly when tick resends (not a tick earlier or later)."""
    p = ProsumerEngine("p0@localhost", AGG)
    p.add_offer(offer("ev-overnight", 0), NOW, NOW)
    t = NOW
    for _ in range(attempts):
        due = p.next_due(t)
        assert p.tick(due - 1) == []
        p.ledger.take_changes()
        effects = p.tick(due)
        assert any(type(e).__name__ == "Send" for e in effects)
        t = due
    entry, = list(p.ledger.values("outbox"))
    assert entry.attempts == attempts + 1 and entry.last_sent == t


def test_timed_steps_are_named_and_a_step_run_alone_keeps_the_tick_order():
    """A SPADE agent runs each timed step as its own behaviour; running the round alone still
    expires overdue offers first (a late round must not plan what can no longer start)."""
    agg = AggregatorEngine(AGG, AggregatorConfig(cycle=900))
    assert [s.name for s in agg.timed_steps()] == ["resends", "deadlines", "upstream", "round", "settlement"]
    with_dso = AggregatorEngine(AGG, AggregatorConfig(cycle=900, dsos={"feeder-1": "dso@localhost"}))
    assert [s.name for s in with_dso.timed_steps()] == ["resends", "deadlines", "upstream", "round", "dso",
                                                        "settlement"]
    mkt = MarketEngine(MKT, MarketConfig(liquidity=LIQ, time_limit=5))
    assert [s.name for s in mkt.timed_steps()] == ["resends", "clearing", "opening", "activation", "billing"]
    assert [s.name for s in ProsumerEngine("p0@localhost", AGG).timed_steps()] == ["resends", "releases"]
    fo = offer("ev-overnight", 0)
    agg.receive("p0@localhost", OfferMessage("insert", fo.id, fo), NOW)
    late = AggregatorEngine._assignment_deadline(agg.ledger.get("offers", fo.id).offer) + 1
    effects = agg.run_step("round", late)
    assert agg.ledger.get("offers", fo.id).offer.state.value == "rejected"
    assert not any(type(e).__name__ == "Note" and e.event == "planned" for e in effects)
    with pytest.raises(KeyError, match="no timed step 'lunch'"):
        agg.run_step("lunch", NOW)
