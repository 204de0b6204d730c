"""The agents' send and receive path, made cheaper without changing a byte on the wire: the
stanza an agent writes is SPADE's, the fast escape is slixmpp's, the timed-step behaviours take
no messages (bench/RESULTS.md: the agent path at half the speed of raw XMPP)."""

from __future__ import annotations

import importlib
from dataclasses import replace

import pytest
import slixmpp
from hypothesis import given
from hypothesis import strategies as st
from spade.message import Message as SpadeMessage

from tests.protocol.test_engines import NOW, offer
from vmenergy.agents.base import StepBehaviour, VmeMessage, metadata_form, protocol_stanza
from vmenergy.protocol.messages import Ack, BillLine, BillMessage, Measurement, OfferMessage
from vmenergy.runtime import xmpp_tuning as tuning
from vmenergy.wire.messages import encode, encode_element, summary, to_xml
from vmenergy.wire.stanzas import register_protocol_plugins

TOSTRING = importlib.import_module("slixmpp.xmlstream.tostring")

FO = replace(offer("ev-overnight", 1), issuer="house-1@vme.localhost")
MESSAGES = [
    Ack("flexoffer", FO.id, "accepted", None, 0),
    Ack("flexoffer", FO.id, "rejected", 'late: "start" < now & <lead> \'1 h\'', 3),
    OfferMessage("insert", FO.id, FO),
    OfferMessage("delete", FO.id, version=2),
    Measurement("m-1", FO.id, NOW // 900, (1.0, -0.5)),
    BillMessage("b-1", NOW, NOW + 86400, (BillLine("energy", "EV <night> & day", 1234, FO.id),)),
]


@pytest.fixture(scope="module")
def client():
    register_protocol_plugins()
    c = slixmpp.ClientXMPP("house-1@vme.localhost/r", "pw")
    c.register_plugin("xep_0004")  # SPADE's client has it: its metadata form is a XEP-0004 form
    return c


def _text(client, stanza) -> str:
    return TOSTRING.tostring(stanza.xml, xmlns="jabber:client", stream=client, top_level=True)


@pytest.mark.parametrize("msg", MESSAGES, ids=lambda m: type(m).__name__)
def test_protocol_stanza_is_byte_for_byte_what_spade_prepare_makes(client, msg):
    vm = VmeMessage.of("agg@vme.localhost", msg)
    vm.sender = "house-1@vme.localhost"
    spade_way = SpadeMessage.prepare(vm, client)
    spade_way.append(encode(msg))
    ours = protocol_stanza(client, "agg@vme.localhost", "house-1@vme.localhost", summary(msg), msg,
                           spade_metadata=True)
    ours["id"] = spade_way["id"]  # a fresh id each
    assert _text(client, ours) == _text(client, spade_way)


@pytest.mark.parametrize("msg", MESSAGES, ids=lambda m: type(m).__name__)
def test_a_protocol_stanza_carries_no_spade_metadata_form_by_default(client, msg):
    from vmenergy.agents.received import FORM_TAG

    ours = protocol_stanza(client, "agg@vme.localhost", "house-1@vme.localhost", summary(msg), msg)
    assert ours.xml.find(FORM_TAG) is None
    assert [el.tag for el in ours.xml] == ["{jabber:client}body", encode_element(msg).tag]
    assert ours["type"] == "chat" and ours["body"] == summary(msg)


@pytest.mark.parametrize("msg", MESSAGES, ids=lambda m: type(m).__name__)
def test_with_spade_metadata_the_form_names_the_ontology_the_types_performative_and_element(client, msg):
    from vmenergy.protocol.messages import ELEMENT_OF, PERFORMATIVE

    ours = protocol_stanza(client, "agg@vme.localhost", "house-1@vme.localhost", summary(msg), msg,
                           spade_metadata=True)
    spade = SpadeMessage.from_node(ours)  # as a SPADE agent reads it
    element = ELEMENT_OF[type(msg)]
    assert dict(spade._metadata) == {"ontology": "vmenergy", "performative": PERFORMATIVE.get(element, "inform"),
                              "vme-element": element}


def test_vme_message_prepare_takes_the_same_path(client):
    msg = MESSAGES[1]
    vm = VmeMessage.of("agg@vme.localhost", msg)
    vm.sender = "house-1@vme.localhost"
    a = vm.prepare(client)
    b = protocol_stanza(client, "agg@vme.localhost", "house-1@vme.localhost", summary(msg), msg,
                        spade_metadata=True)  # a VmeMessage carries SPADE metadata: prepare writes it
    b["id"] = a["id"]
    assert _text(client, a) == _text(client, b)


def test_each_stanza_gets_its_own_copy_of_the_metadata_form():
    a, b = metadata_form("ack"), metadata_form("ack")
    assert a is not b
    a.set("type", "changed")
    assert metadata_form("ack").get("type") == "form"


ORIGINAL_ESCAPE = getattr(TOSTRING.escape, "__vme_original__", TOSTRING.escape)


@given(st.text(alphabet=st.sampled_from("ab&<>'\"]] \u00e9\u2603"), max_size=40), st.booleans())
def test_fast_escape_is_slixmpps_escape(text, use_cdata):
    assert tuning.fast_escape(text, use_cdata) == ORIGINAL_ESCAPE(text, use_cdata)


def test_install_fast_escape_is_idempotent_and_reversible():
    was = getattr(TOSTRING.escape, "__vme_original__", None) is not None
    try:
        tuning.uninstall_fast_escape()
        assert TOSTRING.escape is ORIGINAL_ESCAPE
        assert tuning.install_fast_escape() is True
        assert tuning.install_fast_escape() is False
        assert TOSTRING.escape("a<b") == "a&lt;b"
        assert tuning.uninstall_fast_escape() is True
        assert TOSTRING.escape is ORIGINAL_ESCAPE
    finally:
        (tuning.install_fast_escape if was else tuning.uninstall_fast_escape)()


def test_timed_step_behaviours_take_no_messages():
    """SPADE queues a message in every behaviour without a template; a timed step reads none,
    so each chat line would stay in its queue for good."""
    assert not StepBehaviour("tick").match(SpadeMessage(to="a@b", body="status"))


@pytest.mark.parametrize("msg", MESSAGES, ids=lambda m: type(m).__name__)
def test_a_payloads_size_is_counted_a_little_under_its_written_length(msg):
    import xml.etree.ElementTree as ET

    from vmenergy.wire.xml import written_size

    el = ET.fromstring(to_xml(msg))
    written = len(ET.tostring(el))  # what the limit was judged by before
    assert 0.8 * written <= written_size(el) <= written


def test_the_size_of_a_big_polytope_offer_is_counted_like_its_text():
    import xml.etree.ElementTree as ET

    from tests.hostile.test_heavy_payloads import polytope_offer
    from vmenergy.wire.xml import written_size

    big = polytope_offer(100, 400)
    el = ET.fromstring(to_xml(OfferMessage("insert", big.id, big)))
    assert 0.97 * len(ET.tostring(el)) <= written_size(el) <= len(ET.tostring(el))


# -- offers written straight into XML --------------------------------------------------------


def _reference_offer_stanza(fo, op=None):
    """The offer's stanza built as before, through slixmpp's stanza objects (the oracle)."""
    from vmenergy.wire import stanzas as s
    from vmenergy.wire.xml import _put, _text

    d = fo.to_dict()
    el = s.FlexOfferElement()
    if op is not None:
        el["op"] = op
    _put(el, d, skip=("profiles", "baseline", "prices"))
    for p in d["profiles"]:
        pe = s.ProfileElement()
        _put(pe, p, skip=("slices", "total", "polytope"))
        for sl in p["slices"]:
            se = s.SliceElement()
            _put(se, sl)
            pe.append(se)
        if "total" in p:
            te = s.TotalElement()
            _put(te, p["total"])
            pe.append(te)
        if "polytope" in p:
            poly = s.PolytopeElement()
            for row, b in zip(p["polytope"]["A"], p["polytope"]["b"]):
                re_ = s.RowElement()
                re_["b"] = _text(b)
                re_["a"] = _text(row)
                poly.append(re_)
            pe.append(poly)
        el.append(pe)
    if "baseline" in d:
        be = s.BaselineElement()
        _put(be, d["baseline"])
        el.append(be)
    if "prices" in d:
        pr = s.PricesElement()
        _put(pr, d["prices"], skip=("slices",))
        for price in d["prices"]["slices"]:
            pe2 = s.PriceElement()
            _put(pe2, price)
            pr.append(pe2)
        el.append(pr)
    return el


def _examples():
    from tests.conftest import EXAMPLES
    from tests.hostile.test_heavy_payloads import polytope_offer
    from vmenergy.flexoffer import FlexOffer

    out = [FlexOffer.from_json(p.read_text()) for p in sorted(EXAMPLES.glob("*.json")) if "schedule" not in p.name]
    return out + [polytope_offer(3, 5), replace(FO, label='EV "night" <&> \u2603')]


@pytest.mark.parametrize("op", [None, "insert", "update"])
def test_an_offer_written_straight_into_xml_is_the_stanza_objects_xml(op):
    from vmenergy.wire.xml import offer_element

    for fo in _examples():
        expected = str(_reference_offer_stanza(fo, op))
        assert TOSTRING.tostring(offer_element(fo, op), xmlns="", top_level=True) == expected, fo.id


def test_to_xml_and_encode_write_the_same_text_for_every_message():
    for msg in MESSAGES + [OfferMessage("update", fo.id, fo) for fo in _examples()]:
        assert to_xml(msg) == str(encode(msg))


# -- received messages: SPADE's metadata form stays XML -------------------------------------


def test_a_received_message_keeps_its_form_as_xml_and_spade_still_reads_its_metadata(client):
    import xml.etree.ElementTree as ET

    from vmenergy.agents.received import FORM_TAG, ReceivedMessage

    msg = MESSAGES[2]
    sent = protocol_stanza(client, "agg@vme.localhost", "house-1@vme.localhost", summary(msg), msg,
                           spade_metadata=True)
    whole = TOSTRING.tostring(sent.xml, xmlns="", top_level=True)  # with its jabber:client namespace
    got = ReceivedMessage(xml=ET.fromstring(whole))
    assert not [name for name, _lang in got.plugins if name == "form"]  # no Form, no FormField objects built
    assert got.xml.find(FORM_TAG) is not None and got["body"] == summary(msg) and got["type"] == "chat"
    spade = SpadeMessage.from_node(got)
    assert [spade.get_metadata(k) for k in ("ontology", "performative", "vme-element")] == [
        "vmenergy", "propose", "flexoffer"]
    assert TOSTRING.tostring(got.xml, xmlns="", top_level=True) == whole  # nothing lost when written out again


def test_a_client_builds_received_messages_without_forms_and_without_the_form_handler(client):
    import xml.etree.ElementTree as ET

    from slixmpp import Message

    from vmenergy.agents.received import ReceivedMessage, use_received_messages

    c = slixmpp.ClientXMPP("house-2@vme.localhost/r", "pw")
    c.register_plugin("xep_0004")
    use_received_messages(c)
    use_received_messages(c)  # idempotent
    built = c._build_stanza(ET.fromstring('<message xmlns="jabber:client" to="a@b"><body>hi</body></message>'))
    assert type(built) is ReceivedMessage and isinstance(built, Message)
    assert not any(h.name == "Data Form" for h in c._XMLStream__handlers)


def _received_client():
    """An offline client set up as an agent's is for receiving (no server needed: stanzas are
    fed to it as its XML stream parser would)."""
    from vmenergy.agents import smacks
    from vmenergy.agents.received import use_received_messages

    c = slixmpp.ClientXMPP("agg@vme.localhost/r", "pw")
    c.register_plugin("xep_0004")
    smacks.enable_stream_management(c)
    use_received_messages(c)
    got: list = []
    c.add_event_handler("message", got.append)
    return c, got


def _parsed(stanza):
    """The stanza as the receiver's parser makes it: new elements, tags with their namespaces."""
    import xml.etree.ElementTree as ET

    return ET.fromstring(ET.tostring(stanza.xml))


@pytest.mark.parametrize("form", [False, True], ids=["without-form", "with-form"])
@pytest.mark.parametrize("msg", MESSAGES)
def test_a_protocol_message_takes_the_short_way_and_is_still_counted_for_stream_management(client, msg, form):
    from vmenergy.agents.received import ReceivedMessage, is_protocol_message

    c, got = _received_client()
    sm = c.plugin["xep_0198"]
    sm.enabled_in = True
    xml = _parsed(protocol_stanza(client, "agg@vme.localhost", "house-1@vme.localhost", summary(msg), msg,
                                  spade_metadata=form))
    assert is_protocol_message(xml)
    handlers = c._XMLStream__handlers
    c._XMLStream__handlers = []  # the short way matches no handler: with none left it still arrives
    try:
        c._spawn_event(xml)
    finally:
        c._XMLStream__handlers = handlers
    assert len(got) == 1 and type(got[0]) is ReceivedMessage and got[0].xml is xml
    assert sm.handled == 1


def test_on_slixmpps_way_a_protocol_message_matches_its_message_handler_alone(client):
    """What the short way skips is matching the stanza against every handler; for a protocol
    message that finds slixmpp's message handler only (also checked on connected agents)."""
    c, _got = _received_client()
    for msg, form in ((m, f) for m in MESSAGES for f in (False, True)):
        xml = _parsed(protocol_stanza(client, "agg@vme.localhost", "house-1@vme.localhost", summary(msg), msg,
                                      spade_metadata=form))
        stanza = c._build_stanza(xml)
        assert [h.name for h in c._XMLStream__handlers if h.match(stanza)] == ["IM"]


@pytest.mark.parametrize("text", [
    '<message xmlns="jabber:client" type="chat"><body>status</body></message>',  # chat, no payload
    '<message xmlns="jabber:client" type="error"><body>x</body><ack xmlns="urn:vmenergy:flexoffer:1"/>'
    '<error type="modify"/></message>',
    '<message xmlns="jabber:client"><body>x</body><ack xmlns="urn:vmenergy:flexoffer:1"/><error type="modify"/></message>',
    '<message xmlns="jabber:client"><ack xmlns="urn:vmenergy:flexoffer:1"/></message>',  # no body
    '<presence xmlns="jabber:client"><ack xmlns="urn:vmenergy:flexoffer:1"/></presence>',
])
def test_other_stanzas_take_slixmpps_way_and_raise_the_events_they_raised_before(text):
    import xml.etree.ElementTree as ET

    from vmenergy.agents.received import is_protocol_message

    assert not is_protocol_message(ET.fromstring(text))
    events = []
    for short in (True, False):
        c, got = _received_client()
        if not short:
            del c._spawn_event  # slixmpp's own, for every stanza
        seen: list = []
        for name in ("message_error", "presence"):
            c.add_event_handler(name, seen.append)
        c._spawn_event(ET.fromstring(text))
        events.append(([str(m) for m in got], [str(m) for m in seen]))
    assert events[0] == events[1]


def test_every_documented_message_is_written_straight_into_the_xml_its_stanza_object_writes():
    """Acks and the messages of scalar fields are written without slixmpp's stanza objects too
    (ElementCodec.element); the text must not change by a byte."""
    from tests.test_protocol_doc import MESSAGE_DOCS
    from vmenergy.wire.messages import CODECS, parse_message

    documented = [parse_message(block) for block in MESSAGE_DOCS]
    flat = [m for m in documented if type(m).element not in CODECS]
    assert flat and any(isinstance(m, Ack) for m in documented)
    for msg in documented + MESSAGES:
        assert to_xml(msg) == str(encode(msg)), type(msg).__name__


def test_the_servers_ack_request_is_answered_the_short_way_with_the_text_slixmpp_writes():
    import xml.etree.ElementTree as ET

    answers = []
    for short in (True, False):
        c, _got = _received_client()
        if not short:
            del c._spawn_event
        sent: list = []
        c.send_raw = sent.append
        c.transport = object()  # as if connected: the answer is written
        c.plugin["xep_0198"].handled = 41
        c._spawn_event(ET.fromstring('<r xmlns="urn:xmpp:sm:3"/>'))
        answers.append(sent)
    assert answers[0] == answers[1] == ['<a xmlns="urn:xmpp:sm:3" h="41" />']


def test_an_ack_request_takes_slixmpps_way_when_another_incoming_filter_would_see_it():
    import xml.etree.ElementTree as ET

    c, _got = _received_client()
    seen: list = []
    c.add_filter("in", lambda stanza: seen.append(stanza.name) or stanza)
    sent: list = []
    c.send_raw = sent.append
    c.transport = object()
    c._spawn_event(ET.fromstring('<r xmlns="urn:xmpp:sm:3"/>'))
    assert seen == ["r"] and sent == ['<a xmlns="urn:xmpp:sm:3" h="0" />']


@pytest.mark.parametrize("element", ['<r xmlns="urn:xmpp:sm:3"/>', '<a xmlns="urn:xmpp:sm:3" h="0"/>'])
def test_with_the_link_watch_the_servers_ack_request_and_answer_still_go_the_short_way_and_the_watch_hears_them(
        element):
    """The link watch's incoming filter only notes arrivals (smacks.ARRIVAL_ONLY): an <r/> or
    <a/> does not take slixmpp's way for it (a stanza object matched against every handler), and
    the watch still hears it."""
    import xml.etree.ElementTree as ET

    from vmenergy.agents.keepalive import Keepalive

    c, _got = _received_client()
    times = iter([10.0, 20.0])
    watch = Keepalive(c, cut=lambda: None, clock=lambda: next(times))
    watch.policy.connected(0.0)
    c._XMLStream__handlers = []  # slixmpp's way would find nothing to take it: only the short way answers
    sent: list = []
    c.send_raw = sent.append
    c.transport = object()
    c._spawn_event(ET.fromstring(element))
    assert watch.policy.last_heard == 10.0
    assert sent == (['<a xmlns="urn:xmpp:sm:3" h="0" />'] if element.startswith("<r") else [])


def _client_holding(n: int, short: bool):
    """An offline agent client with ``n`` sent stanzas held for XEP-0198 (as if sent on a live
    stream) and a list of the ``stanza_acked`` events it raises."""
    c, _got = _received_client()
    if not short:
        del c._spawn_event  # slixmpp's own, for every stanza
    sm = c.plugin["xep_0198"]
    for i in range(n):
        sm.seq += 1
        sm.unacked_queue.append((sm.seq, c.make_message(mto="a@b", mbody=f"m{i}")))
    acked: list = []
    c.add_event_handler("stanza_acked", lambda stanza: acked.append(stanza["body"]))
    return c, sm, acked


@pytest.mark.parametrize("h", ["3", "5", "0"])
def test_the_servers_ack_is_taken_the_short_way_as_slixmpp_takes_it(h):
    import xml.etree.ElementTree as ET

    outcomes = []
    for short in (True, False):
        c, sm, acked = _client_holding(5, short)
        handlers = c._XMLStream__handlers
        if short:  # the short way matches no handler: with none left it still takes the ack
            c._XMLStream__handlers = []
        c._spawn_event(ET.fromstring(f'<a xmlns="urn:xmpp:sm:3" h="{h}"/>'))
        c._XMLStream__handlers = handlers
        outcomes.append((acked, [s["body"] for _, s in sm.unacked_queue], sm.last_ack))
    assert outcomes[0] == outcomes[1]
    assert outcomes[0][0] == [f"m{i}" for i in range(int(h))]


@pytest.mark.parametrize("h", ["", "x1", "-1"])
def test_an_ack_without_a_count_takes_slixmpps_way(h):
    import xml.etree.ElementTree as ET

    from vmenergy.agents import smacks

    c, sm, acked = _client_holding(2, True)
    assert smacks.take_ack(c, ET.fromstring(f'<a xmlns="urn:xmpp:sm:3" h="{h}"/>')) is False
    assert acked == [] and len(sm.unacked_queue) == 2


def test_an_ack_takes_slixmpps_way_when_another_incoming_filter_would_see_it():
    import xml.etree.ElementTree as ET

    c, sm, acked = _client_holding(2, True)
    seen: list = []
    c.add_filter("in", lambda stanza: seen.append(stanza.name) or stanza)
    c._spawn_event(ET.fromstring('<a xmlns="urn:xmpp:sm:3" h="2"/>'))
    assert seen == ["a"] and acked == ["m0", "m1"] and not sm.unacked_queue


async def test_an_idle_inbox_waits_for_its_next_message_without_a_timer_and_a_kill_wakes_it(monkeypatch):
    """An idle agent's inbox waits with no timeout (SPADE's receive(timeout) starts a task and a
    timer for each message an idle agent gets); the message still reaches the engine, and
    stopping the agent ends the wait."""
    import asyncio

    from vmenergy.agents.base import InboxBehaviour

    def no_timers(*_a, **_k):
        raise AssertionError("the inbox waited with a timeout")

    monkeypatch.setattr(asyncio, "wait_for", no_timers)
    handled: list = []

    class Agent:
        def receiving(self, msg):
            return msg.payload

        async def handle_all(self, steps):
            handled.extend(steps)

    inbox = InboxBehaviour()
    inbox.agent, inbox.queue = Agent(), asyncio.Queue()
    ack = Ack("flexoffer", "fo-1", "accepted", None, 0)
    waiting = asyncio.ensure_future(inbox.run())
    for _ in range(5):
        await asyncio.sleep(0)
    assert not waiting.done()  # nothing queued: still waiting, not polling
    inbox.queue.put_nowait(VmeMessage(to="agg@b", sender="p@b", payload=ack))
    await waiting
    assert handled == [ack]
    waiting = asyncio.ensure_future(inbox.run())
    await asyncio.sleep(0)
    inbox.kill()
    await waiting
    assert inbox.is_killed() and handled == [ack]
