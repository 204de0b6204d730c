"""Where a stanza goes that an agent sends while its stream is down (vmenergy/agents/unsent.py):
into XEP-0198's queue of unacknowledged stanzas while a resumption is ahead, to slixmpp's own
hold otherwise. The whole path, against real servers: tests/integration/test_stream_resumption.py."""

from __future__ import annotations

from slixmpp import ClientXMPP

from vmenergy.agents.unsent import FILTER_ATTR, keep, keep_unsent, negotiates_stream


def _client(sm_id=None) -> ClientXMPP:
    client = ClientXMPP("box@localhost/r", "pw")
    client.register_plugin("xep_0198")
    client.plugin["xep_0198"].sm_id = sm_id
    held: list = []
    client.send = lambda stanza, use_filters=True: held.append(stanza)  # slixmpp's hold, observed
    client.held = held
    return client


def test_while_disconnected_from_a_resumable_stream_a_stanza_joins_the_unacknowledged_queue_in_order():
    client = _client("sm-1")
    sm = client.plugin["xep_0198"]
    sm.seq = 7
    first, second = client.make_message("agg@localhost", "a"), client.make_message("agg@localhost", "b")
    keep(client, first)
    keep(client, second)
    assert list(sm.unacked_queue) == [(8, first), (9, second)] and sm.seq == 9 and client.held == []


def test_a_stanza_already_recorded_by_xep_0198_is_not_recorded_twice():
    client = _client("sm-1")
    sm = client.plugin["xep_0198"]
    stanza = client.make_message("agg@localhost", "a")
    sm.unacked_queue.append((1, stanza))
    sm.seq = 1
    keep(client, stanza)
    assert list(sm.unacked_queue) == [(1, stanza)] and sm.seq == 1


def test_without_a_resumable_stream_slixmpp_holds_the_stanza_until_a_session_starts():
    client = _client(None)
    stanza = client.make_message("agg@localhost", "a")
    keep(client, stanza)
    assert client.held == [stanza] and not client.plugin["xep_0198"].unacked_queue


def test_on_a_new_session_set_up_but_not_yet_started_slixmpp_holds_it():
    # stream management was just enabled on the new connection (a resumption had failed): the
    # acknowledgement queue there belongs to a session that will not be resumed
    client = _client("sm-2")
    client.transport = object()
    client.features.add("stream_management")
    stanza = client.make_message("agg@localhost", "a")
    keep(client, stanza)
    assert client.held == [stanza] and not client.plugin["xep_0198"].unacked_queue


def test_the_filter_lets_stanzas_through_while_connected_and_keeps_them_after():
    client = _client("sm-1")
    keep_unsent(client)
    unsent = getattr(client, FILTER_ATTR)
    keep_unsent(client)  # idempotent: the same client across reconnects keeps one filter
    assert getattr(client, FILTER_ATTR) is unsent
    stanza = client.make_message("agg@localhost", "a")
    client.transport = object()
    assert unsent(stanza) is stanza
    client.transport = None
    assert unsent(stanza) is None  # skipped by the send loop ...
    assert list(client.plugin["xep_0198"].unacked_queue)[-1][1] is stanza  # ... and kept


def test_a_failed_resumption_sends_what_was_kept_again_on_the_new_session():
    """The server restarted (kill drill): it knows no such session and answers <failed/>, and
    slixmpp clears XEP-0198's queue. What the agent kept there while its link was down is sent
    again (held until the new session starts), not lost; a successful resumption sends nothing twice."""
    client = _client("sm-1")
    keep_unsent(client)
    sm = client.plugin["xep_0198"]
    first, second = client.make_message("agg@localhost", "a"), client.make_message("agg@localhost", "b")
    keep(client, first)
    keep(client, second)
    sm._handle_failed(None)  # slixmpp's own handler: clears the queue, then raises sm_failed
    assert not sm.unacked_queue and client.held == [first, second]
    third = client.make_message("agg@localhost", "c")
    keep(client, third)
    client.event("session_resumed", None)  # this time the server resent what it had not acked
    client.event("sm_failed", None)
    assert client.held == [first, second]


def test_the_resource_binding_of_a_stream_that_died_is_dropped_not_put_back_on_the_send_queue():
    """The server-kill drill's freeze: a restarted server refused the resumption, the new stream
    died while binding, and the send loop reached the bind request without a transport. Kept, it
    went back through send(), which lets a bind request past its hold onto the send loop's own
    queue: the loop took it again at once, for ever, and the process stood still."""
    client = ClientXMPP("box@localhost/r", "pw")  # slixmpp's own send(), not an observer
    client.register_plugin("xep_0198")
    keep_unsent(client)  # the failed resumption ended the session: no sm_id to resume
    unsent = getattr(client, FILTER_ATTR)
    bind = client.make_iq_set()
    bind.enable("bind")
    assert unsent(bind) is None
    assert client.waiting_queue.qsize() == 0, "the bind request went back on the send loop's queue"
    assert not client.plugin["xep_0198"].unacked_queue


def test_stanzas_that_negotiate_a_stream_are_told_apart_from_those_a_session_carries():
    client = ClientXMPP("box@localhost/r", "pw")
    negotiation = []
    for plugin in ("bind", "session"):
        iq = client.make_iq_set()
        iq.enable(plugin)
        negotiation.append(iq)
    carried = [client.make_iq_get(queryxmlns="jabber:iq:roster"), client.make_message("agg@localhost", "a"),
               client.make_presence()]
    assert [negotiates_stream(s) for s in negotiation] == [True, True]
    assert [negotiates_stream(s) for s in carried] == [False, False, False]
