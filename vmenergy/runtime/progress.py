"""What a person sees while a run goes on.

On a terminal: a progress bar (rich) of scenario time with the agents that are up, the offers by
state, wall time and an estimate of the time left. Elsewhere (a log, CI, a pipe): one line each
time something changes, at most every few seconds, so a log stays readable.
"""

from __future__ import annotations

import sys
import time
from typing import Callable, Iterable, Optional, TextIO

from vmenergy.flexoffer.timeutil import format_utc

__all__ = ["ProgressView", "LineView", "BarView", "view_for", "merge_summaries"]

#: Order in which offer states are shown (the lifecycle's order).
STATE_ORDER = ("not started", "initial", "offered", "accepted", "assigned", "executing", "executed", "settled",
               "rejected", "withdrawn")


def merge_summaries(summaries: Iterable[dict]) -> dict:
    """Sum summaries of agents or processes (counts, and dicts of counts such as offers by state)."""
    out: dict = {}
    for s in summaries:
        for key, value in s.items():
            if isinstance(value, dict):
                inner = out.setdefault(key, {})
                for k, v in value.items():
                    inner[k] = inner.get(k, 0) + v
            elif isinstance(value, (int, float)):
                out[key] = out.get(key, 0) + value
    return out


def offers_text(offers: dict[str, int]) -> str:
    known = [s for s in STATE_ORDER if offers.get(s)]
    other = sorted(s for s in offers if s not in STATE_ORDER and offers[s])
    return ", ".join(f"{s} {offers[s]}" for s in known + other) or "-"


class ProgressView:
    """Receives the run's progress (see :class:`vmenergy.runtime.orchestrator.Progress`)."""

    def start(self, start: int, until: int) -> None: ...

    def update(self, prog) -> None: ...

    def close(self) -> None: ...


class LineView(ProgressView):
    """A line per change, no more often than every ``every`` seconds (plus the last one)."""

    def __init__(self, out: Callable[[str], None], every: float = 2.0) -> None:
        self.out, self.every = out, every
        self._last_line = ""
        self._last_at = 0.0
        self._pending: Optional[str] = None

    def update(self, prog) -> None:
        line = prog.line()
        if line == self._last_line:
            return
        now = time.monotonic()
        if now - self._last_at >= self.every or prog.finished is not None:
            self.out(line)
            self._last_line, self._last_at, self._pending = line, now, None
        else:
            self._pending = line

    def close(self) -> None:
        if self._pending is not None and self._pending != self._last_line:
            self.out(self._pending)


class BarView(ProgressView):
    """A rich progress bar of scenario time."""

    def __init__(self, file: TextIO) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        self._progress = Progress(
            TextColumn("[bold]{task.fields[clock]}"), BarColumn(bar_width=20), TextColumn("{task.percentage:>3.0f}%"),
            TextColumn("{task.fields[agents]}"), TextColumn("{task.fields[offers]}"),
            TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
            console=Console(file=file), transient=False)
        self._task = None
        self._start = 0

    def start(self, start: int, until: int) -> None:
        self._start = start
        self._progress.start()
        self._task = self._progress.add_task("run", total=max(1, until - start), clock=_short(start),
                                             agents="starting", offers="")

    def update(self, prog) -> None:
        if self._task is None:
            return
        agents = f"agents {prog.agents_ready}/{prog.agents}" if prog.agents else "starting"
        self._progress.update(self._task, completed=max(0, int(prog.sim_time) - self._start),
                              clock=_short(int(prog.sim_time)), agents=agents,
                              offers="offers: " + offers_text(prog.prosumer_offers))

    def close(self) -> None:
        self._progress.stop()


def _short(t: int) -> str:
    """Scenario time for the bar: ``11-23 14:45Z``."""
    return format_utc(t)[5:16].replace("T", " ") + "Z"


def view_for(out: Callable[[str], None], file: Optional[TextIO] = None) -> ProgressView:
    """A bar on a terminal, lines otherwise."""
    file = file or sys.stdout
    return BarView(file) if file.isatty() else LineView(out)
