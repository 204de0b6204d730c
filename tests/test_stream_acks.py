"""When an agent's client asks the server for XEP-0198 acks (vmenergy/agents/stream_acks.py): at
the end of a burst, and only on a stream whose stream management the server has confirmed."""

from __future__ import annotations

import asyncio

from slixmpp import ClientXMPP
from slixmpp.plugins.xep_0198 import stanza as sm_stanza

from vmenergy.agents import smacks


class _Wire:
    """The client's transport: what it writes."""

    def __init__(self) -> None:
        self.written: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def requests(self) -> int:
        return sum(chunk.count(b"<r ") for chunk in self.written)


def _client() -> tuple[ClientXMPP, _Wire]:
    client = ClientXMPP("box@localhost/r", "pw")
    smacks.enable_stream_management(client)
    wire = _Wire()
    client.transport = wire
    return client, wire


def _through_filters(client: ClientXMPP, stanza) -> None:
    """What slixmpp's send loop does to a stanza before writing it (XEP-0198 records it there)."""
    for f in client._XMLStream__filters["out_sync"]:
        stanza = f(stanza)


async def _turn_ends() -> None:
    await asyncio.sleep(0)


async def test_no_ack_is_asked_for_between_a_resume_request_and_the_servers_answer():
    """A restarted server refuses the resumption, and the stream it answers on is not bound:
    Prosody closes it on an <r/> (unsupported-stanza-type). slixmpp marks stream management on
    when it sends <resume/>, with the stanzas kept while the link was down in its queue."""
    client, wire = _client()
    sm = client.plugin["xep_0198"]
    sm.sm_id, sm.seq = "sm-1", 1
    sm.unacked_queue.append((1, client.make_message("agg@localhost", "kept while down")))
    resume = sm_stanza.Resume(client)
    resume["h"], resume["previd"] = 0, "sm-1"
    _through_filters(client, resume)
    assert sm.enabled_out  # slixmpp's view once <resume/> is on its way
    await _turn_ends()
    assert wire.requests() == 0, "an ack request went out before the server answered the resumption"
    sm._handle_failed(None)  # the answer: no such session
    await _turn_ends()
    assert wire.requests() == 0


async def test_a_burst_on_a_confirmed_stream_ends_with_one_ack_request():
    client, wire = _client()
    sm = client.plugin["xep_0198"]
    _through_filters(client, sm_stanza.Enable(client))
    sm._handle_enabled(sm_stanza.Enabled(client))  # the server's <enabled/>
    for text in ("a", "b", "c"):
        _through_filters(client, client.make_message("agg@localhost", text))
    await _turn_ends()
    assert wire.requests() == 1 and len(sm.unacked_queue) == 3
