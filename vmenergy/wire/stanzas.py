"""slixmpp stanza classes of the ``urn:vmenergy:flexoffer:1`` namespace.

These classes are the XML schema of the protocol in code: element names, attributes
(``interfaces``) and child elements (``sub_interfaces`` and registered plugins). Agents attach
them to ``<message/>`` with :func:`register_message_plugins`; :mod:`vmenergy.wire.xml` converts
between them and the model. Attribute names are the JSON field names in kebab-case.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass
from typing import ClassVar, Iterator, Mapping

from slixmpp import Message
from slixmpp.xmlstream import ElementBase, register_stanza_plugin

from vmenergy.protocol.messages import message_type, message_types

__all__ = [
    "NS",
    "SliceElement",
    "TotalElement",
    "RowElement",
    "PolytopeElement",
    "ProfileElement",
    "BaselineElement",
    "PriceElement",
    "PricesElement",
    "FlexOfferElement",
    "AssignmentElement",
    "register_message_plugins",
    "MESSAGE_ELEMENTS",
    "STANZA_CLASSES",
    "FlatField",
    "flat_fields",
    "flat_stanza",
    "stanza_class",
    "register_protocol_plugins",
]

NS = "urn:vmenergy:flexoffer:1"


class SliceElement(ElementBase):
    """``<slice duration min max [values]/>``; ``values`` is a space-separated list."""

    name = "slice"
    namespace = NS
    plugin_attrib = "slice"
    plugin_multi_attrib = "slices"
    interfaces = {"duration", "min", "max", "values"}


class TotalElement(ElementBase):
    """``<total [min] [max]/>``: bounds on the profile's total energy."""

    name = "total"
    namespace = NS
    plugin_attrib = "total"
    interfaces = {"min", "max"}


class RowElement(ElementBase):
    """``<row b="2.0">1 1 0 0</row>``: one row of ``A·x <= b``; text holds the coefficients."""

    name = "row"
    namespace = NS
    plugin_attrib = "row"
    plugin_multi_attrib = "rows"
    interfaces = {"b", "a"}

    def get_a(self) -> str:
        return self.xml.text or ""

    def set_a(self, value: str) -> None:
        self.xml.text = value

    def del_a(self) -> None:
        self.xml.text = None


class PolytopeElement(ElementBase):
    name = "polytope"
    namespace = NS
    plugin_attrib = "polytope"
    interfaces: ClassVar[set[str]] = set()


class ProfileElement(ElementBase):
    """``<profile [start-after] [start-before]>`` with slices, optional total and polytope."""

    name = "profile"
    namespace = NS
    plugin_attrib = "profile"
    plugin_multi_attrib = "profiles"
    interfaces = {"start-after", "start-before"}


class BaselineElement(ElementBase):
    """``<baseline profile start><energy>2.8 5.6 7.6</energy></baseline>``."""

    name = "baseline"
    namespace = NS
    plugin_attrib = "baseline"
    interfaces = {"profile", "start", "energy"}
    sub_interfaces = {"energy"}


class PriceElement(ElementBase):
    """``<price up down/>``: EUR per kWh of deviation in one slice."""

    name = "price"
    namespace = NS
    plugin_attrib = "price"
    plugin_multi_attrib = "price_list"
    interfaces = {"up", "down"}


class PricesElement(ElementBase):
    name = "prices"
    namespace = NS
    plugin_attrib = "prices"
    interfaces = {"currency"}


class FlexOfferElement(ElementBase):
    """``<flexoffer op="insert|update|delete" id ...>``: one flex-offer (see docs/protocol.md)."""

    name = "flexoffer"
    namespace = NS
    plugin_attrib = "flexoffer"
    interfaces = {
        "op", "id", "issuer", "label", "state", "version", "resolution", "creation-time",
        "acceptance-before", "assignment-before", "start-after", "start-before", "start-before-duration",
    }


class AssignmentElement(ElementBase):
    """``<assignment offer-id schedule-id update-id profile start><energy>…</energy></assignment>``."""

    name = "assignment"
    namespace = NS
    plugin_attrib = "assignment"
    interfaces = {"offer-id", "schedule-id", "update-id", "profile", "start", "resolution", "energy"}
    sub_interfaces = {"energy"}


register_stanza_plugin(ProfileElement, SliceElement, iterable=True)
register_stanza_plugin(ProfileElement, TotalElement)
register_stanza_plugin(PolytopeElement, RowElement, iterable=True)
register_stanza_plugin(ProfileElement, PolytopeElement)
register_stanza_plugin(PricesElement, PriceElement, iterable=True)
register_stanza_plugin(FlexOfferElement, ProfileElement, iterable=True)
register_stanza_plugin(FlexOfferElement, BaselineElement)
register_stanza_plugin(FlexOfferElement, PricesElement)


def register_message_plugins() -> None:
    """Let ``msg['flexoffer']`` and ``msg['assignment']`` work on slixmpp messages."""
    register_stanza_plugin(Message, FlexOfferElement)
    register_stanza_plugin(Message, AssignmentElement)


# --------------------------------------------------------------------------------------------
# agent protocol elements (see docs/protocol.md, "Agent messages")


class AckElement(ElementBase):
    """``<ack kind ref status [reason] [version]/>``: the answer to a message."""

    name = "ack"
    namespace = NS
    plugin_attrib = "vme_ack"
    interfaces = {"kind", "ref", "status", "reason", "version"}


class MeasurementElement(ElementBase):
    """``<measurement id offer-id start [resolution]><energy>…</energy></measurement>``."""

    name = "measurement"
    namespace = NS
    plugin_attrib = "measurement"
    interfaces = {"id", "offer-id", "start", "resolution", "energy"}
    sub_interfaces = {"energy"}


class BillLineElement(ElementBase):
    """``<line kind amount [offer-id]>description</line>``; amount in currency units, 2 decimals."""

    name = "line"
    namespace = NS
    plugin_attrib = "line"
    plugin_multi_attrib = "lines"
    interfaces = {"kind", "amount", "offer-id", "description"}

    def get_description(self) -> str:
        return self.xml.text or ""

    def set_description(self, value: str) -> None:
        self.xml.text = value

    def del_description(self) -> None:
        self.xml.text = None


class BillElement(ElementBase):
    """``<bill id period-start period-end currency total>`` with ``<line>`` children."""

    name = "bill"
    namespace = NS
    plugin_attrib = "bill"
    interfaces = {"id", "period-start", "period-end", "currency", "total"}


class RegistrationElement(ElementBase):
    """``<registration op="register|deregister" participant role zone/>``."""

    name = "registration"
    namespace = NS
    plugin_attrib = "registration"
    interfaces = {"op", "participant", "role", "zone"}


class MarketSessionElement(ElementBase):
    """``<market-session id state mechanism gate-closure delivery-start delivery-end …/>``."""

    name = "market-session"
    namespace = NS
    plugin_attrib = "market_session"
    interfaces = {"id", "state", "mechanism", "gate-closure", "delivery-start", "delivery-end", "resolution",
                  "currency"}


class BidElement(ElementBase):
    """``<bid id session side …>``, with a ``<flexoffer>`` child for flex-offer bids."""

    name = "bid"
    namespace = NS
    plugin_attrib = "bid"
    interfaces = {"id", "session", "side", "volume", "price", "activation-price", "expiry", "start", "end",
                  "type", "resolution"}


class ClearingElement(ElementBase):
    """``<clearing session bid status volume …>``, with an ``<assignment>`` child when scheduled."""

    name = "clearing"
    namespace = NS
    plugin_attrib = "clearing"
    interfaces = {"session", "bid", "status", "volume", "price", "clearing-price", "amount", "reason"}


class ReservationElement(ElementBase):
    name = "reservation"
    namespace = NS
    plugin_attrib = "reservation"
    interfaces = {"id", "session", "bid", "start", "end", "volume", "price", "type", "resolution"}


class ActivationElement(ElementBase):
    name = "activation"
    namespace = NS
    plugin_attrib = "activation"
    interfaces = {"id", "reservation", "start", "end", "volume", "resolution"}


class FlexRequestElement(ElementBase):
    """``<flex-request id point start price respond-before [resolution]><max>…</max>[<min>…</min>]``:
    a DSO's flex request (UFTP FlexRequest); limits in kWh per interval."""

    name = "flex-request"
    namespace = NS
    plugin_attrib = "flex_request"
    interfaces = {"id", "point", "start", "price", "respond-before", "resolution", "max", "min"}
    sub_interfaces = {"max", "min"}


class FlexReplyElement(ElementBase):
    """``<flex-reply id request point start [resolution]><baseline>…</baseline><committed>…</committed>``
    then ``<flexoffer>`` children: an aggregator's answer (UFTP FlexOffer)."""

    name = "flex-reply"
    namespace = NS
    plugin_attrib = "flex_reply"
    interfaces = {"id", "request", "point", "start", "resolution", "baseline", "committed"}
    sub_interfaces = {"baseline", "committed"}


class FlexOrderElement(ElementBase):
    """``<flex-order id reply point status ordered price [reason]>`` with ``<assignment>`` children
    (UFTP FlexOrder)."""

    name = "flex-order"
    namespace = NS
    plugin_attrib = "flex_order"
    interfaces = {"id", "reply", "point", "status", "ordered", "price", "reason"}


register_stanza_plugin(BillElement, BillLineElement, iterable=True)
register_stanza_plugin(FlexReplyElement, FlexOfferElement, iterable=True)
register_stanza_plugin(FlexOrderElement, AssignmentElement, iterable=True)
register_stanza_plugin(BidElement, FlexOfferElement)
register_stanza_plugin(ClearingElement, AssignmentElement)

#: The stanza classes written by hand, by element. A message type without one here travels as a
#: flat element derived from its fields (:func:`flat_stanza`).
STANZA_CLASSES: dict[str, type[ElementBase]] = {
    cls.name: cls
    for cls in (FlexOfferElement, AckElement, AssignmentElement, MeasurementElement, BillElement,
                RegistrationElement, MarketSessionElement, BidElement, ClearingElement, ReservationElement,
                ActivationElement, FlexRequestElement, FlexReplyElement, FlexOrderElement)
}

#: Scalar field types a flat element carries as attributes, with the attribute's text kind.
FLAT_KINDS = {str: "s", int: "i", float: "f"}


@dataclass(frozen=True)
class FlatField:
    """One field of a message type as an attribute of its flat element."""

    name: str  # the dataclass field
    attribute: str  # the XML attribute: the field name in kebab-case
    kind: str  # "s" | "i" | "f"
    required: bool  # no default: a missing attribute is an error
    optional: bool  # may be None (then the attribute is left out)


def flat_fields(message_type: type) -> tuple[FlatField, ...]:
    """The attributes of ``message_type``'s flat element, from its dataclass fields.

    Only scalar fields (``str``, ``int``, ``float``, optionally ``Optional``) can be carried this
    way; anything else raises TypeError naming the field, so a message type that needs children
    or times on the wire gets a hand-written codec instead of a silently wrong one."""
    cached = _FLAT_FIELDS.get(message_type)
    if cached is not None:
        return cached
    if not dataclasses.is_dataclass(message_type):
        raise TypeError(f"{message_type.__name__} is not a dataclass; a flat element needs its fields")
    hints = typing.get_type_hints(message_type)
    out = []
    for f in dataclasses.fields(message_type):
        tp, optional = hints[f.name], False
        args = typing.get_args(tp)
        if typing.get_origin(tp) in (typing.Union, types.UnionType) and type(None) in args and len(args) == 2:
            tp, optional = next(a for a in args if a is not type(None)), True
        if tp not in FLAT_KINDS:
            raise TypeError(f"{message_type.__name__}.{f.name}: a {tp!r} cannot travel as an XML attribute; "
                            "give the type a hand-written codec in vmenergy/wire/messages.py")
        required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        out.append(FlatField(f.name, f.name.replace("_", "-"), FLAT_KINDS[tp], required, optional))
    result = _FLAT_FIELDS[message_type] = tuple(out)
    return result


_FLAT_FIELDS: dict[type, tuple[FlatField, ...]] = {}
_FLAT_STANZAS: dict[type, type[ElementBase]] = {}


def flat_stanza(message_type: type) -> type[ElementBase]:
    """The stanza class of a message type without a hand-written one: its element name, and one
    attribute per field (``msg['vme_rejection']`` on a slixmpp message)."""
    cls = _FLAT_STANZAS.get(message_type)
    if cls is None:
        element = message_type.element  # type: ignore[attr-defined]
        cls = type(f"{message_type.__name__}Element", (ElementBase,), {
            "__doc__": f"``<{element}>``: the flat element of {message_type.__name__}.",
            "name": element, "namespace": NS, "plugin_attrib": "vme_" + element.replace("-", "_"),
            "interfaces": {f.attribute for f in flat_fields(message_type)},
        })
        _FLAT_STANZAS[message_type] = cls
    return cls


def stanza_class(message_type: type) -> type[ElementBase]:
    """The stanza class ``message_type`` travels as (hand-written, or derived from its fields)."""
    return STANZA_CLASSES.get(message_type.element) or flat_stanza(message_type)  # type: ignore[attr-defined]


class _MessageElements(Mapping[str, type[ElementBase]]):
    """element -> stanza class for every registered message type (a live view: a type defined
    after this module was imported is included)."""

    def __getitem__(self, element: str) -> type[ElementBase]:
        t = message_type(element)
        if t is None:
            raise KeyError(element)
        return stanza_class(t)

    def __iter__(self) -> Iterator[str]:
        return iter([t.element for t in message_types()])

    def __len__(self) -> int:
        return len(message_types())


#: Every element that may ride on a ``<message/>``, by local name (derived from the registry of
#: message types in :mod:`vmenergy.protocol.messages`).
MESSAGE_ELEMENTS: Mapping[str, type[ElementBase]] = _MessageElements()


def register_protocol_plugins() -> None:
    """Register every protocol element on slixmpp's Message (``msg['bid']`` etc.)."""
    for cls in MESSAGE_ELEMENTS.values():
        register_stanza_plugin(Message, cls)
