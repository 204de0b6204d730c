"""Market benchmarks: pool clearing at 100,000 orders, welfare MIP at 1,000 flex-offer bids.

Usage: python bench/bench_market.py [--quick]

Figures, each next to a reference measured in the same run:
1. two-sided uniform-price clearing of 100,000 orders (96 intervals): the vectorised crossing
   (``uniform_crossing`` on arrays) against a plain-Python sort-and-walk on the same orders
   (same accepted volumes required), plus the session path (placing every order, then
   ``clear()``);
2. one-sided merit order, 100,000 sell orders against a demand per interval, same comparison;
3. many-to-many MIP over 1,000 flex-offer bids x 96 intervals (300 and 20 s with --quick): time, status,
   proven gap, welfare; reference: the same bids without time flexibility (fixed at their
   earliest start), i.e. what time flexibility adds;
4. implicit capacity trading: 3 zones, 30,000 orders, 2 links (LP).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.market.scale import T0, flex_bids  # noqa: E402
from vmenergy.market import (ImplicitCapacity, Link, ManyToMany, MarketSession, Order, TwoSidedPool,  # noqa: E402
                             merit_order, uniform_crossing)

from machine import describe as machine  # noqa: E402  bench/machine.py (the script's folder is on sys.path)

NOW = (T0 - 8) * 900


def load() -> str:
    a, b, c = os.getloadavg()
    return f"load average {a:.2f} {b:.2f} {c:.2f}"


def orders(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    t = rng.integers(0, 96, n)
    is_buy = rng.random(n) < 0.5
    vol = np.round(rng.uniform(0.1, 50, n), 3)
    # buyers a little above sellers on average so that about half the volume trades
    price = np.round(np.where(is_buy, rng.normal(0.20, 0.06, n), rng.normal(0.16, 0.06, n)), 4)
    return t, is_buy, vol, price, np.arange(n)


def walk(t, is_buy, vol, price, seq):
    """Sort-and-walk in plain Python: group per interval, sort both sides, walk the curves."""
    groups: dict[int, tuple[list, list]] = {}
    for i in range(len(t)):
        g = groups.setdefault(int(t[i]), ([], []))
        (g[0] if is_buy[i] else g[1]).append(i)
    acc = [0.0] * len(t)
    for key, (buys, sells) in groups.items():
        buys.sort(key=lambda i: (-price[i], seq[i]))
        sells.sort(key=lambda i: (price[i], seq[i]))
        rb = [float(vol[i]) for i in buys]
        rs = [float(vol[i]) for i in sells]
        a = b = 0
        while a < len(sells) and b < len(buys) and price[buys[b]] >= price[sells[a]]:
            x = min(rs[a], rb[b])
            acc[sells[a]] += x
            acc[buys[b]] += x
            rs[a] -= x
            rb[b] -= x
            if rs[a] <= 1e-12:
                a += 1
            if rb[b] <= 1e-12:
                b += 1
    return acc


def walk_merit(t, price, vol, seq, demand, cutoff):
    groups: dict[int, list] = {}
    for i in range(len(t)):
        groups.setdefault(int(t[i]), []).append(i)
    acc = [0.0] * len(t)
    for key, idx in groups.items():
        idx.sort(key=lambda i: (price[i], seq[i]))
        left = float(demand[key])
        for i in idx:
            if price[i] > cutoff or left <= 0:
                continue
            x = min(left, float(vol[i]))
            acc[i] = x
            left -= x
    return acc


def best_of(f, repeat: int = 3) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        out = f()
        best = min(best, time.perf_counter() - t)
    return best, out


def two_sided(n: int) -> None:
    print(f"\n## two-sided uniform price, {n:,} orders over 96 intervals ({load()})")
    t, is_buy, vol, price, seq = orders(n)
    vec_s, cross = best_of(lambda: uniform_crossing(t, is_buy, vol, price, seq))
    ref_s, acc = best_of(lambda: walk(t, is_buy, vol, price, seq), repeat=1)
    same = np.allclose(cross.accepted, acc, atol=1e-9)
    traded = cross.volume.sum()
    print(f"vectorised uniform_crossing: {1000 * vec_s:.1f} ms (best of 3); {traded:,.0f} kWh traded in "
          f"{int(np.isfinite(cross.price).sum())} intervals")
    print(f"reference sort-and-walk in Python: {1000 * ref_s:.1f} ms; same accepted volumes: {same}; "
          f"speed-up {ref_s / vec_s:.0f}x")
    s = MarketSession("bench", TwoSidedPool(), delivery_start=T0, delivery_end=T0 + 96)
    for p in range(100):
        s.register(f"p{p}")
    s.open(NOW)
    objs = [Order(f"o{i}", f"p{i % 100}", "buy" if is_buy[i] else "sell", float(vol[i]), float(price[i]), T0 + int(t[i]))
            for i in range(n)]
    a = time.perf_counter()
    ok = sum(s.place(o, NOW).accepted for o in objs)
    placed = time.perf_counter() - a
    s.close(NOW)
    a = time.perf_counter()
    r = s.clear(NOW)
    cleared = time.perf_counter() - a
    print(f"session path: placing {ok:,} orders {placed:.2f} s ({1e6 * placed / n:.1f} us each), clear() {cleared:.2f} s "
          f"(builds the arrays, clears, writes {len(r.awards):,} awards and {len(r.rejected):,} rejections)")


def one_sided(n: int) -> None:
    print(f"\n## one-sided merit order, {n:,} sell orders over 96 intervals ({load()})")
    rng = np.random.default_rng(1)
    t = rng.integers(0, 96, n)
    vol = np.round(rng.uniform(0.1, 20, n), 3)
    price = np.round(rng.uniform(0.02, 0.5, n), 4)
    seq = np.arange(n)
    demand = rng.uniform(500, 3000, 96)
    vec_s, acc = best_of(lambda: merit_order(t, price, vol, seq, demand, 0.3))
    ref_s, ref = best_of(lambda: walk_merit(t, price, vol, seq, demand, 0.3), repeat=1)
    print(f"vectorised merit_order: {1000 * vec_s:.1f} ms; reference Python walk {1000 * ref_s:.1f} ms; "
          f"same: {np.allclose(acc, ref)}; {acc.sum():,.0f} of {demand.sum():,.0f} kWh demanded bought")


def clear_bids(bids, mechanism) -> tuple[float, object]:
    s = MarketSession("m2m", mechanism, delivery_start=T0, delivery_end=T0 + 96)
    for b in bids:
        s.register(b.participant)
    s.open(NOW)
    for b in bids:
        assert s.place(b, NOW).accepted
    s.close(NOW)
    a = time.perf_counter()
    r = s.clear(NOW)
    return time.perf_counter() - a, r


def many_to_many(n: int, limit: float) -> None:
    print(f"\n## many-to-many MIP, {n:,} flex-offer bids x 96 intervals, time limit {limit:.0f} s ({load()})")
    bids = flex_bids(n, seed=0)
    secs, r = clear_bids(bids, ManyToMany(time_limit=limit))
    balance = max((abs(v) for v in r.balance().values()), default=0.0)
    print(f"clear(): {secs:.1f} s ({r.report.detail}); status {r.report.status}, proven gap "
          f"{100 * (r.report.gap or 0):.3f} %; welfare {r.welfare:.2f} EUR; {len(r.awards)} accepted, "
          f"{len(r.rejected)} rejected; largest imbalance {balance:.1e} kWh")
    fixed = flex_bids(n, seed=0, fixed_start=True)
    secs2, r2 = clear_bids(fixed, ManyToMany(time_limit=limit))
    print(f"reference without time flexibility: {secs2:.1f} s, status {r2.report.status}, welfare {r2.welfare:.2f} EUR "
          f"({100 * (r.welfare - r2.welfare) / max(abs(r2.welfare), 1e-9):+.1f} % from time flexibility)")


def zonal(n: int) -> None:
    print(f"\n## implicit capacity, 3 zones, {n:,} orders, 2 links ({load()})")
    t, is_buy, vol, price, seq = orders(n, seed=2)
    zones = ["north", "middle", "south"]
    m = ImplicitCapacity(zones, [Link("north", "middle", 200.0, 0.01), Link("middle", "south", 150.0, 0.015)])
    s = MarketSession("zonal", m, delivery_start=T0, delivery_end=T0 + 96)
    for p in range(90):
        s.register(f"p{p}", zone=zones[p % 3])
    s.open(NOW)
    for i in range(n):
        # cheap supply in the north, demand in the south
        z = i % 90 % 3
        pr = float(price[i]) + (0.04 * (z - 1) if not is_buy[i] else 0.0)
        s.place(Order(f"o{i}", f"p{i % 90}", "buy" if is_buy[i] else "sell", float(vol[i]), pr, T0 + int(t[i])), NOW)
    s.close(NOW)
    a = time.perf_counter()
    r = s.clear(NOW)
    secs = time.perf_counter() - a
    spread = [r.prices.get(("south", T0 + k, next(iter(r.prices))[2]), np.nan) - r.prices.get(("north", T0 + k, next(iter(r.prices))[2]), np.nan) for k in range(96)]
    print(f"clear(): {secs:.1f} s, status {r.report.status}; welfare {r.welfare:.2f} EUR; "
          f"{sum(1 for f in r.flows.values() if f > 0):,} flows; south-north price spread median "
          f"{np.nanmedian(spread):.4f} EUR/kWh (links cost 0.025 together)")


def main(argv: list[str]) -> int:
    quick = "--quick" in argv
    print(f"# bench_market {time.strftime('%Y-%m-%d %H:%M')} on {machine()}{' (quick)' if quick else ''}")
    two_sided(20_000 if quick else 100_000)
    one_sided(20_000 if quick else 100_000)
    many_to_many(300 if quick else 1_000, 20.0 if quick else 60.0)
    zonal(3_000 if quick else 30_000)
    print(f"\n({load()} at the end)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
