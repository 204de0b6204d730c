"""Markets: sessions and their clearing (what the market node, FMAR, runs).

Pure core: no I/O, no clock; ``now`` is passed in (epoch seconds), delivery is in intervals.

>>> from vmenergy.market import MarketSession, TwoSidedPool, Order   # doctest: +SKIP
>>> s = MarketSession("day-ahead-1", TwoSidedPool(), delivery_start=t0, delivery_end=t0 + 96)
>>> s.register("alice"); s.open(now); s.place(Order(...), now); s.close(now); result = s.clear(now)

Mechanisms: one-sided pool (merit order against one buyer's demand), two-sided pool (uniform
price), many-to-many (welfare MIP over flex-offer bids), implicit capacity (zones, links,
transport cost). Pricing: uniform or pay-as-bid. See ``docs/market.md``.
"""

from .bids import Bid, FlexOfferBid, Order, Product, Side
from .errors import MarketError
from .events import (BidAck, ParticipantDeregistered, ParticipantRegistered, SessionCleared, SessionClosed,
                     SessionOpened)
from .mechanisms import ImplicitCapacity, Link, ManyToMany, Mechanism, OneSidedPool, Pricing, TwoSidedPool
from .pools import merit_order, uniform_crossing
from .results import Activation, Award, ImbalanceLine, MarketResult, Reservation
from .session import MarketSession, SessionState

__all__ = [
    "MarketSession",
    "SessionState",
    "Order",
    "FlexOfferBid",
    "Bid",
    "Side",
    "Product",
    "Pricing",
    "OneSidedPool",
    "TwoSidedPool",
    "ManyToMany",
    "ImplicitCapacity",
    "Link",
    "Mechanism",
    "MarketResult",
    "Award",
    "Reservation",
    "Activation",
    "ImbalanceLine",
    "BidAck",
    "SessionOpened",
    "SessionClosed",
    "SessionCleared",
    "ParticipantRegistered",
    "ParticipantDeregistered",
    "MarketError",
    "merit_order",
    "uniform_crossing",
]
