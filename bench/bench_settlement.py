"""Benchmark: settle one day (96 x 15 min) for a population, next to the plain-Python reference.

Usage: python bench/bench_settlement.py [--quick] [--n N] [--ref-n N] [--history-days D] [--chunk C]

Default: 1,000,000 prosumers (target: under 10 s, vectorised) and the plain-Python reference
(tests.settlement.reference) on 10,000 prosumers of the same kind in the same run; --quick:
100,000 and 2,000. The population is synthetic (tests.settlement.synthetic): one 4-slice offer per
prosumer, 10 days of history, four contracts (delegated X-of-Y with adjustment, delegated
comparative day, direct at offer prices, direct at market prices), 0.1 % gaps, 0.02 % spikes.
Generating it is not timed as settlement. Memory: what settle and the assignment builder allocate
at their peak (tracemalloc, in a first run; the timed run is a second, untraced one), and the
process's resident high-water mark with the inputs.
"""

from __future__ import annotations

import argparse
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from vmenergy.settlement import kpis, settle  # noqa: E402
from tests.settlement.reference import settle_reference  # noqa: E402  (test oracle and data generator)
from tests.settlement.synthetic import population  # noqa: E402

from machine import describe as machine  # bench/machine.py (the script's folder is on sys.path)


def _status(key: str) -> float:
    """A /proc/self/status memory figure in MiB (0 if unavailable)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return 0.0


def _reset_peak() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _meminfo(key: str) -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return 0.0


def load() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


PEAK = [0.0]  # the largest resident-set high-water mark seen over all steps (MiB)
CPU: dict[str, float] = {}  # CPU seconds of each step's timed run (steadier than wall time on a busy box)


def timed(label: str, fn, trace: bool = False):
    """Run ``fn``; print its wall time and the memory it needed on top of what was resident.

    With ``trace``, the memory is tracemalloc's peak of what ``fn`` allocated (numpy reports its
    buffers to tracemalloc), which is exact even when the heap reuses memory freed earlier; a
    second, untraced run gives the time. Otherwise the resident-set high-water mark is used."""
    PEAK[0] = max(PEAK[0], _status("VmHWM"))
    peak = float("nan")
    if trace:
        tracemalloc.start()
        fn()
        peak = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
    reset = _reset_peak()
    base = _status("VmRSS")
    cpu = time.process_time()
    t = time.perf_counter()
    out = fn()
    dt = time.perf_counter() - t
    CPU[label] = time.process_time() - cpu
    hwm = _status("VmHWM")
    PEAK[0] = max(PEAK[0], hwm)
    if not trace and reset:
        peak = hwm - base
    print(f"  {label:<44} {dt:9.3f} s wall {CPU[label]:8.3f} s CPU   needs {peak:7.0f} MiB over {base:7.0f} MiB "
          "resident", flush=True)
    return out, dt, peak


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="100,000 prosumers, reference on 2,000")
    ap.add_argument("--n", type=int, default=None)
    ap.add_argument("--ref-n", type=int, default=None)
    ap.add_argument("--history-days", type=int, default=10)
    ap.add_argument("--chunk", type=int, default=None)
    ap.add_argument("--seed", type=int, default=2026)
    args = ap.parse_args(argv)
    n = args.n or (100_000 if args.quick else 1_000_000)
    ref_n = args.ref_n or (2_000 if args.quick else 10_000)
    kw = {} if args.chunk is None else {"chunk": args.chunk}
    print(f"# bench_settlement {time.strftime('%Y-%m-%d %H:%M')} on {machine()}")
    print(f"# load average at start: {load()}; MemAvailable {_meminfo('MemAvailable') / 1024:.1f} GiB")
    print(f"# population: {n:,} prosumers x 96 intervals, {args.history_days} history days, seed {args.seed}")

    pop, t_gen, _ = timed(f"generate synthetic population ({n:,})", lambda: population(
        n, seed=args.seed, history_days=args.history_days))
    asg, t_asg, p_asg = timed("assignments_from_sets (columnar)", pop.assignments, trace=True)
    res, t_set, p_set = timed("settle (vectorised)", lambda: settle(
        pop.meter, asg, pop.contracts, pop.contract_of, pop.market, **kw), trace=True)
    rep, t_kpi, _ = timed("kpis (portfolio, no offers)", lambda: kpis(res))
    (p,) = res.participants
    assert p.payouts_cents == int(res.bills.total.sum())
    assert p.payouts_cents + p.margin_cents == p.earnings_cents
    print(f"  flagged cells {len(res.flags):,} ({res.flags.counts()}); participant: revenue "
          f"{p.revenue_cents / 100:.2f}, imbalance {p.imbalance_cents / 100:.2f}, payouts "
          f"{p.payouts_cents / 100:.2f}, margin {p.margin_cents / 100:.2f} EUR (reconciled)")
    del res, asg, pop, rep

    ref_pop = population(ref_n, seed=args.seed, history_days=args.history_days)
    ref_asg = ref_pop.assignments()
    ref, t_ref, _ = timed(f"settle_reference (plain Python, {ref_n:,})", lambda: settle_reference(
        ref_pop.meter, ref_asg, ref_pop.contracts, ref_pop.contract_of, ref_pop.market))
    small, t_small, _ = timed(f"settle (vectorised, same {ref_n:,})", lambda: settle(
        ref_pop.meter, ref_asg, ref_pop.contracts, ref_pop.contract_of, ref_pop.market, **kw))
    same = np.array_equal(small.bills.total, np.array(ref["total"]))
    print(f"  reference and vectorised bills identical to the cent: {same}")
    ref_label = f"settle_reference (plain Python, {ref_n:,})"
    per_vec = t_set / n * 1e6
    per_ref = t_ref / ref_n * 1e6
    print("\n| step | figure |\n| --- | --- |")
    print(f"| settle {n:,} prosumers x 96 intervals (vectorised) | {t_set:.2f} s wall, "
          f"{CPU['settle (vectorised)']:.2f} s CPU ({per_vec:.2f} us/prosumer) |")
    print(f"| assignments from columnar sets | {t_asg:.2f} s, allocates {p_asg:.0f} MiB |")
    print(f"| settle + assignments | {t_set + t_asg:.2f} s |")
    print(f"| memory settle allocates at its peak (tracemalloc, over its inputs) | {p_set:.0f} MiB |")
    print(f"| process peak resident memory (inputs included) | {max(PEAK[0], _status('VmHWM')) / 1024:.2f} GiB |")
    print(f"| plain-Python reference, {ref_n:,} prosumers | {t_ref:.2f} s wall, {CPU[ref_label]:.2f} s CPU "
          f"({per_ref:.0f} us/prosumer) |")
    print(f"| vectorised on the same {ref_n:,} | {t_small:.3f} s |")
    cpu_ratio = (CPU[ref_label] / ref_n) / (CPU["settle (vectorised)"] / n)
    print(f"| speed-up per prosumer (reference / vectorised at full size) | {per_ref / per_vec:.0f}x wall, "
          f"{cpu_ratio:.0f}x CPU |")
    print(f"| bills identical to the cent (reference sample) | {same} |")
    print(f"| population generation (not settlement) | {t_gen:.1f} s |")
    print(f"# load average at end: {load()}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
