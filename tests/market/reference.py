"""Plain-Python sort-and-walk clearing: the obvious algorithm, used as the test oracle for the
vectorised pools and as the reference in bench/bench_market.py."""

from __future__ import annotations


def walk_uniform(orders):
    """``orders``: list of (key, is_buy, volume, price, seq). Returns (accepted list, {key: Q})."""
    accepted = [0.0] * len(orders)
    traded = {}
    for key in sorted({o[0] for o in orders}):
        sells = sorted((i for i, o in enumerate(orders) if o[0] == key and not o[1]), key=lambda i: (orders[i][3], orders[i][4]))
        buys = sorted((i for i, o in enumerate(orders) if o[0] == key and o[1]), key=lambda i: (-orders[i][3], orders[i][4]))
        rs = [orders[i][2] for i in sells]
        rb = [orders[i][2] for i in buys]
        a = b = 0
        q = 0.0
        while a < len(sells) and b < len(buys) and orders[buys[b]][3] >= orders[sells[a]][3]:
            x = min(rs[a], rb[b])
            accepted[sells[a]] += x
            accepted[buys[b]] += x
            q += x
            rs[a] -= x
            rb[b] -= x
            if rs[a] <= 1e-12:
                a += 1
            if rb[b] <= 1e-12:
                b += 1
        traded[key] = q
    return accepted, traded


def walk_merit(pieces, demand, cutoff):
    """``pieces``: list of (key, price, volume, seq); ``demand``: {key: kWh}."""
    accepted = [0.0] * len(pieces)
    for key in sorted({p[0] for p in pieces}):
        left = demand.get(key, 0.0)
        for i in sorted((i for i, p in enumerate(pieces) if p[0] == key), key=lambda i: (pieces[i][1], pieces[i][3])):
            if pieces[i][1] > cutoff or left <= 0:
                continue
            x = min(left, pieces[i][2])
            accepted[i] = x
            left -= x
    return accepted
