"""Planning benchmarks: the heuristic at scale, and heuristic vs MILP on 200-offer portfolios.

Usage: python bench/bench_planning.py [--quick]

Portfolios come from tests/planning/scale.py (EVs, heat pumps, wet appliances with XOR
programmes, PV curtailment, batteries with polytopes) over a 96-interval day, planned against a
target profile. ``amplitude`` 0.6: the portfolio can nearly follow the target; 1.2: it cannot
(part of the target is negative), so the optimum is far from zero.

Figures, each next to a reference measured in the same run:
1. heuristic, 10,000 offers (2,000 with --quick): wall time of ``schedule_offers`` and objective,
   against the naive plan (every offer at its earliest start, mid energies);
2. 200-offer instances (100 with --quick): MILP (HiGHS, warm-started from the heuristic,
   60 s limit, 0.1 % gap) and the same MILP cold; the heuristic's gap to the MILP's best
   objective in %, its excess deviation in % of the target's energy, and the best of five
   heuristic seeds (the heuristic's result depends on its seed);
3. HiGHS and the CBC fallback on a small instance (cold start, 10 s).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.planning.scale import portfolio  # noqa: E402
from vmenergy.planning import Objective, available_solvers, schedule_offers  # noqa: E402
from vmenergy.planning.problem import prepare  # noqa: E402

from machine import describe as machine  # bench/machine.py (the script's folder is on sys.path)


def load() -> str:
    a, b, c = os.getloadavg()
    return f"load average {a:.2f} {b:.2f} {c:.2f}"


def naive(offers, target, t0) -> float:
    """Every offer at its earliest start of its first profile, energies at the middle (feasible
    for bounds + total; polytope offers at their baseline-free midpoint via the planner's own
    feasible point)."""
    from vmenergy.planning.energy import feasible_points

    p = prepare(offers, Objective.target(target, start=t0))
    first = [rows[0] for rows in p.rows_of]
    xs = feasible_points([p.rows[r] for r in first])
    load = p.load_of(first, [p.rows[r].first for r in first], xs)
    return p.terms.evaluate(load)


def scale(n: int) -> None:
    print(f"\n## heuristic, {n:,} offers x 96 intervals ({load()})")
    offers, target, t0 = portfolio(n, seed=1)
    obj = Objective.target(target, start=t0)
    t = time.perf_counter()
    r = schedule_offers(offers, obj, solver="heuristic")
    wall = time.perf_counter() - t
    feasible = sum(fo.is_feasible(s) for fo, s in zip(offers, r.schedules))
    ref = naive(offers, target, t0)
    energy = float(np.abs(target).sum())
    print(f"heuristic: {wall:.2f} s wall (schedule_offers incl. validation and checks), {r.report.detail}")
    print(f"  objective {r.objective:.2f} kWh off target = {100 * r.objective / energy:.2f} % of the target's "
          f"{energy:.0f} kWh; {feasible}/{n} schedules feasible")
    print(f"reference (earliest start, mid energies): objective {ref:.2f} kWh ({100 * ref / energy:.1f} %)")


def compare(n: int, seeds, amplitudes, limit: float, cold: bool, restarts: bool = True) -> None:
    print(f"\n## heuristic vs MILP, {n} offers x 96 intervals, MILP limit {limit:.0f} s, gap 0.1 % ({load()})")
    print("| seed | amplitude | heuristic obj | heuristic s | MILP obj | MILP status | proven gap | MILP s "
          "| cold MILP obj | cold status | cold gap | cold s | heuristic gap to MILP | excess % of target energy "
          "| best of 5 heuristic seeds | its gap |")
    print("|---" * 16 + "|")
    for amp in amplitudes:
        for seed in seeds:
            offers, target, t0 = portfolio(n, seed=seed, amplitude=amp)
            obj = Objective.target(target, start=t0)
            h = schedule_offers(offers, obj, solver="heuristic")
            m = schedule_offers(offers, obj, solver="milp", time_limit=limit, gap=1e-3)
            c = schedule_offers(offers, obj, solver="milp", time_limit=limit, gap=1e-3, warm_start=False) if cold else None
            best = min(m.objective, c.objective) if c else m.objective
            gap = 100 * (h.objective - best) / best if best > 1e-9 else float("nan")
            excess = 100 * (h.objective - best) / float(np.abs(target).sum())
            cs = (f"{c.objective:.3f} | {c.report.status} | {100 * (c.gap or 0):.2f} % | {c.seconds:.1f}" if c
                  else "- | - | - | -")
            multi = min([h.objective] + [schedule_offers(offers, obj, solver="heuristic", seed=k).objective
                                         for k in range(1, 5 if restarts else 1)])
            mgap = 100 * (multi - best) / best if best > 1e-9 else float("nan")
            print(f"| {seed} | {amp} | {h.objective:.3f} | {h.seconds:.1f} | {m.objective:.3f} | {m.report.status} | "
                  f"{100 * (m.gap or 0):.3f} % | {m.seconds:.1f} | {cs} | {gap:.1f} % | {excess:.2f} % | "
                  f"{multi:.3f} | {mgap:.1f} % |", flush=True)


def cbc(n: int) -> None:
    print(f"\n## HiGHS and the CBC fallback, cold, 10 s limit, one {n}-offer instance "
          f"({', '.join(available_solvers())} available)")
    offers, target, t0 = portfolio(n, seed=7)
    obj = Objective.target(target, start=t0)
    for s in ("highs", "cbc"):
        r = schedule_offers(offers, obj, solver=s, time_limit=10, warm_start=False)
        print(f"{s}: objective {r.objective:.3f}, {r.report.status}, gap "
              f"{'n/a' if r.gap is None else f'{100 * r.gap:.3f} %'}, {r.seconds:.2f} s")


def main(argv: list[str]) -> int:
    quick = "--quick" in argv
    print(f"# bench_planning {time.strftime('%Y-%m-%d %H:%M')} on {machine()}{' (quick)' if quick else ''}")
    scale(2_000 if quick else 10_000)
    if quick:
        compare(100, [1], [0.6], 20.0, cold=False, restarts=False)
        cbc(20)
    else:
        compare(200, [1, 2, 3], [0.6, 1.2], 60.0, cold=True)
        cbc(40)
    print(f"\n({load()} at the end)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
