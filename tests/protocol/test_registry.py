"""Message types describe themselves once (element, ack kind, performative); every table that
maps them (wire codec, stanzas, store, agent routing) is derived from that declaration, and a new
type of scalar fields needs nothing but its class and a handler."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import pytest

from vmenergy.agents import base
from vmenergy.flexoffer import FlexOfferError
from vmenergy.protocol import messages
from vmenergy.protocol.engine import Engine, Send, handles
from vmenergy.protocol.messages import Ack, BillMessage, Message, OfferRejection
from vmenergy.store import codec
from vmenergy.wire import stanzas
from vmenergy.wire.messages import decode, encode, parse_message, summary, to_xml
from vmenergy.wire.stanzas import NS

REGISTRY = (messages._BY_ELEMENT, messages._ELEMENT_OF, messages._PERFORMATIVE, messages._ACKED)


@pytest.fixture
def scratch_registry():
    """Message types defined by a test are forgotten after it (the registry is process-wide)."""
    saved = [dict(d) for d in REGISTRY]
    yield
    for d, old in zip(REGISTRY, saved):
        d.clear()
        d.update(old)


def test_every_message_type_declares_how_it_travels_and_the_tables_are_derived_from_it():
    types = messages.message_types()
    assert {t.element for t in types} == {
        "flexoffer", "ack", "assignment", "measurement", "bill", "registration", "market-session", "bid",
        "clearing", "reservation", "activation", "rejection", "device-fault", "flex-request", "flex-reply",
        "flex-order", "flex-settlement"}
    for t in types:
        assert messages.message_type(t.element) is t
        assert base.ELEMENT_OF[t] == t.element
        assert base._PERFORMATIVE[t.element] == t.performative in messages.PERFORMATIVES
        assert messages.ACKED.get(t) == t.ack
        assert stanzas.MESSAGE_ELEMENTS[t.element].name == t.element
    # notices and acks are the only messages nobody answers
    assert {t.element for t in types if t.ack is None} == {"ack", "market-session"}
    assert set(messages.ack_kinds()) == {t.ack for t in types if t.ack}


def test_a_declaration_that_is_missing_or_clashes_is_refused_when_the_class_is_defined(scratch_registry):
    with pytest.raises(TypeError, match="must declare 'performative'"):
        @dataclass(frozen=True)
        class NoPerformative(Message):
            element = "no-performative"
            ack = None

    with pytest.raises(TypeError, match="already the element of BillMessage"):
        @dataclass(frozen=True)
        class OtherBill(Message):
            element = "bill"
            ack = None
            performative = "inform"

    with pytest.raises(TypeError, match="already the ack kind of BillMessage"):
        @dataclass(frozen=True)
        class SameAck(Message):
            element = "same-ack"
            ack = "bill"
            performative = "inform"

    with pytest.raises(TypeError, match="performative: one of the FIPA acts"):
        @dataclass(frozen=True)
        class Chatty(Message):
            element = "chatty"
            ack = None
            performative = "gossip"

    with pytest.raises(TypeError, match="an XML local name"):
        @dataclass(frozen=True)
        class Shouting(Message):
            element = "SHOUT"
            ack = None
            performative = "inform"

    assert messages.message_type("bill") is BillMessage and "no-performative" not in stanzas.MESSAGE_ELEMENTS


def test_adding_a_message_type_is_one_class_plus_its_handler(scratch_registry):
    """What docs/architecture.md shows: a new acknowledged message of scalar fields travels,
    is stored and is handled with no change to the codec, the store or the agents."""

    @dataclass(frozen=True, slots=True)
    class Curtail(Message):
        element = "curtail"
        ack = "curtail"
        performative = "request"

        curtail_id: str
        kw: float
        minutes: int
        note: Optional[str] = None

        def key(self) -> tuple:
            return ("curtail", self.curtail_id)

        @property
        def ref(self) -> str:
            return self.curtail_id

    class Device(Engine):
        role = "device"

        @handles(Curtail)
        def _curtail(self, sender: str, msg: Curtail, now: int):
            self.ledger.put("curtailed", msg.curtail_id, msg.kw)
            return [], None if msg.kw <= 5 else f"at most 5 kW (asked {msg.kw:g})"

    msg = Curtail("c-1", 3.5, 30)
    text = to_xml(msg)
    assert text == f'<curtail xmlns="{NS}" curtail-id="c-1" kw="3.5" minutes="30" />'
    assert parse_message(text) == msg
    assert parse_message(to_xml(Curtail("c-2", 1.0, 5, "why"))).note == "why"
    assert codec.loads(codec.dumps(msg)) == msg
    assert base.ELEMENT_OF[Curtail] == "curtail" and base._PERFORMATIVE["curtail"] == "request"
    assert summary(msg) == "curtail c-1"

    device = Device("device@localhost")
    (ack,) = [e.msg for e in device.receive("grid@localhost", msg, 0) if isinstance(e, Send)]
    assert ack == Ack("curtail", "c-1", "accepted")
    (ack,) = [e.msg for e in device.receive("grid@localhost", Curtail("c-3", 9.0, 5), 0) if isinstance(e, Send)]
    assert not ack.accepted and ack.reason == "at most 5 kW (asked 9)"
    # the sender keeps it until acked, like every acknowledged message
    grid = Engine("grid@localhost")
    assert [type(e) for e in grid.send_reliable("device@localhost", msg, 0)] == [Send]
    grid.receive("device@localhost", Ack("curtail", "c-1", "accepted"), 1)
    assert not grid.pending()
    # strict on the way in, errors name the field
    with pytest.raises(FlexOfferError) as info:
        parse_message(f'<curtail xmlns="{NS}" curtail-id="c-1" kw="3.5"/>')
    assert info.value.path == "minutes"
    with pytest.raises(FlexOfferError) as info:
        parse_message(f'<curtail xmlns="{NS}" curtail-id="c-1" kw="3.5" minutes="3" colour="red"/>')
    assert info.value.path == "colour"


def test_a_message_type_the_flat_codec_cannot_carry_says_which_field(scratch_registry):
    @dataclass(frozen=True, slots=True)
    class Series(Message):
        element = "series"
        ack = None
        performative = "inform"

        values: tuple

        def key(self) -> tuple:
            return ("series",)

    with pytest.raises(TypeError, match=r"Series\.values: .* hand-written codec"):
        encode(Series((1.0,)))


def test_an_engine_answers_a_message_type_it_has_no_handler_for_with_a_reason():
    device = Engine("device@localhost")
    out = device.receive("agg@localhost", OfferRejection("fo-1", 0, "late"), 0)
    (ack,) = [e.msg for e in out if isinstance(e, Send)]
    assert not ack.accepted and ack.reason == "a node does not take OfferRejection messages"


def test_sending_a_notice_reliably_is_refused():
    with pytest.raises(TypeError, match="Ack is not acknowledged"):
        Engine("a@localhost").send_reliable("b@localhost", Ack("bill", "b-1", "accepted"), 0)


def test_the_rejection_message_round_trips_on_the_wire_and_on_a_slixmpp_message():
    from slixmpp import Message as XmppMessage
    from slixmpp.xmlstream import ET

    msg = OfferRejection("fo-ev-17", 2, "not assigned in time")
    text = to_xml(msg)
    assert text == (f'<rejection xmlns="{NS}" offer-id="fo-ev-17" version="2" reason="not assigned in time" />')
    assert parse_message(text) == msg
    stanzas.register_protocol_plugins()
    carrier = XmppMessage()
    carrier["to"] = "house17@vme.localhost"
    carrier["body"] = summary(msg)
    carrier.append(encode(msg))
    received = XmppMessage(xml=ET.fromstring(str(carrier)))
    assert decode(received["vme_rejection"]) == msg
    assert received["body"] == "offer fo-ev-17 (v2) rejected: not assigned in time"
    for bad, path in ((f'<rejection xmlns="{NS}" offer-id="fo-1" version="0"/>', "reason"),
                      (f'<rejection xmlns="{NS}" offer-id="fo-1" version="-1" reason="x"/>', "version"),
                      (f'<rejection xmlns="{NS}" version="0" reason="x"/>', "offer_id")):
        with pytest.raises(FlexOfferError) as info:
            parse_message(bad)
        assert info.value.path == path


def test_the_store_decodes_exactly_the_record_types_the_engines_declare():
    declared = {t.record for e in codec.ENGINES for t in e.tables}
    assert set(codec.RECORDS.values()) <= declared
    assert {c.__name__ for c in codec.RECORDS.values()} == {
        "OutboxEntry", "ProsumerOffer", "DefaultRun", "AggOffer", "AggregateRecord", "SessionRecord", "BidRecord", "OrderRecord",
        "SteeringRecord", "DsoRequest", "DsoReply", "DsoOrder", "FlexReplyRecord"}
    with pytest.raises(TypeError, match="not a record type"):
        codec.dumps(object.__new__(type("Stray", (), {})))
