"""XML codec of the agent protocol messages (:mod:`vmenergy.protocol.messages`).

Same rules as the flex-offer codec: strict (unknown attributes/elements refused), one exception
type (:class:`FlexOfferError` with a field path), times ISO 8601 UTC on the wire. :func:`summary`
gives the one-line human-readable ``<body/>`` that rides along so a person in any XMPP client can
follow the traffic.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from typing import Union

from slixmpp.xmlstream import ElementBase

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
    MarketSessionNotice,
    Measurement,
    Message,
    OfferMessage,
    Registration,
    ReservationMessage,
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
    MarketSessionElement,
    MeasurementElement,
    RegistrationElement,
    ReservationElement,
)
from .xml import (
    _attrs,
    _children,
    _element,
    _energy_text,
    _local,
    _single,
    offer_to_stanza,
    parse_element,
    read_flexoffer,
    schedule_from_element,
    schedule_to_stanza,
)

__all__ = ["encode", "decode", "parse_message", "to_xml", "summary"]

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
# encode


def encode(msg: Message) -> ElementBase:
    """A protocol message as its slixmpp stanza element (append it to a Message)."""
    el: ElementBase
    if isinstance(msg, OfferMessage):
        if msg.op == "delete":
            from .stanzas import FlexOfferElement

            el = FlexOfferElement()
            el["op"] = "delete"
            el["id"] = msg.offer_id
            if msg.version:
                el["version"] = str(msg.version)
            return el
        return offer_to_stanza(msg.offer, op=msg.op)  # type: ignore[arg-type]
    if isinstance(msg, Ack):
        el = AckElement()
        el["kind"] = msg.kind
        el["ref"] = msg.ref
        el["status"] = msg.status
        if msg.reason:
            el["reason"] = msg.reason
        if msg.version is not None:
            el["version"] = str(msg.version)
        return el
    if isinstance(msg, AssignmentMessage):
        return schedule_to_stanza(msg.schedule)
    if isinstance(msg, Measurement):
        el = MeasurementElement()
        el["id"] = msg.measurement_id
        el["offer-id"] = msg.offer_id
        el["start"] = format_utc(msg.start * msg.resolution)
        if msg.resolution != DEFAULT_RESOLUTION:
            el["resolution"] = str(msg.resolution)
        el["energy"] = " ".join(_num(e) for e in msg.energy)
        return el
    if isinstance(msg, BillMessage):
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
    if isinstance(msg, Registration):
        el = RegistrationElement()
        el["op"], el["participant"], el["role"] = msg.op, msg.participant, msg.role
        return el
    if isinstance(msg, MarketSessionNotice):
        el = MarketSessionElement()
        el["id"], el["state"], el["mechanism"] = msg.session_id, msg.state, msg.mechanism
        el["gate-closure"] = format_utc(msg.gate_closure)
        el["delivery-start"] = format_utc(msg.delivery_start * msg.resolution)
        el["delivery-end"] = format_utc(msg.delivery_end * msg.resolution)
        if msg.resolution != DEFAULT_RESOLUTION:
            el["resolution"] = str(msg.resolution)
        el["currency"] = msg.currency
        return el
    if isinstance(msg, BidMessage):
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
    if isinstance(msg, Clearing):
        el = ClearingElement()
        el["session"], el["bid"], el["status"] = msg.session_id, msg.bid_id, msg.status
        el["volume"] = _num(msg.volume)
        if msg.price is not None:
            el["price"] = _num(msg.price)
        if msg.clearing_price is not None:
            el["clearing-price"] = _num(msg.clearing_price)
        if msg.reason:
            el["reason"] = msg.reason
        if msg.schedule is not None:
            el.append(schedule_to_stanza(msg.schedule))
        return el
    if isinstance(msg, ReservationMessage):
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
    if isinstance(msg, ActivationMessage):
        el = ActivationElement()
        el["id"], el["reservation"] = msg.activation_id, msg.reservation_id
        el["start"] = format_utc(msg.start * msg.resolution)
        el["end"] = format_utc(msg.end * msg.resolution)
        el["volume"] = _num(msg.volume)
        if msg.resolution != DEFAULT_RESOLUTION:
            el["resolution"] = str(msg.resolution)
        return el
    raise TypeError(f"not a protocol message: {type(msg).__name__}")


def to_xml(msg: Message) -> str:
    return str(encode(msg))


# ------------------------------------------------------------------------------------------
# decode

_S, _F, _I = "s", "f", "i"


def decode(el) -> Message:
    """A protocol element (ElementTree element or stanza object) to its message value."""
    return _guard(lambda: _decode(_element(el)))


def _decode(x: ET.Element) -> Message:
    name = _local(x, "")
    if name == "flexoffer":
        if x.get("op") == "delete":
            d = _attrs(x, {"op": _S, "id": _S, "version": _I}, "")
            _children(x, "", {})
            _require(d, "id")
            return OfferMessage("delete", d["id"], version=d.get("version", 0))
        op, offer = read_flexoffer(x)
        if op is None:
            raise FlexOfferError("op", "required on a message (insert, update or delete)")
        return OfferMessage(op, offer.id, offer)
    if name == "ack":
        d = _attrs(x, {"kind": _S, "ref": _S, "status": _S, "reason": _S, "version": _I}, "")
        _children(x, "", {})
        _require(d, "kind", "ref", "status")
        return Ack(d["kind"], d["ref"], d["status"], d.get("reason"), d.get("version"))
    if name == "assignment":
        return AssignmentMessage(schedule_from_element(x))
    if name == "measurement":
        d = _attrs(x, {"id": _S, "offer-id": _S, "start": _S, "resolution": _I}, "")
        energy = _single(_children(x, "", {"energy": _energy_text})["energy"], "", "energy")
        _require(d, "id", "offer_id", "start")
        if energy is None:
            raise FlexOfferError("energy", "required")
        res = resolution_field(d)
        return Measurement(d["id"], d["offer_id"], _interval(d, "start", res), tuple(energy), res)
    if name == "bill":
        d = _attrs(x, {"id": _S, "period-start": _S, "period-end": _S, "currency": _S, "total": _S}, "")
        _require(d, "id", "period_start", "period_end")
        lines = _children(x, "", {"line": _bill_line})["line"]
        bill = BillMessage(d["id"], parse_utc(d["period_start"], "period_start"), parse_utc(d["period_end"], "period_end"),
                    tuple(lines), d.get("currency", "EUR"))
        if "total" in d and _cents(d["total"], "total") != bill.total_cents:
            raise FlexOfferError("total", f"{d['total']} differs from the sum of the lines {format_eur(bill.total_cents)}")
        return bill
    if name == "registration":
        d = _attrs(x, {"op": _S, "participant": _S, "role": _S}, "")
        _children(x, "", {})
        _require(d, "op", "participant")
        return Registration(d["op"], d["participant"], d.get("role", "both"))
    if name == "market-session":
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
    if name == "bid":
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
    if name == "clearing":
        spec = {"session": _S, "bid": _S, "status": _S, "volume": _F, "price": _F, "clearing-price": _F,
                "reason": _S}
        d = _attrs(x, spec, "")
        kids = _children(x, "", {"assignment": lambda e, p: schedule_from_element(e)})
        schedule = _single(kids["assignment"], "", "assignment")
        _require(d, "session", "bid", "status")
        return Clearing(d["session"], d["bid"], d["status"], d.get("volume", 0.0), d.get("price"), d.get("reason"),
                        schedule, d.get("clearing_price"))
    if name == "reservation":
        spec = {"id": _S, "session": _S, "bid": _S, "start": _S, "end": _S, "volume": _F, "price": _F, "type": _S,
                "resolution": _I}
        d = _attrs(x, spec, "")
        _children(x, "", {})
        _require(d, "id", "session", "bid", "start", "end", "volume", "price")
        res = resolution_field(d)
        return ReservationMessage(d["id"], d["session"], d["bid"], _interval(d, "start", res), _interval(d, "end", res),
                                  d["volume"], d["price"], d.get("type", "energy"), res)
    if name == "activation":
        spec = {"id": _S, "reservation": _S, "start": _S, "end": _S, "volume": _F, "resolution": _I}
        d = _attrs(x, spec, "")
        _children(x, "", {})
        _require(d, "id", "reservation", "start", "end", "volume")
        res = resolution_field(d)
        return ActivationMessage(d["id"], d["reservation"], _interval(d, "start", res), _interval(d, "end", res),
                                 d["volume"], res)
    raise FlexOfferError(DOCUMENT, f"unknown element <{name}> in {NS}")


def _bill_line(el: ET.Element, path: str) -> BillLine:
    d = _attrs(el, {"kind": _S, "amount": _S, "offer-id": _S}, path)
    if len(el):
        raise FlexOfferError(path, "<line> holds its description as text, no elements")
    for k in ("kind", "amount"):
        if k not in d:
            raise FlexOfferError(f"{path}.{k}", "required")
    return BillLine(d["kind"], (el.text or "").strip(), _cents(d["amount"], f"{path}.amount"), d.get("offer_id"))


def parse_message(text: Union[str, bytes]) -> Message:
    """XML text of one protocol element to its message value."""
    return _guard(lambda: _decode(parse_element(text)))


# ------------------------------------------------------------------------------------------
# human-readable body


def summary(msg: Message) -> str:
    """One line for the ``<body/>`` of the carrying message."""
    if isinstance(msg, OfferMessage):
        if msg.offer is None:
            return f"flex-offer {msg.offer_id}: {msg.op}"
        fo = msg.offer
        n = sum(p.n_slices for p in fo.profiles)
        window = ""
        if fo.start_after is not None:
            window = f", start {format_utc(fo.start_after * fo.resolution)[11:16]}"
            latest = fo.latest_start()
            if latest is not None and latest != fo.start_after:
                window += f"-{format_utc(latest * fo.resolution)[11:16]}"
        return (f"flex-offer {fo.id} ({msg.op}, v{fo.version}): {n} slices{window}, "
                f"{fo.min_total_energy:g}..{fo.max_total_energy:g} kWh")
    if isinstance(msg, Ack):
        extra = f": {msg.reason}" if msg.reason else ""
        return f"{msg.kind} {msg.ref} {msg.status}{extra}"
    if isinstance(msg, AssignmentMessage):
        s = msg.schedule
        return (f"assignment {s.schedule_id} for {s.offer_id}: start {format_utc(s.start * s.resolution)}, "
                f"{s.total:g} kWh in {len(s.energy)} slices")
    if isinstance(msg, Measurement):
        return f"measurement {msg.measurement_id} for {msg.offer_id}: {sum(msg.energy):g} kWh in {len(msg.energy)} intervals"
    if isinstance(msg, BillMessage):
        return f"bill {msg.bill_id}: {format_eur(msg.total_cents)} {msg.currency} ({len(msg.lines)} lines)"
    if isinstance(msg, Registration):
        return f"{msg.op} {msg.participant} as {msg.role}"
    if isinstance(msg, MarketSessionNotice):
        return f"market session {msg.session_id} {msg.state} ({msg.mechanism}), gate closure {format_utc(msg.gate_closure)}"
    if isinstance(msg, BidMessage):
        what = f"flex-offer {msg.offer.id}" if msg.offer is not None else f"{msg.volume:g} kWh at {msg.price:g}"
        return f"bid {msg.bid_id} in {msg.session_id}: {msg.side} {what}"
    if isinstance(msg, Clearing):
        price = f" at {msg.price:g}" if msg.price is not None else ""
        return f"clearing of bid {msg.bid_id}: {msg.status}, {msg.volume:g} kWh{price}"
    if isinstance(msg, ReservationMessage):
        return f"reservation {msg.reservation_id}: {msg.volume:g} kWh at {msg.price:g}"
    if isinstance(msg, ActivationMessage):
        return f"activation {msg.activation_id} of {msg.reservation_id}: {msg.volume:g} kWh"
    return type(msg).__name__

