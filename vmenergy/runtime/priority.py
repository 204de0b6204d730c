"""Which processes of a run yield the CPU: the many prosumers yield to the few that every round
waits on (aggregators, market, DSO, the run's coordinator), without privilege.

The rule, in two parts: the few each run in a session of their own, the many share the run's
session (:func:`spawn_options`); and the many raise their own niceness (:func:`lower_own_priority`).

A virtual-time round ends when every agent is idle, so the serial part of a round (an
aggregator's aggregation with its worker threads, the market's clearing, the coordinator) sets
its length. On 2 cores with 10,000 prosumers that serial part waited in the run queue behind
the prosumer processes: the aggregators' two LP threads ran 15 s and waited 99 s in one round
(bench/RESULTS.md, "10,000 prosumers: the server starved"; reprioritised by hand then). Raising
the few needs root or CAP_SYS_NICE; lowering the many needs nothing, and gives the same order.
The kernel's scheduler is work-conserving: a lowered process still gets every cycle nobody
else wants, so a prosumer process is slowed only while the serial part has work.

Linux autogroup scheduling (``kernel.sched_autogroup_enabled``, on by default) first shares the
CPU equally between sessions (each session is one group), and only then between the processes of
a group by their niceness; a niceness does not count across groups. So a session is the unit of
CPU share, and starting a process in a session of its own is itself a raise that needs no
privilege. The first try gave every swarm process its own session and lowered the prosumer
sessions' groups by 10: at 5,000 prosumers on a box shared with other people's runs, each prosumer
group then weighed 110 against every foreign session's 1,024, and the prosumers got ~3 CPU s a
minute while runnable the whole time (bench/RESULTS.md). Now the prosumer processes share the
run's session (a process group of their own, so signals still reach them apart): together they
weigh one session against the aggregators' one each and against any foreign session, and inside
the run's group their niceness puts the coordinator and the report first.

A process that does lead its own session (``vmenergy swarm`` started by hand under ``setsid``,
or by another supervisor) lowers its session's group too (``/proc/self/autogroup``); one in a
shared session leaves the group alone: its other members (a shell, a test run) are not ours to
lower.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Optional

__all__ = ["SWARM_NICENESS", "YIELDING_ROLES", "Priority", "part_niceness", "spawn_options", "lower_own_priority",
           "own_priority"]

#: How much a swarm process of yielding agents raises its own niceness (and its session group's).
#: At +10 the kernel weighs it 110 against a default process's 1024: four prosumer processes
#: together weigh less than half of the aggregators' one.
SWARM_NICENESS = 10

#: The roles whose processes yield: there are thousands of them and a round waits on none alone.
YIELDING_ROLES = frozenset({"prosumer"})

AUTOGROUP = "/proc/self/autogroup"
MAX_NICENESS = 19


def part_niceness(roles: Iterable[str]) -> int:
    """How much a process running agents of ``roles`` lowers its priority: :data:`SWARM_NICENESS`
    when all of them yield, else 0 (a process that holds an aggregator is part of the serial path
    however many prosumers share it; an empty process has nothing to yield)."""
    roles = set(roles)
    return SWARM_NICENESS if roles and roles <= YIELDING_ROLES else 0


def spawn_options(roles: Iterable[str]) -> dict[str, Any]:
    """``subprocess.Popen`` options for a swarm process running agents of ``roles``: a process
    that yields joins the run's session in a process group of its own; any other leads a
    session of its own (one share of the CPU under autogroup scheduling). Either way it has its
    own process group, so a Ctrl-C at the run's terminal reaches the run alone, which stops its
    processes in order."""
    return {"process_group": 0} if part_niceness(roles) else {"start_new_session": True}


@dataclass(frozen=True)
class Priority:
    """A process's niceness, its session group's under autogroup scheduling (None where there is
    none), and whether it leads its session (its group is then its own)."""

    niceness: int
    group: Optional[int]
    session_leader: bool


def own_priority() -> Priority:
    return Priority(os.getpriority(os.PRIO_PROCESS, 0), _read_group(), os.getsid(0) == os.getpid())


def _read_group() -> Optional[int]:
    try:
        with open(AUTOGROUP) as f:  # "/autogroup-123 nice 10"
            return int(f.read().split()[-1])
    except (OSError, ValueError, IndexError):
        return None


def lower_own_priority(by: int) -> Priority:
    """Raise this process's niceness by ``by`` (and its session group's, if it leads its session);
    returns the priority it has afterwards.

    Call it before the process starts threads: on Linux a niceness belongs to a thread, and a new
    thread inherits its creator's (the event loop's executor, SQLite, solver threads all start
    later). Lowering needs no privilege; a refusal (some sandboxes) leaves the priority as it was.
    """
    if by < 0:
        raise ValueError(f"by: {by} would raise the priority; this only lowers it (raising needs privilege)")
    if by == 0:
        return own_priority()
    try:
        current = os.getpriority(os.PRIO_PROCESS, 0)
        os.setpriority(os.PRIO_PROCESS, 0, min(MAX_NICENESS, current + by))
    except OSError:
        pass
    group = _read_group()
    if group is not None and os.getsid(0) == os.getpid():
        try:
            with open(AUTOGROUP, "w") as f:
                f.write(f"{min(MAX_NICENESS, group + by)}\n")
        except OSError:
            pass
    return own_priority()
