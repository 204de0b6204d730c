"""What one market participant (an aggregator) sold over a settlement period, and at what prices.

The market package clears sessions; settlement only needs its outcome as plain numbers, so the
two can be built and tested apart. Arrays are aligned with the meter period (one value per
interval). Sign convention as everywhere: ``sold_kwh`` is the adaptation sold, + more consumption
(or less production), - less consumption (or more production).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from .errors import SettlementError

__all__ = ["MarketSales"]


@dataclass(eq=False)
class MarketSales:
    """What ``participant`` sold and at what prices.

    ``sold_kwh`` (T): adaptation sold per interval; ``price`` (T): revenue per sold kWh (EUR/kWh,
    revenue of an interval = price x |sold|); ``imbalance_price`` (T): EUR per kWh of difference
    between the delivered and the sold adaptation (default: no imbalance charge).
    """

    participant: str
    sold_kwh: np.ndarray
    price: np.ndarray
    imbalance_price: Optional[np.ndarray] = None

    def __post_init__(self) -> None:
        if not isinstance(self.participant, str) or not self.participant:
            raise SettlementError("market.participant", "required (the aggregator's id, as in its contracts)")
        for name in ("sold_kwh", "price", "imbalance_price"):
            v = getattr(self, name)
            if v is None:
                continue
            a = np.asarray(v, dtype=np.float64)
            if a.ndim != 1:
                raise SettlementError(f"market[{self.participant}].{name}", "must be one value per interval")
            bad = np.flatnonzero(~np.isfinite(a))
            if len(bad):
                raise SettlementError(f"market[{self.participant}].{name}[{int(bad[0])}]", "not a finite number")
            setattr(self, name, a)
        if self.imbalance_price is None:
            self.imbalance_price = np.zeros_like(self.sold_kwh)
        if not (len(self.sold_kwh) == len(self.price) == len(self.imbalance_price)):
            raise SettlementError(f"market[{self.participant}]", "sold_kwh, price and imbalance_price differ in length")

    def check_period(self, n_intervals: int) -> None:
        if len(self.sold_kwh) != n_intervals:
            raise SettlementError(
                f"market[{self.participant}].sold_kwh",
                f"has {len(self.sold_kwh)} values; the settlement period has {n_intervals} intervals",
            )
