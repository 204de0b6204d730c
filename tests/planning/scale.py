"""A synthetic, reproducible portfolio for scale tests and benchmarks (bench/bench_planning.py).

A mix of the offers an aggregator sees, with realistic 15-minute energies: EV charging (11 kW,
total energy window), heat pumps (four slices, total +-10 %), wet appliances (fixed profile,
time-flexible, sometimes two exclusive-OR programmes), PV curtailment (production, fixed start)
and home batteries (dependency polytope on the state of charge). The target is a smooth daily
shape with the same energy as the portfolio's midpoint; ``amplitude`` sets how much it swings
(0.6: the portfolio can nearly follow it; 1.2: it cannot, part of the target is negative).
"""

from __future__ import annotations

import numpy as np

from vmenergy.flexoffer import FlexOffer, Profile, Slice, TotalEnergy
from vmenergy.flexoffer.builders import battery_profile

T0 = 2_000_000


def portfolio(n: int, *, T: int = 96, seed: int = 0, t0: int = T0, amplitude: float = 0.6,
              batteries: bool = True) -> tuple[list[FlexOffer], np.ndarray, int]:
    """``n`` offers over a ``T``-interval horizon from ``t0``, and a target profile for them."""
    rng = np.random.default_rng(seed)
    offers = []
    for i in range(n):
        u = rng.random()
        if u < 0.40:  # EV: 11 kW charger (2.8 kWh per 15 min), needs 35-75 % of what it could take
            k = int(rng.integers(4, 9))
            need = float(rng.uniform(0.35, 0.75)) * 2.8 * k
            profs = (Profile(tuple(Slice(1, 0.0, 2.8) for _ in range(k)), total=TotalEnergy(need * 0.9, need)),)
            w, kind = int(rng.integers(8, 33)), "ev"
        elif u < 0.65:  # heat pump: four slices of 0.3..1.0 kWh, total +-10 %
            mid = 0.65 * 4
            profs = (Profile(tuple(Slice(1, 0.3, 1.0) for _ in range(4)), total=TotalEnergy(mid * 0.9, mid * 1.1)),)
            w, kind = int(rng.integers(4, 17)), "hp"
        elif u < 0.80:  # wet appliance: fixed profile, time-flexible, sometimes two programmes
            k = int(rng.integers(3, 7))
            e = rng.uniform(0.1, 0.6, k)
            alt = [Profile(tuple(Slice(1, float(v), float(v)) for v in e))]
            if rng.random() < 0.5:
                alt.append(Profile(tuple(Slice(2, float(v), float(v)) for v in e[: max(1, k // 2)] * 1.6)))
            profs, w, kind = tuple(alt), int(rng.integers(8, 41)), "wet"
        elif u < 0.90 or not batteries:  # PV curtailment: production, fixed start
            k = int(rng.integers(8, 17))
            shape = np.sin(np.linspace(0.2, np.pi - 0.2, k)) * float(rng.uniform(0.5, 1.5))
            profs, w, kind = (Profile(tuple(Slice(1, -float(v), 0.0) for v in shape)),), 1, "pv"
        else:  # home battery: 5-13.5 kWh, 1.25 kWh per slice either way, end at >= 90 % of its start
            k = int(rng.integers(4, 9))
            cap = float(rng.uniform(5, 13.5))
            soc = cap * float(rng.uniform(0.2, 0.8))
            profs = (battery_profile(k, capacity=cap, soc=soc, charge=1.25, discharge=1.25, final_soc_min=soc * 0.9),)
            w, kind = int(rng.integers(1, 9)), "bat"
        dur = max(p.duration for p in profs)
        sa = t0 + int(rng.integers(0, max(1, T - dur - w + 1)))
        sb = max(sa, min(sa + w - 1, t0 + T - dur))
        offers.append(FlexOffer(id=f"{kind}-{i}", profiles=profs, start_after=sa, start_before=sb))
    mid = sum((fo.profiles[0].min_total + fo.profiles[0].max_total) / 2 for fo in offers)
    x = np.arange(T)
    shape = 1 + amplitude * np.sin(2 * np.pi * (x - 20) / T) + amplitude / 3 * np.sin(6 * np.pi * x / T)
    return offers, mid * shape / shape.sum(), t0
