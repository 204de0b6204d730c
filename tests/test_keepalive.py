"""The link keepalive's decisions (vmenergy.agents.keepalive.LinkPolicy): traffic is proof of
life, a ping goes out only after a silence, and only a silence through the ping cuts the link."""

from __future__ import annotations

import select
import socket
import time

import pytest
from hypothesis import given, strategies as st

from vmenergy.agents.keepalive import Action, LinkPolicy, Transport, transport_state
from vmenergy.errors import VmeError


def test_a_quiet_link_is_pinged_after_the_silence_not_before():
    p = LinkPolicy(ping_after=55, cut_after=60)
    p.connected(100.0)
    assert p.check(154.9) is Action.NOTHING
    assert p.check(155.0) is Action.PING


def test_a_busy_link_is_never_pinged():
    p = LinkPolicy(ping_after=55, cut_after=60)
    p.connected(0.0)
    for t in range(0, 1000, 10):
        p.heard(float(t))
        assert p.check(float(t) + 9.0) is Action.NOTHING


def test_a_late_answer_on_a_link_that_keeps_delivering_is_no_failure():
    # the aggregator's case: its pong waits behind thousands of presence stanzas, which arrive
    p = LinkPolicy(ping_after=55, cut_after=60)
    p.connected(0.0)
    p.pinged(55.0)
    p.heard(80.0)  # any stanza, not the pong
    assert p.check(200.0) is Action.PING  # silent again since 80: a new ping, not a cut
    assert p.check(130.0) is Action.NOTHING


def test_a_silence_through_the_ping_cuts_the_link():
    p = LinkPolicy(ping_after=55, cut_after=60)
    p.connected(0.0)
    p.pinged(55.0)
    assert p.check(114.9) is Action.NOTHING
    assert p.check(115.0) is Action.CUT


def test_a_new_session_owes_nothing():
    p = LinkPolicy(ping_after=55, cut_after=60)
    p.connected(0.0)
    p.pinged(55.0)
    p.connected(116.0)
    assert p.check(117.0) is Action.NOTHING


@pytest.mark.parametrize("field", ["ping_after", "cut_after"])
@pytest.mark.parametrize("value", [0, -1.0])
def test_times_must_be_positive(field, value):
    with pytest.raises(VmeError) as err:
        LinkPolicy(**{field: value})
    assert err.value.path == field


@given(st.lists(st.tuples(st.sampled_from(["heard", "pinged", "connected"]), st.floats(0, 1e4)), max_size=30),
       st.floats(0, 2e4))
def test_next_check_is_when_the_answer_changes(events, now):
    """Before ``now + next_check(now)`` the policy answers as at ``now`` (so the driver's sleep
    misses nothing); at that moment it answers something else unless it already acts."""
    p = LinkPolicy(ping_after=55, cut_after=60)
    for kind, t in sorted(events, key=lambda e: e[1]):
        getattr(p, kind)(t)
    first = p.check(now)
    wait = p.next_check(now)
    if wait > 0:
        assert first is Action.NOTHING
        assert p.check(now + wait * 0.999) is Action.NOTHING
        assert p.check(now + wait + 1e-6) is not Action.NOTHING


def test_time_the_agents_own_loop_was_stalled_is_not_silence():
    # a ping at 55, then the process's loop busy for 70 s (thousands of prosumers planning their
    # devices in one round): the answer waits unread in the socket, the link is not cut for it
    p = LinkPolicy(ping_after=55, cut_after=60)
    p.connected(0.0)
    p.pinged(55.0)
    p.stalled(70.0)
    assert p.check(125.0) is Action.NOTHING
    p.heard(125.5)  # the waiting answer, read once the loop polls again
    assert p.check(170.0) is Action.NOTHING
    # a link that stays silent while the loop listens is still cut
    q = LinkPolicy(ping_after=55, cut_after=60)
    q.connected(0.0)
    q.pinged(55.0)
    q.stalled(70.0)
    assert q.check(184.9) is Action.NOTHING
    assert q.check(185.0) is Action.CUT


def test_a_stall_before_any_ping_delays_the_ping_by_the_stall():
    p = LinkPolicy(ping_after=55, cut_after=60)
    p.connected(0.0)
    p.stalled(30.0)
    assert p.check(84.9) is Action.NOTHING
    assert p.check(85.0) is Action.PING


TAKING = Transport(unacked_bytes=0, since_ack=300.0)  # everything we sent was acknowledged
NOT_TAKING = Transport(unacked_bytes=120, since_ack=61.0)  # the ping's bytes unacknowledged for 61 s


def test_an_overdue_ping_to_a_server_whose_host_takes_our_bytes_waits_instead_of_cutting():
    # the 10,000-prosumer noon burst: Prosody's kernel held every offer and the ping, its loop
    # answered minutes later; cutting then sent 10,000 reconnects into the same backlog
    p = LinkPolicy(ping_after=55, cut_after=60, hung_after=600)
    p.connected(0.0)
    p.pinged(55.0)
    assert p.check(115.0, TAKING) is Action.BUSY
    assert p.check(654.9, TAKING) is Action.BUSY
    p.heard(300.0)  # the answer, late
    assert p.check(310.0, TAKING) is Action.NOTHING


def test_a_server_silent_past_hung_after_is_cut_even_while_its_host_acknowledges():
    # a stopped or wedged server process: its kernel keeps acknowledging
    p = LinkPolicy(ping_after=55, cut_after=60, hung_after=600)
    p.connected(0.0)
    p.pinged(55.0)
    assert p.check(655.0, TAKING) is Action.CUT


def test_an_overdue_ping_whose_bytes_are_not_acknowledged_cuts_the_link():
    p = LinkPolicy(ping_after=55, cut_after=60, hung_after=600)
    p.connected(0.0)
    p.pinged(55.0)
    assert p.check(115.0, NOT_TAKING) is Action.CUT
    # unacknowledged bytes with a recent acknowledgement: a full window, still taking
    assert p.check(115.0, Transport(unacked_bytes=4096, since_ack=2.0)) is Action.BUSY


def test_without_the_kernels_view_an_overdue_ping_cuts_as_before():
    p = LinkPolicy(ping_after=55, cut_after=60)
    p.connected(0.0)
    p.pinged(55.0)
    assert p.check(115.0, None) is Action.CUT


def test_hung_after_must_not_be_shorter_than_cut_after():
    with pytest.raises(VmeError) as err:
        LinkPolicy(cut_after=60, hung_after=30)
    assert err.value.path == "hung_after"


def test_the_kernel_reports_a_silent_peer_that_still_receives_as_taking_our_bytes():
    """A real loopback connection to a peer that never reads (a server too busy to): what we
    send is acknowledged by its kernel, so the watch sees a server behind, not a dead link."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    client = socket.create_connection(listener.getsockname())
    peer, _ = listener.accept()
    try:
        client.sendall(b"<iq type='get' id='ping'><ping xmlns='urn:xmpp:ping'/></iq>" * 10)
        deadline = time.monotonic() + 10
        state = transport_state(client)
        while state is not None and state.unacked_bytes and time.monotonic() < deadline:
            select.select([], [], [], 0.01)  # the loopback acknowledgement is immediate but asynchronous
            state = transport_state(client)
        assert state is not None
        assert state.unacked_bytes == 0
        assert state.taking(60.0)
        assert LinkPolicy(ping_after=1, cut_after=1, hung_after=100, ping_sent=0.0).check(5.0, state) is Action.BUSY
    finally:
        for s in (client, peer, listener):
            s.close()


def test_the_kernels_view_of_a_closed_socket_is_unknown():
    s = socket.socket()
    s.close()
    assert transport_state(s) is None
