"""A stanza written in the turn that sends it (vmenergy/agents/send_now.py) is what slixmpp's send
queue would write, with the same XEP-0198 bookkeeping; whenever writing at once could change the
bytes or their order, the stanza takes slixmpp's queue."""

from __future__ import annotations

import asyncio

import slixmpp

from vmenergy.agents import smacks
from vmenergy.agents.base import protocol_stanza
from vmenergy.agents.send_now import can_send_now, send_now
from vmenergy.protocol.messages import Ack
from vmenergy.wire.messages import summary

ACK = Ack("flexoffer", "fo-1", "accepted", None, 0)


class Transport:
    def __init__(self) -> None:
        self.written: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def is_closing(self) -> bool:
        return False


def client() -> slixmpp.ClientXMPP:
    """A client as an agent's (SPADE's plugins, XEP-0198 on and confirmed), in a session, its
    writes going to a list."""
    c = slixmpp.ClientXMPP("agg@vme.localhost/r", "pw")
    for p in ("xep_0004", "xep_0030", "xep_0199"):
        c.register_plugin(p)
    smacks.enable_stream_management(c)
    sm = c.plugin["xep_0198"]
    sm.enabled_out = sm.enabled_in = True
    c.transport = Transport()
    c._session_started = True
    return c


def stanza(c, i: int = 0):
    s = protocol_stanza(c, "home@vme.localhost", "agg@vme.localhost", summary(ACK), ACK)
    s["id"] = f"id-{i}"
    return s


async def through_queue(c) -> None:
    """Let slixmpp's send task empty the queue."""
    task = asyncio.ensure_future(c.run_filters())
    await c.waiting_queue.join()
    task.cancel()


async def test_what_is_written_at_once_is_what_the_send_queue_writes_with_the_same_stream_management_record():
    a, b = client(), client()
    send_now(a, stanza(a))
    assert a.waiting_queue.empty()  # written in this turn
    b.send(stanza(b))
    await through_queue(b)
    assert a.transport.written == b.transport.written and len(a.transport.written) == 1
    sa, sb = a.plugin["xep_0198"], b.plugin["xep_0198"]
    assert sa.seq == sb.seq == 1
    assert [str(s) for _n, s in sa.unacked_queue] == [str(s) for _n, s in sb.unacked_queue]


async def test_behind_stanzas_in_the_send_queue_it_waits_its_turn():
    c = client()
    c.send(stanza(c, 1))  # not written yet: the send task has not run
    assert not can_send_now(c)
    send_now(c, stanza(c, 2))
    assert c.transport.written == []
    await through_queue(c)
    assert [b'id="id-1"' in w for w in c.transport.written] == [True, False]
    assert b'id="id-2"' in c.transport.written[1]


async def test_before_the_session_starts_slixmpp_holds_it_as_it_holds_every_stanza():
    c = client()
    c._session_started = False
    send_now(c, stanza(c))
    assert c.transport.written == [] and c.waiting_queue.empty()
    assert len(c._XMLStream__queued_stanzas) == 1


async def test_with_a_coroutine_filter_out_it_takes_the_queue_which_waits_for_the_filter():
    c = client()

    async def stamp(s):
        return s

    c.add_filter("out", stamp)
    send_now(c, stanza(c))
    assert c.transport.written == [] and not c.waiting_queue.empty()
    await through_queue(c)
    await asyncio.sleep(0)
    assert len(c.transport.written) == 1


async def test_a_filter_that_drops_the_stanza_drops_it_here_too():
    c = client()
    c.add_filter("out", lambda s: None)
    send_now(c, stanza(c))
    assert c.transport.written == [] and c.plugin["xep_0198"].seq == 0


async def test_without_a_transport_it_goes_to_slixmpps_queue_not_to_a_closed_stream():
    c = client()
    c.transport = None
    assert not can_send_now(c)
    send_now(c, stanza(c))
    assert not c.waiting_queue.empty()


async def test_a_write_that_fails_is_logged_and_the_caller_goes_on(caplog):
    c = client()

    class Broken(Transport):
        def write(self, data: bytes) -> None:
            raise OSError("gone")

    c.transport = Broken()
    send_now(c, stanza(c))  # does not raise
    assert "Exception raised while sending" in caplog.text
