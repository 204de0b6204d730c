"""The way of one protocol message through connected agents, shortened (bench/RESULTS.md, "Agent
path, round 5"): a message reaching an idle agent is taken by its engine in the callback that read
it (no inbox task between), and the answer is written in the turn that made it (not through
slixmpp's send queue); while a step runs, messages wait in the inbox and are taken in order."""

from __future__ import annotations

import contextlib
import time

import pytest

from tests.integration.test_presence import eventually
from tests.integration.test_resume_dead_link import agent_pair
from tests.integration.test_operators import future_offer
from vmenergy.wire.stanzas import NS

pytestmark = pytest.mark.integration


def _count_queued_protocol_stanzas(client) -> list:
    """Protocol stanzas the client handed to slixmpp's send queue (``send``), listed."""
    queued: list = []
    send = client.send

    def counting(data, *a, **kw):
        xml = getattr(data, "xml", None)
        if xml is not None and any(isinstance(el.tag, str) and el.tag.startswith("{" + NS + "}") for el in xml):
            queued.append(data)
        return send(data, *a, **kw)

    client.send = counting
    return queued


def _count_inbox(agent) -> list:
    put = agent._inbox.queue.put_nowait
    seen: list = []

    def counting(msg):
        seen.append(msg)
        put(msg)

    agent._inbox.queue.put_nowait = counting
    return seen


@contextlib.asynccontextmanager
async def _started(server, tmp_path, name: str):
    """An aggregator and a prosumer connected, the prosumer's first offer accepted; stopped after."""
    agg, home = agent_pair(server, tmp_path, name)
    await agg.start(auto_register=True)
    await home.start(auto_register=True)
    try:
        await eventually(lambda: home.engine.counts().get("accepted") == 1, what="first offer accepted")
        yield agg, home
    finally:
        await home.stop()
        await agg.stop()


def _record_offers_taken(agent) -> list[str]:
    """The ids of the messages the agent's engine takes, in the order it takes them."""
    order: list[str] = []
    receive = agent.engine.receive

    def recording(sender, payload, now):
        order.append(getattr(payload, "offer_id", ""))
        return receive(sender, payload, now)

    agent.engine.receive = recording
    return order


async def test_an_idle_agent_steps_a_message_where_it_is_read_and_writes_the_answer_at_once(prosody_server, tmp_path):
    async with _started(prosody_server, tmp_path, "ap") as (agg, home):
        inboxes = {a: _count_inbox(a) for a in (agg, home)}
        queued = {a: _count_queued_protocol_stanzas(a.client) for a in (agg, home)}
        for j in range(1, 4):  # one at a time: each side idle when the other's message arrives
            fo = future_offer(f"ap-{j}", str(home.jid), time.time())
            await home.handle(lambda now, fo=fo: home.engine.add_offer(fo, 0, now))
            await eventually(lambda j=j: home.engine.counts().get("accepted") == 1 + j, what=f"offer {j} accepted")
        assert [len(v) for v in inboxes.values()] == [0, 0]  # the offers and the acks: no inbox hop
        assert [len(v) for v in queued.values()] == [0, 0]  # the acks and the offers: no send queue


async def test_while_a_step_runs_messages_wait_in_the_inbox_and_are_taken_in_the_order_they_came(
        prosody_server, tmp_path):
    async with _started(prosody_server, tmp_path, "ao") as (agg, home):
        order = _record_offers_taken(agg)
        inbox = _count_inbox(agg)
        ids = [f"ao-{j}" for j in range(1, 6)]
        now = time.time()
        async with agg._engine_lock:  # a step of the aggregator's is running
            for oid in ids:
                await home.handle(lambda t, oid=oid: home.engine.add_offer(future_offer(oid, str(home.jid), now), 0, t))
            await eventually(lambda: len(inbox) == len(ids), what="offers waiting in the inbox")
            assert order == []
        await eventually(lambda: home.engine.counts().get("accepted") == 1 + len(ids), what="all accepted")
        assert order == ids


async def test_the_read_that_brings_a_message_ends_with_its_commit_and_the_answer_written(prosody_server, tmp_path):
    from vmenergy.agents.coalesced_writes import FLUSH_ATTR

    async with _started(prosody_server, tmp_path, "ar") as (agg, home):
        client = agg.client
        events: list[str] = []
        flush = getattr(client, FLUSH_ATTR)

        def flushing() -> None:
            events.append("write")
            flush()

        setattr(client, FLUSH_ATTR, flushing)
        persist = agg._persist

        def persisting(changes):
            events.append("commit")
            return persist(changes)

        agg._persist = persisting
        inner = client.data_received
        reads: list[list[str]] = []

        def outer(data: bytes) -> None:  # outermost: sees what happened within one read
            events.clear()
            inner(data)
            reads.append(list(events))

        client.data_received = outer
        fo = future_offer("ar-1", str(home.jid), time.time())
        await home.handle(lambda now: home.engine.add_offer(fo, 0, now))
        await eventually(lambda: home.engine.counts().get("accepted") == 2, what="offer accepted")
        assert ["commit", "write"] in reads  # within the read that carried the offer


@pytest.mark.parametrize("extra", [0, 3])
async def test_a_read_of_a_few_messages_is_stepped_when_it_is_over_and_a_burst_goes_through_the_inbox_in_order(
        prosody_server, tmp_path, extra):
    from vmenergy.agents.base import DIRECT_STEPS_PER_READ, _Arrival
    from vmenergy.protocol.messages import OfferMessage

    async with _started(prosody_server, tmp_path, f"ab{extra}") as (agg, home):
        order = _record_offers_taken(agg)
        inbox = _count_inbox(agg)
        ids = [f"ab{extra}-{j}" for j in range(DIRECT_STEPS_PER_READ + extra)]
        now = time.time()
        agg._reading()  # as the stream's parser hands them over from one read
        for oid in ids:
            fo = future_offer(oid, str(home.jid), now)
            agg._deliver(_Arrival(str(home.jid), None, None, agg.now()), OfferMessage("insert", oid, fo))
        assert order == []  # held until the read is over
        agg._read_handled()
        if extra == 0:
            assert order == ids and inbox == []  # stepped at once, in order
        else:
            assert order == [] and [m.payload.offer_id for m in inbox] == ids  # the inbox takes the burst
            await eventually(lambda: order == ids, what="the burst stepped by the inbox, in order")
        await agg.settled()
        assert all(agg.engine.ledger.get("offers", oid) is not None for oid in ids)  # each taken
