"""XML codec of the agent protocol messages (:mod:`vmenergy.protocol.messages`).

Same rules as the flex-offer codec: strict (unknown attributes/elements refused), one exception
type (:class:`FlexOfferError` with a field path), times ISO 8601 UTC on the wire. :func:`summary`
gives the one-line human-readable ``<body/>`` that rides along so a person in any XMPP client can
follow the traffic.

The codec is a table: one :class:`ElementCodec` (encode, decode) per element written by hand, for
the elements with children, times or amounts; any other registered message type travels as a flat
element whose attributes are its fields (:func:`vmenergy.wire.stanzas.flat_fields`), so a new
message type of scalar fields needs no code here.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Any, Callable, Optional, Union

from slixmpp.xmlstream import ElementBase
from slixmpp.xmlstream import tostring as xml_text

from vmenergy.flexoffer import FlexOfferError
from vmenergy.flexoffer.errors import DOCUMENT
from vmenergy.flexoffer.jsontext import guard as _guard, resolution_field
from vmenergy.flexoffer.timeutil import DEFAULT_RESOLUTION, format_utc, parse_utc, seconds_to_interval
from vmenergy.protocol.messages import (
    Ack,
    ActivationMessage,
    AssignmentMessage,
    BidMessage,
    BillMessage,
    BillLine,
    Clearing,
    FlexOrderMessage,
    FlexReplyMessage,
    FlexRequestMessage,
    MarketSessionNotice,
    Measurement,
    Message,
    OfferMessage,
    Registration,
    ReservationMessage,
    message_type,
)
from vmenergy.settlement.money import format_eur

from .stanzas import (
    NS,
    AckElement,
    ActivationElement,
    BidElement,
    BillElement,
    BillLineElement,
    ClearingElement,
    FlexOfferElement,
    FlexOrderElement,
    FlexReplyElement,
    FlexRequestElement,
    MarketSessionElement,
    MeasurementElement,
    RegistrationElement,
    ReservationElement,
    flat_fields,
    flat_stanza,
)
from .xml import (
    MAX_DEPTH,
    _attrs,
    _children,
    _element,
    _energy_text,
    _local,
    _single,
    _value,
    offer_element,
    offer_to_stanza,
    parse_element,
    read_flexoffer,
    schedule_from_element,
    schedule_to_stanza,
    too_deep,
)

__all__ = ["encode", "encode_element", "decode", "parse_message", "to_xml", "summary"]

_AMOUNT = re.compile(r"-?\d{1,15}(\.\d{1,2})?\Z")


# ------------------------------------------------------------------------------------------
# helpers


def _num(x: float) -> str:
    return repr(float(x))


def _cents(value: object, path: str) -> int:
    if not isinstance(value, str) or not _AMOUNT.match(value.strip()):
        raise FlexOfferError(path, f"not an amount with at most 2 decimals: {value!r}")
    text = value.strip()
    neg = text.startswith("-")
    whole, _, frac = text.lstrip("-").partition(".")
    cents = int(whole) * 100 + int((frac + "00")[:2])
    return -cents if neg else cents


def _require(d: dict, *keys: str) -> None:
    for k in keys:
        if k not in d:
            raise FlexOfferError(k, "required")


def _interval(d: dict, key: str, res: int) -> int:
    value = d[key]
    return seconds_to_interval(parse_utc(value, key), res, key)


# ------------------------------------------------------------------------------------------
# encode / decode, one pair per hand-written element

_S, _F, _I = "s", "f", "i"


def _encode_offer(msg: OfferMessage) -> ElementBase:
    if msg.op == "delete":
        el = FlexOfferElement()
        el["op"] = "delete"
        el["id"] = msg.offer_id
        if msg.version:
            el["version"] = str(msg.version)
        return el
    return offer_to_stanza(msg.offer, op=msg.op)  # type: ignore[arg-type]


def _offer_element(msg: OfferMessage) -> ET.Element:
    if msg.op == "delete":
        return _encode_offer(msg).xml
    return offer_element(msg.offer, op=msg.op)  # type: ignore[arg-type]


def _decode_offer(x: ET.Element) -> OfferMessage:
    if x.get("op") == "delete":
        d = _attrs(x, {"op": _S, "id": _S, "version": _I}, "")
        _children(x, "", {})
        _require(d, "id")
        return OfferMessage("delete", d["id"], version=d.get("version", 0))
    op, offer = read_flexoffer(x)
    if op is None:
        raise FlexOfferError("op", "required on a message (insert, update or delete)")
    return OfferMessage(op, offer.id, offer)


def _encode_ack(msg: Ack) -> ElementBase:
    return AckElement(xml=_ack_element(msg))


def _ack_element(msg: Ack) -> ET.Element:
    # written straight to XML (the stanza object wraps it): an ack is half of every exchange, and
    # slixmpp's attribute dispatch was half of building its stanza (4.7 of ~10 us, against 0.4;
    # bench/bench_stanza_path.py)
    attrs = {"kind": msg.kind, "ref": msg.ref, "status": msg.status}
    if msg.reason:
        attrs["reason"] = msg.reason
    if msg.version is not None:
        attrs["version"] = str(msg.version)
    return ET.Element(_ACK_TAG, attrs)


_ACK_TAG = AckElement.tag_name()


def _decode_ack(x: ET.Element) -> Ack:
    d = _attrs(x, {"kind": _S, "ref": _S, "status": _S, "reason": _S, "version": _I}, "")
    _children(x, "", {})
    _require(d, "kind", "ref", "status")
    return Ack(d["kind"], d["ref"], d["status"], d.get("reason"), d.get("version"))


def _encode_assignment(msg: AssignmentMessage) -> ElementBase:
    return schedule_to_stanza(msg.schedule)


def _decode_assignment(x: ET.Element) -> AssignmentMessage:
    return AssignmentMessage(schedule_from_element(x))


def _encode_measurement(msg: Measurement) -> ElementBase:
    el = MeasurementElement()
    el["id"] = msg.measurement_id
    el["offer-id"] = msg.offer_id
    el["start"] = format_utc(msg.start * msg.resolution)
    if msg.resolution != DEFAULT_RESOLUTION:
        el["resolution"] = str(msg.resolution)
    el["energy"] = " ".join(_num(e) for e in msg.energy)
    return el


def _decode_measurement(x: ET.Element) -> Measurement:
    d = _attrs(x, {"id": _S, "offer-id": _S, "start": _S, "resolution": _I}, "")
    energy = _single(_children(x, "", {"energy": _energy_text})["energy"], "", "energy")
    _require(d, "id", "offer_id", "start")
    if energy is None:
        raise FlexOfferError("energy", "required")
    res = resolution_field(d)
    return Measurement(d["id"], d["offer_id"], _interval(d, "start", res), tuple(energy), res)


def _encode_bill(msg: BillMessage) -> ElementBase:
    el = BillElement()
    el["id"] = msg.bill_id
    el["period-start"] = format_utc(msg.period_start)
    el["period-end"] = format_utc(msg.period_end)
    el["currency"] = msg.currency
    el["total"] = format_eur(msg.total_cents)
    for line in msg.lines:
        le = BillLineElement()
        le["kind"] = line.code  # the wire calls a line's code its kind
        le["amount"] = format_eur(line.amount_cents)
        if line.offer_id is not None:
            le["offer-id"] = line.offer_id
        le["description"] = line.description
        el.append(le)
    return el


def _decode_bill(x: ET.Element) -> BillMessage:
    d = _attrs(x, {"id": _S, "period-start": _S, "period-end": _S, "currency": _S, "total": _S}, "")
    _require(d, "id", "period_start", "period_end")
    lines = _children(x, "", {"line": _bill_line})["line"]
    bill = BillMessage(d["id"], parse_utc(d["period_start"], "period_start"),
                       parse_utc(d["period_end"], "period_end"), tuple(lines), d.get("currency", "EUR"))
    if "total" in d and _cents(d["total"], "total") != bill.total_cents:
        raise FlexOfferError("total", f"{d['total']} differs from the sum of the lines {format_eur(bill.total_cents)}")
    return bill


def _bill_line(el: ET.Element, path: str) -> BillLine:
    d = _attrs(el, {"kind": _S, "amount": _S, "offer-id": _S}, path)
    if len(el):
        raise FlexOfferError(path, "<line> holds its description as text, no elements")
    for k in ("kind", "amount"):
        if k not in d:
            raise FlexOfferError(f"{path}.{k}", "required")
    return BillLine(d["kind"], (el.text or "").strip(), _cents(d["amount"], f"{path}.amount"), d.get("offer_id"))


def _encode_registration(msg: Registration) -> ElementBase:
    el = RegistrationElement()
    el["op"], el["participant"], el["role"] = msg.op, msg.participant, msg.role
    if msg.zone is not None:
        el["zone"] = msg.zone
    return el


def _decode_registration(x: ET.Element) -> Registration:
    d = _attrs(x, {"op": _S, "participant": _S, "role": _S, "zone": _S}, "")
    _children(x, "", {})
    _require(d, "op", "participant")
    return Registration(d["op"], d["participant"], d.get("role", "both"), d.get("zone"))


def _encode_session(msg: MarketSessionNotice) -> ElementBase:
    el = MarketSessionElement()
    el["id"], el["state"], el["mechanism"] = msg.session_id, msg.state, msg.mechanism
    el["gate-closure"] = format_utc(msg.gate_closure)
    el["delivery-start"] = format_utc(msg.delivery_start * msg.resolution)
    el["delivery-end"] = format_utc(msg.delivery_end * msg.resolution)
    if msg.resolution != DEFAULT_RESOLUTION:
        el["resolution"] = str(msg.resolution)
    el["currency"] = msg.currency
    return el


def _decode_session(x: ET.Element) -> MarketSessionNotice:
    spec = {"id": _S, "state": _S, "mechanism": _S, "gate-closure": _S, "delivery-start": _S,
            "delivery-end": _S, "resolution": _I, "currency": _S}
    d = _attrs(x, spec, "")
    _children(x, "", {})
    _require(d, "id", "state", "mechanism", "gate_closure", "delivery_start", "delivery_end")
    res = resolution_field(d)
    return MarketSessionNotice(
        d["id"], d["state"], d["mechanism"], parse_utc(d["gate_closure"], "gate_closure"),
        _interval(d, "delivery_start", res), _interval(d, "delivery_end", res), res, d.get("currency", "EUR"),
    )


def _encode_bid(msg: BidMessage) -> ElementBase:
    el = BidElement()
    el["id"], el["session"], el["side"] = msg.bid_id, msg.session_id, msg.side
    res = msg.resolution
    for key, attr in (("volume", "volume"), ("price", "price"), ("activation_price", "activation-price")):
        if getattr(msg, key) is not None:
            el[attr] = _num(getattr(msg, key))
    if msg.expiry is not None:
        el["expiry"] = format_utc(msg.expiry)
    for key in ("start", "end"):
        if getattr(msg, key) is not None:
            el[key] = format_utc(getattr(msg, key) * res)
    if msg.order_type != "energy":
        el["type"] = msg.order_type
    if res != DEFAULT_RESOLUTION:
        el["resolution"] = str(res)
    if msg.offer is not None:
        el.append(offer_to_stanza(msg.offer))
    return el


def _decode_bid(x: ET.Element) -> BidMessage:
    spec = {"id": _S, "session": _S, "side": _S, "volume": _F, "price": _F, "activation-price": _F,
            "expiry": _S, "start": _S, "end": _S, "type": _S, "resolution": _I}
    d = _attrs(x, spec, "")
    kids = _children(x, "", {"flexoffer": lambda e, p: read_flexoffer(e)[1]})
    offer = _single(kids["flexoffer"], "", "flexoffer")
    _require(d, "id", "session", "side")
    res = resolution_field(d)
    return BidMessage(
        d["id"], d["session"], d["side"], offer, d.get("volume"), d.get("price"), d.get("activation_price"),
        parse_utc(d["expiry"], "expiry") if "expiry" in d else None,
        _interval(d, "start", res) if "start" in d else None,
        _interval(d, "end", res) if "end" in d else None,
        d.get("type", "energy"), res,
    )


def _encode_clearing(msg: Clearing) -> ElementBase:
    el = ClearingElement()
    el["session"], el["bid"], el["status"] = msg.session_id, msg.bid_id, msg.status
    el["volume"] = _num(msg.volume)
    if msg.price is not None:
        el["price"] = _num(msg.price)
    if msg.clearing_price is not None:
        el["clearing-price"] = _num(msg.clearing_price)
    if msg.amount is not None:
        el["amount"] = _num(msg.amount)
    if msg.reason:
        el["reason"] = msg.reason
    if msg.schedule is not None:
        el.append(schedule_to_stanza(msg.schedule))
    return el


def _decode_clearing(x: ET.Element) -> Clearing:
    spec = {"session": _S, "bid": _S, "status": _S, "volume": _F, "price": _F, "clearing-price": _F,
            "amount": _F, "reason": _S}
    d = _attrs(x, spec, "")
    kids = _children(x, "", {"assignment": lambda e, p: schedule_from_element(e)})
    schedule = _single(kids["assignment"], "", "assignment")
    _require(d, "session", "bid", "status")
    return Clearing(d["session"], d["bid"], d["status"], d.get("volume", 0.0), d.get("price"), d.get("reason"),
                    schedule, d.get("clearing_price"), d.get("amount"))


def _encode_reservation(msg: ReservationMessage) -> ElementBase:
    el = ReservationElement()
    el["id"], el["session"], el["bid"] = msg.reservation_id, msg.session_id, msg.bid_id
    el["start"] = format_utc(msg.start * msg.resolution)
    el["end"] = format_utc(msg.end * msg.resolution)
    el["volume"], el["price"] = _num(msg.volume), _num(msg.price)
    if msg.reservation_type != "energy":
        el["type"] = msg.reservation_type
    if msg.resolution != DEFAULT_RESOLUTION:
        el["resolution"] = str(msg.resolution)
    return el


def _decode_reservation(x: ET.Element) -> ReservationMessage:
    spec = {"id": _S, "session": _S, "bid": _S, "start": _S, "end": _S, "volume": _F, "price": _F, "type": _S,
            "resolution": _I}
    d = _attrs(x, spec, "")
    _children(x, "", {})
    _require(d, "id", "session", "bid", "start", "end", "volume", "price")
    res = resolution_field(d)
    return ReservationMessage(d["id"], d["session"], d["bid"], _interval(d, "start", res), _interval(d, "end", res),
                              d["volume"], d["price"], d.get("type", "energy"), res)


def _encode_activation(msg: ActivationMessage) -> ElementBase:
    el = ActivationElement()
    el["id"], el["reservation"] = msg.activation_id, msg.reservation_id
    el["start"] = format_utc(msg.start * msg.resolution)
    el["end"] = format_utc(msg.end * msg.resolution)
    el["volume"] = _num(msg.volume)
    if msg.resolution != DEFAULT_RESOLUTION:
        el["resolution"] = str(msg.resolution)
    return el


def _decode_activation(x: ET.Element) -> ActivationMessage:
    spec = {"id": _S, "reservation": _S, "start": _S, "end": _S, "volume": _F, "resolution": _I}
    d = _attrs(x, spec, "")
    _children(x, "", {})
    _require(d, "id", "reservation", "start", "end", "volume")
    res = resolution_field(d)
    return ActivationMessage(d["id"], d["reservation"], _interval(d, "start", res), _interval(d, "end", res),
                             d["volume"], res)


def _numbers_text(el: ET.Element, path: str) -> list:
    """A child holding a space-separated list of kWh per interval (``<max>``, ``<baseline>``...)."""
    name = _local(el, path)
    if el.attrib:
        raise FlexOfferError(path, f"<{name}> takes no attributes")
    if len(el):
        raise FlexOfferError(path, f"<{name}> holds a space-separated list of numbers, no elements")
    return _value(el.text or "", "l", path)


def _series_child(x: ET.Element, kids: dict, name: str, required: bool = True) -> Optional[list]:
    values = _single(kids[name], "", name)
    if values is None and required:
        raise FlexOfferError(name, "required")
    return values


def _encode_flex_request(msg: FlexRequestMessage) -> ElementBase:
    el = FlexRequestElement()
    res = msg.resolution
    el["id"], el["point"] = msg.request_id, msg.point
    el["start"] = format_utc(msg.start * res)
    el["price"] = _num(msg.price)
    el["respond-before"] = format_utc(msg.respond_before)
    if res != DEFAULT_RESOLUTION:
        el["resolution"] = str(res)
    el["max"] = " ".join(_num(v) for v in msg.max_kwh)
    if msg.min_kwh is not None:
        el["min"] = " ".join(_num(v) for v in msg.min_kwh)
    return el


def _decode_flex_request(x: ET.Element) -> FlexRequestMessage:
    d = _attrs(x, {"id": _S, "point": _S, "start": _S, "price": _F, "respond-before": _S, "resolution": _I}, "")
    kids = _children(x, "", {"max": _numbers_text, "min": _numbers_text})
    _require(d, "id", "point", "start", "price", "respond_before")
    res = resolution_field(d)
    upper = _series_child(x, kids, "max")
    lower = _series_child(x, kids, "min", required=False)
    return FlexRequestMessage(d["id"], d["point"], _interval(d, "start", res), tuple(upper or ()), d["price"],
                              parse_utc(d["respond_before"], "respond_before"),
                              None if lower is None else tuple(lower), res)


def _encode_flex_reply(msg: FlexReplyMessage) -> ElementBase:
    el = FlexReplyElement()
    res = msg.resolution
    el["id"], el["request"], el["point"] = msg.reply_id, msg.request_id, msg.point
    el["start"] = format_utc(msg.start * res)
    if res != DEFAULT_RESOLUTION:
        el["resolution"] = str(res)
    el["baseline"] = " ".join(_num(v) for v in msg.baseline)
    el["committed"] = " ".join(_num(v) for v in msg.committed)
    for fo in msg.offers:
        el.append(offer_to_stanza(fo))
    return el


def _decode_flex_reply(x: ET.Element) -> FlexReplyMessage:
    d = _attrs(x, {"id": _S, "request": _S, "point": _S, "start": _S, "resolution": _I}, "")
    kids = _children(x, "", {"baseline": _numbers_text, "committed": _numbers_text,
                             "flexoffer": lambda e, p: read_flexoffer(e)[1]})
    _require(d, "id", "request", "point", "start")
    res = resolution_field(d)
    baseline = _series_child(x, kids, "baseline")
    committed = _series_child(x, kids, "committed")
    return FlexReplyMessage(d["id"], d["request"], d["point"], _interval(d, "start", res), tuple(baseline or ()),
                            tuple(committed or ()), tuple(kids["flexoffer"]), res)


def _encode_flex_order(msg: FlexOrderMessage) -> ElementBase:
    el = FlexOrderElement()
    el["id"], el["reply"], el["point"], el["status"] = msg.order_id, msg.reply_id, msg.point, msg.status
    el["ordered"], el["price"] = _num(msg.ordered_kwh), _num(msg.price)
    if msg.reason:
        el["reason"] = msg.reason
    for s in msg.schedules:
        el.append(schedule_to_stanza(s))
    return el


def _decode_flex_order(x: ET.Element) -> FlexOrderMessage:
    d = _attrs(x, {"id": _S, "reply": _S, "point": _S, "status": _S, "ordered": _F, "price": _F, "reason": _S}, "")
    kids = _children(x, "", {"assignment": lambda e, p: schedule_from_element(e)})
    _require(d, "id", "reply", "point", "status")
    return FlexOrderMessage(d["id"], d["reply"], d["point"], d["status"], tuple(kids["assignment"]),
                            d.get("ordered", 0.0), d.get("price", 0.0), d.get("reason"))


# ------------------------------------------------------------------------------------------
# the table


@dataclass(frozen=True)
class ElementCodec:
    """How one message type becomes its element and back."""

    encode: Callable[[Any], ElementBase]
    decode: Callable[[ET.Element], Message]
    #: Writes the bare element directly, the same XML as ``encode(msg).xml``, where building the
    #: stanza object is the cost (offers: about 60 us of an agent's send path; acks, and the
    #: messages of scalar fields, about 5 us).
    element: Optional[Callable[[Any], ET.Element]] = None


#: The hand-written codecs, by element name.
CODECS: dict[str, ElementCodec] = {
    OfferMessage.element: ElementCodec(_encode_offer, _decode_offer, _offer_element),
    Ack.element: ElementCodec(_encode_ack, _decode_ack, _ack_element),
    AssignmentMessage.element: ElementCodec(_encode_assignment, _decode_assignment),
    Measurement.element: ElementCodec(_encode_measurement, _decode_measurement),
    BillMessage.element: ElementCodec(_encode_bill, _decode_bill),
    Registration.element: ElementCodec(_encode_registration, _decode_registration),
    MarketSessionNotice.element: ElementCodec(_encode_session, _decode_session),
    BidMessage.element: ElementCodec(_encode_bid, _decode_bid),
    Clearing.element: ElementCodec(_encode_clearing, _decode_clearing),
    ReservationMessage.element: ElementCodec(_encode_reservation, _decode_reservation),
    ActivationMessage.element: ElementCodec(_encode_activation, _decode_activation),
    FlexRequestMessage.element: ElementCodec(_encode_flex_request, _decode_flex_request),
    FlexReplyMessage.element: ElementCodec(_encode_flex_reply, _decode_flex_reply),
    FlexOrderMessage.element: ElementCodec(_encode_flex_order, _decode_flex_order),
}


def _flat_codec(message_type: type) -> ElementCodec:
    """The codec of a message type of scalar fields: one attribute per field (None left out)."""
    fields = flat_fields(message_type)
    stanza = flat_stanza(message_type)
    spec = {f.attribute: f.kind for f in fields}

    tag = stanza.tag_name()

    def flat_element(msg: Message) -> ET.Element:
        # written straight to XML, as slixmpp would write the stanza's attributes (it drops an
        # attribute set to ""); the stanza object wraps it
        attrs = {}
        for f in fields:
            value = getattr(msg, f.name)
            if value is not None:
                text = _num(value) if f.kind == _F else str(value)
                if text:
                    attrs[f.attribute] = text
        return ET.Element(tag, attrs)

    def encode_flat(msg: Message) -> ElementBase:
        return stanza(xml=flat_element(msg))

    def decode_flat(x: ET.Element) -> Message:
        d = _attrs(x, spec, "")
        _children(x, "", {})
        _require(d, *(f.name for f in fields if f.required))
        return message_type(**d)

    return ElementCodec(encode_flat, decode_flat, flat_element)


_FLAT: dict[type, ElementCodec] = {}


def codec_of(message_type: type) -> ElementCodec:
    """The codec of a registered message type: hand-written, or derived from its fields."""
    codec = CODECS.get(message_type.element)  # type: ignore[attr-defined]
    if codec is None:
        codec = _FLAT.get(message_type)
        if codec is None:
            codec = _FLAT[message_type] = _flat_codec(message_type)
    return codec


def encode(msg: Message) -> ElementBase:
    """A protocol message as its slixmpp stanza element (append it to a Message)."""
    if not isinstance(msg, Message):
        raise TypeError(f"not a protocol message: {type(msg).__name__}")
    return codec_of(type(msg)).encode(msg)


def encode_element(msg: Message) -> ET.Element:
    """A protocol message as its bare XML element (what the agents send and store): the XML of
    :func:`encode`, written directly where its codec can."""
    if not isinstance(msg, Message):
        raise TypeError(f"not a protocol message: {type(msg).__name__}")
    codec = codec_of(type(msg))
    return codec.element(msg) if codec.element is not None else codec.encode(msg).xml


def to_xml(msg: Message) -> str:
    """The XML text of a protocol message, as ``str(encode(msg))`` writes it."""
    return xml_text(encode_element(msg), xmlns="", top_level=True)


def decode(el) -> Message:
    """A protocol element (ElementTree element or stanza object) to its message value."""
    return _guard(lambda: _decode(_element(el)))


def _decode(x: ET.Element) -> Message:
    if too_deep(x):
        raise FlexOfferError(DOCUMENT, f"elements nested more than {MAX_DEPTH} deep")
    name = _local(x, "")
    t = message_type(name)
    if t is None:
        raise FlexOfferError(DOCUMENT, f"unknown element <{name}> in {NS}")
    return codec_of(t).decode(x)


def parse_message(text: Union[str, bytes]) -> Message:
    """XML text of one protocol element to its message value."""
    return _guard(lambda: _decode(parse_element(text)))


def summary(msg: Message) -> str:
    """One line for the ``<body/>`` of the carrying message (each message type writes its own)."""
    return msg.summary()


for _element_name in CODECS:  # a hand-written codec for an element no message type declares is a typo
    if message_type(_element_name) is None:  # pragma: no cover - caught by the first test run
        raise RuntimeError(f"codec for <{_element_name}>, which no message type declares")
