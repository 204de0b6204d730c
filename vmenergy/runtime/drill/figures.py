"""What a drill counts after its run: items offered, assigned, measured and billed, items lost,
and the exceptions the processes logged (those raised outside VME's own code apart).

Read from the run folder alone (summary.json and logs/), so a drill's verdict can be checked
again from what it leaves behind.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Items", "LoggedException", "items_of", "logged_exceptions", "result_of"]

FINAL = ("settled", "rejected", "withdrawn")


@dataclass(frozen=True)
class Items:
    """Offers as the prosumers see them at the end, and what went missing on the way.

    ``lost`` adds up everything that should have arrived and did not: offers left in a
    non-final state, schedules accepted but never measured, bills sent but not received or
    received with another amount, and offers whose prosumer and aggregator disagree."""

    offered: int
    assigned: int
    measured: int
    billed: int
    not_final: int
    unmeasured: int
    bills_missing: int
    bills_differ: int
    states_differ: int
    finished: bool

    @property
    def lost(self) -> int:
        return self.not_final + self.unmeasured + self.bills_missing + self.bills_differ + self.states_differ


def items_of(run_dir: Path) -> Items:
    s = json.loads((Path(run_dir) / "summary.json").read_text())
    offers, recon = s["offers"], s["reconciled"]
    by_prosumers: dict[str, int] = offers["by_prosumers"]
    bills = recon["bills"]
    return Items(
        offered=sum(by_prosumers.values()),
        assigned=int(offers["assigned"]),
        measured=int(offers["measured"]),
        billed=int(bills["received"]),
        not_final=sum(n for state, n in by_prosumers.items() if state not in FINAL),
        unmeasured=max(0, int(offers["assigned"]) - int(offers["measured"])),
        bills_missing=_count(bills.get("missing")),
        bills_differ=_count(bills.get("differ")),
        states_differ=_count(recon["offers"].get("differ")),
        finished=bool(s["outcome"]["finished"]),
    )


def result_of(run_dir: Path) -> str:
    """What the run decided, to compare with an undisturbed run of the same scenario and seed:
    summary.json without ``outcome.restarts`` (the one thing a fault may rightly add). With
    coordinated time a drill that recovered fully has the undisturbed run's bytes."""
    s = json.loads((Path(run_dir) / "summary.json").read_text())
    s["outcome"].pop("restarts", None)
    return json.dumps(s, sort_keys=True)


def _count(value: object) -> int:
    if isinstance(value, (list, dict)):
        return len(value)
    return int(value or 0)  # type: ignore[call-overload]


@dataclass(frozen=True)
class LoggedException:
    """A traceback in a process log: the log, the exception line, and where it was raised.
    ``ours`` is true when the innermost frame is in VME's own package."""

    log: str
    exception: str
    where: str
    ours: bool


_FRAME = re.compile(r'^\s*File "([^"]+)", line (\d+)')
_PACKAGE = str(Path(__file__).resolve().parents[2])  # .../vmenergy


def logged_exceptions(logs_dir: Path) -> list[LoggedException]:
    """Every traceback in ``logs_dir/*.log``."""
    found: list[LoggedException] = []
    for log in sorted(Path(logs_dir).glob("*.log")):
        lines = log.read_text(errors="replace").splitlines()
        i = 0
        while i < len(lines):
            if not lines[i].startswith("Traceback (most recent call last):"):
                i += 1
                continue
            where, i = "?", i + 1
            while i < len(lines) and (lines[i].startswith(" ") or not lines[i].strip()):
                m = _FRAME.match(lines[i])
                if m:
                    where = f"{m.group(1)}:{m.group(2)}"
                i += 1
            exc = lines[i] if i < len(lines) else "?"
            j = i + 1
            while j < len(lines) and not lines[j].strip():
                j += 1
            if j < len(lines) and lines[j].startswith(("During handling", "The above exception")):
                continue  # a chained traceback: the next one names the exception that escaped
            found.append(LoggedException(log.name, exc[:300], where, where.startswith(_PACKAGE)))
    return found
