"""The three node roles as SPADE agents: prosumer (FOA), aggregator (FMAN), market (FMAR)."""

from __future__ import annotations

import asyncio
from typing import Iterable, Optional

from vmenergy.devices.executor import Executor, SimulatedExecutor
from vmenergy.flexoffer import FlexOffer, State
from vmenergy.protocol.aggregator import AGGREGATES, AggregatorConfig, AggregatorEngine
from vmenergy.protocol.engine import OUTBOX, Engine, Execute, Ledger, RunDefault, bare
from vmenergy.protocol.prosumer import PROSUMER_OFFERS, ProsumerEngine
from vmenergy.protocol.strategies import CombinedOffers, OfferSource, ScheduledOffers
from vmenergy.protocol.trading import TradingSettings

from .base import VmeAgent
from .plugins import aggregator_strategies

__all__ = ["ProsumerAgent", "AggregatorAgent", "MarketAgent"]


class ProsumerAgent(VmeAgent):
    """A prosumer box: sends its offers, executes its schedules, reports metering.

    Its offers come from templates or files (``offers``) and/or a ``source`` such as a
    :class:`~vmenergy.devices.fleet.DeviceFleet`, which is then usually its ``executor`` too."""

    role = "prosumer"
    heavy_ticks = False
    #: A prosumer's ledger is small and read whole at start: thousands of agents share a
    #: process, and SQLite's default cache was ~75 KiB resident each after a day (Store). A
    #: commit touches a few pages of the B-tree; the rest come back from the OS's file cache.
    #: 16 KiB with the page cache's bulk allocation off: ~54 KiB of SQLite memory a store
    #: instead of ~125 (vmenergy/store/page_cache.py).
    store_cache_kib = 16
    #: Its store commits with one INSERT (a DELETE now and then): two kept statements serve that
    #: as fast as Python's 128, which kept every statement ever run (~17 KiB of SQLite memory a
    #: store; Store).
    store_statements = 2

    def __init__(self, jid: str, password: str, *, aggregator: str,
                 offers: Iterable[tuple[int, FlexOffer]] = (), executor: Optional[Executor] = None,
                 source: Optional[OfferSource] = None, market: Optional[str] = None,
                 trading: Optional[dict] = None, **kw) -> None:
        self.aggregator = bare(aggregator)
        self.initial_offers = list(offers)
        self.source = source
        self.executor: Executor = executor or SimulatedExecutor()
        self._executions: dict[str, asyncio.Task] = {}
        # trading its schedules peer to peer in a two-sided pool (optional)
        self.market = bare(market) if market else None
        self.trading = TradingSettings.from_dict(trading or {})
        peers = (self.aggregator,) if self.market is None else (self.aggregator, self.market)
        super().__init__(jid, password, peers=peers, **kw)
        if hasattr(self.executor, "on_fault") and getattr(self.executor, "on_fault") is None:
            self.executor.on_fault = self.device_fault  # type: ignore[attr-defined]

    def device_fault(self, offer_id: str, device: str, fault) -> None:
        """A device stayed faulty after its executor's retries: tell the aggregator (an engine
        step, spawned on the clock so a virtual clock waits for it)."""
        engine: ProsumerEngine = self.engine  # type: ignore[assignment]
        kind = getattr(fault, "kind", "unreachable")
        reason = getattr(fault, "reason", str(fault))
        self.clock.spawn(self.handle(lambda now: engine.device_fault(offer_id, device, kind, reason, now)))

    def make_engine(self, ledger: Ledger) -> Engine:
        # the offers made from templates (or read from files), and the devices' offers
        fixed = ScheduledOffers(self.initial_offers)
        source = fixed if self.source is None else CombinedOffers(fixed, self.source)
        return ProsumerEngine(str(self.jid), self.aggregator, ledger=ledger, source=source, market=self.market,
                              trading=self.trading)

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
        # a run is done when its devices have no more offers to make (a later day) and the
        # normal programmes of rejected offers have been metered
        source = engine.source
        still_offering = source is not None and source.next_due(self.now()) is not None
        defaults = any(engine.ledger[PROSUMER_OFFERS].get(oid) is not None
                       and engine.ledger[PROSUMER_OFFERS].get(oid).state is State.REJECTED for oid in self._executions)
        return {"offers": engine.counts(), "expected_offers": len(self.initial_offers),
                "devices_busy": int(still_offering or defaults)}

    def on_execute(self, effect: Execute) -> None:
        old = self._executions.pop(effect.offer.id, None)
        if old is not None:
            old.cancel()
        self._executions[effect.offer.id] = self.clock.spawn(self._run(effect, replaces=old))

    async def _run(self, effect: Execute, replaces: Optional[asyncio.Task] = None) -> None:
        engine: ProsumerEngine = self.engine  # type: ignore[assignment]
        if replaces is not None:
            # the execution this schedule replaces is cancelled, and gives its device back on
            # the way out (a hardware executor writes the normal state): that runs first, and
            # while it does this task counts as busy, so a virtual clock does not move on under
            # a write in flight (the cancelled task itself no longer counts) and the new
            # set-points are not overwritten by it
            await asyncio.wait({replaces})
        await self._drive(effect.offer.id, "execution",
                          lambda: self.executor.execute(effect.offer, effect.schedule, self.clock), engine.executed)

    def on_default(self, effect: RunDefault) -> None:
        if effect.offer.id in self._executions or not hasattr(self.executor, "run_default"):
            return  # already running (a schedule, or its normal programme); or an adapter without one
        engine: ProsumerEngine = self.engine  # type: ignore[assignment]
        job = self._drive(effect.offer.id, "default-run",
                          lambda: self.executor.run_default(effect.offer, self.clock), engine.ran_default)
        self._executions[effect.offer.id] = self.clock.spawn(job)

    async def _drive(self, offer_id: str, what: str, run, report) -> None:
        """Run a device job (a schedule, a normal programme) and report what the meter saw."""
        try:
            start, energy = await run()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a device fault is reported, not fatal
            self.log.error("event=%s-failed offer=%s error=%r", what, offer_id, exc)
            return
        await self.handle(lambda now: report(offer_id, start, energy, now))
        self._executions.pop(offer_id, None)

    def running(self) -> list[str]:
        """The offers whose schedules the devices are carrying out now."""
        return sorted(o for o, task in self._executions.items() if not task.done())

    async def stop(self) -> None:
        for task in self._executions.values():
            task.cancel()
        close = getattr(self.executor, "close", None)
        if close is not None:  # hardware links
            await close()
        await super().stop()


class AggregatorAgent(VmeAgent):
    """An aggregator: its prosumers subscribe to it; it subscribes to its market or parent."""

    role = "aggregator"

    def __init__(self, jid: str, password: str, *, config: AggregatorConfig = AggregatorConfig(), **kw) -> None:
        self.config = config
        peers = ((config.upstream_jid,) if config.upstream_jid else ()) + tuple(sorted(set(config.dsos.values())))
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

    def progress(self) -> dict:
        return {"bills_owed": self.engine.bills_owed()}  # type: ignore[attr-defined]

    def approve(self, peer: str) -> bool:
        # who may register, not who has: an aggregator subscribes before it registers (slixmpp's
        # auto-authorise used to approve everyone, which hid that registered() alone said no)
        return self.engine.admits(peer)  # type: ignore[attr-defined]


