"""An agent's client writes what it sends in one event-loop turn to the stream in one piece
(vmenergy/agents/coalesced_writes.py): the same bytes, in order, on the stream they were sent on."""

from __future__ import annotations

import asyncio

import pytest
from slixmpp.xmlstream.xmlstream import NotConnectedError

from vmenergy.agents.coalesced_writes import coalesce_writes


class _Transport:
    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closing = False

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def is_closing(self) -> bool:
        return self.closing


class _Client:
    """What coalesce_writes uses of a slixmpp client: its transport, its loop, send_raw."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.transport = _Transport()
        self.send_raw = None


async def _turn() -> None:
    await asyncio.sleep(0)  # call_soon callbacks scheduled before this run now


async def test_the_writes_of_one_turn_reach_the_transport_as_one_write_in_order():
    c = _Client(asyncio.get_running_loop())
    coalesce_writes(c)
    coalesce_writes(c)  # idempotent
    c.send_raw("<message>1</message>")
    c.send_raw(b"<r xmlns='urn:xmpp:sm:3'/>")
    c.send_raw("<message>\u00e9</message>")
    assert c.transport.writes == []  # nothing before the turn is over
    await _turn()
    assert c.transport.writes == ["<message>1</message><r xmlns='urn:xmpp:sm:3'/><message>\u00e9</message>".encode()]
    c.send_raw("<a/>")
    await _turn()
    assert c.transport.writes[1:] == [b"<a/>"]  # a later turn is a write of its own


async def test_without_a_transport_the_sender_is_told_at_once_as_by_slixmpp():
    c = _Client(asyncio.get_running_loop())
    coalesce_writes(c)
    c.transport = None
    with pytest.raises(NotConnectedError):
        c.send_raw("<message/>")


@pytest.mark.parametrize("how", ["replaced", "closing", "gone"])
async def test_what_was_sent_on_a_stream_that_went_away_within_the_turn_is_not_written_to_another(how):
    c = _Client(asyncio.get_running_loop())
    coalesce_writes(c)
    old = c.transport
    c.send_raw("<message>old</message>")
    if how == "closing":
        old.closing = True
    else:
        c.transport = _Transport() if how == "replaced" else None
    if how == "replaced":
        c.send_raw("<stream:stream>")  # the new stream's first write, in the same turn
    await _turn()
    assert old.writes == []
    if how == "replaced":
        assert c.transport.writes == [b"<stream:stream>"]


async def test_write_now_writes_what_was_joined_at_once_and_the_turns_end_writes_nothing_twice():
    from vmenergy.agents.coalesced_writes import write_now

    c = _Client(asyncio.get_running_loop())
    coalesce_writes(c)
    c.send_raw("<message>1</message>")
    c.send_raw("<a/>")
    write_now(c)
    assert c.transport.writes == [b"<message>1</message><a/>"]
    await _turn()
    assert c.transport.writes == [b"<message>1</message><a/>"]
    c.send_raw("<message>2</message>")  # joined again, written when the turn ends
    await _turn()
    assert c.transport.writes[1:] == [b"<message>2</message>"]
