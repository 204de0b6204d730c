"""What clearing produces: awards, rejections, prices, reservations, and what settlement needs.

Sign convention everywhere: energy + means the participant consumes / buys, - produces / sells
(kWh per interval); money + means the participant pays, - it is paid (EUR).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Mapping, Optional

from vmenergy.flexoffer import Schedule
from vmenergy.planning.solver import SolverReport

from .bids import Product

__all__ = ["Award", "MarketResult", "Reservation", "Activation", "ImbalanceLine"]


@dataclass(frozen=True)
class Award:
    """An accepted bid (possibly in part): energy per interval, what it pays, its schedule."""

    bid_id: str
    participant: str
    side: str
    kind: Product
    energy: dict[int, float]
    amount: float
    zone: Optional[str] = None
    schedule: Optional[Schedule] = None

    @property
    def volume(self) -> float:
        """kWh traded, both directions counted."""
        return math.fsum(abs(v) for v in self.energy.values())

    @property
    def price(self) -> Optional[float]:
        """Average EUR per kWh traded (None when nothing was traded)."""
        v = self.volume
        return None if v <= 0 else abs(self.amount) / v


@dataclass(frozen=True)
class Reservation:
    """Flexibility reserved from ``provider`` for ``holder``: ``volume`` kWh per interval of
    [start, end) in direction ``kind``, paid ``price`` EUR/kWh now, ``activation_price`` when used."""

    id: str
    bid_id: str
    provider: str
    holder: str
    kind: Product
    start: int
    end: int
    volume: dict[int, float]
    price: float
    activation_price: Optional[float]


@dataclass(frozen=True)
class Activation:
    """A call on a reservation: ``volume`` kWh per interval over [start, end)."""

    id: str
    reservation_id: str
    provider: str
    holder: str
    kind: Product
    start: int
    end: int
    volume: float
    price: float

    @property
    def amount(self) -> float:
        """EUR the holder pays the provider for the activated energy."""
        return self.price * self.volume * (self.end - self.start)


@dataclass(frozen=True)
class ImbalanceLine:
    """One participant, one interval: contracted vs metered energy and the imbalance cost."""

    participant: str
    interval: int
    contracted: float
    metered: float
    deviation: float
    cost: float


@dataclass
class MarketResult:
    """The outcome of clearing a session.

    ``prices``: (zone, interval, product) -> uniform clearing price (zone None without zones);
    under pay-as-bid the prices are still reported (they are what uniform pricing would charge)
    but awards pay their own bids. ``flows``: (from zone, to zone, interval) -> kWh.
    ``welfare``: sum of the accepted bids' values minus the accepted offers' costs minus
    transport costs (EUR). ``report``: the solver's account for the MIP mechanisms.
    """

    session_id: str
    mechanism: str
    pricing: str
    awards: dict[str, Award]
    rejected: dict[str, str]
    prices: dict[tuple, float]
    welfare: float
    flows: dict[tuple[str, str, int], float] = field(default_factory=dict)
    reservations: list[Reservation] = field(default_factory=list)
    report: Optional[SolverReport] = None

    def position(self, participant: str) -> dict[int, float]:
        """Net energy per interval the participant bought (+) or sold (-), energy products
        only; what :meth:`vmenergy.planning.Objective.follow_market` takes."""
        out: dict[int, float] = {}
        for a in self.awards.values():
            if a.participant == participant and a.kind is Product.ENERGY:
                for t, e in a.energy.items():
                    out[t] = out.get(t, 0.0) + e
        return dict(sorted(out.items()))

    def balance(self) -> dict[tuple, float]:
        """Per (zone, interval, product): accepted buys - accepted sells + exports - imports.
        Zero everywhere when the market balances (the one-sided buyer's award included)."""
        out: dict[tuple, float] = {}
        for a in self.awards.values():
            for t, e in a.energy.items():
                k = (a.zone, t, a.kind)
                out[k] = out.get(k, 0.0) + e
        for (za, zb, t), f in self.flows.items():
            out[(za, t, Product.ENERGY)] = out.get((za, t, Product.ENERGY), 0.0) + f
            out[(zb, t, Product.ENERGY)] = out.get((zb, t, Product.ENERGY), 0.0) - f
        return out

    def imbalance(self, metered: Mapping[str, Mapping[int, float]], price_over: float,
                  price_under: Optional[float] = None) -> list[ImbalanceLine]:
        """Metering input for settlement: for every participant with an energy position and
        every interval of it, metered minus contracted energy, priced ``price_over`` EUR/kWh
        when above the position and ``price_under`` (default the same) when below."""
        under = price_over if price_under is None else price_under
        lines = []
        participants = sorted({a.participant for a in self.awards.values() if a.kind is Product.ENERGY})
        for p in participants:
            pos = self.position(p)
            got = metered.get(p, {})
            for t in sorted(set(pos) | set(got)):
                c = pos.get(t, 0.0)
                m = float(got.get(t, 0.0))
                d = m - c
                lines.append(ImbalanceLine(p, t, c, m, d, (price_over if d > 0 else under) * abs(d)))
        return lines
