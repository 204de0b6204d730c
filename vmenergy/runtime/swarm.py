"""One swarm process: start the agents of one part of a plan, run until told to stop.

Many agents share the process and its event loop; the process applies the start-up savings of
:mod:`vmenergy.runtime.xmpp_tuning` (fast SCRAM, one shared TLS context, verification on) and
starts agents in concurrent batches. It writes ``parts/<part>.json`` when all are up, so the
orchestrator (or a person) can see how long start-up took.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import time
from pathlib import Path
from typing import Optional

from vmenergy.agents import AggregatorAgent, MarketAgent, ProsumerAgent, ServerAddress, VmeAgent
from vmenergy.devices.executor import SimulatedExecutor
from vmenergy.flexoffer import FlexOffer
from vmenergy.protocol.aggregator import AggregatorConfig
from vmenergy.runtime.clock import Clock, clock_from
from vmenergy.runtime.scenario import AgentSpec, Plan

__all__ = ["build_agent", "run_part", "main"]

log = logging.getLogger("vmenergy.swarm")
BATCH = 50
TICK = {"prosumer": 0.5, "aggregator": 0.2, "market": 0.2}


def server_address(server: dict) -> ServerAddress:
    return ServerAddress(server.get("host", "127.0.0.1"), int(server.get("port", 5222)), server.get("ca_file"))


def build_agent(spec: AgentSpec, address: ServerAddress, clock: Clock, seed: int = 0) -> VmeAgent:
    common = dict(server=address, store_path=Path(spec.store), clock=clock, tick=TICK.get(spec.role, 0.5))
    cfg = dict(spec.config)
    if spec.role == "prosumer":
        offers = [(int(o["release"]), FlexOffer.from_dict(o["offer"])) for o in spec.offers]
        executor = SimulatedExecutor(deviation=float(cfg.get("deviation", 0.02)), seed=str(seed))
        return ProsumerAgent(spec.jid, spec.password, aggregator=cfg["aggregator"], offers=offers,
                             executor=executor, **common)
    if spec.role == "aggregator":
        if isinstance(cfg.get("enrolment"), list):
            cfg["enrolment"] = tuple(cfg["enrolment"])
        return AggregatorAgent(spec.jid, spec.password, config=AggregatorConfig(**cfg), **common)
    if spec.role == "market":
        from vmenergy.protocol.market import MarketConfig

        return MarketAgent(spec.jid, spec.password, config=MarketConfig.from_dict(cfg), **common)
    raise ValueError(f"unknown role {spec.role!r}")


async def run_part(plan: Plan, part: str, stop: Optional[asyncio.Event] = None) -> None:
    from vmenergy.runtime.xmpp_tuning import tune_process

    address = server_address(plan.server)
    tune_process(address.ca_file)
    clock = clock_from(plan.clock)
    specs = plan.of_part(part)
    agents = [build_agent(s, address, clock, plan.seed) for s in specs]
    t0 = time.perf_counter()
    for i in range(0, len(agents), BATCH):
        await asyncio.gather(*(a.start(auto_register=True) for a in agents[i:i + BATCH]))
    took = time.perf_counter() - t0
    status_dir = Path(plan.run_dir) / "parts"
    status_dir.mkdir(parents=True, exist_ok=True)
    (status_dir / f"{part}.json").write_text(json.dumps({
        "part": part, "pid": os.getpid(), "agents": len(agents), "start_seconds": round(took, 3),
        "per_agent_ms": round(1000 * took / max(1, len(agents)), 2), "started_at": time.time()}))
    log.info("event=part-started part=%s agents=%d seconds=%.2f", part, len(agents), took)
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):  # pragma: no cover - not the main thread
            pass
    await stop.wait()
    await asyncio.gather(*(a.stop() for a in agents), return_exceptions=True)
    log.info("event=part-stopped part=%s", part)


def main(plan_path: str, part: str) -> int:
    import spade

    plan = Plan.load(Path(plan_path))
    spade.run(run_part(plan, part))
    return 0
