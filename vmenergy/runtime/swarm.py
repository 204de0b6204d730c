"""One swarm process: start the agents of one part of a plan and run them with the coordinator.

Many agents share the process and its event loop; the process applies the start-up savings of
:mod:`vmenergy.runtime.xmpp_tuning` (fast SCRAM, one shared TLS context, verification on) and
starts agents in concurrent batches. It then connects to the run's time coordinator (see
:mod:`vmenergy.runtime.coordinator`), says when every agent is connected and has seen its peers,
and from then on:

- virtual clock: runs the coordinator's rounds through a :class:`VirtualDriver`;
- accelerated clock: starts its agents' clock at the wall time the coordinator gives and sends
  a progress report every second.

It writes ``parts/<part>.json`` with its start-up figures when all agents are up.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
import signal
import time
from pathlib import Path
from typing import Any, Optional

from vmenergy.agents import AggregatorAgent, DsoAgent, MarketAgent, ProsumerAgent, ServerAddress, VmeAgent
from vmenergy.devices.executor import SimulatedExecutor
from vmenergy.flexoffer import FlexOffer
from vmenergy.protocol.aggregator import AggregatorConfig
from vmenergy.protocol.operators import Operators
from vmenergy.runtime import control
from vmenergy.runtime.clock import AcceleratedClock, Clock, VirtualClock
from vmenergy.runtime.driver import VirtualDriver
from vmenergy.runtime.priority import lower_own_priority, own_priority, part_niceness
from vmenergy.runtime.progress import merge_summaries
from vmenergy.runtime.scenario import AgentSpec, Plan

__all__ = ["build_agent", "run_part", "main"]

log = logging.getLogger("vmenergy.swarm")
BATCH = 50
TICK = {"prosumer": 0.5, "aggregator": 0.2, "market": 0.2, "dso": 0.2}
#: How often a process waiting for its agents' peers says who is still missing (real seconds).
WAITING_NOTE_EVERY = 10.0
#: An agent disconnected this long (real seconds) ends its process with exit code GAVE_UP
#: (EX_TEMPFAIL): its supervisor restarts it from its store.
GIVE_UP_SECONDS = 120.0
LINK_CHECK_SECONDS = 5.0
GAVE_UP = 75


def server_address(server: dict, part: Optional[str] = None) -> ServerAddress:
    """Where the agents of ``part`` connect: the run's server, or the node of a cluster that
    ``server["parts"][part]`` names (``host``, ``port``, ``ca_file``; the same XMPP domain, so
    the agents' JIDs do not change: docs/scaling.md)."""
    node = dict(server, **(server.get("parts") or {}).get(part, {})) if part is not None else server
    return ServerAddress(node.get("host", "127.0.0.1"), int(node.get("port", 5222)), node.get("ca_file"))


def build_agent(spec: AgentSpec, address: ServerAddress, clock: Clock, seed: int = 0,
                plan: Optional[Plan] = None) -> VmeAgent:
    web = None
    if spec.web:  # the console and REST interface (the scenario's [web])
        from vmenergy.agents.web import WebConfig

        web = WebConfig(**spec.web)
    common = dict(server=address, store_path=Path(spec.store), clock=clock, tick=TICK.get(spec.role, 0.5),
                  operators=Operators.from_dict(spec.operators), web=web,
                  spade_metadata=plan is not None and plan.spade_metadata)
    cfg = dict(spec.config)
    if spec.role == "prosumer":
        offers = [(int(o["release"]), FlexOffer.from_dict(o["offer"])) for o in spec.offers]
        executor = SimulatedExecutor(deviation=float(cfg.get("deviation", 0.02)), seed=str(seed))
        from vmenergy.devices.population import has_fleet

        if has_fleet(cfg) and plan is not None:  # device models make its offers and run its schedules
            from vmenergy.devices.population import build_fleet, shared_inputs

            fleet = build_fleet(cfg, shared_inputs(plan.inputs), jid=spec.jid, seed=seed, start=plan.start,
                                until=plan.until)
            runner: Any = fleet
            if cfg.get("hardware", "none") != "none":  # the schedules run on emulated Modbus devices
                from vmenergy.devices.adapters.fleet_emulation import EmulatedFleetExecutor

                runner = EmulatedFleetExecutor(fleet, clock, cfg["hardware"])
            return ProsumerAgent(spec.jid, spec.password, aggregator=cfg["aggregator"], offers=offers,
                                 executor=runner, source=fleet, **common)
        return ProsumerAgent(spec.jid, spec.password, aggregator=cfg["aggregator"], offers=offers,
                             executor=executor, market=cfg.get("market"), trading=cfg.get("trading"), **common)
    if spec.role == "aggregator":
        if isinstance(cfg.get("enrolment"), list):
            cfg["enrolment"] = tuple(cfg["enrolment"])
        return AggregatorAgent(spec.jid, spec.password, config=AggregatorConfig(**cfg), **common)
    if spec.role == "market":
        from vmenergy.protocol.market import MarketConfig

        return MarketAgent(spec.jid, spec.password, config=MarketConfig.from_dict(cfg), **common)
    if spec.role == "dso":
        from vmenergy.protocol.dso import DsoConfig

        return DsoAgent(spec.jid, spec.password, config=DsoConfig(**cfg), **common)
    raise ValueError(f"unknown role {spec.role!r}")


async def _start_agents(agents: list[VmeAgent], register: bool) -> float:
    """Start the agents in batches; ``register``: create their accounts in-band (otherwise the
    accounts exist: an accounts file's, made by the server's own tool or its operator)."""
    t0 = time.perf_counter()
    for i in range(0, len(agents), BATCH):
        await asyncio.gather(*(a.start(auto_register=register) for a in agents[i:i + BATCH]))
    return time.perf_counter() - t0


async def _wait_ready(agents: list[VmeAgent], part: str) -> None:
    """Until every agent has seen its peers available; says who is missing now and then."""
    waiting = asyncio.ensure_future(asyncio.gather(*(a.wait_ready() for a in agents)))
    while True:
        done, _ = await asyncio.wait({waiting}, timeout=WAITING_NOTE_EVERY)
        if done:
            return
        missing = [(str(a.jid), a.missing_peers()) for a in agents if a.missing_peers()]
        log.warning("event=waiting-for-peers part=%s agents=%d example=%s waits-for=%s", part, len(missing),
                    missing[0][0], ",".join(missing[0][1]))


def _write_status(plan: Plan, part: str, agents: list[VmeAgent], took: float) -> None:
    status_dir = Path(plan.run_dir) / "parts"
    status_dir.mkdir(parents=True, exist_ok=True)
    priority = own_priority()  # what the process runs at (runtime/priority.py: the many yield)
    (status_dir / f"{part}.json").write_text(json.dumps({
        "part": part, "pid": os.getpid(), "agents": len(agents), "start_seconds": round(took, 3),
        "per_agent_ms": round(1000 * took / max(1, len(agents)), 2), "started_at": time.time(),
        "niceness": priority.niceness, "group_niceness": priority.group,
        "session_leader": priority.session_leader}))
    log.info("event=part-started part=%s agents=%d seconds=%.2f niceness=%d group-niceness=%s", part, len(agents),
             took, priority.niceness, priority.group)


def _summary(agents: list[VmeAgent]) -> dict:
    return merge_summaries([{"agents": len(agents)}, *(a.progress() for a in agents)])


async def run_part(plan: Plan, part: str, stop: Optional[asyncio.Event] = None) -> int:
    """Run the agents of ``part`` until the coordinator says stop (or a signal arrives)."""
    from vmenergy.runtime.xmpp_tuning import freeze_heap, tune_process

    address = server_address(plan.server, part)
    tune_process(address.ca_file)
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):  # pragma: no cover - not the main thread
            pass
    coord = plan.coordinator
    reader, writer = await control.connect(coord)
    specs = plan.of_part(part)
    await control.send(writer, "hello", part=part, token=coord["token"], incarnation=secrets.token_hex(4),
                       agents=len(specs))
    welcome = await control.receive(reader)
    if welcome is not None and welcome.get("op") == "stop":
        log.info("event=run-already-stopped part=%s", part)
        return 0
    if welcome is None or welcome.get("op") != "welcome":
        raise control.ControlError("the coordinator did not welcome this process (wrong token or part?)")
    mode = plan.clock["mode"]
    clock: Clock
    driver: Optional[VirtualDriver] = None
    if mode == "virtual":
        clock = VirtualClock(float(welcome["time"]))
        driver = VirtualDriver(clock, {a.jid: a.part for a in plan.agents}, {a.jid: a.role for a in plan.agents})
    else:
        clock = AcceleratedClock(float(plan.clock["start"]), float(plan.clock["speed"]))
    agents = [build_agent(s, address, clock, plan.seed, plan) for s in specs]
    if driver is not None:
        for a in agents:
            driver.add(a)
    # the coordinator may say stop (Ctrl-C) while the agents are still starting: listen already
    ops = asyncio.ensure_future(_next_op(reader, stop))
    startup = asyncio.ensure_future(_start_and_wait(plan, part, agents))
    watchdog: Optional[asyncio.Future] = None
    rc = 0
    try:
        done, _ = await asyncio.wait({ops, startup}, return_when=asyncio.FIRST_COMPLETED)
        if startup in done:
            startup.result()
            freeze_heap()  # the agents and their ledgers as loaded: full collections skip them
            links = _Links(part, agents, writer, driver)
            watchdog = asyncio.ensure_future(links.watch(stop))
            if driver is not None:
                driver.start()
                await control.send(writer, "ready", part=part, summary=driver.summary(), next_due=driver.next_due())
                await _serve_rounds(driver, reader, writer, stop, ops)
            else:
                await control.send(writer, "ready", part=part, summary=_summary(agents), next_due=None)
                await _serve_accelerated(agents, clock, reader, writer, stop, ops)  # type: ignore[arg-type]
            if links.gave_up:
                rc = GAVE_UP
        else:
            log.info("event=stopped-during-start-up part=%s", part)
    finally:
        for task in (ops, startup, watchdog):
            if task is not None:
                task.cancel()
        await asyncio.gather(*(t for t in (ops, startup, watchdog) if t is not None), return_exceptions=True)
        await asyncio.gather(*(a.stop() for a in agents), return_exceptions=True)
        try:
            await control.send(writer, "bye", part=part)
            writer.close()
        except (ConnectionError, OSError):
            pass
        log.info("event=part-stopped part=%s", part)
    return rc


class _Links:
    """The links of a process's agents to their server, as the coordinator must know them: when
    one drops, time holds ("down") until every one is back ("ready" again). An agent that stays
    disconnected longer than :data:`GIVE_UP_SECONDS` ends the process with :data:`GAVE_UP`, so
    its supervisor (the orchestrator, systemd) sees it and restarts it: never a silent zombie."""

    def __init__(self, part: str, agents: list[VmeAgent], writer: asyncio.StreamWriter,
                 driver: Optional[VirtualDriver]) -> None:
        self.part, self.agents, self.writer, self.driver = part, agents, writer, driver
        self.down: set[int] = set()
        self.gave_up = False
        self._sending: Optional[asyncio.Future] = None
        for a in agents:
            a.link_watchers.append(self.changed)

    def changed(self, agent: VmeAgent, up: bool) -> None:
        was_up = not self.down
        (self.down.discard if up else self.down.add)(id(agent))
        if was_up != (not self.down):
            self._report(not self.down)

    def _report(self, up: bool) -> None:
        async def send(previous: Optional[asyncio.Future]) -> None:
            if previous is not None:
                await asyncio.wait({previous})
            try:
                if up:
                    summary = self.driver.summary() if self.driver is not None else _summary(self.agents)
                    next_due = self.driver.next_due() if self.driver is not None else None
                    await control.send(self.writer, "ready", part=self.part, summary=summary, next_due=next_due)
                else:
                    await control.send(self.writer, "down", part=self.part, agents=len(self.down))
            except (ConnectionError, OSError):
                pass  # the coordinator went away: the process stops anyway

        log.warning("event=links-%s part=%s agents-down=%d", "up" if up else "down", self.part, len(self.down))
        self._sending = asyncio.ensure_future(send(self._sending))

    async def watch(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await asyncio.sleep(LINK_CHECK_SECONDS)
            worst = max((a.down_for() for a in self.agents), default=0.0)
            if worst > GIVE_UP_SECONDS:
                log.error("event=giving-up part=%s down-for=%.0fs (an agent could not reach its server; "
                          "the process ends so that its supervisor restarts it)", self.part, worst)
                self.gave_up = True
                stop.set()


async def _start_and_wait(plan: Plan, part: str, agents: list[VmeAgent]) -> None:
    took = await _start_agents(agents, bool(plan.server.get("register_in_band", True)))
    _write_status(plan, part, agents, took)
    await _wait_ready(agents, part)


async def _next_op(reader: asyncio.StreamReader, stop: asyncio.Event) -> Optional[dict]:
    """The coordinator's next operation; None when it went away or a signal asked to stop."""
    get = asyncio.ensure_future(control.receive(reader))
    halt = asyncio.ensure_future(stop.wait())
    done, _ = await asyncio.wait({get, halt}, return_when=asyncio.FIRST_COMPLETED)
    halt.cancel()
    if get in done:
        return get.result()
    get.cancel()
    return None


async def _serve_rounds(driver: VirtualDriver, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                        stop: asyncio.Event, first: asyncio.Future) -> None:
    """Process the coordinator's rounds; a round runs while further operations are read (a
    ``release`` can arrive while the round waits for messages that will never come)."""
    current: Optional[asyncio.Task] = None
    pending: asyncio.Future = first
    while True:
        msg = await pending
        if current is not None and current.done() and current.exception() is not None:
            raise current.exception()  # type: ignore[misc]
        if msg is None or msg["op"] == "stop":
            if current is not None:
                current.cancel()
            return
        if msg["op"] == "release":
            driver.release()
        elif msg["op"] == "round":
            if current is not None and not current.done():
                raise control.ControlError("a round was started before the previous one finished")
            current = asyncio.ensure_future(_round(driver, writer, int(msg["t"]), int(msg["k"]), int(msg["expect"])))
            # a failing round must end the process (the coordinator then sees it down), not hang it
            current.add_done_callback(lambda task: task.cancelled() or task.exception() is None or stop.set())
        else:
            raise control.ControlError(f"unexpected op {msg['op']!r} from the coordinator")
        pending = asyncio.ensure_future(_next_op(reader, stop))


async def _round(driver: VirtualDriver, writer: asyncio.StreamWriter, t: int, k: int, expect: int) -> None:
    report = await driver.run_round(t, k, expect)
    await control.send(writer, "done", **report)


async def _serve_accelerated(agents: list[VmeAgent], clock: AcceleratedClock, reader: asyncio.StreamReader,
                             writer: asyncio.StreamWriter, stop: asyncio.Event, first: asyncio.Future) -> None:
    msg = await first
    if msg is None or msg["op"] != "start":
        return
    clock.anchor(float(msg["wall_anchor"]))
    await asyncio.gather(*(a.start_time() for a in agents))
    ops = asyncio.ensure_future(_next_op(reader, stop))
    while True:
        done, _ = await asyncio.wait({ops}, timeout=1.0)
        if done:
            return  # stop, or the coordinator went away
        await control.send(writer, "status", time=int(clock.now()), summary=_summary(agents))


def main(plan_path: str, part: str) -> int:
    import spade

    plan = Plan.load(Path(plan_path))
    # before any thread starts (a niceness is a thread's; new threads inherit it)
    lower_own_priority(part_niceness(a.role for a in plan.of_part(part)))
    rc = {"code": 1}

    async def go() -> None:  # spade.run logs an exception and returns None: keep the exit code
        try:
            rc["code"] = await run_part(plan, part)
        except Exception:
            log.exception("event=part-failed part=%s", part)
            raise

    spade.run(go())
    return rc["code"]
