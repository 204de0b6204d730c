"""The messages VME nodes exchange, as plain immutable values (no XML, no XMPP).

Every message carries the id it refers to, and :meth:`key` gives the identity a receiver uses to
be idempotent: a message whose key was seen before changes nothing (the receiver only repeats its
earlier answer, because the sender resends when an answer was lost).

Times: ``start``/``end`` of energy periods are intervals at ``resolution``; instants (gate
closure, bill periods) are epoch seconds, as in the flex-offer model. Money is integer cents so
bills add up exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Union

from vmenergy.flexoffer import FlexOffer, FlexOfferError, Schedule
from vmenergy.flexoffer.errors import check
from vmenergy.flexoffer.timeutil import DEFAULT_RESOLUTION
from vmenergy.validation import set_field as _set

__all__ = [
    "OPS",
    "ACK_KINDS",
    "OfferMessage",
    "Ack",
    "AssignmentMessage",
    "Measurement",
    "BillLine",
    "BillMessage",
    "Registration",
    "MarketSessionNotice",
    "BidMessage",
    "Clearing",
    "ReservationMessage",
    "ActivationMessage",
    "Message",
    "needs_ack",
]

OPS = ("insert", "update", "delete")
ACK_KINDS = ("flexoffer", "assignment", "measurement", "bill", "registration", "bid", "clearing", "reservation",
             "activation")
SIDES = ("buy", "sell")
MAX_INTERVALS = 100_000


# The model's field checks (FlexOfferError with the field's path), under their usual names here.
check_identifier, check_integer, check_number, _choice = check.identifier, check.integer, check.number, check.choice


@dataclass(frozen=True, slots=True)
class OfferMessage:
    """A prosumer (or child aggregator) inserts, updates or deletes a flex-offer."""

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


@dataclass(frozen=True, slots=True)
class Ack:
    """The answer to a message of ``kind`` with id ``ref``: accepted, or rejected with a reason."""

    kind: str
    ref: str
    status: str
    reason: Optional[str] = None
    version: Optional[int] = None

    def __post_init__(self) -> None:
        _choice(self.kind, "kind", ACK_KINDS)
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


@dataclass(frozen=True, slots=True)
class AssignmentMessage:
    """A schedule for an offer (aggregator -> prosumer, or market -> participant in a clearing)."""

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


@dataclass(frozen=True, slots=True)
class Measurement:
    """Metered energy (kWh per interval, + consumption) of the device behind ``offer_id``."""

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


@dataclass(frozen=True, slots=True)
class BillLine:
    """One readable line of a bill; ``amount_cents`` > 0 is paid to the addressee. ``code`` is the
    settlement line code (``flexible_energy``, ``penalty``, ...; the wire attribute ``kind``)."""

    code: str
    description: str
    amount_cents: int
    offer_id: Optional[str] = None

    def __post_init__(self) -> None:
        if not isinstance(self.code, str) or not self.code:
            raise FlexOfferError("kind", "required")  # named as on the wire
        if not isinstance(self.description, str):
            raise FlexOfferError("description", "must be text")
        _set(self, "amount_cents", check_integer(self.amount_cents, "amount"))
        if self.offer_id is not None:
            _set(self, "offer_id", check_identifier(self.offer_id, "offer_id"))


@dataclass(frozen=True, slots=True)
class BillMessage:
    """A settlement statement: its lines add up to ``total_cents`` exactly."""

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

    @property
    def total_cents(self) -> int:
        return sum(line.amount_cents for line in self.lines)

    def key(self) -> tuple:
        return ("bill", self.bill_id)

    @property
    def ref(self) -> str:
        return self.bill_id


@dataclass(frozen=True, slots=True)
class Registration:
    """A participant registers with (or leaves) a market."""

    op: str
    participant: str
    role: str = "both"

    def __post_init__(self) -> None:
        _choice(self.op, "op", ("register", "deregister"))
        _set(self, "participant", check_identifier(self.participant, "participant"))
        _choice(self.role, "role", ("buyer", "seller", "both"))

    def key(self) -> tuple:
        return ("registration", self.participant, self.op)

    @property
    def ref(self) -> str:
        return self.participant


@dataclass(frozen=True, slots=True)
class MarketSessionNotice:
    """A market tells its participants a session opened, closed or was cleared."""

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

    def key(self) -> tuple:
        return ("market-session", self.session_id, self.state)


@dataclass(frozen=True, slots=True)
class BidMessage:
    """A bid in a market session: a flex-offer with prices, or a simple order.

    Simple order fields follow the GOFLEX market: ``volume`` (kWh), ``price`` (EUR/kWh, the
    reservation or energy price), ``activation_price`` (EUR/kWh when activated), ``expiry``
    (epoch seconds), and the period ``start``..``end`` (intervals at ``resolution`` seconds, the
    session's) it covers.
    """

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


@dataclass(frozen=True, slots=True)
class Clearing:
    """The result of one bid: accepted (fully or partly) at ``price`` with ``volume``, with a
    schedule when the bid was a flex-offer; or rejected with a reason."""

    session_id: str
    bid_id: str
    status: str
    volume: float = 0.0
    price: Optional[float] = None
    reason: Optional[str] = None
    schedule: Optional[Schedule] = None
    clearing_price: Optional[float] = None

    def __post_init__(self) -> None:
        _set(self, "session_id", check_identifier(self.session_id, "session"))
        _set(self, "bid_id", check_identifier(self.bid_id, "bid"))
        _choice(self.status, "status", ("accepted", "partial", "rejected"))
        _set(self, "volume", check_number(self.volume, "volume"))
        for name in ("price", "clearing_price"):
            if getattr(self, name) is not None:
                _set(self, name, check_number(getattr(self, name), name))
        if self.schedule is not None and not isinstance(self.schedule, Schedule):
            raise FlexOfferError("assignment", "must be a Schedule")

    def key(self) -> tuple:
        return ("clearing", self.session_id, self.bid_id)

    @property
    def ref(self) -> str:
        return self.bid_id


@dataclass(frozen=True, slots=True)
class ReservationMessage:
    """Capacity reserved from an accepted bid for a period ``start``..``end`` (intervals at
    ``resolution`` seconds); it may be activated later."""

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


@dataclass(frozen=True, slots=True)
class ActivationMessage:
    """Activation of (part of) a reservation: deliver ``volume`` kWh over ``start``..``end``
    (intervals at ``resolution`` seconds)."""

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


Message = Union[
    OfferMessage, Ack, AssignmentMessage, Measurement, BillMessage, Registration, MarketSessionNotice, BidMessage,
    Clearing, ReservationMessage, ActivationMessage,
]

_ACKED = {
    OfferMessage: "flexoffer", AssignmentMessage: "assignment", Measurement: "measurement", BillMessage: "bill",
    Registration: "registration", BidMessage: "bid", Clearing: "clearing", ReservationMessage: "reservation",
    ActivationMessage: "activation",
}


def needs_ack(msg: Message) -> Optional[str]:
    """The ack kind a receiver answers ``msg`` with, or None (acks and notices are not acked)."""
    return _ACKED.get(type(msg))


def ack_ref(msg: Message) -> tuple[str, Optional[int]]:
    """(ref, version) an ack of ``msg`` carries, so the sender can match it to its outbox."""
    if isinstance(msg, OfferMessage):
        return msg.offer_id, msg.version
    if isinstance(msg, AssignmentMessage):
        return msg.schedule.schedule_id, msg.schedule.update_id  # type: ignore[return-value]
    return msg.ref, None  # type: ignore[union-attr]


