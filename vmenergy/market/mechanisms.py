"""How a session clears: the mechanism and pricing chosen when the session is created.

- :class:`OneSidedPool`: one buyer with a fixed demand (a DSO asking for flexibility: volume per
  interval and a cut-off price) against sell orders, accepted in merit order.
- :class:`TwoSidedPool`: sell and buy orders per product and interval meet at a uniform price
  where sorted supply crosses sorted demand.
- :class:`ManyToMany`: flex-offer bids (with time flexibility) and energy orders of many buyers
  and sellers; a MIP maximises social welfare.
- :class:`ImplicitCapacity`: like many-to-many across zones joined by links with a capacity
  (kWh per interval, each direction) and a transport cost (EUR/kWh) that the flows pay.

:class:`Pricing`: ``uniform`` (one price per product, interval and zone; what the pools derive
from the crossing, what the MIPs derive from the balance constraints' duals) or ``pay-as-bid``
(every accepted bid at its own price).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import Enum
from typing import Mapping, Sequence, Union

from vmenergy.validation import set_field

from .bids import Product
from .errors import MarketError, check

__all__ = ["Pricing", "OneSidedPool", "TwoSidedPool", "ManyToMany", "ImplicitCapacity", "Link", "Mechanism"]


class Pricing(str, Enum):
    UNIFORM = "uniform"
    PAY_AS_BID = "pay-as-bid"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class OneSidedPool:
    """``buyer`` wants ``demand`` kWh (per interval of the delivery window: a number for every
    interval, or a mapping interval -> kWh) of product ``kind`` at no more than
    ``cutoff_price`` EUR/kWh."""

    buyer: str
    demand: Union[float, Mapping[int, float]]
    cutoff_price: float
    kind: Product = Product.UP
    name: str = field(default="one-sided", init=False)

    def __post_init__(self) -> None:
        set_field(self, "buyer", check.identifier(self.buyer, "mechanism.buyer"))
        set_field(self, "cutoff_price", check.number(self.cutoff_price, "mechanism.cutoff_price"))
        try:
            set_field(self, "kind", Product(self.kind))
        except ValueError:
            raise MarketError("mechanism.kind", f"must be energy, up or down, got {self.kind!r}") from None
        if isinstance(self.demand, Mapping):
            clean = {}
            for k, v in self.demand.items():
                if isinstance(k, bool) or not isinstance(k, int):
                    raise MarketError("mechanism.demand", f"keys must be interval numbers, got {k!r}")
                clean[k] = check.number(v, f"mechanism.demand[{k}]", minimum=0.0)
            set_field(self, "demand", clean)
        else:
            set_field(self, "demand", check.number(self.demand, "mechanism.demand", minimum=0.0))

    def demand_at(self, t: int) -> float:
        demand = self.demand
        return demand.get(t, 0.0) if isinstance(demand, Mapping) else float(demand)


@dataclass(frozen=True)
class TwoSidedPool:
    name: str = field(default="two-sided", init=False)


@dataclass(frozen=True)
class ManyToMany:
    """Welfare-maximising MIP; ``solver`` as in planning (auto, highs, cbc)."""

    time_limit: float = 60.0
    gap: float = 1e-3
    solver: str = "auto"
    name: str = field(default="many-to-many", init=False)

    def __post_init__(self) -> None:
        check.number(self.time_limit, "mechanism.time_limit", positive=True)
        if not (0 <= check.number(self.gap, "mechanism.gap") < 1):
            raise MarketError("mechanism.gap", "must be a fraction in [0, 1)")


@dataclass(frozen=True)
class Link:
    """A connection between two zones: up to ``capacity`` kWh per interval in each direction,
    ``cost`` EUR per kWh moved (added to the price difference between the zones)."""

    a: str
    b: str
    capacity: float
    cost: float = 0.0

    def __post_init__(self) -> None:
        set_field(self, "capacity", check.number(self.capacity, "capacity", minimum=0.0))
        set_field(self, "cost", check.number(self.cost, "cost", minimum=0.0))


@dataclass(frozen=True)
class ImplicitCapacity:
    """Zones and links; every participant registers in one zone. Clears like
    :class:`ManyToMany` with flows between zones."""

    zones: Sequence[str]
    links: Sequence[Link] = ()
    time_limit: float = 60.0
    gap: float = 1e-3
    solver: str = "auto"
    name: str = field(default="implicit-capacity", init=False)

    def __post_init__(self) -> None:
        zones = tuple(check.identifier(z, f"mechanism.zones[{i}]") for i, z in enumerate(self.zones))
        if not zones:
            raise MarketError("mechanism.zones", "at least one zone")
        if len(set(zones)) != len(zones):
            raise MarketError("mechanism.zones", "zone names must be unique")
        set_field(self, "zones", zones)
        links = tuple(self.links)
        for i, ln in enumerate(links):
            if not isinstance(ln, Link):
                raise MarketError(f"mechanism.links[{i}]", "must be a Link")
            for end in (ln.a, ln.b):
                if end not in zones:
                    raise MarketError(f"mechanism.links[{i}]", f"unknown zone {end!r}")
            if ln.a == ln.b:
                raise MarketError(f"mechanism.links[{i}]", "a link joins two different zones")
        set_field(self, "links", links)
        check.number(self.time_limit, "mechanism.time_limit", positive=True)
        if not (0 <= check.number(self.gap, "mechanism.gap") < 1) or math.isnan(self.gap):
            raise MarketError("mechanism.gap", "must be a fraction in [0, 1)")


Mechanism = Union[OneSidedPool, TwoSidedPool, ManyToMany, ImplicitCapacity]
