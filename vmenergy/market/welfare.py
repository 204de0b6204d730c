"""Many-to-many and implicit-capacity clearing: one welfare-maximising MIP.

Every flex-offer bid enters with the same hull formulation the planner uses
(:func:`vmenergy.planning.formulation.add_offer`), made optional: its binaries may all be 0,
which rejects the bid. Every order piece (one order, one interval) is a continuous volume in
[0, volume]. Per zone and interval the accepted energy balances with the flows on the links:

    sum(accepted consumption) - sum(accepted production) + exports - imports = 0

and the objective is social welfare: the bids' values (a flex-offer slice is worth ``up * x``
when it consumes x > 0 and ``down * x`` when it produces, x < 0; a buy order ``price * q``, a
sell order ``-price * q``) minus ``cost`` per kWh on every link.

Prices: after the MIP, the binaries are fixed at their values and the LP is solved again; the
dual of each balance constraint is the uniform price of that zone and interval. Where the
balance is degenerate any price in a range supports the solution; the LP solver's dual is then
one of them (deterministic for the same input and solver). Non-convex bids (all-or-nothing
flex-offers) can make an accepted bid lose money at the uniform price; pay-as-bid avoids that.

Ties: each bid's value is lowered by 1e-6 EUR/kWh times its placement rank / number of bids,
so that among equal prices the earlier bid is preferred. The reported welfare leaves this out.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Optional, Sequence

import numpy as np
import pulp

from vmenergy.flexoffer import Schedule
from vmenergy.planning.energy import project
from vmenergy.planning.formulation import OfferVars, add_offer, expr, load_pairs, new_var
from vmenergy.planning.objective import Objective
from vmenergy.planning.problem import Problem, prepare
from vmenergy.planning.solver import SolverReport, run

from .bids import FlexOfferBid, Order, Product, Side
from .errors import MarketError
from .pools import EPS
from .results import Award

__all__ = ["PlacedFlex", "PlacedOrder", "clear_welfare", "TIE_EPSILON"]

#: EUR/kWh by which a later bid is valued less than an otherwise equal earlier one.
TIE_EPSILON = 1e-6


@dataclass(frozen=True)
class PlacedFlex:
    bid: FlexOfferBid
    seq: int
    zone: Optional[str]
    now: int  # interval used to resolve the offer's implicit window


@dataclass(frozen=True)
class PlacedOrder:
    order: Order
    seq: int
    zone: Optional[str]


@dataclass
class WelfareOutcome:
    awards: dict[str, Award]
    rejected: dict[str, str]
    prices: dict[tuple, float]
    flows: dict[tuple[str, str, int], float]
    welfare: float
    report: SolverReport


def _slice_value(up: float, down: float, x: float) -> float:
    return up * x if x >= 0 else down * x


def clear_welfare(flex: Sequence[PlacedFlex], orders: Sequence[PlacedOrder], *, zones: Sequence[Optional[str]],
                  links: Sequence, window: tuple[int, int], pay_as_bid: bool, solver: str = "auto",
                  time_limit: float = 60.0, gap: float = 1e-3) -> WelfareOutcome:
    t_start = time.perf_counter()
    d0, d1 = window
    prob = pulp.LpProblem("vme_market", pulp.LpMaximize)
    n_bids = max(1, len(flex) + len(orders))
    balance: dict[tuple, list] = {(z, t): [] for z in zones for t in range(d0, d1)}
    value: list = []  # the objective with the tie-breaking preference
    true_value: list = []  # without it, for prices
    problems: list[Problem] = []
    offer_vars: list[OfferVars] = []
    for i, pf in enumerate(flex):
        eps = TIE_EPSILON * pf.seq / n_bids
        pr = prepare([pf.bid.offer], Objective.energy_min(), now=pf.now, horizon=(d0, d1))
        ov = add_offer(prob, pr.rows, pr.rows_of[0], 0, optional=True, prefix=f"f{i}_", compact=True)
        problems.append(pr)
        offer_vars.append(ov)
        curve = pf.bid.offer.prices
        if curve is None:  # placing a bid refuses this; a direct caller may not
            raise MarketError("offer.prices", "a flex-offer bid needs prices (its price curve)")
        for ch in ov.choices:
            for t, pairs, _c in load_pairs(pr.rows, ch, d0):
                balance[(pf.zone, d0 + t)].extend(pairs)
            row = pr.rows[ch.row]
            for q, (pairs, _c) in enumerate(ch.energy):
                sp = curve.for_slice(q)
                lo, hi = float(row.lo[q]), float(row.hi[q])
                if lo >= 0:
                    value.extend((v, c * (sp.up - eps)) for v, c in pairs)
                    true_value.extend((v, c * sp.up) for v, c in pairs)
                elif hi <= 0:
                    value.extend((v, c * (sp.down + eps)) for v, c in pairs)
                    true_value.extend((v, c * sp.down) for v, c in pairs)
                else:  # both directions: x = p - n, worth up * p - down * n (up <= down checked)
                    p = new_var(prob, f"f{i}_p{ch.row}_{ch.start}_{q}", 0, hi)
                    n = new_var(prob, f"f{i}_n{ch.row}_{ch.start}_{q}", 0, -lo)
                    prob.addConstraint(pulp.LpConstraint(expr(pairs + [(p, -1.0), (n, 1.0)]), pulp.LpConstraintEQ, rhs=0.0))
                    value += [(p, sp.up - eps), (n, -sp.down - eps)]
                    true_value += [(p, sp.up), (n, -sp.down)]
    qvars: list[dict[int, pulp.LpVariable]] = []
    for i, po in enumerate(orders):
        o = po.order
        eps = TIE_EPSILON * po.seq / n_bids
        qs = {}
        for t in o.intervals:
            q = new_var(prob, f"q{i}_{t}", 0, o.volume)
            qs[t] = q
            if o.side is Side.BUY:
                balance[(po.zone, t)].append((q, 1.0))
                value.append((q, o.price - eps))
                true_value.append((q, o.price))
            else:
                balance[(po.zone, t)].append((q, -1.0))
                value.append((q, -o.price - eps))
                true_value.append((q, -o.price))
        qvars.append(qs)
    flow_vars: dict[tuple[str, str, int], pulp.LpVariable] = {}
    for li, ln in enumerate(links):
        for t in range(d0, d1):
            for a, b, tag in ((ln.a, ln.b, "ab"), (ln.b, ln.a, "ba")):
                f = new_var(prob, f"flow{li}{tag}_{t}", 0, ln.capacity)
                flow_vars[(a, b, t)] = f
                balance[(a, t)].append((f, 1.0))
                balance[(b, t)].append((f, -1.0))
                value.append((f, -ln.cost))
                true_value.append((f, -ln.cost))
    cons: dict[tuple, pulp.LpConstraint] = {}
    for key, pairs in balance.items():
        if pairs:
            c = pulp.LpConstraint(expr(pairs), pulp.LpConstraintEQ, rhs=0.0)
            prob.addConstraint(c)
            cons[key] = c
    prob.setObjective(expr(value))
    # the time limit covers the whole clearing: building, the MIP, and the two LPs for prices
    left = time_limit - (time.perf_counter() - t_start)
    report = run(prob, solver=solver, time_limit=max(1.0, 0.85 * left), gap=gap)
    if not report.has_solution:
        reason = f"no clearing found ({report.solver} {report.status})"
        refused = {pf.bid.id: reason for pf in flex} | {po.order.id: reason for po in orders}
        return WelfareOutcome({}, refused, {}, {}, 0.0, report)

    # fix the all-or-nothing choices; the LP with the tie-breaking preference gives the
    # allocation, the LP without it gives the duals (prices free of the preference)
    binaries = [v for v in prob.variables() if v.cat == pulp.LpInteger]
    lp_ok = True
    if binaries:
        for v in binaries:
            val = float(round(v.varValue or 0.0))
            v.cat = pulp.LpContinuous
            v.lowBound = v.upBound = val
        lp_left = max(1.0, (time_limit - (time.perf_counter() - t_start)) / 2)
        lp_ok = run(prob, solver=solver, time_limit=lp_left, gap=gap).status == "optimal"
    alloc = {v: v.varValue for v in prob.variables()}
    raw: dict[tuple, float] = {}
    if lp_ok:
        prob.setObjective(expr(true_value))
        dual_report = run(prob, solver=solver, time_limit=max(1.0, time_limit - (time.perf_counter() - t_start)), gap=gap)
        if dual_report.status == "optimal":
            # PuLP passes a maximisation to HiGHS as the minimisation of -welfare and reports
            # that problem's duals; through CBC it reports them for the maximisation itself. The
            # price (EUR a kWh more supply is worth in a zone and interval) is the latter.
            sign = -1.0 if dual_report.solver == "highs" else 1.0
            for (z, t), c in cons.items():
                if c.pi is not None:
                    raw[(z, t)] = sign * float(c.pi) + 0.0
    for v, val in alloc.items():
        v.varValue = val

    def price_at(z, t) -> float:
        return raw.get((z, t), 0.0)

    awards: dict[str, Award] = {}
    rejected: dict[str, str] = {}
    welfare = 0.0
    for pf, pr, ov in zip(flex, problems, offer_vars):
        bid = pf.bid
        if not ov.accepted():
            rejected[bid.id] = "not selected: the bid does not add to welfare at its prices"
            continue
        ch = ov.chosen()
        row = pr.rows[ch.row]
        y = ch.value()
        x = ch.energies() / (y if y > 1e-9 else 1.0)
        sched = _schedule(bid, row, ch.start, x, pf.now)
        x = np.asarray(sched.energy)
        load = row.spread(x)
        energy = {ch.start + k: float(v) for k, v in enumerate(load)}
        prices_curve = bid.offer.prices
        if prices_curve is None:  # pragma: no cover - refused when the problem was built above
            raise MarketError("offer.prices", "a flex-offer bid needs prices (its price curve)")
        val = sum(_slice_value(prices_curve.for_slice(q).up, prices_curve.for_slice(q).down, float(e)) for q, e in enumerate(x))
        welfare += val
        amount = val if pay_as_bid else sum(price_at(pf.zone, t) * e for t, e in energy.items())
        awards[bid.id] = Award(bid.id, bid.participant, bid.side, Product.ENERGY, energy, float(amount), pf.zone, sched)
    for po, qs in zip(orders, qvars):
        o = po.order
        sign = 1.0 if o.side is Side.BUY else -1.0
        energy = {t: sign * float(q.varValue or 0.0) for t, q in qs.items() if (q.varValue or 0.0) > EPS}
        if not energy:
            rejected[o.id] = "out of merit: its limit price does not clear"
            continue
        vol = sum(abs(e) for e in energy.values())
        welfare += sign * o.price * vol
        amount = sign * o.price * vol if pay_as_bid else sum(price_at(po.zone, t) * e for t, e in energy.items())
        awards[o.id] = Award(o.id, o.participant, o.side.value, Product.ENERGY, energy, float(amount), po.zone)
    flows = {}
    for (a, b, t), f in flow_vars.items():
        v = float(f.varValue or 0.0)
        if v > EPS:
            flows[(a, b, t)] = v
    for (a, b, t), v in flows.items():
        cost = next(ln.cost for ln in links if {ln.a, ln.b} == {a, b})
        welfare -= cost * v
    # prices are reported where something was traded or moved
    active = {(a.zone, t) for a in awards.values() for t in a.energy} | {(a, t) for a, _, t in flows} | {(b, t) for _, b, t in flows}
    prices = {(z, t, Product.ENERGY): p for (z, t), p in raw.items() if (z, t) in active}
    report = replace(report, seconds=time.perf_counter() - t_start, time_limit=time_limit,
                     detail=f"MIP {report.seconds:.2f} s; whole clearing incl. model building and price LPs")
    return WelfareOutcome(awards, rejected, prices, flows, welfare, report)


def _schedule(bid: FlexOfferBid, row, start: int, x: np.ndarray, now: int) -> Schedule:
    """The accepted schedule, checked against the offer (round-off repaired by projection)."""
    fo = bid.offer
    sched = Schedule(offer_id=fo.id, start=start, energy=tuple(float(v) for v in x), profile=row.profile,
                     resolution=fo.resolution)
    if fo.check(sched, now):
        fixed = project(row, x)
        if fixed is not None:
            sched = Schedule(offer_id=fo.id, start=start, energy=tuple(float(v) for v in fixed), profile=row.profile,
                             resolution=fo.resolution)
        problems = fo.check(sched, now)
        if problems:
            raise RuntimeError(f"market clearing produced an infeasible schedule for bid {bid.id}: "
                               + "; ".join(map(str, problems)))
    return sched
