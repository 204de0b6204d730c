"""The messages VME nodes exchange, as plain immutable values (no XML, no XMPP).

Every message carries the id it refers to, and :meth:`Message.key` gives the identity a receiver
uses to be idempotent: a message whose key was seen before changes nothing (the receiver only
repeats its earlier answer, because the sender resends when an answer was lost).

Each message type describes itself once, in the manner of a slixmpp stanza class: its XML
``element`` name, the ``ack`` kind a receiver answers it with (None for a notice, which is never
answered) and the SPADE ``performative`` it is routed by. Defining the class registers it;
everything else (the wire codec, the store, the agents' routing tables) is derived from the
registry, so adding a message type is one class here plus its handler in an engine.

Times: ``start``/``end`` of energy periods are intervals at ``resolution``; instants (gate
closure, bill periods) are epoch seconds, as in the flex-offer model. Money is integer cents so
bills add up exactly.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from types import MappingProxyType
from typing import ClassVar, Mapping, Optional

from vmenergy.flexoffer import FlexOffer, FlexOfferError, Schedule
from vmenergy.flexoffer.errors import check
from vmenergy.flexoffer.timeutil import DEFAULT_RESOLUTION, format_utc
from vmenergy.settlement.money import format_eur
from vmenergy.validation import set_field as _set

__all__ = [
    "OPS",
    "PERFORMATIVES",
    "Message",
    "OfferMessage",
    "Ack",
    "AssignmentMessage",
    "Measurement",
    "DeviceFaultReport",
    "DEVICE_FAULT_KINDS",
    "BillLine",
    "BillMessage",
    "Registration",
    "MarketSessionNotice",
    "BidMessage",
    "Clearing",
    "ReservationMessage",
    "ActivationMessage",
    "OfferRejection",
    "FlexRequestMessage",
    "FlexReplyMessage",
    "FlexOrderMessage",
    "FlexSettlementMessage",
    "ELEMENT_OF",
    "PERFORMATIVE",
    "ACKED",
    "message_types",
    "message_type",
    "ack_kinds",
    "needs_ack",
]

OPS = ("insert", "update", "delete")
SIDES = ("buy", "sell")
MAX_INTERVALS = 100_000
#: The FIPA-ACL communicative acts SPADE knows; a message type declares one of them.
PERFORMATIVES = frozenset({
    "accept-proposal", "agree", "cancel", "cfp", "confirm", "disconfirm", "failure", "inform", "inform-if",
    "inform-ref", "not-understood", "propagate", "propose", "proxy", "query-if", "query-ref", "refuse",
    "reject-proposal", "request", "request-when", "request-whenever", "subscribe",
})
_NAME = re.compile(r"[a-z][a-z0-9-]{0,63}\Z")
#: Control characters (C0 but tab and line feed, DEL, C1) have no place in a line a person reads.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


# The model's field checks (FlexOfferError with the field's path), under their usual names here.
check_identifier, check_integer, check_number, _choice = check.identifier, check.integer, check.number, check.choice


# ------------------------------------------------------------------------------------------
# the registry: filled by the classes themselves, read through derived views

_BY_ELEMENT: dict[str, type["Message"]] = {}
_ELEMENT_OF: dict[type, str] = {}
_PERFORMATIVE: dict[str, str] = {}
_ACKED: dict[type, str] = {}

#: message type -> the element it travels as (a live, read-only view of the registry).
ELEMENT_OF: Mapping[type, str] = MappingProxyType(_ELEMENT_OF)
#: element -> the SPADE performative of its messages.
PERFORMATIVE: Mapping[str, str] = MappingProxyType(_PERFORMATIVE)
#: message type -> the ack kind a receiver answers it with (notices and acks are absent).
ACKED: Mapping[type, str] = MappingProxyType(_ACKED)


class Message:
    """Base of every protocol message; a subclass declares how it travels (class attributes).

    - ``element``: local name of its XML element in ``urn:vmenergy:flexoffer:1`` (unique);
    - ``ack``: the ack kind a receiver answers it with, or None for a notice (never answered,
      never resent); unique among message types, because an ack names what it answers by it;
    - ``performative``: the FIPA-ACL act SPADE agents route it by (one of :data:`PERFORMATIVES`).

    A subclass is a frozen dataclass; it gives :meth:`key` (its identity for idempotent receipt)
    and, if acknowledged, ``ref`` (the id its ack carries) or its own :meth:`ack_ref`.
    """

    __slots__ = ()
    element: ClassVar[str]
    ack: ClassVar[Optional[str]]
    performative: ClassVar[str]

    def __init_subclass__(cls, **kw) -> None:
        super().__init_subclass__(**kw)
        _register(cls)

    def key(self) -> tuple:
        raise NotImplementedError(f"{type(self).__name__} must define key()")

    def ack_ref(self) -> tuple[str, Optional[int]]:
        """(ref, version) an ack of this message carries, so the sender can match it to its outbox."""
        return getattr(self, "ref"), None

    def summary(self) -> str:
        """One line for the human-readable ``<body/>`` that rides along on the wire."""
        return f"{self.element} {' '.join(str(k) for k in self.key()[1:])}"


def _register(cls: type[Message]) -> None:
    """Check a message type's declaration and enter it in the registry (raises on misuse)."""
    name = cls.__name__
    for attr in ("element", "ack", "performative"):
        if attr not in cls.__dict__:
            raise TypeError(f"message type {name} must declare {attr!r} (see vmenergy.protocol.messages.Message)")
    element, ack, performative = cls.__dict__["element"], cls.__dict__["ack"], cls.__dict__["performative"]
    if not isinstance(element, str) or not _NAME.match(element):
        raise TypeError(f"{name}.element: an XML local name in lower case (got {element!r})")
    if ack is not None and (not isinstance(ack, str) or not _NAME.match(ack)):
        raise TypeError(f"{name}.ack: None or an ack kind in lower case (got {ack!r})")
    if performative not in PERFORMATIVES:
        raise TypeError(f"{name}.performative: one of the FIPA acts ({', '.join(sorted(PERFORMATIVES))}); "
                        f"got {performative!r}")
    old = _BY_ELEMENT.get(element)
    # dataclass(slots=True) builds the class anew (its __qualname__ is set only afterwards): a
    # class of the same module and name coming again replaces itself
    same = old is not None and (old.__module__, old.__name__) == (cls.__module__, cls.__name__)
    if old is not None and not same:
        raise TypeError(f"{name}.element: <{element}> is already the element of {old.__name__}")
    if ack is not None:
        for other, kind in _ACKED.items():
            if kind == ack and other is not old:
                raise TypeError(f"{name}.ack: {ack!r} is already the ack kind of {other.__name__}")
    if old is not None:
        _ELEMENT_OF.pop(old, None)
        _ACKED.pop(old, None)
    _BY_ELEMENT[element] = cls
    _ELEMENT_OF[cls] = element
    _PERFORMATIVE[element] = performative
    if ack is not None:
        _ACKED[cls] = ack


def message_types() -> tuple[type[Message], ...]:
    """Every registered message type, in the order they were defined."""
    return tuple(_BY_ELEMENT.values())


def message_type(element: str) -> Optional[type[Message]]:
    """The message type that travels as ``element``, or None."""
    return _BY_ELEMENT.get(element)


def ack_kinds() -> tuple[str, ...]:
    """The kinds an ``ack`` may name: one per acknowledged message type."""
    return tuple(_ACKED.values())


def needs_ack(msg: Message) -> Optional[str]:
    """The ack kind a receiver answers ``msg`` with, or None (acks and notices are not acked)."""
    return type(msg).ack


def _hhmm(seconds: int) -> str:
    return format_utc(seconds)[11:16]


@dataclass(frozen=True, slots=True)
class OfferMessage(Message):
    """A prosumer (or child aggregator) inserts, updates or deletes a flex-offer."""

    element = "flexoffer"
    ack = "flexoffer"
    performative = "propose"

    op: str
    offer_id: str
    offer: Optional[FlexOffer] = None
    version: int = 0

    def __post_init__(self) -> None:
        _choice(self.op, "op", OPS)
        _set(self, "offer_id", check_identifier(self.offer_id, "id"))
        if self.op != "delete":
            if not isinstance(self.offer, FlexOffer):
                raise FlexOfferError("profiles", f"an {self.op} carries the whole offer")
            if self.offer.id != self.offer_id:
                raise FlexOfferError("id", "offer id and message id differ")
            _set(self, "version", self.offer.version)
        _set(self, "version", check_integer(self.version, "version", minimum=0))

    def key(self) -> tuple:
        return ("flexoffer", self.offer_id, self.version, self.op)

    def ack_ref(self) -> tuple[str, Optional[int]]:
        return self.offer_id, self.version

    def summary(self) -> str:
        if self.offer is None:
            return f"flex-offer {self.offer_id}: {self.op}"
        fo = self.offer
        n = sum(p.n_slices for p in fo.profiles)
        window = ""
        if fo.start_after is not None:
            window = f", start {_hhmm(fo.start_after * fo.resolution)}"
            latest = fo.latest_start()
            if latest is not None and latest != fo.start_after:
                window += f"-{_hhmm(latest * fo.resolution)}"
        return (f"flex-offer {fo.id} ({self.op}, v{fo.version}): {n} slices{window}, "
                f"{fo.min_total_energy:g}..{fo.max_total_energy:g} kWh")


@dataclass(frozen=True, slots=True)
class Ack(Message):
    """The answer to a message of ``kind`` with id ``ref``: accepted, or rejected with a reason."""

    element = "ack"
    ack = None
    performative = "inform"

    kind: str
    ref: str
    status: str
    reason: Optional[str] = None
    version: Optional[int] = None

    def __post_init__(self) -> None:
        _choice(self.kind, "kind", ack_kinds())
        _set(self, "ref", check_identifier(self.ref, "ref"))
        _choice(self.status, "status", ("accepted", "rejected"))
        if self.reason is not None and not isinstance(self.reason, str):
            raise FlexOfferError("reason", "must be text")
        if self.reason is not None and len(self.reason) > 2000:
            _set(self, "reason", self.reason[:1997] + "...")
        if self.version is not None:
            _set(self, "version", check_integer(self.version, "version", minimum=0))

    @property
    def accepted(self) -> bool:
        return self.status == "accepted"

    def key(self) -> tuple:
        return ("ack", self.kind, self.ref, self.version)

    def summary(self) -> str:
        extra = f": {self.reason}" if self.reason else ""
        return f"{self.kind} {self.ref} {self.status}{extra}"


@dataclass(frozen=True, slots=True)
class AssignmentMessage(Message):
    """A schedule for an offer (aggregator -> prosumer, or market -> participant in a clearing)."""

    element = "assignment"
    ack = "assignment"
    performative = "request"

    schedule: Schedule

    def __post_init__(self) -> None:
        if not isinstance(self.schedule, Schedule):
            raise FlexOfferError("assignment", "must carry a Schedule")
        if self.schedule.schedule_id is None:
            raise FlexOfferError("schedule_id", "required on the wire (receivers deduplicate by it)")

    def key(self) -> tuple:
        return ("assignment", self.schedule.schedule_id, self.schedule.update_id)

    @property
    def ref(self) -> str:
        return self.schedule.schedule_id  # type: ignore[return-value]

    def ack_ref(self) -> tuple[str, Optional[int]]:
        return self.ref, self.schedule.update_id

    def summary(self) -> str:
        s = self.schedule
        return (f"assignment {s.schedule_id} for {s.offer_id}: start {format_utc(s.start * s.resolution)}, "
                f"{s.total:g} kWh in {len(s.energy)} slices")


@dataclass(frozen=True, slots=True)
class Measurement(Message):
    """Metered energy (kWh per interval, + consumption) of the device behind ``offer_id``."""

    element = "measurement"
    ack = "measurement"
    performative = "inform"

    measurement_id: str
    offer_id: str
    start: int
    energy: tuple[float, ...]
    resolution: int = DEFAULT_RESOLUTION

    def __post_init__(self) -> None:
        _set(self, "measurement_id", check_identifier(self.measurement_id, "id"))
        _set(self, "offer_id", check_identifier(self.offer_id, "offer_id"))
        _set(self, "start", check_integer(self.start, "start"))
        _set(self, "energy", check.numbers(self.energy, "energy", at_least=1, at_most=MAX_INTERVALS))
        _set(self, "resolution", check_integer(self.resolution, "resolution", minimum=1))

    def key(self) -> tuple:
        return ("measurement", self.measurement_id)

    @property
    def ref(self) -> str:
        return self.measurement_id

    def summary(self) -> str:
        return (f"measurement {self.measurement_id} for {self.offer_id}: {sum(self.energy):g} kWh in "
                f"{len(self.energy)} intervals")


@dataclass(frozen=True, slots=True)
class BillLine:
    """One readable line of a bill; ``amount_cents`` > 0 is paid to the addressee. ``code`` is the
    settlement line code (``flexible_energy``, ``penalty``, ...; the wire attribute ``kind``)."""

    code: str
    description: str
    amount_cents: int
    offer_id: Optional[str] = None

    def __post_init__(self) -> None:
        _set(self, "code", check_identifier(self.code, "kind"))  # named as on the wire
        if not isinstance(self.description, str):
            raise FlexOfferError("description", "must be text")
        if _CONTROL.search(self.description):
            raise FlexOfferError("description", "no control characters allowed")
        _set(self, "amount_cents", check_integer(self.amount_cents, "amount"))
        if self.offer_id is not None:
            _set(self, "offer_id", check_identifier(self.offer_id, "offer_id"))


@dataclass(frozen=True, slots=True)
class BillMessage(Message):
    """A settlement statement: its lines add up to ``total_cents`` exactly."""

    element = "bill"
    ack = "bill"
    performative = "inform"

    bill_id: str
    period_start: int
    period_end: int
    lines: tuple[BillLine, ...]
    currency: str = "EUR"

    def __post_init__(self) -> None:
        _set(self, "bill_id", check_identifier(self.bill_id, "id"))
        _set(self, "period_start", check_integer(self.period_start, "period_start"))
        _set(self, "period_end", check_integer(self.period_end, "period_end"))
        if self.period_end < self.period_start:
            raise FlexOfferError("period_end", "before period_start")
        lines = tuple(self.lines)
        for i, line in enumerate(lines):
            if not isinstance(line, BillLine):
                raise FlexOfferError(f"lines[{i}]", "must be a BillLine")
        _set(self, "lines", lines)
        check.currency(self.currency, "currency")

    @property
    def total_cents(self) -> int:
        return sum(line.amount_cents for line in self.lines)

    def key(self) -> tuple:
        return ("bill", self.bill_id)

    @property
    def ref(self) -> str:
        return self.bill_id

    def summary(self) -> str:
        return f"bill {self.bill_id}: {format_eur(self.total_cents)} {self.currency} ({len(self.lines)} lines)"


@dataclass(frozen=True, slots=True)
class Registration(Message):
    """A participant registers with (or leaves) a market; ``zone``: where it trades, for a
    market with zones (implicit capacity)."""

    element = "registration"
    ack = "registration"
    performative = "subscribe"

    op: str
    participant: str
    role: str = "both"
    zone: Optional[str] = None

    def __post_init__(self) -> None:
        _choice(self.op, "op", ("register", "deregister"))
        _set(self, "participant", check_identifier(self.participant, "participant"))
        _choice(self.role, "role", ("buyer", "seller", "both"))
        if self.zone is not None:
            _set(self, "zone", check_identifier(self.zone, "zone"))

    def key(self) -> tuple:
        # another zone is another registration (one refused for its zone may be sent again right)
        return ("registration", self.participant, self.op, self.zone)

    @property
    def ref(self) -> str:
        return self.participant

    def summary(self) -> str:
        zone = f" in zone {self.zone}" if self.zone is not None else ""
        return f"{self.op} {self.participant} as {self.role}{zone}"


@dataclass(frozen=True, slots=True)
class MarketSessionNotice(Message):
    """A market tells its participants a session opened, closed or was cleared."""

    element = "market-session"
    ack = None
    performative = "inform"

    session_id: str
    state: str
    mechanism: str
    gate_closure: int
    delivery_start: int
    delivery_end: int
    resolution: int = DEFAULT_RESOLUTION
    currency: str = "EUR"

    def __post_init__(self) -> None:
        _set(self, "session_id", check_identifier(self.session_id, "id"))
        _choice(self.state, "state", ("open", "closed", "cleared"))
        _set(self, "mechanism", check_identifier(self.mechanism, "mechanism"))
        for name in ("gate_closure", "delivery_start", "delivery_end"):
            _set(self, name, check_integer(getattr(self, name), name))
        if self.delivery_end <= self.delivery_start:
            raise FlexOfferError("delivery_end", "must be after delivery_start")
        _set(self, "resolution", check_integer(self.resolution, "resolution", minimum=1))
        check.currency(self.currency, "currency")

    def key(self) -> tuple:
        return ("market-session", self.session_id, self.state)

    def summary(self) -> str:
        return (f"market session {self.session_id} {self.state} ({self.mechanism}), "
                f"gate closure {format_utc(self.gate_closure)}")


@dataclass(frozen=True, slots=True)
class BidMessage(Message):
    """A bid in a market session: a flex-offer with prices, or a simple order.

    Simple order fields follow the GOFLEX market: ``volume`` (kWh), ``price`` (EUR/kWh, the
    reservation or energy price), ``activation_price`` (EUR/kWh when activated), ``expiry``
    (epoch seconds), and the period ``start``..``end`` (intervals at ``resolution`` seconds, the
    session's) it covers.
    """

    element = "bid"
    ack = "bid"
    performative = "propose"

    bid_id: str
    session_id: str
    side: str
    offer: Optional[FlexOffer] = None
    volume: Optional[float] = None
    price: Optional[float] = None
    activation_price: Optional[float] = None
    expiry: Optional[int] = None
    start: Optional[int] = None
    end: Optional[int] = None
    order_type: str = "energy"
    resolution: int = DEFAULT_RESOLUTION

    def __post_init__(self) -> None:
        _set(self, "bid_id", check_identifier(self.bid_id, "id"))
        _set(self, "session_id", check_identifier(self.session_id, "session"))
        _choice(self.side, "side", SIDES)
        if self.offer is None:
            if self.volume is None or self.price is None:
                raise FlexOfferError("volume", "a simple order needs volume and price (or carry a flex-offer)")
        elif not isinstance(self.offer, FlexOffer):
            raise FlexOfferError("flexoffer", "must be a FlexOffer")
        for name in ("volume", "price", "activation_price"):
            if getattr(self, name) is not None:
                _set(self, name, check_number(getattr(self, name), name))
        if self.volume is not None and self.volume < 0:
            raise FlexOfferError("volume", "must be >= 0 (the side says the direction)")
        for name in ("expiry", "start", "end"):
            if getattr(self, name) is not None:
                _set(self, name, check_integer(getattr(self, name), name))
        _set(self, "order_type", check_identifier(self.order_type, "type"))
        _set(self, "resolution", check_integer(self.resolution, "resolution", minimum=1))

    def key(self) -> tuple:
        return ("bid", self.bid_id)

    @property
    def ref(self) -> str:
        return self.bid_id

    def summary(self) -> str:
        what = f"flex-offer {self.offer.id}" if self.offer is not None else f"{self.volume:g} kWh at {self.price:g}"
        return f"bid {self.bid_id} in {self.session_id}: {self.side} {what}"


@dataclass(frozen=True, slots=True)
class Clearing(Message):
    """The result of one bid: accepted (fully or partly) at ``price`` with ``volume``, with a
    schedule when the bid was a flex-offer; or rejected with a reason. ``amount``: what the
    participant pays for the award in EUR (negative: what it is paid), the amount the market
    bills; an award of a bid that both buys and sells is priced per interval, so ``price`` times
    ``volume`` is not the amount."""

    element = "clearing"
    ack = "clearing"
    performative = "inform"

    session_id: str
    bid_id: str
    status: str
    volume: float = 0.0
    price: Optional[float] = None
    reason: Optional[str] = None
    schedule: Optional[Schedule] = None
    clearing_price: Optional[float] = None
    amount: Optional[float] = None

    def __post_init__(self) -> None:
        _set(self, "session_id", check_identifier(self.session_id, "session"))
        _set(self, "bid_id", check_identifier(self.bid_id, "bid"))
        _choice(self.status, "status", ("accepted", "partial", "rejected"))
        _set(self, "volume", check_number(self.volume, "volume"))
        for name in ("price", "clearing_price", "amount"):
            if getattr(self, name) is not None:
                _set(self, name, check_number(getattr(self, name), name))
        if self.schedule is not None and not isinstance(self.schedule, Schedule):
            raise FlexOfferError("assignment", "must be a Schedule")

    def key(self) -> tuple:
        return ("clearing", self.session_id, self.bid_id)

    @property
    def ref(self) -> str:
        return self.bid_id

    def summary(self) -> str:
        price = f" at {self.price:g}" if self.price is not None else ""
        return f"clearing of bid {self.bid_id}: {self.status}, {self.volume:g} kWh{price}"


@dataclass(frozen=True, slots=True)
class ReservationMessage(Message):
    """Capacity reserved from an accepted bid for a period ``start``..``end`` (intervals at
    ``resolution`` seconds); it may be activated later."""

    element = "reservation"
    ack = "reservation"
    performative = "request"

    reservation_id: str
    session_id: str
    bid_id: str
    start: int
    end: int
    volume: float
    price: float
    reservation_type: str = "energy"
    resolution: int = DEFAULT_RESOLUTION

    def __post_init__(self) -> None:
        _set(self, "reservation_id", check_identifier(self.reservation_id, "id"))
        _set(self, "session_id", check_identifier(self.session_id, "session"))
        _set(self, "bid_id", check_identifier(self.bid_id, "bid"))
        _set(self, "start", check_integer(self.start, "start"))
        _set(self, "end", check_integer(self.end, "end"))
        if self.end <= self.start:
            raise FlexOfferError("end", "must be after start")
        _set(self, "volume", check_number(self.volume, "volume"))
        _set(self, "price", check_number(self.price, "price"))
        _set(self, "reservation_type", check_identifier(self.reservation_type, "type"))
        _set(self, "resolution", check_integer(self.resolution, "resolution", minimum=1))

    def key(self) -> tuple:
        return ("reservation", self.reservation_id)

    @property
    def ref(self) -> str:
        return self.reservation_id

    def summary(self) -> str:
        return f"reservation {self.reservation_id}: {self.volume:g} kWh at {self.price:g}"


@dataclass(frozen=True, slots=True)
class ActivationMessage(Message):
    """Activation of (part of) a reservation: deliver ``volume`` kWh over ``start``..``end``
    (intervals at ``resolution`` seconds)."""

    element = "activation"
    ack = "activation"
    performative = "request"

    activation_id: str
    reservation_id: str
    start: int
    end: int
    volume: float
    resolution: int = DEFAULT_RESOLUTION

    def __post_init__(self) -> None:
        _set(self, "activation_id", check_identifier(self.activation_id, "id"))
        _set(self, "reservation_id", check_identifier(self.reservation_id, "reservation"))
        _set(self, "start", check_integer(self.start, "start"))
        _set(self, "end", check_integer(self.end, "end"))
        if self.end <= self.start:
            raise FlexOfferError("end", "must be after start")
        _set(self, "volume", check_number(self.volume, "volume"))
        _set(self, "resolution", check_integer(self.resolution, "resolution", minimum=1))

    def key(self) -> tuple:
        return ("activation", self.activation_id)

    @property
    def ref(self) -> str:
        return self.activation_id

    def summary(self) -> str:
        return f"activation {self.activation_id} of {self.reservation_id}: {self.volume:g} kWh"


@dataclass(frozen=True, slots=True)
class OfferRejection(Message):
    """An aggregator takes back its acceptance of an offer (for now: it could not be assigned a
    schedule before its deadline), so the prosumer's count of rejected offers agrees with the
    aggregator's. ``version`` is the offer version that was accepted."""

    element = "rejection"
    ack = "rejection"
    performative = "reject-proposal"

    offer_id: str
    version: int
    reason: str

    def __post_init__(self) -> None:
        _set(self, "offer_id", check_identifier(self.offer_id, "offer_id"))
        _set(self, "version", check_integer(self.version, "version", minimum=0))
        if not isinstance(self.reason, str) or not self.reason.strip():
            raise FlexOfferError("reason", "required (text saying why the offer is rejected)")
        if len(self.reason) > 2000:
            _set(self, "reason", self.reason[:1997] + "...")

    def key(self) -> tuple:
        return ("rejection", self.offer_id, self.version)

    def ack_ref(self) -> tuple[str, Optional[int]]:
        return self.offer_id, self.version

    def summary(self) -> str:
        return f"offer {self.offer_id} (v{self.version}) rejected: {self.reason}"




#: What went wrong with a device (vmenergy.devices.adapters.faults.FAULT_KINDS).
DEVICE_FAULT_KINDS = ("unreachable", "timeout", "exception", "bad-reply", "gone")


@dataclass(frozen=True, slots=True)
class DeviceFaultReport(Message):
    """A prosumer box tells its aggregator that a device behind ``offer_id`` misbehaved (a meter
    that does not answer, an exception code, a device unplugged): the schedule may not be kept
    and its measurement may be late or missing. The device was put in its safe state. ``at``:
    epoch seconds of the fault."""

    element = "device-fault"
    ack = "device-fault"
    performative = "failure"

    fault_id: str
    offer_id: str
    device: str
    kind: str
    reason: str
    at: int

    def __post_init__(self) -> None:
        _set(self, "fault_id", check_identifier(self.fault_id, "fault_id"))
        _set(self, "offer_id", check_identifier(self.offer_id, "offer_id"))
        _set(self, "device", check_identifier(self.device, "device"))
        _choice(self.kind, "kind", DEVICE_FAULT_KINDS)
        if not isinstance(self.reason, str) or not self.reason.strip():
            raise FlexOfferError("reason", "required (what went wrong)")
        if len(self.reason) > 2000:
            _set(self, "reason", self.reason[:1997] + "...")
        _set(self, "at", check_integer(self.at, "at"))

    def key(self) -> tuple:
        return ("device-fault", self.fault_id)

    @property
    def ref(self) -> str:
        return self.fault_id

    def summary(self) -> str:
        return f"device fault {self.kind} on {self.device} (offer {self.offer_id}): {self.reason}"


# ------------------------------------------------------------------------------------------
# congestion management between a DSO and its aggregators (USEF/UFTP names in docs/protocol.md)

def _series(values, path: str, *, at_least: int = 1) -> tuple[float, ...]:
    return tuple(check.numbers(values, path, at_least=at_least, at_most=MAX_INTERVALS))


@dataclass(frozen=True, slots=True)
class FlexRequestMessage(Message):
    """UFTP FlexRequest: a DSO asks an aggregator to keep the net load of its prosumers behind
    congestion ``point`` within ``max_kwh`` (import) and, if given, above ``min_kwh`` (export, kWh
    per interval, one value per interval from ``start``, at ``resolution``), offering ``price``
    EUR per kWh of load taken off; the aggregator answers with a :class:`FlexReplyMessage` before
    ``respond_before`` (epoch seconds)."""

    element = "flex-request"
    ack = "flex-request"
    performative = "cfp"

    request_id: str
    point: str
    start: int
    max_kwh: tuple[float, ...]
    price: float
    respond_before: int
    min_kwh: Optional[tuple[float, ...]] = None
    resolution: int = DEFAULT_RESOLUTION

    def __post_init__(self) -> None:
        _set(self, "request_id", check_identifier(self.request_id, "id"))
        _set(self, "point", check_identifier(self.point, "point"))
        _set(self, "start", check_integer(self.start, "start"))
        _set(self, "max_kwh", _series(self.max_kwh, "max"))
        _set(self, "price", check_number(self.price, "price", minimum=0))
        _set(self, "respond_before", check_integer(self.respond_before, "respond_before"))
        if self.min_kwh is not None:
            _set(self, "min_kwh", _series(self.min_kwh, "min"))
            if len(self.min_kwh) != len(self.max_kwh):
                raise FlexOfferError("min", f"has {len(self.min_kwh)} values; max has {len(self.max_kwh)}")
            for i, (lo, hi) in enumerate(zip(self.min_kwh, self.max_kwh)):
                if lo > hi:
                    raise FlexOfferError(f"min[{i}]", f"{lo:g} kWh is above max {hi:g} kWh")
        _set(self, "resolution", check_integer(self.resolution, "resolution", minimum=1))

    @property
    def end(self) -> int:
        return self.start + len(self.max_kwh)

    def key(self) -> tuple:
        return ("flex-request", self.request_id)

    @property
    def ref(self) -> str:
        return self.request_id

    def summary(self) -> str:
        res = self.resolution
        return (f"flex request {self.request_id} at {self.point}: load at most {max(self.max_kwh):g} kWh per interval "
                f"{format_utc(self.start * res)}..{format_utc(self.end * res)}, {self.price:g} EUR/kWh; "
                f"answer before {format_utc(self.respond_before)}")


@dataclass(frozen=True, slots=True)
class FlexReplyMessage(Message):
    """UFTP FlexOffer (named ``flex-reply`` here because ``flexoffer`` is VME's flex-offer): an
    aggregator's answer to a flex request: the aggregated flex-offers of its prosumers behind the
    point (none: nothing to offer), and its prognosis over the request's intervals (UFTP
    D-prognosis): ``baseline``, the load those offers take without flexibility (their default
    schedules), and ``committed``, the load already scheduled behind the point."""

    element = "flex-reply"
    ack = "flex-reply"
    performative = "propose"

    reply_id: str
    request_id: str
    point: str
    start: int
    baseline: tuple[float, ...]
    committed: tuple[float, ...]
    offers: tuple[FlexOffer, ...] = ()
    resolution: int = DEFAULT_RESOLUTION

    def __post_init__(self) -> None:
        _set(self, "reply_id", check_identifier(self.reply_id, "id"))
        _set(self, "request_id", check_identifier(self.request_id, "request"))
        _set(self, "point", check_identifier(self.point, "point"))
        _set(self, "start", check_integer(self.start, "start"))
        _set(self, "baseline", _series(self.baseline, "baseline"))
        _set(self, "committed", _series(self.committed, "committed"))
        if len(self.committed) != len(self.baseline):
            raise FlexOfferError("committed", f"has {len(self.committed)} values; baseline has {len(self.baseline)}")
        offers = tuple(self.offers)
        ids = set()
        for i, fo in enumerate(offers):
            if not isinstance(fo, FlexOffer):
                raise FlexOfferError(f"flexoffer[{i}]", "must be a FlexOffer")
            if fo.id in ids:
                raise FlexOfferError(f"flexoffer[{i}].id", f"{fo.id} appears twice")
            if fo.resolution != self.resolution:
                raise FlexOfferError(f"flexoffer[{i}].resolution", f"{fo.resolution} differs from {self.resolution}")
            ids.add(fo.id)
        _set(self, "offers", offers)
        _set(self, "resolution", check_integer(self.resolution, "resolution", minimum=1))

    def key(self) -> tuple:
        return ("flex-reply", self.reply_id)

    @property
    def ref(self) -> str:
        return self.reply_id

    def summary(self) -> str:
        return (f"flex reply {self.reply_id} to {self.request_id} at {self.point}: {len(self.offers)} offers, "
                f"baseline peak {max(b + c for b, c in zip(self.baseline, self.committed)):g} kWh")


#: What a DSO does with a flex reply.
ORDER_STATUSES = ("ordered", "declined")


@dataclass(frozen=True, slots=True)
class FlexOrderMessage(Message):
    """UFTP FlexOrder: the DSO's decision on a flex reply. ``ordered``: the aggregator runs its
    aggregates on ``schedules`` (one per offer of the reply that the DSO needs), taking
    ``ordered_kwh`` off the baseline, paid ``price`` EUR/kWh once delivery is verified;
    ``declined``: not needed (``reason``), the aggregator plans the offers itself within the
    request's limits."""

    element = "flex-order"
    ack = "flex-order"
    performative = "accept-proposal"

    order_id: str
    reply_id: str
    point: str
    status: str
    schedules: tuple[Schedule, ...] = ()
    ordered_kwh: float = 0.0
    price: float = 0.0
    reason: Optional[str] = None

    def __post_init__(self) -> None:
        _set(self, "order_id", check_identifier(self.order_id, "id"))
        _set(self, "reply_id", check_identifier(self.reply_id, "reply"))
        _set(self, "point", check_identifier(self.point, "point"))
        _choice(self.status, "status", ORDER_STATUSES)
        schedules = tuple(self.schedules)
        for i, s in enumerate(schedules):
            if not isinstance(s, Schedule):
                raise FlexOfferError(f"assignment[{i}]", "must be a Schedule")
        _set(self, "schedules", schedules)
        _set(self, "ordered_kwh", check_number(self.ordered_kwh, "ordered", minimum=0))
        _set(self, "price", check_number(self.price, "price", minimum=0))
        if self.status == "ordered" and not schedules:
            raise FlexOfferError("assignment", "an order carries the schedules it orders")
        if self.reason is not None and (not isinstance(self.reason, str) or len(self.reason) > 2000):
            raise FlexOfferError("reason", "text of at most 2000 characters")

    def key(self) -> tuple:
        return ("flex-order", self.order_id)

    @property
    def ref(self) -> str:
        return self.order_id

    def summary(self) -> str:
        if self.status == "declined":
            return f"flex order {self.order_id} for {self.reply_id}: declined ({self.reason or 'not needed'})"
        return (f"flex order {self.order_id} for {self.reply_id} at {self.point}: {self.ordered_kwh:g} kWh off the "
                f"baseline at {self.price:g} EUR/kWh, {len(self.schedules)} schedules")


@dataclass(frozen=True, slots=True)
class FlexSettlementMessage(Message):
    """UFTP FlexSettlement: what the DSO pays for one order after checking the metered load
    against the baseline: ``delivered_kwh`` of the ``ordered_kwh`` taken off; ``incentive_cents``
    paid to the aggregator, ``penalty_cents`` charged for a shortfall beyond the tolerance band."""

    element = "flex-settlement"
    ack = "flex-settlement"
    performative = "inform"

    settlement_id: str
    order_id: str
    ordered_kwh: float
    delivered_kwh: float
    incentive_cents: int
    penalty_cents: int

    def __post_init__(self) -> None:
        _set(self, "settlement_id", check_identifier(self.settlement_id, "id"))
        _set(self, "order_id", check_identifier(self.order_id, "order_id"))
        _set(self, "ordered_kwh", check_number(self.ordered_kwh, "ordered_kwh", minimum=0))
        _set(self, "delivered_kwh", check_number(self.delivered_kwh, "delivered_kwh", minimum=0))
        _set(self, "incentive_cents", check_integer(self.incentive_cents, "incentive_cents", minimum=0))
        _set(self, "penalty_cents", check_integer(self.penalty_cents, "penalty_cents", minimum=0))

    @property
    def total_cents(self) -> int:
        """Paid to the aggregator (negative: the aggregator pays)."""
        return self.incentive_cents - self.penalty_cents

    def key(self) -> tuple:
        return ("flex-settlement", self.settlement_id)

    @property
    def ref(self) -> str:
        return self.settlement_id

    def summary(self) -> str:
        return (f"flex settlement {self.settlement_id} of {self.order_id}: {self.delivered_kwh:g} of "
                f"{self.ordered_kwh:g} kWh delivered, {format_eur(self.total_cents)} EUR")
