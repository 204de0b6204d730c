"""A synthetic, reproducible many-to-many market for scale tests and bench/bench_market.py.

Half the bids are consumers (EV-like: 0.5-2.8 kWh per slice, 40-80 % of the most they could
take, willing to pay 0.15-0.35 EUR/kWh), a third producers (curtailable generation asking
0.02-0.20 EUR/kWh), the rest home batteries (+-1.25 kWh per slice, energy-neutral over the
profile, buying at up to 0.05-0.20 and selling from 0.02-0.10 above that). Every bid has 2-6
slices and 1-8 possible starts in a 96-interval day.
"""

from __future__ import annotations

import numpy as np

from vmenergy.flexoffer import FlexOffer, Prices, Profile, Slice, SlicePrice, TotalEnergy
from vmenergy.market import FlexOfferBid

T0 = 2_000_000


def flex_bids(n: int, *, T: int = 96, seed: int = 0, t0: int = T0, fixed_start: bool = False) -> list[FlexOfferBid]:
    """``n`` flex-offer bids; ``fixed_start`` removes the time flexibility (the reference)."""
    rng = np.random.default_rng(seed)
    bids = []
    for i in range(n):
        u = rng.random()
        k = int(rng.integers(2, 7))
        w = int(rng.integers(1, 9))
        sa = t0 + int(rng.integers(0, T - k - w + 1))
        if u < 0.5:
            hi = float(rng.uniform(0.5, 2.8))
            need = hi * k * float(rng.uniform(0.4, 0.8))
            prof = Profile(tuple(Slice(1, 0.0, hi) for _ in range(k)), total=TotalEnergy(need * 0.9, need))
            price = SlicePrice(float(rng.uniform(0.15, 0.35)), 1.0)
        elif u < 0.85:
            hi = float(rng.uniform(0.5, 2.0))
            prof = Profile(tuple(Slice(1, -hi, 0.0) for _ in range(k)))
            price = SlicePrice(0.0, float(rng.uniform(0.02, 0.2)))
        else:
            prof = Profile(tuple(Slice(1, -1.25, 1.25) for _ in range(k)), total=TotalEnergy(0, 0))
            up = float(rng.uniform(0.05, 0.2))
            price = SlicePrice(up, up + float(rng.uniform(0.02, 0.1)))
        fo = FlexOffer(id=f"fo{i}", profiles=(prof,), start_after=sa, start_before=sa if fixed_start else sa + w - 1,
                       prices=Prices((price,)))
        bids.append(FlexOfferBid(f"b{i}", f"p{i}", fo))
    return bids
