"""The three node roles as SPADE agents: prosumer (FOA), aggregator (FMAN), market (FMAR)."""

from __future__ import annotations

import asyncio
from typing import Iterable, Optional

from vmenergy.devices.executor import Executor, SimulatedExecutor
from vmenergy.flexoffer import FlexOffer, State
from vmenergy.protocol.aggregator import AggregatorConfig, AggregatorEngine
from vmenergy.protocol.engine import OUTBOX, Engine, Execute, Ledger, bare
from vmenergy.protocol.prosumer import PROSUMER_OFFERS, ProsumerEngine
from vmenergy.protocol.strategies import ScheduledOffers

from .base import VmeAgent
from .plugins import aggregator_strategies

__all__ = ["ProsumerAgent", "AggregatorAgent", "MarketAgent"]


class ProsumerAgent(VmeAgent):
    """A prosumer box: sends its offers, executes its schedules, reports metering."""

    role = "prosumer"
    heavy_ticks = False

    def __init__(self, jid: str, password: str, *, aggregator: str,
                 offers: Iterable[tuple[int, FlexOffer]] = (), executor: Optional[Executor] = None, **kw) -> None:
        self.aggregator = bare(aggregator)
        self.initial_offers = list(offers)
        self.executor: Executor = executor or SimulatedExecutor()
        self._executions: dict[str, asyncio.Task] = {}
        super().__init__(jid, password, peers=(self.aggregator,), **kw)

    def make_engine(self, ledger: Ledger) -> Engine:
        # the offers made from templates (or read from files) are the engine's offer source
        return ProsumerEngine(str(self.jid), self.aggregator, ledger=ledger,
                              source=ScheduledOffers(self.initial_offers))

    async def setup(self) -> None:
        await super().setup()
        engine: ProsumerEngine = self.engine  # type: ignore[assignment]
        # a restarted box resumes the schedules it had accepted but not yet reported
        for rec in engine.ledger[PROSUMER_OFFERS].values():
            if rec.state is State.ASSIGNED and rec.schedule is not None:
                self.on_execute(Execute(rec.offer, rec.schedule))

    def startup_steps(self):
        # the engine took its offers from its source when it was built: send those released by now
        engine: ProsumerEngine = self.engine  # type: ignore[assignment]
        return [engine.on_tick]

    def progress(self) -> dict:
        engine: ProsumerEngine = self.engine  # type: ignore[assignment]
        return {"offers": engine.counts(), "expected_offers": len(self.initial_offers)}

    def on_execute(self, effect: Execute) -> None:
        old = self._executions.pop(effect.offer.id, None)
        if old is not None:
            old.cancel()
        self._executions[effect.offer.id] = self.clock.spawn(self._run(effect))

    async def _run(self, effect: Execute) -> None:
        try:
            start, energy = await self.executor.execute(effect.offer, effect.schedule, self.clock)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a device fault is reported, not fatal
            self.log.error("event=execution-failed offer=%s error=%r", effect.offer.id, exc)
            return
        engine: ProsumerEngine = self.engine  # type: ignore[assignment]
        await self.handle(lambda now: engine.executed(effect.offer.id, start, energy, now))
        self._executions.pop(effect.offer.id, None)

    def running(self) -> list[str]:
        """The offers whose schedules the devices are carrying out now."""
        return sorted(o for o, task in self._executions.items() if not task.done())

    async def stop(self) -> None:
        for task in self._executions.values():
            task.cancel()
        await super().stop()


class AggregatorAgent(VmeAgent):
    """An aggregator: its prosumers subscribe to it; it subscribes to its market or parent."""

    role = "aggregator"

    def __init__(self, jid: str, password: str, *, config: AggregatorConfig = AggregatorConfig(), **kw) -> None:
        self.config = config
        peers = (config.upstream_jid,) if config.upstream_jid else ()
        super().__init__(jid, password, peers=tuple(p for p in peers if p), **kw)

    def make_engine(self, ledger: Ledger) -> Engine:
        return AggregatorEngine(str(self.jid), self.config, ledger=ledger,
                                strategies=aggregator_strategies(self.config, str(self.jid)))

    def progress(self) -> dict:
        # messages the aggregator still waits to have answered (the last bill's ack)
        return {"unanswered": len(self.engine.ledger[OUTBOX])}

    def approve(self, peer: str) -> bool:
        engine: AggregatorEngine = self.engine  # type: ignore[assignment]
        return engine.enrolled(peer) or bare(peer) in self.peers


class MarketAgent(VmeAgent):
    """A market operator running sessions (see vmenergy.protocol.market)."""

    role = "market"

    def __init__(self, jid: str, password: str, *, config=None, **kw) -> None:
        from vmenergy.protocol.market import MarketConfig

        self.config = config or MarketConfig()
        super().__init__(jid, password, **kw)

    def make_engine(self, ledger: Ledger) -> Engine:
        from vmenergy.protocol.market import MarketEngine

        return MarketEngine(str(self.jid), self.config, ledger=ledger)

    def approve(self, peer: str) -> bool:
        return self.engine.registered(peer) or self.config.registration == "open"  # type: ignore[attr-defined]


