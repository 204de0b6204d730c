"""``vmenergy run``: a scenario swarm on a real XMPP server, from start to report.

The orchestrator starts (or uses) the server, writes the plan, runs the time coordinator (see
:mod:`vmenergy.runtime.coordinator`) and starts one process per part (the market, the
aggregators, and the prosumers in one or more processes of their own). Scenario time starts
when every agent of every process is connected and has seen its peers; the run ends when every
offer reached a final state and nothing is left unanswered, or at the scenario's end time, or
when it is interrupted. Then it stops the processes and writes the report. Parts can be killed
and restarted while it runs (the restart test does exactly that to the aggregators); with the
virtual clock, time stands still until the part is back.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Optional

from vmenergy.runtime.coordinator import Coordinator, Snapshot
from vmenergy.runtime.scenario import Plan, load_scenario, make_plan

__all__ = ["Swarm", "Progress", "run_scenario", "FINAL"]

FINAL = {"settled", "rejected", "withdrawn"}


@dataclass
class Progress:
    """Where a run stands, as the processes last reported it."""

    sim_time: float
    prosumer_offers: dict[str, int] = field(default_factory=dict)
    unfinished: int = 0
    total: int = 0
    parts_started: int = 0
    parts: int = 0
    unanswered: int = 0  # messages the aggregators still wait to have acknowledged
    agents_ready: int = 0
    agents: int = 0
    finished: Optional[str] = None  # "done" | "until" | "stopped" once the coordinator ended

    @property
    def done(self) -> bool:
        return self.total > 0 and self.unfinished == 0 and self.unanswered == 0

    def line(self) -> str:
        from vmenergy.flexoffer.timeutil import format_utc

        states = ", ".join(f"{k} {v}" for k, v in sorted(self.prosumer_offers.items()))
        waiting = f"; {self.unanswered} messages awaiting acks" if self.unanswered else ""
        up = f"agents {self.agents_ready}/{self.agents}" if self.agents_ready < self.agents else f"parts {self.parts_started}/{self.parts}"
        return f"[{format_utc(int(self.sim_time))}] {up}; offers: {states or '-'}{waiting}"


def progress_of(snap: Snapshot, expected_offers: int) -> Progress:
    """Progress from the coordinator's snapshot (summed reports of the processes)."""
    s = snap.summary
    offers = dict(s.get("offers", {}))
    seen = sum(offers.values())
    if expected_offers > seen:
        offers["not started"] = expected_offers - seen
    unfinished = sum(n for state, n in offers.items() if state not in FINAL)
    return Progress(snap.time, offers, unfinished, expected_offers, snap.parts_up, snap.parts,
                    int(s.get("unanswered", 0)), snap.agents_ready, snap.agents, snap.finished)


class _CoordinatorThread:
    """The coordinator's event loop, beside the orchestrator's (synchronous) control flow."""

    def __init__(self, coordinator: Coordinator) -> None:
        self.coordinator = coordinator
        self.loop = asyncio.new_event_loop()
        self._listening = threading.Event()
        self._latest: Optional[Snapshot] = None
        self._lock = threading.Lock()
        self.changed = threading.Condition(self._lock)
        self.error: Optional[BaseException] = None
        coordinator.on_snapshot = self._snapshot
        self.thread = threading.Thread(target=self._main, name="vme-coordinator", daemon=True)

    def start(self) -> tuple[str, int]:
        self.thread.start()
        self._listening.wait()
        if self.error is not None:
            raise self.error
        return self.coordinator.host, self.coordinator.port

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self._serve())
        except BaseException as exc:  # noqa: BLE001 - reported to the orchestrator's thread
            self.error = exc
            self._listening.set()
            with self.changed:
                self.changed.notify_all()

    async def _serve(self) -> None:
        await self.coordinator.listen()
        self._closing = asyncio.Event()
        self._listening.set()
        run = asyncio.ensure_future(self.coordinator.run())
        await self._closing.wait()
        self.coordinator.request_stop()
        await asyncio.gather(run, return_exceptions=True)
        await self.coordinator.close()

    def _snapshot(self, snap: Snapshot) -> None:
        with self.changed:
            self._latest = snap
            self.changed.notify_all()

    def latest(self) -> Snapshot:
        with self._lock:
            return self._latest or self.coordinator.snapshot()

    def wait_change(self, timeout: float) -> None:
        with self.changed:
            self.changed.wait(timeout)

    def call(self, fn: Callable[[], object]) -> None:
        self.loop.call_soon_threadsafe(fn)

    def run_coroutine(self, coro, timeout: float = 30.0) -> None:
        fut = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            fut.result(timeout)
        except Exception:  # noqa: BLE001 - best effort while stopping
            pass

    def close(self) -> None:
        if self.thread.is_alive():
            self.loop.call_soon_threadsafe(lambda: self._closing.set())
            self.thread.join(30)


class Swarm:
    def __init__(self, scenario: Path | str, run_dir: Path | str, *, server: Optional[dict] = None,
                 out: Callable[[str], None] = print, python: str = sys.executable) -> None:
        self.scenario_path = Path(scenario)
        self.data = load_scenario(self.scenario_path)
        self.run_dir = Path(run_dir).resolve()
        self.external_server = server
        self.out = out
        self.python = python
        self.procs: dict[str, subprocess.Popen] = {}
        self.plan: Optional[Plan] = None
        self._own_server = False
        self._coord: Optional[_CoordinatorThread] = None
        self._killed: set[str] = set()
        self.started_wall: Optional[float] = None
        self.last_progress: Optional[Progress] = None
        self.expected_offers = 0

    # -- lifecycle --------------------------------------------------------------------------
    def start(self) -> Plan:
        # the whole plan first: a bad scenario is refused before any server or process starts
        plan = make_plan(self.data, self.run_dir, wall_start=time.time())
        self.run_dir.mkdir(parents=True, exist_ok=True)
        (self.run_dir / "logs").mkdir(exist_ok=True)
        self.plan = plan
        self.expected_offers = sum(len(a.offers) for a in plan.by_role("prosumer"))
        server = self._server()
        plan.server = server
        mode = plan.clock["mode"]
        coordinator = Coordinator(plan.parts, start=plan.start, until=plan.until,
                                  mode="virtual" if mode == "virtual" else "accelerated",
                                  finished=self._finished_summary)
        self._coord = _CoordinatorThread(coordinator)
        host, port = self._coord.start()
        plan.coordinator = {"host": host, "port": port, "token": coordinator.token}
        _write_private(self.run_dir / "plan.json", plan)  # passwords and the token: owner only
        self.started_wall = time.time()
        for part in plan.parts:
            self._spawn(part)
        self.out(f"started {len(plan.agents)} agents in {len(plan.parts)} processes on "
                 f"{server['kind']} {server['host']}:{server['port']} ({mode} time); run directory {self.run_dir}")
        return plan

    def _finished_summary(self, summary: dict) -> bool:
        snap = Snapshot(0, 0, 0, 0, 0, summary, 0, 0, False, None)
        return progress_of(snap, self.expected_offers).done

    def _server(self) -> dict:
        if self.external_server is not None:
            return dict(self.external_server)
        from vmenergy.runtime.servers import start_server

        wanted = dict(self.data.get("server", {}))
        kind = wanted.get("kind", "prosody")
        info = start_server(kind, self.run_dir / "xmpp", domain=wanted.get("domain", "localhost"))
        self._own_server = True
        for note in getattr(info, "limitations", []) or []:
            self.out(f"note: {kind} server: {note}")
        return {"kind": info.kind, "host": info.host, "port": info.port, "domain": info.domain, "ca_file": info.ca_file}

    def _spawn(self, part: str) -> None:
        log = open(self.run_dir / "logs" / f"{part}.log", "ab")
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.procs[part] = subprocess.Popen(
            [self.python, "-m", "vmenergy", "swarm", "--plan", str(self.run_dir / "plan.json"), "--part", part],
            stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        log.close()
        self._killed.discard(part)

    def kill(self, part: str, sig: int = signal.SIGKILL) -> None:
        p = self.procs[part]
        self._killed.add(part)
        p.send_signal(sig)
        p.wait(timeout=30)
        status = self.run_dir / "parts" / f"{part}.json"
        status.unlink(missing_ok=True)

    def restart(self, part: str) -> None:
        self._spawn(part)

    def stop(self) -> None:
        if self._coord is not None:
            self._coord.run_coroutine(self._coord.coordinator.stop_parts())
        deadline = time.time() + 30
        for p in self.procs.values():
            if p.poll() is None:
                try:
                    p.wait(timeout=max(0.1, deadline - time.time()))
                except subprocess.TimeoutExpired:
                    p.send_signal(signal.SIGTERM)
        deadline = time.time() + 20
        for p in self.procs.values():
            try:
                p.wait(timeout=max(0.1, deadline - time.time()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        if self._coord is not None:
            self.last_progress = self.progress()  # what the report says about how the run ended
            self._coord.close()
            self._coord = None
        if self._own_server:
            from vmenergy.runtime.servers import stop_server

            stop_server(self.run_dir / "xmpp")
            self._own_server = False

    def interrupt(self) -> None:
        """Stop scenario time where it is (Ctrl-C): the processes are stopped by :meth:`stop`."""
        if self._coord is not None:
            self._coord.call(self._coord.coordinator.request_stop)

    # -- watching ---------------------------------------------------------------------------
    def progress(self) -> Progress:
        if self._coord is None:
            raise RuntimeError("the swarm is not running")
        return progress_of(self._coord.latest(), self.expected_offers)

    def dead_parts(self) -> list[str]:
        return [part for part, p in self.procs.items() if p.poll() is not None and part not in self._killed]

    def wait(self, timeout: Optional[float] = None, every: float = 1.0,
             until: Optional[Callable[[Progress], bool]] = None) -> Progress:
        """Until ``until(progress)`` (default: the coordinator ends the run: every offer final, or
        the scenario's end time), or ``timeout`` real seconds; raises if a part died on its own.

        With the virtual clock, ``until`` is checked at each finished instant and time is held
        there when it is true (continue with another :meth:`wait`); with the accelerated clock it
        is only observed."""
        if self._coord is None or self.plan is None:
            raise RuntimeError("the swarm is not running")
        coord = self._coord
        expected = self.expected_offers
        if self.plan.clock["mode"] == "virtual":
            pause = None if until is None else (lambda snap: until(progress_of(snap, expected)))

            def set_pause() -> None:
                coord.coordinator.pause_when = pause
                coord.coordinator.resume()

            coord.call(set_pause)
        t_end = time.time() + (timeout if timeout is not None else 3600)
        last = ""
        while True:
            snap = coord.latest()
            prog = progress_of(snap, expected)
            line = prog.line()
            if line != last:
                self.out(line)
                last = line
            if snap.finished is not None:
                return prog
            if until is not None and (snap.paused or self.plan.clock["mode"] != "virtual") and until(prog):
                return prog
            if coord.error is not None:
                raise RuntimeError(f"time coordinator failed: {coord.error!r}")
            dead = self.dead_parts()
            if dead:
                tails = {d: _tail(self.run_dir / "logs" / f"{d}.log") for d in dead}
                raise RuntimeError(f"swarm process(es) {', '.join(dead)} exited: " + json.dumps(tails, indent=1))
            if time.time() > t_end:
                return prog
            coord.wait_change(min(every, 1.0))

    def report(self, outcome=None) -> Path:
        """The run folder's report; ``outcome`` (a :class:`vmenergy.runtime.report.Outcome`)
        defaults to how the coordinator last reported the run."""
        from vmenergy.runtime.report import write_report

        if self.plan is None:
            raise RuntimeError("the swarm was not started")
        return write_report(self.plan, self.run_dir, outcome if outcome is not None else self._outcome())

    def _outcome(self):
        """How the run ended, from the coordinator's last word (kept by :meth:`stop`)."""
        from vmenergy.runtime.report import Outcome

        prog = self.progress() if self._coord is not None else self.last_progress
        if prog is None:
            return Outcome("error", self.plan.start, "scenario time never started")
        stopped_by = {"done": "done", "until": "until", "stopped": "interrupted"}.get(prog.finished or "")
        if stopped_by is None:
            stopped_by = "done" if prog.done else "interrupted"
        detail = {"done": "every offer reached a final state", "until": "scenario time reached until",
                  "interrupted": "stopped before the end", "error": ""}[stopped_by]
        timings = {"run_seconds": round(time.time() - self.started_wall, 3)} if self.started_wall else {}
        return Outcome(stopped_by, int(prog.sim_time), detail, timings)


def _write_private(path: Path, plan: Plan) -> None:
    """Write ``plan`` readable by its owner only (it holds every agent's password)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(json.dumps(asdict(plan), indent=1))


def _tail(path: Path, n: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return ""


def run_scenario(path: Path | str, run_dir: Optional[Path | str] = None, *, timeout: Optional[float] = None,
                 out: Callable[[str], None] = print, server: Optional[dict] = None) -> Path:
    data = load_scenario(path)
    name = data["scenario"].get("name", "scenario")
    run_dir = Path(run_dir) if run_dir else Path("run") / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"
    swarm = Swarm(path, run_dir, out=out, server=server)
    try:
        swarm.start()
        swarm.wait(timeout=timeout)
    finally:
        swarm.stop()
    report = swarm.report()
    return report
