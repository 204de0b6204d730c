"""Run every benchmark (bench/bench_*.py) in turn, each in its own process, and print its figures.

Usage: python bench/run.py [--quick] [NAME...]
Each benchmark is a script that prints its own figures next to a simple reference measured in
the same run; copy the figures, with date and machine, into bench/RESULTS.md.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from machine import describe as machine  # bench/machine.py (the script's folder is on sys.path)

HERE = Path(__file__).resolve().parent


def main(argv: list[str]) -> int:
    args = [a for a in argv if a.startswith("-")]
    names = [a for a in argv if not a.startswith("-")]
    scripts = sorted(HERE.glob("bench_*.py"))
    if names:
        scripts = [s for s in scripts if any(n in s.stem for n in names)]
    print(f"# {time.strftime('%Y-%m-%d')} on {machine()}")
    failed = 0
    for script in scripts:
        print(f"\n## {script.stem}", flush=True)
        rc = subprocess.call([sys.executable, str(script), *args])
        if rc:
            print(f"{script.stem} exited with {rc}")
            failed += 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
