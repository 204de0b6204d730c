"""The link keepalive's decisions (vmenergy.agents.keepalive.LinkPolicy): traffic is proof of
life, a ping goes out only after a silence, and only a silence through the ping cuts the link."""

from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from vmenergy.agents.keepalive import Action, LinkPolicy
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
