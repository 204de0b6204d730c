"""The settlement rules once more, as plain Python loops: the specification in executable form.

Slow on purpose (one prosumer, one interval at a time, Python floats, no numpy in the rules), so
that it reads like ``docs/settlement.md`` and shares no code path with the vectorised
:func:`vmenergy.settlement.settle` except the two tiny money helpers it is checked against
separately (:func:`~vmenergy.settlement.money.cents` and the rounding rule). Tests compare the two
on random populations (every cent must agree); the benchmark times both to report the speed-up.
"""

from __future__ import annotations

import math
from typing import Mapping, Optional, Sequence

from vmenergy.flexoffer.limits import TOLERANCE
from vmenergy.settlement.assignments import Assignments, OfferFlag
from vmenergy.settlement.baselines import DAY_TOTAL_DECIMALS
from vmenergy.settlement.contracts import Contract
from vmenergy.settlement.market_sales import MarketSales
from vmenergy.settlement.metering import RATING_TOLERANCE, MeterData, MeterFlag
from vmenergy.settlement.money import FRACTION_DIGITS, cents

__all__ = ["settle_reference"]


def _x_of_y(days: list[list[float]], x: int, y: int, select: str) -> list[float]:
    T = len(days[0]) if days else 0
    recent_first = list(reversed(days[len(days) - min(y, len(days)):]))
    keys = []
    for pos, day in enumerate(recent_first):
        total = round(sum(day), DAY_TOTAL_DECIMALS)
        ok = math.isfinite(total)
        keys.append((math.inf if not ok else (-total if select == "high" else total), pos, ok))
    keys.sort(key=lambda k: (k[0], k[1]))
    chosen = [(recent_first[pos], ok) for _, pos, ok in keys[:x]]
    count = sum(1 for _, ok in chosen if ok)
    if count == 0:
        return [math.nan] * T
    out = []
    for t in range(T):
        s = 0.0
        for day, ok in chosen:
            s += day[t] if ok else 0.0
        out.append(s / count)
    return out


def settle_reference(
    meter: MeterData,
    assignments: Assignments,
    contracts: Sequence[Contract],
    contract_of: Sequence,
    market: Optional[Mapping[str, MarketSales] | Sequence[MarketSales] | MarketSales] = None,
) -> dict:
    """Per-prosumer line amounts (cents), quantities and per-participant sums, the slow way.

    Returns ``{"amount": [{code: cents}], "total": [cents], "quantities": [{name: value}],
    "participants": {name: {"revenue_cents", "imbalance_cents", "payouts_cents", "margin_cents"}}}``.
    """
    contracts = list(contracts)
    ids = {c.id: k for k, c in enumerate(contracts)}
    n, T, res, start = meter.n, meter.n_intervals, meter.resolution, meter.start
    ci = [ids[c] if isinstance(c, str) else int(c) for c in contract_of]
    aggregators = sorted({contracts[k].aggregator for k in set(ci)})
    if market is None:
        markets = []
    elif isinstance(market, MarketSales):
        markets = [market]
    elif isinstance(market, Mapping):
        markets = list(market.values())
    else:
        markets = list(market)
    zeros = [0.0] * T
    price = {a: list(zeros) for a in aggregators}
    sold = {a: list(zeros) for a in aggregators}
    imb = {a: list(zeros) for a in aggregators}
    traded = set()
    for mr in markets:
        price[mr.participant] = [float(x) for x in mr.price]
        sold[mr.participant] = [float(x) for x in mr.sold_kwh]
        imb[mr.participant] = [float(x) for x in mr.imbalance_price]
        traded.add(mr.participant)

    # plain lists of the assignments
    A = assignments
    owner = A.owner.tolist()
    pros_of_offer = A.prosumer.tolist()
    slices_of: list[list[int]] = [[] for _ in range(n)]
    for j, o in enumerate(owner):
        slices_of[pros_of_offer[o]].append(j)
    sign, t0s, durs, ens = A.sign.tolist(), A.t0.tolist(), A.duration.tolist(), A.energy.tolist()
    pus, pds = A.price_up.tolist(), A.price_down.tolist()
    exempt = [False] * n
    for k, f in enumerate(A.flags.tolist()):
        if f & OfferFlag.INFEASIBLE:
            exempt[pros_of_offer[k]] = True
    energy = meter.energy.tolist()
    rating = None if meter.rating_kw is None else meter.rating_kw.tolist()
    export = None if meter.export_rating_kw is None else meter.export_rating_kw.tolist()
    pre = None if meter.flags is None else meter.flags.tolist()
    hours = res / 3600.0

    rows = []
    verified_by_agg = {a: [0.0] * T for a in aggregators}
    delivered_by_agg = {a: [0.0] * T for a in aggregators}
    for i in range(n):
        c = contracts[ci[i]]
        a = c.aggregator
        # raster
        r = [0.0] * T
        cov = [False] * T
        dflt = [0.0] * T
        w = [0.0] * T
        wu = [0.0] * T
        wd = [0.0] * T
        for j in slices_of[i]:
            per = ens[j] / durs[j]
            for k in range(durs[j]):
                t = t0s[j] + k - start
                if 0 <= t < T:
                    r[t] += per * sign[j]
                    cov[t] = True
                    if sign[j] < 0:
                        dflt[t] += per
                    w[t] += abs(per)
                    wu[t] += (0.0 if math.isnan(pus[j]) else pus[j]) * abs(per)
                    wd[t] += (0.0 if math.isnan(pds[j]) else pds[j]) * abs(per)
        # meter flags
        m = [float(x) for x in energy[i]]
        flags = [0] * T
        for t in range(T):
            x = m[t]
            if math.isnan(x):
                flags[t] |= MeterFlag.GAP
            elif math.isinf(x):
                flags[t] |= MeterFlag.INVALID
            else:
                if rating is not None and x > rating[i] * hours + RATING_TOLERANCE:
                    flags[t] |= MeterFlag.ABOVE_RATING
                if export is not None and -x > export[i] * hours + RATING_TOLERANCE:
                    flags[t] |= MeterFlag.EXPORT_ABOVE_RATING
            if pre is not None:
                flags[t] |= pre[i][t]
        meter_ok = [f == 0 for f in flags]
        # baseline
        rule = c.baseline
        if rule.method == "offer":
            base = list(dflt)
        else:
            hist = [[float(v) for v in day] for day in meter.history[i].tolist()]
            if rule.method == "x_of_y":
                base = _x_of_y(hist, rule.x, rule.y, rule.select)
            else:
                base = list(hist[rule.day])
        adjustment = 0.0
        if rule.adjustment is not None:
            adj = rule.adjustment
            first = next((t for t in range(T) if abs(r[t]) > TOLERANCE), None)
            if first is not None:
                total, count = 0.0, 0
                for t in range(first - adj.gap - adj.window, first - adj.gap):
                    if t < 0:
                        continue
                    diff = (m[t] if meter_ok[t] else math.nan) - base[t]
                    if math.isfinite(diff):
                        total += diff
                        count += 1
                if count:
                    adjustment = total / count
                    if adj.cap_kwh is not None:
                        adjustment = max(-adj.cap_kwh, min(adj.cap_kwh, adjustment))
            base = [x + adjustment for x in base]
        # verification
        q = dict.fromkeys(("requested_kwh", "verified_kwh", "delivered_kwh", "deviation_kwh", "excess_kwh",
                           "covered_intervals", "unverified_intervals", "outside_tolerance_intervals",
                           "value_offer_eur", "value_market_eur", "imbalance_charge_eur"), 0.0)
        q["adjustment_kwh"] = adjustment
        vrow = [0.0] * T
        for t in range(T):
            q["requested_kwh"] += abs(r[t])
            if not cov[t]:
                continue
            q["covered_intervals"] += 1
            if not math.isfinite(base[t]):
                flags[t] |= MeterFlag.NO_BASELINE
            if not meter_ok[t] or not math.isfinite(base[t]):
                q["unverified_intervals"] += 1
                delivered_by_agg[a][t] += r[t]
                continue
            d = m[t] - base[t]
            dev = d - r[t]
            band = max(c.tolerance.absolute_kwh, c.tolerance.relative * abs(r[t]))
            sg = (r[t] > 0) - (r[t] < 0)
            toward = d * sg
            over = abs(dev) - band
            if over <= TOLERANCE:
                v = abs(r[t])
            else:
                v = min(max(toward, 0.0), abs(r[t]))
                q["outside_tolerance_intervals"] += 1
            excess = max(over, 0.0)
            vrow[t] = v
            q["verified_kwh"] += v
            q["delivered_kwh"] += toward
            q["deviation_kwh"] += abs(dev)
            q["excess_kwh"] += excess
            q["value_market_eur"] += v * price[a][t]
            q["imbalance_charge_eur"] += excess * imb[a][t]
            pc = (wu[t] if r[t] > 0 else wd[t]) / w[t] if w[t] > 0 else 0.0
            q["value_offer_eur"] += v * pc
            verified_by_agg[a][t] += v
            delivered_by_agg[a][t] += d
        # per-offer quantities (schedule starts in the period)
        for name in ("offers", "flexible_kwh", "time_flexibility_h", "energy_flexibility_kwh", "activations"):
            q[name] = 0.0
        for k in range(int(A.offer_offsets[i]), int(A.offer_offsets[i + 1])):
            if start <= int(A.start[k]) < start + T:
                q["offers"] += 1
                q["flexible_kwh"] += float(A.flexible_energy[k])
                q["time_flexibility_h"] += int(A.time_flexibility[k]) * hours
                q["energy_flexibility_kwh"] += float(A.energy_flexibility[k])
                q["activations"] += 1 if A.activated[k] else 0
        rows.append({"contract": ci[i], "aggregator": a, "q": q, "v": vrow, "flags": flags})

    # revenue attribution
    unit = {}
    for a in aggregators:
        unit[a] = []
        for t in range(T):
            rev = price[a][t] * abs(sold[a][t])
            V = verified_by_agg[a][t]
            unit[a].append(rev / V if V > TOLERANCE else 0.0)
    for row in rows:
        c = contracts[row["contract"]]
        share = c.reward.revenue_share if c.reward else 0.0
        row["q"]["attributed_revenue_eur"] = (
            sum(v * u for v, u in zip(row["v"], unit[row["aggregator"]])) if share > 0 else 0.0
        )

    # money
    amounts: list[dict[str, int]] = []
    exact_share: dict[int, list[tuple[int, float]]] = {}
    for i, row in enumerate(rows):
        c = contracts[row["contract"]]
        q = row["q"]
        am = dict.fromkeys(("flexible_energy", "time_flexibility", "energy_flexibility", "activations",
                            "revenue_share", "offer_price", "market_price", "fee", "penalty", "unverified"), 0)
        if c.mode == "delegated":
            rw = c.reward
            am["flexible_energy"] = cents(q["flexible_kwh"] * rw.per_kwh_flexible)
            am["time_flexibility"] = cents(q["time_flexibility_h"] * rw.per_hour_time_flexibility)
            am["energy_flexibility"] = cents(q["energy_flexibility_kwh"] * rw.per_kwh_energy_flexibility)
            am["activations"] = cents(q["activations"] * rw.per_activation)
            exact_share.setdefault(row["contract"], []).append(
                (i, rw.revenue_share * q["attributed_revenue_eur"] * 100.0))
        else:
            pr = c.pricing
            gross = q["value_offer_eur"] if pr.source == "offer" else q["value_market_eur"]
            am["offer_price" if pr.source == "offer" else "market_price"] = cents(gross)
            am["fee"] = cents(-(pr.fee_fraction * gross + pr.fee_per_kwh * q["verified_kwh"]))
        pen = c.penalty
        raw = pen.per_kwh * q["excess_kwh"] + pen.imbalance_factor * q["imbalance_charge_eur"]
        raw = max(raw, 0.0)
        if pen.cap_eur is not None:
            raw = min(raw, pen.cap_eur)
        if exempt[i]:
            raw = 0.0
        am["penalty"] = cents(-raw)
        amounts.append(am)
    for k, members in exact_share.items():
        pot = cents(sum(e for _, e in members) / 100.0)
        floors = []
        for i, e in members:
            e = round(e, FRACTION_DIGITS)
            f = math.floor(e)
            floors.append((i, f, e - f))
        left = pot - sum(f for _, f, _ in floors)
        size = len(floors)
        whole = left // size
        left -= whole * size
        ranked = sorted(floors, key=lambda x: (-x[2], x[0]))
        for rank, (i, f, _) in enumerate(ranked):
            amounts[i]["revenue_share"] = f + whole + (1 if rank < left else 0)
    totals = [sum(am.values()) for am in amounts]

    participants = {}
    for a in aggregators:
        revenue = cents(sum(price[a][t] * abs(sold[a][t]) for t in range(T)))
        imbalance = 0
        if a in traded:
            imbalance = cents(sum(abs(delivered_by_agg[a][t] - sold[a][t]) * imb[a][t] for t in range(T)))
        payouts = sum(totals[i] for i, row in enumerate(rows) if row["aggregator"] == a)
        participants[a] = {"revenue_cents": revenue, "imbalance_cents": imbalance, "payouts_cents": payouts,
                           "margin_cents": revenue - imbalance - payouts}
    return {
        "amount": amounts,
        "total": totals,
        "quantities": [row["q"] for row in rows],
        "flags": [row["flags"] for row in rows],
        "participants": participants,
    }
