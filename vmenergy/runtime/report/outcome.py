"""How a run ended, as the orchestrator tells the report."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Mapping

from vmenergy.errors import VmeError

__all__ = ["Outcome", "Restart", "STOPPED_BY", "ReportError"]

#: Why a run stopped: every offer reached a final state (``done``), scenario time reached
#: ``until``, the user pressed Ctrl-C (``interrupted``), the real-time limit came first
#: (``timeout``), or a part failed (``error``).
STOPPED_BY = ("done", "until", "interrupted", "timeout", "error")


class ReportError(VmeError):
    """Bad input to the report; names the field."""


@dataclass(frozen=True)
class Restart:
    """A part of the run that died and was restarted while it ran: a swarm process (from its
    agents' stores) or the XMPP server (``part`` "xmpp-server", on its port). ``at``: scenario
    time (epoch seconds) when it was found dead; ``exit_code``: how it ended (negative: the
    signal that killed it)."""

    part: str
    at: int
    exit_code: int

    def __post_init__(self) -> None:
        if not isinstance(self.part, str) or not self.part:
            raise ReportError("outcome.restarts.part", "must be the name of a part")
        for name in ("at", "exit_code"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ReportError(f"outcome.restarts.{name}", f"must be an integer (got {value!r})")


@dataclass(frozen=True)
class Outcome:
    """``sim_end``: scenario time (epoch seconds) when the run stopped. ``timings``: wall-clock
    figures (seconds; name -> number); they are kept out of summary.json, which must be the same
    for every run of a scenario and seed, and written to timings.json. ``restarts``: the parts
    that died and were restarted, in order. ``work``: what the agents did, counted by role
    (engine steps, presence received; name -> count), which depends on how the run was split
    into processes and on the server, so it goes to timings.json too."""

    stopped_by: str
    sim_end: int
    detail: str = ""
    timings: Mapping[str, float] = field(default_factory=dict)
    restarts: tuple[Restart, ...] = ()
    work: Mapping[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.stopped_by not in STOPPED_BY:
            raise ReportError("outcome.stopped_by", f"must be one of {', '.join(STOPPED_BY)} (got {self.stopped_by!r})")
        if isinstance(self.sim_end, bool) or not isinstance(self.sim_end, int):
            raise ReportError("outcome.sim_end", f"must be whole epoch seconds (got {self.sim_end!r})")
        if not isinstance(self.detail, str):
            raise ReportError("outcome.detail", "must be text")
        for key, value in self.timings.items():
            if not isinstance(key, str):
                raise ReportError("outcome.timings", f"keys must be names (got {key!r})")
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ReportError(f"outcome.timings.{key}", f"must be a finite number of seconds (got {value!r})")
        for key, count in self.work.items():
            if not isinstance(key, str) or isinstance(count, bool) or not isinstance(count, int) or count < 0:
                raise ReportError(f"outcome.work.{key}", f"must be a count (got {count!r})")
        for i, r in enumerate(self.restarts):
            if not isinstance(r, Restart):
                raise ReportError(f"outcome.restarts[{i}]", "must be a Restart")
