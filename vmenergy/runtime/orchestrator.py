"""``vmenergy run``: a scenario swarm on a real XMPP server, from start to report.

The orchestrator starts (or uses) the server, writes the plan, starts one process per part (the
market, the aggregators, and the prosumers in one or more processes of their own), watches the
agents' stores until every offer reached a final state or the scenario's end time, stops the
processes and writes the report. Parts can be killed and restarted while it runs (the
restart test does exactly that to the aggregators).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

from vmenergy.runtime.clock import clock_from
from vmenergy.runtime.scenario import Plan, load_scenario, make_plan

__all__ = ["Swarm", "Progress", "run_scenario"]

FINAL = {"settled", "rejected", "withdrawn"}


@dataclass
class Progress:
    sim_time: float
    prosumer_offers: dict[str, int] = field(default_factory=dict)
    unfinished: int = 0
    total: int = 0
    parts_started: int = 0
    parts: int = 0
    unanswered: int = 0  # messages the aggregators still wait to have acknowledged

    @property
    def done(self) -> bool:
        return self.total > 0 and self.unfinished == 0 and self.unanswered == 0

    def line(self) -> str:
        from vmenergy.flexoffer.timeutil import format_utc

        states = ", ".join(f"{k} {v}" for k, v in sorted(self.prosumer_offers.items()))
        waiting = f"; {self.unanswered} messages awaiting acks" if self.unanswered else ""
        return f"[{format_utc(int(self.sim_time))}] parts {self.parts_started}/{self.parts}; offers: {states or '-'}{waiting}"


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

    # -- lifecycle --------------------------------------------------------------------------
    def start(self) -> Plan:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        (self.run_dir / "logs").mkdir(exist_ok=True)
        # the whole plan first: a bad scenario is refused before any server or process starts
        self.plan = make_plan(self.data, self.run_dir, wall_start=time.time())
        server = self._server()
        self.plan.server = server
        margin = 4.0 + 0.03 * len(self.plan.agents)  # the sim clock starts once every agent is up
        self.plan.clock["wall_anchor"] = time.time() + margin
        self.plan.save(self.run_dir / "plan.json")
        for part in self.plan.parts:
            self._spawn(part)
        self.out(f"started {len(self.plan.agents)} agents in {len(self.plan.parts)} processes on "
                 f"{server['kind']} {server['host']}:{server['port']}; run directory {self.run_dir}")
        return self.plan

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

    def kill(self, part: str, sig: int = signal.SIGKILL) -> None:
        p = self.procs[part]
        p.send_signal(sig)
        p.wait(timeout=30)
        status = self.run_dir / "parts" / f"{part}.json"
        status.unlink(missing_ok=True)

    def restart(self, part: str) -> None:
        self._spawn(part)

    def stop(self) -> None:
        for p in self.procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        deadline = time.time() + 20
        for p in self.procs.values():
            try:
                p.wait(timeout=max(0.1, deadline - time.time()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        if self._own_server:
            from vmenergy.runtime.servers import stop_server

            stop_server(self.run_dir / "xmpp")
            self._own_server = False

    # -- watching ---------------------------------------------------------------------------
    def progress(self) -> Progress:
        from vmenergy.store import Store, read_ledger

        assert self.plan is not None
        clock = clock_from(self.plan.clock)
        prog = Progress(clock.now(), parts=len(self.plan.parts))
        prog.parts_started = sum(1 for p in self.plan.parts if (self.run_dir / "parts" / f"{p}.json").exists())
        for spec in self.plan.by_role("prosumer"):
            expected = len(spec.offers)
            prog.total += expected
            ledger = read_ledger(spec.store)
            if ledger is None:
                prog.unfinished += expected
                prog.prosumer_offers["not started"] = prog.prosumer_offers.get("not started", 0) + expected
                continue
            seen = 0
            for rec in ledger.values("offers"):
                seen += 1
                state = rec.offer.state.value
                prog.prosumer_offers[state] = prog.prosumer_offers.get(state, 0) + 1
                if state not in FINAL:
                    prog.unfinished += 1
            prog.unfinished += expected - seen
        for spec in self.plan.by_role("aggregator"):
            if Path(spec.store).exists():
                with Store(spec.store, readonly=True) as store:
                    prog.unanswered += store.count("outbox")
        return prog

    def dead_parts(self) -> list[str]:
        return [part for part, p in self.procs.items() if p.poll() is not None]

    def wait(self, timeout: Optional[float] = None, every: float = 1.0,
             until: Optional[Callable[[Progress], bool]] = None) -> Progress:
        """Until ``until(progress)`` (default: every offer final), the scenario's end time, or
        ``timeout`` real seconds; raises if a part died on its own."""
        assert self.plan is not None
        t_end = time.time() + (timeout if timeout is not None else 3600)
        last = ""
        while True:
            prog = self.progress()
            line = prog.line()
            if line != last:
                self.out(line)
                last = line
            if (until(prog) if until is not None else prog.done) or prog.sim_time >= self.plan.until:
                return prog
            dead = self.dead_parts()
            if dead:
                tails = {d: _tail(self.run_dir / "logs" / f"{d}.log") for d in dead}
                raise RuntimeError(f"swarm process(es) {', '.join(dead)} exited: " + json.dumps(tails, indent=1))
            if time.time() > t_end:
                return prog
            time.sleep(every)

    def report(self, outcome=None) -> Path:
        """The run folder's report; ``outcome`` (a :class:`vmenergy.runtime.report.Outcome`)
        defaults to what the stores show now."""
        from vmenergy.runtime.report import Outcome, write_report

        assert self.plan is not None
        if outcome is None:
            prog = self.progress()
            sim_end = int(min(prog.sim_time, self.plan.until))
            stopped_by = "done" if prog.done else "until" if prog.sim_time >= self.plan.until else "interrupted"
            detail = {"done": "every offer reached a final state", "until": "scenario time reached until",
                      "interrupted": "stopped before the end (real-time limit)"}[stopped_by]
            outcome = Outcome(stopped_by, sim_end, detail)
        return write_report(self.plan, self.run_dir, outcome)


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
