"""When an agent asks the server to acknowledge what it sent (XEP-0198, vmenergy/agents/stream_acks.py):
once a burst of sending is over, not after every loop turn that sent."""

from __future__ import annotations

import asyncio
import xml.etree.ElementTree as ET

import pytest
import slixmpp

from vmenergy.agents import smacks
from vmenergy.agents.received import use_received_messages
from vmenergy.agents.stream_acks import BurstAcks

REQUEST = '<r xmlns="urn:xmpp:sm:3" />'


def _client(quiet: float):
    """An offline agent client with stream management on, as after <enabled/>, and what it writes."""
    c = slixmpp.ClientXMPP("home@vme.localhost/r", "pw")
    smacks.enable_stream_management(c)
    use_received_messages(c)
    c._vme_burst_acks.quiet = quiet
    sm = c.plugin["xep_0198"]
    sm.enabled_in = sm.enabled_out = True
    written: list[str] = []
    c.send_raw = written.append
    c.transport = object()  # as if connected
    return c, sm, written


def _send(c, i: int) -> None:
    """What slixmpp does with a stanza it sends, up to writing it: its out_sync filters (XEP-0198
    holds it there, BurstAcks notes it)."""
    stanza = c.make_message(mto="agg@vme.localhost", mbody=f"m{i}")
    for f in c._XMLStream__filters["out_sync"]:
        stanza = f(stanza)


async def _until(test, what: str) -> None:
    for _ in range(10_000):
        if test():
            return
        await asyncio.sleep(0.001)
    raise AssertionError(f"never: {what}")


async def test_an_agent_that_keeps_sending_one_stanza_a_turn_asks_for_no_ack_until_its_window():
    c, sm, written = _client(quiet=3600)
    for i in range(5):
        _send(c, i)
        await asyncio.sleep(0)  # the next loop turn: the old BurstAcks asked here, every time
    assert REQUEST not in written and len(sm.unacked_queue) == 5


async def test_once_sending_stops_one_request_covers_the_burst_and_the_answer_empties_the_queue():
    c, sm, written = _client(quiet=0.01)
    for i in range(5):
        _send(c, i)
        await asyncio.sleep(0)
    await _until(lambda: REQUEST in written, "an ack request once sending stopped")
    assert written.count(REQUEST) == 1
    c._spawn_event(ET.fromstring('<a xmlns="urn:xmpp:sm:3" h="5"/>'))
    assert not sm.unacked_queue


async def test_what_an_answer_leaves_held_is_asked_for_again():
    c, sm, written = _client(quiet=0.01)
    _send(c, 0)
    await _until(lambda: REQUEST in written, "the first request")
    _send(c, 1)  # sent while the request is outstanding: not asked for at once
    assert written.count(REQUEST) == 1
    c._spawn_event(ET.fromstring('<a xmlns="urn:xmpp:sm:3" h="1"/>'))  # covers the first only
    await _until(lambda: written.count(REQUEST) == 2, "a request for the stanza still held")
    c._spawn_event(ET.fromstring('<a xmlns="urn:xmpp:sm:3" h="2"/>'))
    assert not sm.unacked_queue


@pytest.mark.parametrize("quiet", [-1, "0.2", True, float("nan")])
def test_the_quiet_time_is_a_number_of_seconds(quiet):
    c = slixmpp.ClientXMPP("home@vme.localhost/r", "pw")
    c.register_plugin("xep_0198")
    with pytest.raises(ValueError, match="quiet"):
        BurstAcks(c, quiet)
