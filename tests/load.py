"""Keeping the machine busy while a test runs: results must not depend on the machine's speed.

``busy_cpus()`` starts one spinning process per core (plain Python arithmetic, no I/O) and stops
them when the block ends; the swarm tests run under it, so a run that only works on an idle
machine fails here instead of on a user's busy laptop.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
from typing import Iterator


def _spin(stop) -> None:  # pragma: no cover - runs in the child processes
    x = 0
    while not stop.is_set():
        for i in range(100_000):
            x = (x * 31 + i) % 1_000_003


@contextlib.contextmanager
def busy_cpus(n: int | None = None) -> Iterator[int]:
    """Keep ``n`` cores (default: all) busy for the duration of the block."""
    n = n or os.cpu_count() or 2
    ctx = mp.get_context("spawn")  # no copy of the test process's threads and event loops
    stop = ctx.Event()
    procs = [ctx.Process(target=_spin, args=(stop,), daemon=True) for _ in range(n)]
    for p in procs:
        p.start()
    try:
        yield n
    finally:
        stop.set()
        for p in procs:
            p.join(10)
            if p.is_alive():
                p.kill()


def main(argv: list[str] | None = None) -> int:
    """``python -m tests.load [SECONDS]``: keep every core busy (until stopped, or for SECONDS),
    for running the suite or a benchmark on a loaded machine. SIGTERM and Ctrl-C stop the
    spinners too (they would outlive a parent killed by a signal's default action)."""
    import signal
    import sys
    import time

    args = sys.argv[1:] if argv is None else argv
    seconds = float(args[0]) if args else float("inf")

    def stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    with busy_cpus() as n:
        print(f"keeping {n} cores busy (pid {os.getpid()}); stop with Ctrl-C or kill {os.getpid()}", flush=True)
        end = time.monotonic() + seconds
        try:
            while time.monotonic() < end:
                time.sleep(min(1.0, max(0.0, end - time.monotonic())))
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
