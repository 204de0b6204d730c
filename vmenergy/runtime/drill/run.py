"""One fault drill: a scenario run on its own private server, disturbed once at a seeded random
scenario time, supervised by the project's own machinery (:meth:`Swarm.supervise` restarts a
swarm process from its stores and the XMPP server on its port), then counted.

Kinds (:data:`KINDS`):

- ``prosumer``, ``aggregator``, ``market``: ``kill -9`` of that process (for prosumers, a random
  one of the prosumer processes);
- ``server``: ``kill -9`` of the XMPP server;
- ``network``: every agent's stream goes through :class:`~.proxy.LossyProxy`, which delays each
  chunk all day; at the fault time it swallows all traffic for a few seconds, then cuts every
  connection (the agents reconnect and resume with XEP-0198);
- ``disk``: the stores live on a small tmpfs (:class:`~.disk.SmallDisk`), which is filled at
  the fault time and freed a few seconds later.

The fault time is drawn from ``random.Random(f"{seed}/{kind}")`` between 10 % and 70 % of the
day's work (from the start to the latest end of a planned offer's window); scenario time is held at that instant while the fault is applied (virtual
clock). Recovery is the wall time from the fault (from the cut, from freeing the disk) until
scenario time moves on again.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

from vmenergy.flexoffer import FlexOffer
from vmenergy.flexoffer.timeutil import format_utc
from vmenergy.runtime.orchestrator import Progress, Swarm, stop_signals_interrupt
from vmenergy.runtime.scenario import load_scenario

from . import KINDS
from .disk import SmallDisk, can_mount
from .figures import Items, LoggedException, items_of, logged_exceptions, result_of
from .proxy import Impairment, LossyProxy

__all__ = ["KINDS", "UNDISTURBED", "DrillResult", "run_drill"]

#: ``run_drill`` of this kind runs the scenario without a fault: the reference the drills'
#: results are compared with.
UNDISTURBED = "none"

#: Network drill: the most each chunk is delayed all day, and how long all traffic is swallowed
#: before every connection is cut (wall seconds).
DELAY_MAX = 0.02
BLACKHOLE_SECONDS = 3.0
#: Disk drill: wall seconds the stores' disk stays full.
FULL_SECONDS = 5.0


@dataclass(frozen=True)
class DrillResult:
    """How a drill went. ``skipped`` says why it could not run here (then nothing else counts)."""

    kind: str
    seed: int
    fault: str = ""
    fault_at: int = 0
    items: Optional[Items] = None
    exceptions: tuple[LoggedException, ...] = ()
    recover_seconds: Optional[float] = None
    restarts: tuple[str, ...] = ()
    wall_seconds: float = 0.0
    run_dir: str = ""
    skipped: str = ""
    notes: tuple[str, ...] = field(default=())
    #: summary.json less its restarts (:func:`~.figures.result_of`), to compare with the
    #: undisturbed run's; ``same_as_undisturbed`` is set by whoever compared them.
    result: str = ""
    same_as_undisturbed: Optional[bool] = None

    @property
    def foreign_exceptions(self) -> tuple[LoggedException, ...]:
        """Exceptions raised outside VME's own code (goal 0)."""
        return tuple(e for e in self.exceptions if not e.ours)

    @property
    def ok(self) -> bool:
        if self.skipped:
            return True
        return self.items is not None and self.items.finished and self.items.lost == 0 \
            and not self.foreign_exceptions and self.same_as_undisturbed is not False

    def line(self) -> str:
        if self.skipped:
            return f"drill {self.kind:<10} skipped: {self.skipped}"
        i = self.items
        counts = (f"offered {i.offered} assigned {i.assigned} measured {i.measured} billed {i.billed} lost {i.lost}"
                  if i is not None else "no report")
        rec = f"{self.recover_seconds:.1f} s" if self.recover_seconds is not None else "-"
        same = {None: "", True: "; summary as undisturbed", False: "; summary DIFFERS from the undisturbed run"}
        what = f"{self.fault} at {format_utc(self.fault_at)}" if self.fault else "no fault"
        return (f"drill {self.kind:<10} {'ok  ' if self.ok else 'FAIL'} {what}: "
                f"{counts}; exceptions {len(self.exceptions)} (non-project {len(self.foreign_exceptions)}); "
                f"recovered in {rec}; restarts {', '.join(self.restarts) or 'none'}{same[self.same_as_undisturbed]}; "
                f"{self.wall_seconds:.0f} s")


class _DrillSwarm(Swarm):
    """A swarm whose agents reach the server through a proxy (network drill) and whose stores
    sit on a small disk (disk drill; mounted by :func:`run_drill`)."""

    def __init__(self, *args, proxy_seed: Optional[int] = None, disk: Optional[SmallDisk] = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.proxy_seed = proxy_seed
        self.proxy: Optional[LossyProxy] = None
        self.disk = disk

    def _server(self) -> dict:
        server = super()._server()
        if self.proxy_seed is not None:
            self.proxy = LossyProxy((server["host"], server["port"]), self.proxy_seed)
            # agents get the proxy's port in the plan; the server's certificate names the
            # domain, not the port, so TLS is verified as before
            server = dict(server, port=self.proxy.start())
            self.proxy.impair(Impairment(delay_max=DELAY_MAX))
        return server

    def stop(self) -> None:
        try:
            super().stop()
        finally:
            if self.proxy is not None:
                self.proxy.stop()


def run_drill(scenario: Path | str, kind: str, run_dir: Path | str, *, seed: int = 0, timeout: float = 900,
              out: Callable[[str], None] = print) -> DrillResult:
    """Run ``scenario`` once with the fault ``kind`` (see module docstring)."""
    if kind not in KINDS and kind != UNDISTURBED:
        raise ValueError(f"kind: must be one of {', '.join(KINDS)} or {UNDISTURBED} (got {kind!r})")
    if kind == "disk" and (why := can_mount()):
        return DrillResult(kind, seed, skipped=why)
    sc = load_scenario(scenario)
    if kind == "market" and sc.market is None:
        return DrillResult(kind, seed, skipped="the scenario has no market")
    if kind == "server" and sc.server.kind not in ("prosody", "ejabberd"):
        return DrillResult(kind, seed, skipped=f"the run does not start its own server ({sc.server.kind}) to kill")
    run_dir = Path(run_dir)
    rng = random.Random(f"{seed}/{kind}")
    disk = None
    if kind == "disk":  # the stores' own disk, mounted before any agent opens its store
        disk = SmallDisk(run_dir.resolve() / "stores")
        try:
            disk.mount()
        except (OSError, subprocess.CalledProcessError) as exc:
            return DrillResult(kind, seed, skipped=f"cannot mount a tmpfs for the stores: "
                                                   f"{getattr(exc, 'stderr', '') or exc}".strip())
    swarm = _DrillSwarm(sc, run_dir, out=lambda line: None, proxy_seed=seed if kind == "network" else None, disk=disk)
    # SIGTERM/SIGHUP stop a drill as Ctrl-C does (the server, processes and tmpfs are cleaned up)
    restore_signals = stop_signals_interrupt()
    t_start = time.time()
    deadline = t_start + timeout
    recover: Optional[float] = None
    fault, fault_at = "", 0
    notes: list[str] = []
    try:
        plan = swarm.start()
        busy_until = _busy_until(plan)
        fault_at = plan.start + int((busy_until - plan.start) * rng.uniform(0.10, 0.70))
        prog = swarm.wait(timeout=_left(deadline), every=0.2,
                          until=None if kind == UNDISTURBED else (lambda p: p.sim_time >= fault_at))
        if kind == UNDISTURBED:
            fault_at = 0
        elif prog.finished is None and prog.sim_time >= fault_at:
            at = prog.sim_time
            fault, t_fault = _apply(kind, swarm, plan, rng, deadline, notes)
            recover = _until_time_moves(swarm, at, t_fault, deadline)
            fault_at = int(at)
        else:
            notes.append(f"the run ended before the fault time ({prog.line()})")
        swarm.wait(timeout=_left(deadline))
    finally:
        swarm.stop()
        try:
            if swarm.plan is not None:  # started: report what happened, even after an error
                swarm.report()
        finally:
            if disk is not None:
                disk.unmount()
            restore_signals()
    done = (run_dir / "summary.json").exists()
    return DrillResult(kind, seed, fault, fault_at, items_of(run_dir) if done else None,
                       tuple(logged_exceptions(run_dir / "logs")), recover, tuple(r.part for r in swarm.restarts),
                       time.time() - t_start, str(run_dir), notes=tuple(notes),
                       result=result_of(run_dir) if done else "")


def _busy_until(plan) -> int:
    """When the day's work is about over: the latest end of any planned offer's window (its
    schedule is measured and billed soon after), or the scenario's end when the offers come
    from device models. A fault drawn after that would find nothing left to disturb: with
    coordinated time the run ends when every offer is final."""
    ends = []
    for agent in plan.agents:
        for o in agent.offers:
            fo = FlexOffer.from_dict(o["offer"])
            latest = fo.latest_start(o["release"] // fo.resolution)
            ends.append((latest + max(p.duration for p in fo.profiles)) * fo.resolution)
    return min(plan.until, max(ends)) if ends else plan.until


def _apply(kind: str, swarm: _DrillSwarm, plan, rng: random.Random, deadline: float,
           notes: list[str]) -> tuple[str, float]:
    """Do the fault; returns what was done and the wall time recovery is counted from."""
    if kind in ("prosumer", "aggregator", "market"):
        parts = [p for p in plan.parts if p.startswith("prosumers-")] if kind == "prosumer" else \
            ["aggregators"] if kind == "aggregator" else ["market"]
        part = rng.choice(sorted(parts))
        # SIGKILL from outside, not Swarm.kill: the supervisor must find the part dead on its own
        os.kill(swarm.procs[part].pid, signal.SIGKILL)
        return f"kill -9 {part}", time.time()
    if kind == "server":  # the server, or one node of a cluster
        from vmenergy.runtime.servers import read_info

        dirs = swarm.server_dirs
        name = rng.choice(sorted(dirs)) if len(dirs) > 1 else None  # one draw only for a cluster
        info = read_info(dirs[name] if name else swarm.run_dir / "xmpp")
        if info is None or not info.pid:
            raise RuntimeError("the drill's XMPP server has no record (pid) to kill")
        # the server's whole process group (it runs in a session of its own): ejabberd's recorded
        # pid is the ejabberdctl shell, whose Erlang VM would otherwise live on and hold the port
        os.killpg(info.pid, signal.SIGKILL)
        return f"kill -9 {name or 'xmpp server'} ({info.kind})", time.time()
    if kind == "network":
        proxy = swarm.proxy
        if proxy is None:
            raise RuntimeError("the network drill's swarm has no proxy")
        proxy.impair(Impairment(delay_max=DELAY_MAX, blackhole=True))
        swarm.wait(timeout=min(BLACKHOLE_SECONDS, _left(deadline)), every=0.2, until=lambda p: False)
        proxy.impair(Impairment(delay_max=DELAY_MAX))
        n = proxy.cut()
        notes.append(f"proxy: {proxy.dropped_bytes} bytes swallowed, {n} streams cut, "
                     f"{proxy.connections} connections in all")
        return f"network: delay 0-{DELAY_MAX * 1000:.0f} ms all day, all traffic dropped {BLACKHOLE_SECONDS:.0f} s, " \
               f"every connection cut", time.time()
    disk = swarm.disk
    if disk is None:
        raise RuntimeError("the disk drill's swarm has no disk")
    filled = disk.fill()
    swarm.wait(timeout=min(FULL_SECONDS, _left(deadline)), every=0.2, until=lambda p: False)
    disk.free()
    notes.append(f"disk: {filled} bytes written to fill it")
    return f"disk full {FULL_SECONDS:.0f} s (tmpfs {disk.size_mb} MB)", time.time()


def _until_time_moves(swarm: Swarm, at: float, t_fault: float, deadline: float) -> Optional[float]:
    """Wall seconds from ``t_fault`` until scenario time passes ``at`` (or the run ends)."""
    prog: Progress = swarm.wait(timeout=_left(deadline), every=0.1,
                                until=lambda p: p.sim_time > at or p.finished is not None)
    return time.time() - t_fault if (prog.sim_time > at or prog.finished is not None) else None


def _left(deadline: float) -> float:
    return max(1.0, deadline - time.time())
