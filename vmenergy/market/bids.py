"""What participants put into a market: simple orders and flex-offer bids.

A simple :class:`Order` is a volume per interval over a delivery period at a limit price: a buy
is paid for at most ``price``, a sell is made for at least ``price`` (EUR/kWh). For the
flexibility products ``up`` and ``down`` the price is the *reservation* price and
``activation_price`` what an activation later pays per kWh. Orders are divisible: any part of
the volume may be accepted (the pools accept the marginal order partly).

A :class:`FlexOfferBid` offers a whole flex-offer. Its ``prices`` are read as a linear price
curve per slice: ``up`` is the most the participant pays per kWh it consumes (its bid) and
``down`` the least it accepts per kWh it produces (its ask). A slice's value is therefore
``up * x`` for x >= 0 and ``down * x`` for x < 0 (x kWh, + consumption). A flex-offer bid is
accepted as a whole schedule that meets every constraint of the offer, or not at all.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Optional, Union

from vmenergy.flexoffer import FlexOffer
from vmenergy.validation import set_field

from .errors import MarketError, check

__all__ = ["Side", "Product", "Order", "FlexOfferBid", "Bid"]


class Side(str, Enum):
    BUY = "buy"
    SELL = "sell"

    def __str__(self) -> str:
        return self.value


class Product(str, Enum):
    """``energy`` is delivered energy; ``up``/``down`` reserve upward (more production / less
    consumption) or downward regulation, activated later at the activation price."""

    ENERGY = "energy"
    UP = "up"
    DOWN = "down"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class Order:
    """A divisible order: ``volume`` kWh in every interval of [start, end) at limit ``price``.

    ``expiry`` (epoch seconds): the order is void from then on. ``zone`` is taken from the
    participant's registration when the session has zones.
    """

    id: str
    participant: str
    side: Side
    volume: float
    price: float
    start: int
    end: Optional[int] = None
    kind: Product = Product.ENERGY
    activation_price: Optional[float] = None
    expiry: Optional[int] = None

    def __post_init__(self) -> None:
        set_field(self, "id", check.identifier(self.id, "id"))
        set_field(self, "participant", check.identifier(self.participant, "participant"))
        try:
            set_field(self, "side", Side(self.side))
        except ValueError:
            raise MarketError("side", f"must be buy or sell, got {self.side!r}") from None
        try:
            set_field(self, "kind", Product(self.kind))
        except ValueError:
            raise MarketError("kind", f"must be energy, up or down, got {self.kind!r}") from None
        set_field(self, "volume", check.number(self.volume, "volume", positive=True))
        set_field(self, "price", check.number(self.price, "price"))
        start = check.integer(self.start, "start")
        end = start + 1 if self.end is None else check.integer(self.end, "end")
        if end <= start:
            raise MarketError("end", f"must be after start ({end} <= {start})")
        set_field(self, "start", start)
        set_field(self, "end", end)
        if self.activation_price is not None:
            if self.kind is Product.ENERGY:
                raise MarketError("activation_price", "only flexibility products (up, down) are activated")
            set_field(self, "activation_price", check.number(self.activation_price, "activation_price"))
        if self.expiry is not None:
            set_field(self, "expiry", check.integer(self.expiry, "expiry"))

    @property
    def intervals(self) -> range:
        return range(self.start, self.end)  # type: ignore[arg-type]


@dataclass(frozen=True)
class FlexOfferBid:
    """A flex-offer placed as one all-or-nothing bid (see module doc for its price curve).

    ``expiry`` defaults to the offer's ``acceptance_before``.
    """

    id: str
    participant: str
    offer: FlexOffer
    expiry: Optional[int] = None

    def __post_init__(self) -> None:
        set_field(self, "id", check.identifier(self.id, "id"))
        set_field(self, "participant", check.identifier(self.participant, "participant"))
        if not isinstance(self.offer, FlexOffer):
            raise MarketError("offer", f"must be a FlexOffer, got {type(self.offer).__name__}")
        if self.expiry is not None:
            set_field(self, "expiry", check.integer(self.expiry, "expiry"))

    @property
    def effective_expiry(self) -> Optional[int]:
        return self.expiry if self.expiry is not None else self.offer.acceptance_before

    @property
    def side(self) -> str:
        """``buy`` (consumption), ``sell`` (production) or ``both`` (e.g. a battery)."""
        d = self.offer.direction
        return "buy" if d == "consumption" else "sell" if d == "production" else "both"


Bid = Union[Order, FlexOfferBid]
