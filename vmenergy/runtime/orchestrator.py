"""``vmenergy run``: a scenario swarm on a real XMPP server, from start to report.

The orchestrator starts (or uses) the server, writes the plan, runs the time coordinator (see
:mod:`vmenergy.runtime.coordinator`) and starts one process per part (the market, the
aggregators, and the prosumers in one or more processes of their own). Scenario time starts
when every agent of every process is connected and has seen its peers; the run ends when every
offer reached a final state, nothing is left unanswered and the market has billed what it cleared
(after delivery), or at the scenario's end time, or
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
from vmenergy.runtime.priority import spawn_options
from vmenergy.runtime.private import private_dir, write_private
from vmenergy.runtime.progress import LineView, ProgressView, offers_text
from vmenergy.runtime.scenario import Plan, Scenario, load_scenario, make_plan
from vmenergy.runtime.scenario.plan import check_shards

__all__ = ["Swarm", "Progress", "RunResult", "run_scenario", "join_run", "FINAL"]

FINAL = {"settled", "rejected", "withdrawn"}
#: A part (a swarm process, the XMPP server) that dies more often than this stops the run.
MAX_RESTARTS = 5
#: From this many agents a run says when its server runs without its raised priority: at 10,000
#: prosumers on 2 cores a server at the agents' priority was starved and the day stood still
#: (bench/RESULTS.md, "10,000 prosumers: the server starved").
MANY_AGENTS = 1000


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
    devices_busy: int = 0  # prosumers whose devices will still make offers or still run a normal programme
    bills_owed: int = 0  # cleared market sessions with awards whose bills are due after delivery
    #: What the agents did, by role: ``prosumer_steps`` (engine steps), ``..._presence_stanzas``
    #: (presence received from peers), ``..._presence_changes`` (ones that changed availability)
    work: dict[str, int] = field(default_factory=dict)

    @property
    def done(self) -> bool:
        return (self.total > 0 and self.unfinished == 0 and self.unanswered == 0 and self.devices_busy == 0
                and self.bills_owed == 0)

    def line(self) -> str:
        from vmenergy.flexoffer.timeutil import format_utc

        states = offers_text(self.prosumer_offers)
        waiting = f"; {self.unanswered} messages awaiting acks" if self.unanswered else ""
        up = f"agents {self.agents_ready}/{self.agents}" if self.agents_ready < self.agents else f"parts {self.parts_started}/{self.parts}"
        return f"[{format_utc(int(self.sim_time))}] {up}; offers: {states}{waiting}"


def progress_of(snap: Snapshot, expected_offers: int) -> Progress:
    """Progress from the coordinator's snapshot (summed reports of the processes)."""
    s = snap.summary
    offers = dict(s.get("offers", {}))
    seen = sum(offers.values())
    if expected_offers > seen:
        offers["not started"] = expected_offers - seen
    unfinished = sum(n for state, n in offers.items() if state not in FINAL)
    return Progress(snap.time, offers, unfinished, max(expected_offers, seen), snap.parts_up, snap.parts,
                    int(s.get("unanswered", 0)), snap.agents_ready, snap.agents, snap.finished,
                    int(s.get("devices_busy", 0)), int(s.get("bills_owed", 0)), dict(s.get("work", {})))


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

    def request_stop(self) -> None:
        """Stop the run; processes that connect from now on are told to stop at once."""
        self.loop.call_soon_threadsafe(self.coordinator.request_stop)

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
    def __init__(self, scenario: Scenario | Path | str, run_dir: Path | str, *, server: Optional[dict] = None,
                 out: Callable[[str], None] = print, python: str = sys.executable,
                 view: Optional[ProgressView] = None, shards: int = 1,
                 listen: tuple[str, int] = ("127.0.0.1", 0)) -> None:
        self.view = view or LineView(out, every=0)
        if shards < 1:
            raise ValueError("shards must be >= 1")
        self.shards = shards
        self.listen = listen
        # checked once (a path is loaded here): a bad scenario is refused before anything starts
        self.scenario = scenario if isinstance(scenario, Scenario) else load_scenario(scenario)
        self.run_dir = Path(run_dir).resolve()
        self.external_server = server
        self.out = out
        self.python = python
        self.procs: dict[str, subprocess.Popen] = {}
        self.plan: Optional[Plan] = None
        self._own_server = False
        self._coord: Optional[_CoordinatorThread] = None
        self._killed: set[str] = set()
        #: The private servers this run started and watches: ``{label: run dir}`` (one, or a
        #: cluster's nodes as ``xmpp-node-NAME``).
        self._server_dirs: dict[str, Path] = {}
        self._cluster = False
        #: Parts that died and were restarted (for the report), and how long each restart took.
        self.restarts: list = []
        self.restart_seconds: list[dict] = []
        self.started_wall: Optional[float] = None
        self.last_progress: Optional[Progress] = None
        self.expected_offers = 0

    # -- lifecycle --------------------------------------------------------------------------
    def start(self) -> Plan:
        plan = make_plan(self.scenario, self.run_dir, shards=self.shards)
        # the run folder holds passwords, the agents' ledgers and the server's key: owner only
        private_dir(self.run_dir)
        private_dir(self.run_dir / "stores")
        (self.run_dir / "logs").mkdir(exist_ok=True)
        self.plan = plan
        self.expected_offers = sum(len(a.offers) for a in plan.by_role("prosumer"))
        server = self._server()
        plan.server = server
        mode = plan.clock["mode"]
        tls, cert = None, None
        if self.shards > 1:  # other machines join: the control channel is TLS, its certificate pinned
            from vmenergy.runtime import control
            from vmenergy.runtime.servers import make_certificate

            (self.run_dir / "control").mkdir(exist_ok=True)
            cert_path, key_path = make_certificate(self.run_dir / "control", control.SERVER_NAME)
            tls, cert = control.server_context(str(cert_path), str(key_path)), str(cert_path)
        coordinator = Coordinator(plan.parts, start=plan.start, until=plan.until,
                                  mode="virtual" if mode == "virtual" else "accelerated",
                                  finished=self._finished_summary, host=self.listen[0], port=self.listen[1],
                                  ssl_context=tls, shards=self.shards, plan_for_shard=self._plan_for_shard,
                                  on_store=self._take_store)
        self._coord = _CoordinatorThread(coordinator)
        host, port = self._coord.start()
        plan.coordinator = {"host": host, "port": port, "token": coordinator.token}
        if cert is not None:
            plan.coordinator["cert"] = cert
            join = {"coordinator": {"host": self.listen[0], "port": port, "token": coordinator.token},
                    "certificate": Path(cert).read_text(), "scenario": plan.name, "shards": self.shards}
            write_private(self.run_dir / "join.json", json.dumps(join, indent=1))
        _write_private(self.run_dir / "plan.json", plan)  # passwords and the token: owner only
        self._web_tokens(plan)
        self.started_wall = time.time()
        mine = [p for p in plan.parts if plan.shard(p) == 1]
        for part in mine:
            self._spawn(part)
        self.view.start(plan.start, plan.until)
        where = f"; other shards join with {self.run_dir / 'join.json'}" if self.shards > 1 else ""
        self.out(f"started {sum(1 for a in plan.agents if plan.shard(a.part) == 1)} agents in {_n(len(mine), 'process')} on "
                 f"{server['kind']} {server['host']}:{server['port']} ({mode} time); run directory {self.run_dir}{where}")
        if len(plan.agents) >= MANY_AGENTS:
            for note in self.priority_notes():
                self.out(f"note: {note}")
        return plan

    def priority_notes(self) -> list[str]:
        """Why the run's own server may be starved: it could not be given its raised priority
        (servers/process.py). Said only for runs of :data:`MANY_AGENTS` or more: a small run
        (the demo as any user) never needs it, and a warning on every run would be noise."""
        from vmenergy.runtime.servers import read_info
        from vmenergy.runtime.servers.process import priority_note

        notes = []
        for server_dir in (self._server_dirs.values() if self._own_server else ()):
            info = read_info(server_dir)
            note = priority_note(info.pid) if info is not None and info.pid > 0 else None
            if note and note not in notes:
                notes.append(note)
        return notes

    @property
    def server_dirs(self) -> dict[str, Path]:
        """The private servers this run started (``xmpp-server``, or a cluster's ``xmpp-node-NAME``)
        by the name their restarts are reported under, with their run directories."""
        return dict(self._server_dirs)

    def _started(self) -> Plan:
        if self.plan is None:
            raise RuntimeError("the swarm was not started")
        return self.plan

    def _plan_for_shard(self, shard: int) -> dict:
        """The plan for another shard: every agent (it must know where messages go), but only
        its own agents' passwords."""
        plan = self._started()
        d = asdict(plan)
        for a in d["agents"]:
            if plan.shard(a["part"]) != shard:
                a["password"] = ""
        d["coordinator"] = {k: v for k, v in d["coordinator"].items() if k != "cert"}
        d["operator"] = {k: v for k, v in d["operator"].items() if k != "password"}
        return d

    def _take_store(self, shard: int, name: str, data: bytes) -> None:
        """A store another shard sends after the run: only the stores of its own agents, into
        the place the plan says (so the report reads every agent's store here)."""
        plan = self._started()
        for a in plan.agents:
            if plan.shard(a.part) == shard and Path(a.store).name == name:
                private_dir(Path(a.store).parent)
                write_private(a.store, data)
                return
        self.out(f"note: shard {shard} sent a store this run has no agent for: {name!r} (ignored)")

    def _finished_summary(self, summary: dict) -> bool:
        snap = Snapshot(0, 0, 0, 0, 0, summary, 0, 0, False, None)
        return progress_of(snap, self.expected_offers).done

    def _server(self) -> dict:
        """Start (private kinds) or check (external) the server and settle each agent's password:
        generated ones for in-band registration, or an accounts file's."""
        plan = self._started()
        if self.external_server is not None:  # a server the caller runs (the tests' shared one)
            server = dict(self.external_server, register_in_band=True)
            if plan.operator:
                from vmenergy.runtime.servers import read_info

                given = read_info(server["run_dir"]) if server.get("run_dir") else None
                if given is None:
                    raise RuntimeError("operators.account: the run cannot create an account on a server it was "
                                       "given without its run directory")
                self._operator_account(given, register=True)
            return with_parts(server, plan.node_of)
        from vmenergy.runtime.servers import prepare_server

        table = {k: v for k, v in self.scenario.server.as_plan().items()}
        operator = [plan.operator["jid"]] if plan.operator else []
        cluster = {n.name: n.address() for n in self.scenario.server.cluster}
        run = prepare_server(table, [a.jid for a in plan.agents] + operator, self.run_dir / "xmpp",
                             base_dir=Path(self.scenario.source).resolve().parent if self.scenario.source else None,
                             nodes=cluster or None)
        self._own_server = run.owned
        self._cluster = bool(run.nodes)
        if run.owned:
            self._server_dirs = ({f"xmpp-node-{name}": Path(n.run_dir) for name, n in run.nodes.items()}
                                 if run.nodes else {"xmpp-server": self.run_dir / "xmpp"})
        for agent in plan.agents:
            agent.password = run.passwords[agent.jid.lower()]
        info = run.info
        if run.owned and not run.register_in_band:
            # the accounts exist: their subscriptions to their aggregator go into the rosters
            # now, once each, instead of through thousands of handshakes that each rewrite the
            # aggregator's whole roster (O(N^2) in the server: servers/prosody.py preset_contacts)
            from vmenergy.runtime.servers import preset_contacts

            preset_contacts(info, prosumer_contacts(plan))
        for note in getattr(info, "limitations", []) or []:
            self.out(f"note: {info.kind} server: {note}")
        if plan.operator:
            plan.operator["password"] = run.passwords[plan.operator["jid"].lower()]
            # agents register themselves in-band; a person's account is made with the server's tool
            # (with an accounts file it exists already)
            self._operator_account(info, register=run.register_in_band)
        server = {"kind": info.kind, "host": info.host, "port": info.port, "domain": info.domain,
                  "ca_file": info.ca_file or None, "register_in_band": run.register_in_band}
        if run.nodes:
            server["nodes"] = {name: {"host": n.host, "port": n.port, "ca_file": n.ca_file or None}
                               for name, n in run.nodes.items()}
            for name, n in list(run.nodes.items())[1:]:
                self.out(f"note: cluster node {name} on {n.host}:{n.port}")
        return with_parts(server, plan.node_of)

    def _web_tokens(self, plan: Plan) -> None:
        """The scenario's ``[web]``: a token for every operator of the run, the digests where the
        agents read them and the tokens in ``web-tokens.txt`` for the people (both private)."""
        serving = [a for a in plan.agents if a.web]
        if not serving:
            return
        from vmenergy.agents.web import issue_token
        from vmenergy.runtime.scenario.plan import WEB_TOKENS

        ops = serving[0].operators
        people = list(ops.get("controllers", ())) + list(ops.get("viewers", ()))
        path = self.run_dir / WEB_TOKENS
        lines = [f"{jid} {issue_token(path, jid)}" for jid in people]
        if not people:  # the file must exist (an agent refuses a missing one): nobody gets in
            write_private(path, json.dumps({"tokens": {}}) + "\n")
        write_private(self.run_dir / "web-tokens.txt", "\n".join(lines) + ("\n" if lines else ""))
        where = ", ".join(f"{a.name} {'http://%s:%s' % (a.web['host'], a.web['port']) if a.web['port'] else '(port in its log)'}"
                          for a in serving)
        self.out(f"web consoles: {where}; tokens for {len(people)} operators in {self.run_dir / 'web-tokens.txt'}")

    def _operator_account(self, info, *, register: bool) -> None:
        """Make the scenario's operator account (a controller of every agent) and say how to use it."""
        plan = self._started()
        jid, password = plan.operator["jid"], plan.operator["password"]
        if register:
            from vmenergy.runtime.servers import register_accounts

            register_accounts(info, [(jid.split("@", 1)[0], password)])
        ca = f" (trust the CA file {info.ca_file})" if info.ca_file else ""
        self.out(f"operator: {jid} password {password} at {info.host}:{info.port}{ca}; "
                 "write 'help' to any agent (agents/operator/README.md)")

    def _spawn(self, part: str) -> None:
        log = open(self.run_dir / "logs" / f"{part}.log", "ab")
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        roles = (a.role for a in self._started().of_part(part))
        self.procs[part] = subprocess.Popen(
            [self.python, "-m", "vmenergy", "swarm", "--plan", str(self.run_dir / "plan.json"), "--part", part],
            stdout=log, stderr=subprocess.STDOUT, env=env, **spawn_options(roles))
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
        """Stop every process (the coordinator tells them; a process that does not listen gets
        SIGTERM, then SIGKILL), the coordinator and a private server. A second Ctrl-C while
        this runs kills what is left at once."""
        try:
            if self._coord is not None:
                self._coord.request_stop()
                self._coord.run_coroutine(self._coord.coordinator.stop_parts())
            self._wait_procs(30, signal.SIGTERM)
            self._wait_procs(20, signal.SIGKILL)
            if self._coord is not None and self.shards > 1:
                coord = self._coord.coordinator
                self._coord.run_coroutine(coord.wait_shards(120), timeout=125)
                missing = sorted(set(range(2, self.shards + 1)) - coord.shards_done)
                if missing:
                    self.out(f"note: shard(s) {', '.join(map(str, missing))} did not send their stores; "
                             "the report lacks their prosumers")
        except KeyboardInterrupt:
            for p in self.procs.values():
                if p.poll() is None:
                    p.kill()
                    p.wait()
        if self._coord is not None:
            self.last_progress = self.progress()  # what the report says about how the run ended
            self._coord.close()
            self._coord = None
        if self._own_server:
            from vmenergy.runtime.servers import stop_server
            from vmenergy.runtime.servers.cluster import stop_cluster

            (stop_cluster if self._cluster else stop_server)(self.run_dir / "xmpp")
            self._own_server = False

    def _wait_procs(self, seconds: float, then: int) -> None:
        deadline = time.time() + seconds
        for p in self.procs.values():
            try:
                p.wait(timeout=max(0.1, deadline - time.time()))
            except subprocess.TimeoutExpired:
                p.send_signal(then)

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

    def supervise(self) -> None:
        """Restart what died on its own while the run goes on: a swarm process from its agents'
        stores (with the virtual clock, time holds until it is back), the private XMPP server on
        its port (the agents reconnect). Each restart is recorded for the report; a part that
        dies more than :data:`MAX_RESTARTS` times stops the run with the end of its log."""
        if self._own_server:
            from vmenergy.runtime.servers import server_exit_code

            for label, server_dir in self._server_dirs.items():
                code = server_exit_code(server_dir)
                if code is not None:
                    self._restart(label, code, lambda d=server_dir: self._restart_server(d))
        for part in self.dead_parts():
            code = self.procs[part].returncode
            self._restart(part, code, lambda part=part: self._spawn(part))

    def _restart(self, part: str, code: int, again: Callable[[], None]) -> None:
        from vmenergy.runtime.report import Restart

        n = sum(1 for r in self.restarts if r.part == part)
        log_file = (self._server_dirs[part] / "server.log" if part in self._server_dirs
                    else self.run_dir / "logs" / f"{part}.log")
        if n >= MAX_RESTARTS:
            raise RuntimeError(f"{part} exited (code {code}) for the {n + 1}th time; not restarted again: "
                               + json.dumps({part: _tail(log_file)}, indent=1))
        at = int(self._coord.latest().time) if self._coord is not None else (self.plan.start if self.plan else 0)
        self.restarts.append(Restart(part, at, int(code)))
        self.out(f"note: {part} exited (code {code}); restarting it ({n + 1} of at most {MAX_RESTARTS})")
        t0 = time.time()
        again()
        self.restart_seconds.append({"part": part, "seconds": round(time.time() - t0, 3)})

    def _restart_server(self, server_dir: Path) -> None:
        """A private server (or a cluster node: its cookie and epmd are in its record, and its
        Mnesia copy in its spool brings it back into the cluster) on its port. What is left of
        the dead one goes first: ejabberd's recorded process is the ejabberdctl shell, and its
        Erlang VM may still be dying (or alive) and holding the port."""
        from vmenergy.runtime.servers import read_info, start_server, stop_server

        info = read_info(server_dir)
        if info is None:
            raise RuntimeError(f"the run's XMPP server in {server_dir} died and its record is gone")
        stop_server(server_dir)
        start_server(info.kind, server_dir, domain=info.domain, port=info.port, registration=info.registration,
                     options=info.extra or None)

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
        t_end = time.time() + timeout if timeout is not None else float("inf")
        while True:
            snap = coord.latest()
            prog = progress_of(snap, expected)
            self.view.update(prog)
            if snap.finished is not None:
                return prog
            if until is not None and (snap.paused or self.plan.clock["mode"] != "virtual") and until(prog):
                return prog
            if coord.error is not None:
                raise RuntimeError(f"time coordinator failed: {coord.error!r}")
            self.supervise()
            if time.time() > t_end:
                return prog
            coord.wait_change(min(every, 1.0))

    def report(self, outcome=None) -> Path:
        """The run folder's report; ``outcome`` (a :class:`vmenergy.runtime.report.Outcome`)
        defaults to :meth:`outcome`."""
        from vmenergy.runtime.report import write_report

        if self.plan is None:
            raise RuntimeError("the swarm was not started")
        return write_report(self.plan, self.run_dir, outcome if outcome is not None else self.outcome())

    def outcome(self, stopped_by: Optional[str] = None):
        """How the run ended, for the report: ``stopped_by`` as the caller saw it (done | until |
        interrupted | timeout | error), by default the coordinator's last word (kept by :meth:`stop`)."""
        from vmenergy.runtime.report import Outcome

        plan = self._started()
        prog = self.progress() if self._coord is not None else self.last_progress
        if stopped_by is None:
            stopped_by = "error" if prog is None else \
                {"done": "done", "until": "until", "stopped": "interrupted"}.get(prog.finished or "") or \
                ("done" if prog.done else "timeout")
        detail = {"done": "every offer reached a final state and every bill was sent", "until": "scenario time reached until",
                  "interrupted": "interrupted", "timeout": "the real-time limit came first",
                  "error": "scenario time never started"}[stopped_by]
        timings: dict = {"run_seconds": round(time.time() - self.started_wall, 3)} if self.started_wall else {}
        for i, r in enumerate(self.restart_seconds, 1):  # wall seconds each restart took
            timings[f"restart_{i}_{r['part']}_seconds"] = r["seconds"]
        return Outcome(stopped_by, int(prog.sim_time) if prog is not None else plan.start, detail, timings,
                       tuple(self.restarts), dict(sorted(prog.work.items())) if prog is not None else {})


def prosumer_contacts(plan: Plan) -> dict[str, list[str]]:
    """Each prosumer's account name and the JIDs it shares presence with: its aggregator, and
    its trading pool's market when it trades (what its agent subscribes to: ProsumerAgent.peers)."""
    contacts: dict[str, list[str]] = {}
    for spec in plan.by_role("prosumer"):
        peers = [spec.config["aggregator"]] + ([spec.config["market"]] if spec.config.get("market") else [])
        contacts[spec.jid.partition("@")[0].lower()] = [p.lower() for p in peers]
    return contacts


def _write_private(path: Path, plan: Plan) -> None:
    """Write ``plan`` readable by its owner only (it holds every agent's password)."""
    write_private(path, json.dumps(asdict(plan), indent=1))


def _n(count: int, noun: str) -> str:
    return f"{count} {noun}" + ("" if count == 1 else "es" if noun.endswith("s") else "s")


def _tail(path: Path, n: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return ""


@dataclass(frozen=True)
class RunResult:
    """How a run ended: ``outcome`` is "done" (every offer final, nothing unanswered), "until"
    (the scenario's end time came first), "interrupted" or "timeout" (real seconds ran out)."""

    report: Path
    outcome: str
    progress: Progress
    wall_seconds: float

    @property
    def complete(self) -> bool:
        return self.outcome == "done"


def run_scenario(path: Path | str, run_dir: Optional[Path | str] = None, *, timeout: Optional[float] = None,
                 out: Callable[[str], None] = print, server: Optional[dict] = None,
                 view: Optional[ProgressView] = None, shards: int = 1,
                 listen: tuple[str, int] = ("127.0.0.1", 0)) -> RunResult:
    """Run a scenario from start to report. Ctrl-C stops scenario time where it is, stops every
    process and still writes the report of what happened so far."""
    scenario = load_scenario(path)  # raises before any run folder, server or process exists
    check_shards(scenario, shards)
    run_dir = Path(run_dir) if run_dir else Path("run") / f"{scenario.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    for warning in scenario.warnings:
        out(warning.format(str(path)))
    swarm = Swarm(scenario, run_dir, out=out, server=server, view=view, shards=shards, listen=listen)
    t0 = time.time()
    outcome = "timeout"
    prog: Optional[Progress] = None
    restore = stop_signals_interrupt()
    try:
        swarm.start()
        prog = swarm.wait(timeout=timeout)
        outcome = {"done": "done", "until": "until", "stopped": "interrupted"}.get(prog.finished or "", "timeout")
    except KeyboardInterrupt:
        outcome = "interrupted"
        out("interrupted: stopping every process and writing what happened so far")
        swarm.interrupt()
    finally:
        if swarm.plan is not None:
            try:
                prog = swarm.progress()
            except RuntimeError:
                pass
        swarm.view.close()
        swarm.stop()
        restore()
    report = swarm.report(swarm.outcome(outcome))
    return RunResult(report, outcome, prog or Progress(0), round(time.time() - t0, 3))


def stop_signals_interrupt() -> Callable[[], None]:
    """SIGTERM and SIGHUP (``kill``, systemd, docker stop, a closed terminal) stop a run as Ctrl-C
    does: the processes and the private server are stopped and the report is written. (Killed
    outright, the run left its private XMPP server behind.) Returns what puts the old handlers
    back."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def interrupt(signum, frame) -> None:
        raise KeyboardInterrupt(signal.Signals(signum).name)

    old = {s: signal.signal(s, interrupt) for s in (signal.SIGTERM, signal.SIGHUP)}

    def restore() -> None:
        for s, handler in old.items():
            signal.signal(s, handler)

    return restore


def with_parts(server: dict, node_of: dict) -> dict:
    """The run's server table with each part's node address (``parts``: what
    :func:`~vmenergy.runtime.swarm.server_address` reads) from the cluster's ``nodes`` and the
    plan's ``node_of``; ``parts`` the caller wrote stay as written."""
    nodes = server.get("nodes")
    if not nodes or not node_of:
        return server
    parts = {part: nodes[node] for part, node in node_of.items() if node in nodes}
    return dict(server, parts={**parts, **(server.get("parts") or {})})


def join_run(join_file: Path | str, run_dir: Path | str, *, shard: int, out: Callable[[str], None] = print,
             python: str = sys.executable, scenario: Optional[Scenario] = None) -> int:
    """Run shard ``shard`` of a sharded run on this machine (``vmenergy run --shard k/n --join
    FILE``): take its part of the plan from the coordinator named in the join file, start its
    processes, and when the run ends send the agents' stores to the coordinator's machine.

    ``scenario``: this machine's copy of the scenario; the nodes of a standing cluster it names
    (``[server.nodes.NAME]``) are where this shard's parts connect, as this machine reaches
    them (its host names, its CA files), not as shard 1 does."""
    return asyncio.run(_join(Path(join_file), Path(run_dir).resolve(), shard, out, python, scenario))


def local_nodes(server: dict, node_of: dict, scenario: Optional[Scenario]) -> dict:
    """Shard 1's server table with the cluster's node addresses as this machine's scenario
    gives them (a private cluster's addresses are only known to shard 1: kept). Raises
    ValueError if the plan puts a part on a node this scenario does not name."""
    here = {n.name: n.address() for n in scenario.server.cluster if n.host is not None} if scenario else {}
    if not here:
        return server
    missing = sorted(set(node_of.values()) - set(here))
    if missing:
        raise ValueError(f"server.nodes: the run puts parts on node(s) {', '.join(missing)}, which this machine's "
                         f"scenario does not name (its nodes: {', '.join(here)})")
    return with_parts(dict(server, nodes=here, parts={}), node_of)


async def _join(join_file: Path, run_dir: Path, shard: int, out: Callable[[str], None], python: str,
                scenario: Optional[Scenario] = None) -> int:
    import base64

    from vmenergy.runtime import control
    from vmenergy.runtime.scenario import AgentSpec

    join = json.loads(join_file.read_text())
    private_dir(run_dir)
    private_dir(run_dir / "stores")
    (run_dir / "logs").mkdir(exist_ok=True)
    (run_dir / "control").mkdir(exist_ok=True)
    cert = run_dir / "control" / "coordinator.crt"
    cert.write_text(join["certificate"])
    address = dict(join["coordinator"], cert=str(cert))
    reader, writer = await control.connect(address)
    await control.send(writer, "join", shard=shard, token=address["token"])
    msg = await control.receive(reader)
    if msg is None or msg.get("op") != "plan":
        out(f"shard {shard}: the coordinator refused to let this shard join (wrong token or shard number?)")
        return 1
    d = msg["plan"]
    agents = [AgentSpec(**a) for a in d.pop("agents")]
    plan = Plan(**d, agents=agents)
    plan.run_dir = str(run_dir)
    try:
        plan.server = local_nodes(plan.server, plan.node_of, scenario)
    except ValueError as exc:
        out(f"shard {shard}: {exc}")
        return 1
    plan.coordinator = address
    for a in agents:
        a.store = str(run_dir / "stores" / Path(a.store).name)
    mine = [p for p in plan.parts if plan.shard(p) == shard]
    _write_private(run_dir / "plan.json", plan)
    procs: dict[str, subprocess.Popen] = {}
    for part in mine:
        log = open(run_dir / "logs" / f"{part}.log", "ab")
        procs[part] = subprocess.Popen(
            [python, "-m", "vmenergy", "swarm", "--plan", str(run_dir / "plan.json"), "--part", part],
            stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ, PYTHONUNBUFFERED="1"),
            **spawn_options(a.role for a in plan.of_part(part)))
        log.close()
    n_agents = sum(1 for a in agents if plan.shard(a.part) == shard)
    out(f"shard {shard}/{len(set(plan.shard_of.values())) or 1}: started {n_agents} agents in {_n(len(mine), 'process')}; "
        f"time is coordinated by {address['host']}:{address['port']}")
    while True:  # until the coordinator says the run ended
        msg = await control.receive(reader)
        if msg is None or msg.get("op") == "stop":
            break
    for p in procs.values():  # the coordinator stops them too; wait, then make sure
        try:
            await asyncio.to_thread(p.wait, 30)
        except subprocess.TimeoutExpired:
            p.kill()
            await asyncio.to_thread(p.wait)
    if msg is None:
        out(f"shard {shard}: the coordinator went away; the stores stay in {run_dir / 'stores'}")
        return 1
    sent = 0
    for a in agents:
        store = Path(a.store)
        if plan.shard(a.part) == shard and store.exists():
            await control.send(writer, "store", name=store.name, data=base64.b64encode(store.read_bytes()).decode())
            sent += 1
    await control.send(writer, "bye", shard=shard)
    writer.close()
    out(f"shard {shard}: the run ended; sent {sent} agent stores to the coordinator's machine")
    return 0
