"""The report of a kept run folder, written again and measured: CPU seconds and peak memory of
the process that writes it, and whether summary.json comes out byte for byte as the run wrote it.

The report is the last thing ``vmenergy run`` does; at 5,000 devices it was most of the run
process's CPU (bench/RESULTS.md, "A million devices"). This re-writes it from the stores of a run
folder kept with ``bench_million.py --keep`` (or any run folder), into a new folder, with the
outcome the run recorded, so code changes to the report can be measured and checked on the same
stores: the summary must not change.

Usage: python bench/bench_report.py RUN_DIR [--out DIR] [--profile FILE.pstats]
Prints one JSON line: cpu_s (this process, user + system), peak_rss_mib (ru_maxrss), wall_s,
offers (lines of offers.jsonl), summary_same (bytes equal to RUN_DIR/summary.json), sha256.
"""

from __future__ import annotations

import argparse
import cProfile
import hashlib
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from vmenergy.flexoffer.timeutil import parse_utc  # noqa: E402
from vmenergy.runtime.report import Outcome, Restart, write_report  # noqa: E402
from vmenergy.runtime.scenario.plan import Plan  # noqa: E402


def recorded_outcome(run_dir: Path) -> Outcome:
    """How the run ended, as its summary.json and timings.json say (the report's input)."""
    summary = json.loads((run_dir / "summary.json").read_text())
    timings = json.loads((run_dir / "timings.json").read_text())
    o = summary["outcome"]
    return Outcome(o["stopped_by"], parse_utc(o["sim_end"], "sim_end"), o["detail"],
                   timings={k: v for k, v in timings.items() if isinstance(v, (int, float))},
                   restarts=tuple(Restart(r["part"], parse_utc(r["at"], "at"), r["exit_code"]) for r in o["restarts"]),
                   work=timings.get("work", {}))


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("--out", type=Path, help="where to write the report (default: a temporary folder)")
    ap.add_argument("--profile", type=Path, help="write a cProfile of the report to this file")
    args = ap.parse_args(argv)
    run_dir = args.run_dir.resolve()
    out = args.out or Path(tempfile.mkdtemp(prefix="vme-report-"))
    plan = Plan.load(run_dir / "plan.json")
    for agent in plan.agents:  # the folder may have moved since the run: its stores are in it
        agent.store = str(run_dir / "stores" / Path(agent.store).name)
    outcome = recorded_outcome(run_dir)
    prof = cProfile.Profile() if args.profile else None
    r0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.perf_counter()
    if prof is not None:
        prof.enable()
    write_report(plan, out, outcome)
    if prof is not None:
        prof.disable()
        prof.dump_stats(str(args.profile))
    wall = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    new = (out / "summary.json").read_bytes()
    print(json.dumps({
        "run_dir": str(run_dir), "out": str(out),
        "cpu_s": round((r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime), 2),
        "peak_rss_mib": r1.ru_maxrss >> 10, "wall_s": round(wall, 2),
        "offers": sum(1 for _ in (out / "offers.jsonl").open()),
        "summary_same": new == (run_dir / "summary.json").read_bytes(),
        "files_same": {name: (out / name).read_bytes() == (run_dir / name).read_bytes()
                       for name in ("offers.jsonl", "schedules.jsonl", "timeseries.csv", "bills.csv")},
        "sha256": hashlib.sha256(new).hexdigest()}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
