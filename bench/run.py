"""Run the benchmarks (bench/bench_*.py) in turn, each in its own process, and print its figures.

Usage: python bench/run.py [--quick] [NAME...]
Each benchmark is a script that prints its own figures next to a simple reference measured in
the same run; copy the figures, with date and machine, into bench/RESULTS.md. The scale ladder
(bench_ladder.py) runs its default rungs, 1,000 and 2,000 prosumers, each beside its plain-XMPP
reference. Left out unless named: the scripts in ``OWN_TARGET`` (a million devices needs more
memory than most machines have; the report's benchmark needs a run folder). At the end: each
script's wall time and the total, so what ``make bench`` costs is on record.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from machine import describe as machine  # bench/machine.py (the script's folder is on sys.path)

HERE = Path(__file__).resolve().parent

#: Benchmarks run only when named, and why.
OWN_TARGET = {
    "bench_million": "`make bench-million` (a million devices: ~100 GiB; smaller copies with MILLION_ARGS)",
    "bench_report": "needs a run folder: python bench/bench_report.py RUN_DIR",
}


def chosen(scripts: list[Path], names: list[str]) -> tuple[list[Path], dict[str, str]]:
    """The scripts to run (those ``names`` match, or all but ``OWN_TARGET``'s) and those left out, with why."""
    if names:
        return [s for s in scripts if any(n in s.stem for n in names)], {}
    return ([s for s in scripts if s.stem not in OWN_TARGET],
            {s.stem: OWN_TARGET[s.stem] for s in scripts if s.stem in OWN_TARGET})


def main(argv: list[str]) -> int:
    args = [a for a in argv if a.startswith("-")]
    names = [a for a in argv if not a.startswith("-")]
    scripts, left_out = chosen(sorted(HERE.glob("bench_*.py")), names)
    print(f"# {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {machine()}")
    for stem, why in left_out.items():
        print(f"(not run: {stem}: {why})")
    failed = 0
    took: dict[str, float] = {}
    t_all = time.perf_counter()
    for script in scripts:
        print(f"\n## {script.stem}", flush=True)
        t0 = time.perf_counter()
        rc = subprocess.call([sys.executable, str(script), *args])
        took[script.stem] = time.perf_counter() - t0
        if rc:
            print(f"{script.stem} exited with {rc}")
            failed += 1
    print("\n## wall time of each benchmark")
    for stem, s in took.items():
        print(f"- {stem}: {s / 60:.1f} min")
    print(f"- all: {(time.perf_counter() - t_all) / 60:.1f} min")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
