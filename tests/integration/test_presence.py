"""Presence over a real server: a prosumer that goes offline keeps its offers out of new
aggregates, an assignment for it waits, and both go through when it comes back. Also: the
presence status text names the role only."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from datetime import datetime, timezone

import pytest

from vmenergy.agents import AggregatorAgent, ProsumerAgent, ServerAddress
from vmenergy.flexoffer import FlexOffer, Profile, Slice, State, TotalEnergy
from vmenergy.protocol.aggregator import AggregatorConfig
from vmenergy.runtime.clock import RealClock

pytestmark = pytest.mark.integration


def future_offer(oid: str, issuer: str) -> FlexOffer:
    now = int(datetime.now(timezone.utc).timestamp()) // 900
    return FlexOffer(id=oid, issuer=issuer, start_after=now + 4, start_before=now + 12,
                     profiles=(Profile((Slice(1, 0.5, 2.0), Slice(1, 0.5, 2.0)), total=TotalEnergy(1.5, 3.0)),))


async def eventually(predicate, timeout: float = 20.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


async def test_offline_prosumer_is_left_out_then_served_on_return(prosody_server, tmp_path):
    addr = ServerAddress(prosody_server.host, prosody_server.port, prosody_server.ca_file)
    agg_jid, home_jid, away_jid = (prosody_server.jid(n) for n in ("pres-agg", "pres-home", "pres-away"))
    # the aggregator plans only when told (long cycle), so the test decides when rounds happen
    agg = AggregatorAgent(agg_jid, "pw-agg", config=AggregatorConfig(cycle=10_000, lead=60), server=addr,
                          clock=RealClock(), tick=0.2, store_path=tmp_path / "agg.sqlite")
    home = ProsumerAgent(home_jid, "pw-home", aggregator=agg_jid, offers=[(0, future_offer("home-1", home_jid))],
                         server=addr, tick=0.2, store_path=tmp_path / "home.sqlite")
    away = ProsumerAgent(away_jid, "pw-away", aggregator=agg_jid, offers=[(0, future_offer("away-1", away_jid))],
                         server=addr, tick=0.2, store_path=tmp_path / "away.sqlite")
    await agg.start(auto_register=True)
    await home.start(auto_register=True)
    await away.start(auto_register=True)
    try:
        await eventually(lambda: agg.engine.counts().get("accepted") == 2, what="both offers accepted")
        # each timed step of the engine is a behaviour of its own (no periodic tick)
        assert [b.step for b in agg._step_behaviours] == [s.name for s in agg.engine.timed_steps()]
        await eventually(lambda: agg.engine.is_available(away_jid) and agg.engine.ledger.get("presence", away_jid) is True,
                         what="presence of the away prosumer")
        # presence carries availability and the role, not counts (a count in the status text was
        # a broadcast to every prosumer on every change)
        assert agg.presence.get_status() == "aggregator"
        # the away prosumer leaves
        await away.stop()
        await eventually(lambda: agg.engine.ledger.get("presence", away_jid) is False, what="unavailable presence")
        agg.engine.ledger.put("meta", "next_cycle", 0)  # a planning round now
        agg.wake_steps()
        await eventually(lambda: agg.engine.counts().get("assigned") == 1, what="round without the away prosumer")
        assert agg.engine.ledger.get("offers", "away-1").offer.state is State.ACCEPTED
        assert agg.engine.ledger.get("offers", "home-1").offer.state is State.ASSIGNED
        # it comes back (same store): its offer goes into the next round and its assignment arrives
        away2 = ProsumerAgent(away_jid, "pw-away", aggregator=agg_jid, server=addr, tick=0.2,
                              store_path=tmp_path / "away.sqlite")
        await away2.start(auto_register=True)
        try:
            await eventually(lambda: agg.engine.ledger.get("presence", away_jid) is True, what="presence back")
            agg.engine.ledger.put("meta", "next_cycle", 0)
            agg.wake_steps()
            await eventually(lambda: away2.engine.ledger.get("offers", "away-1").state is State.ASSIGNED,
                             what="assignment delivered after return")
            assert agg.engine.counts().get("assigned") == 2
        finally:
            await away2.stop()
    finally:
        await home.stop()
        await agg.stop()


async def test_assignment_for_an_offline_prosumer_is_queued(prosody_server, tmp_path):
    addr = ServerAddress(prosody_server.host, prosody_server.port, prosody_server.ca_file)
    agg_jid, p_jid = prosody_server.jid("queue-agg"), prosody_server.jid("queue-p")
    agg = AggregatorAgent(agg_jid, "pw", config=AggregatorConfig(cycle=10_000, lead=60), server=addr, tick=0.2)
    p = ProsumerAgent(p_jid, "pw", aggregator=agg_jid, offers=[(0, future_offer("q-1", p_jid))], server=addr,
                      tick=0.2, store_path=tmp_path / "p.sqlite")
    await agg.start(auto_register=True)
    await p.start(auto_register=True)
    try:
        await eventually(lambda: agg.engine.counts().get("accepted") == 1, what="offer accepted")
        await eventually(lambda: agg.engine.ledger.get("presence", p_jid) is True, what="presence")
        # the aggregator plans while the prosumer still looks available, then it drops away
        agg.engine.ledger.put("meta", "next_cycle", 0)
        agg.wake_steps()
        await eventually(lambda: agg.engine.counts().get("assigned") == 1, what="assigned")
        await eventually(lambda: not agg.engine.pending(p_jid), what="the assignment acknowledged")
        await p.stop()
        await eventually(lambda: agg.engine.ledger.get("presence", p_jid) is False, what="unavailable")
        rec = agg.engine.ledger.get("offers", "q-1")
        newer = replace(rec.schedule, update_id=rec.schedule.update_id + 1)
        from vmenergy.protocol.messages import AssignmentMessage

        await agg.handle(lambda now: agg.engine.send_reliable(p_jid, AssignmentMessage(newer), now))
        (held,) = agg.engine.pending(p_jid)
        assert held.msg.schedule.update_id == newer.update_id and held.attempts == 0  # held, not sent
        p2 = ProsumerAgent(p_jid, "pw", aggregator=agg_jid, server=addr, tick=0.2, store_path=tmp_path / "p.sqlite")
        await p2.start(auto_register=True)
        try:
            await eventually(lambda: (r := p2.engine.ledger.get("offers", "q-1")) is not None
                             and r.schedule is not None and r.schedule.update_id == newer.update_id,
                             what="queued assignment delivered")
            await eventually(lambda: not agg.engine.pending(p_jid), what="acknowledged")
        finally:
            await p2.stop()
    finally:
        await agg.stop()


