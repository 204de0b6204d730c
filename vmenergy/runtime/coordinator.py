"""The time coordinator of a swarm: scenario time that does not depend on the machine.

Conservative synchronisation, as in discrete-event co-simulation (mosaik, mango's simulation
container), in bulk-synchronous rounds. Scenario time stands at an instant ``t`` while the agents
work; the work at ``t`` is done in rounds:

- round 0: every process wakes the tasks waiting for ``t`` (device executions), then ticks each
  agent whose engine has timed work due at or before ``t``;
- round k > 0: every agent handles the messages sent to it in round k-1, in a fixed order (by
  sender, then in the order sent), then ticks again if its engine asks.

Each process says how many agent messages it sent to each process in a round; the next round
starts only when every process has *received* what was sent to it (it waits for the count the
coordinator tells it), so "nothing in flight" is an exact count, never a timeout. Messages
carry the round that produced them, so a message that overtakes the coordinator's command still
lands in the right round. When a round sends nothing and no engine asks for another tick, the
instant is finished and time jumps to the earliest next instant any process reported (a tick
deadline, a session opening, an execution end). The agents still talk only over the real XMPP
server; the coordinator only decides *when*.

Because every agent sees the same messages in the same order at the same scenario time, a run
gives the same results whatever the machine's load and however the agents are split into
processes. A process that dies is waited for: time stands still until it is back (the
orchestrator restarts it, or stops the run), because anything else would make the result depend
on how long the restart took.

The coordinator also serves the accelerated clock (time follows the wall clock times a speed):
it then only gathers readiness, starts everyone's clock at the same wall time and collects
progress reports.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

from . import control
from .progress import merge_summaries

__all__ = ["Coordinator", "Snapshot", "PartState"]

log = logging.getLogger("vmenergy.coordinator")


@dataclass
class PartState:
    """What the coordinator knows of one swarm process."""

    name: str
    writer: Optional[asyncio.StreamWriter] = None
    incarnation: str = ""
    agents: int = 0
    ready: bool = False
    summary: dict = field(default_factory=dict)
    next_due: Optional[int] = None
    report: Optional[dict] = None  # the last "done" of the current round
    incarnations: int = 0

    @property
    def up(self) -> bool:
        return self.writer is not None


@dataclass(frozen=True)
class Snapshot:
    """Progress as the coordinator saw it at a finished instant (or at start-up)."""

    time: int
    parts_up: int
    parts: int
    agents_ready: int
    agents: int
    summary: dict
    instants: int
    rounds: int
    paused: bool
    finished: Optional[str]  # None while running; "done" | "until" | "stopped"


class Coordinator:
    """Drives scenario time for the processes of one run (see the module docstring).

    ``finished(summary)`` says whether the run's work is complete (checked at each finished
    instant); with virtual time, ``pause_when(snapshot)`` makes it hold time at the first
    finished instant where it is true until :meth:`resume` (tests use it to disturb a run at a
    chosen point)."""

    def __init__(self, parts: list[str], *, start: int, until: int, mode: str = "virtual",
                 token: Optional[str] = None, finished: Optional[Callable[[dict], bool]] = None,
                 host: str = "127.0.0.1", port: int = 0, ssl_context=None,
                 shards: int = 1, plan_for_shard: Optional[Callable[[int], dict]] = None,
                 on_store: Optional[Callable[[int, str, bytes], None]] = None) -> None:
        if mode not in ("virtual", "accelerated"):
            raise ValueError(f"the coordinator runs virtual or accelerated time, not {mode!r}")
        self.parts = {p: PartState(p) for p in parts}
        self.start_time, self.until, self.mode = int(start), int(until), mode
        self.token = token or control.new_token()
        self.finished = finished or (lambda summary: False)
        self.host, self.port = host, port
        self.now = int(start)
        self.instants = 0
        self.rounds = 0
        self.disturbances = 0  # rounds redone because a process died or lost its server
        self.outcome: Optional[str] = None
        self.pause_when: Optional[Callable[[Snapshot], bool]] = None
        self._server: Optional[asyncio.AbstractServer] = None
        # events bind to the loop that first waits on them: the coordinator's thread's loop
        self._changed = asyncio.Event()
        self._stop = asyncio.Event()
        self._resume = asyncio.Event()
        self._resume.set()
        self._paused = False
        self._round: Optional[tuple[int, int]] = None
        self._handlers: set[asyncio.Task] = set()
        self.on_snapshot: Callable[[Snapshot], None] = lambda s: None
        self.ssl_context = ssl_context
        self.shards = shards
        self.plan_for_shard = plan_for_shard
        self.on_store = on_store or (lambda shard, name, data: None)
        self._observers: dict[int, asyncio.StreamWriter] = {}  # shard -> its orchestrator
        self.shards_done: set[int] = set()

    # -- serving ----------------------------------------------------------------------------
    async def listen(self) -> tuple[str, int]:
        """Open the control port; returns (host, port) for the processes to connect to."""
        self._server = await asyncio.start_server(self._serve, self.host, self.port, limit=control.MAX_LINE,
                                                  ssl=self.ssl_context)
        sock = self._server.sockets[0].getsockname()
        self.host, self.port = sock[0], sock[1]
        return self.host, self.port

    async def close(self) -> None:
        for part in self.parts.values():
            if part.writer is not None:
                part.writer.close()
        if self._server is not None:
            self._server.close()
        for task in list(self._handlers):
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        part: Optional[PartState] = None
        me = asyncio.current_task()
        if me is not None:
            self._handlers.add(me)
        try:
            hello = await control.receive(reader)
            if hello is None or hello.get("op") not in ("hello", "join") or \
                    not control.token_matches(hello.get("token"), self.token):
                log.warning("event=control-refused peer=%s", writer.get_extra_info("peername"))
                return
            if hello["op"] == "join":
                await self._serve_shard(hello, reader, writer)
                return
            part = self.parts.get(hello.get("part"))
            if part is None:
                log.warning("event=control-refused reason=unknown-part part=%r", hello.get("part"))
                return
            if part.up:
                log.warning("event=control-refused reason=part-already-connected part=%s", part.name)
                part = None
                return
            if self._stop.is_set():
                await control.send(writer, "stop")  # a process that starts after the run ended
                part = None
                return
            part.writer, part.incarnation = writer, str(hello.get("incarnation", ""))
            part.agents = int(hello.get("agents", 0))
            part.ready, part.report = False, None
            part.incarnations += 1
            await control.send(writer, "welcome", time=self.now, mode=self.mode)
            await self._notify()
            while True:
                msg = await control.receive(reader)
                if msg is None:
                    break
                await self._on_message(part, msg)
        except control.ControlError as exc:
            log.error("event=control-error part=%s error=%s", part.name if part else "?", exc)
        finally:
            if part is not None and part.writer is writer:
                part.writer, part.ready = None, False
                (log.info if self.outcome is not None else log.warning)("event=part-down part=%s", part.name)
                await self._notify()
            writer.close()
            if me is not None:
                self._handlers.discard(me)

    async def _serve_shard(self, join: dict, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Another machine's orchestrator: give it its plan, take its stores at the end."""
        import base64

        shard = join.get("shard")
        if not isinstance(shard, int) or not 2 <= shard <= self.shards or self.plan_for_shard is None \
                or shard in self._observers:
            log.warning("event=control-refused reason=bad-shard shard=%r", shard)
            return
        self._observers[shard] = writer
        try:
            await control.send(writer, "plan", plan=self.plan_for_shard(shard))
            if self._stop.is_set():
                await control.send(writer, "stop")
            while True:
                msg = await control.receive(reader)
                if msg is None:
                    break
                if msg["op"] == "store":
                    self.on_store(shard, str(msg.get("name", "")), base64.b64decode(msg.get("data", "")))
                elif msg["op"] == "bye":
                    self.shards_done.add(shard)
                    await self._notify()
                    break
        finally:
            self._observers.pop(shard, None)

    async def wait_shards(self, timeout: float) -> bool:
        """Until every other shard has sent its stores (after :meth:`stop_parts`)."""
        try:
            return await asyncio.wait_for(self._wait_for_shards(), timeout)
        except asyncio.TimeoutError:
            return False

    async def _wait_for_shards(self) -> bool:
        while len(self.shards_done) < self.shards - 1:
            self._changed.clear()
            await self._changed.wait()
        return True

    async def _on_message(self, part: PartState, msg: dict) -> None:
        op = msg["op"]
        if op == "ready":
            part.ready = True
            part.summary = msg.get("summary", {})
            part.next_due = msg.get("next_due")
        elif op == "down":  # an agent of the process lost its server: time holds until it is back
            part.ready = False
            log.warning("event=part-link-down part=%s agents=%s", part.name, msg.get("agents"))
        elif op == "done":
            if self._round is not None and (msg.get("t"), msg.get("k")) == self._round:
                part.report = msg
                part.summary = msg.get("summary", part.summary)
                part.next_due = msg.get("next_due")
        elif op == "status":  # accelerated clock: periodic progress
            part.summary = msg.get("summary", part.summary)
            self.now = max(self.now, int(msg.get("time", self.now)))
        elif op == "bye":
            pass
        else:
            raise control.ControlError(f"unknown op {op!r}")
        await self._notify()

    async def _notify(self) -> None:
        self._changed.set()

    async def _wait_for(self, predicate: Callable[[], bool]) -> bool:
        """Until ``predicate()`` or a stop request; False if stopped."""
        while not predicate():
            if self._stop.is_set():
                return False
            self._changed.clear()
            waiter = asyncio.ensure_future(self._changed.wait())
            stopper = asyncio.ensure_future(self._stop.wait())
            try:
                await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                waiter.cancel()
                stopper.cancel()
        return True

    # -- control from the orchestrator ---------------------------------------------------------
    def request_stop(self) -> None:
        self._stop.set()
        self._resume.set()

    def resume(self) -> None:
        self._resume.set()

    def snapshot(self) -> Snapshot:
        parts = list(self.parts.values())
        return Snapshot(
            time=self.now, parts_up=sum(p.up for p in parts), parts=len(parts),
            agents_ready=sum(p.agents for p in parts if p.ready), agents=sum(p.agents for p in parts),
            summary=merge_summaries([p.summary for p in parts]), instants=self.instants, rounds=self.rounds,
            paused=self._paused, finished=self.outcome)

    def _all_ready(self) -> bool:
        return all(p.up and p.ready for p in self.parts.values())

    # -- the run ----------------------------------------------------------------------------
    async def run(self) -> str:
        """Drive the run to its end; returns the outcome: "done", "until" or "stopped"."""
        if not await self._wait_for(self._all_ready):
            return self._finish("stopped")
        self.on_snapshot(self.snapshot())
        if self.mode == "accelerated":
            return await self._run_accelerated()
        return await self._run_virtual()

    def _finish(self, outcome: str) -> str:
        self.outcome = outcome
        self.on_snapshot(self.snapshot())
        return outcome

    async def _broadcast(self, op: str, per_part: Optional[Callable[[PartState], dict]] = None, **fields) -> None:
        for part in self.parts.values():
            if part.writer is not None:
                try:
                    await control.send(part.writer, op, **fields, **(per_part(part) if per_part else {}))
                except (ConnectionError, OSError):
                    pass  # the reader side notices and marks the part down

    async def stop_parts(self) -> None:
        """Tell every process (and the other shards) to stop (they answer "bye" and exit)."""
        await self._broadcast("stop")
        for writer in list(self._observers.values()):
            try:
                await control.send(writer, "stop")
            except (ConnectionError, OSError):
                pass

    async def _run_accelerated(self) -> str:
        """Start every clock at the same wall time, then watch the progress reports. Time runs
        on the wall clock here, so ``pause_when`` cannot hold it and is not used."""
        await self._broadcast("start", wall_anchor=time.time())
        while True:
            try:
                await asyncio.wait_for(self._stop.wait(), 0.5)
                return self._finish("stopped")
            except asyncio.TimeoutError:
                pass
            snap = self.snapshot()
            self.on_snapshot(snap)
            if self.finished(snap.summary):
                return self._finish("done")
            if self.now >= self.until:
                return self._finish("until")

    async def _hold(self) -> bool:
        """Hold time until :meth:`resume` (False: stopped instead)."""
        self._resume.clear()
        await self._resume.wait()
        return not self._stop.is_set()

    async def _run_virtual(self) -> str:
        t = self.start_time
        while True:
            if not await self._instant(t):
                return self._finish("stopped")
            self.instants += 1
            snap = self.snapshot()
            self.on_snapshot(snap)
            if self.finished(snap.summary):
                return self._finish("done")
            if self.pause_when is not None and self.pause_when(snap):
                self._paused = True
                self.on_snapshot(self.snapshot())
                if not await self._hold():
                    return self._finish("stopped")
                self._paused = False
            dues = [p.next_due for p in self.parts.values() if p.next_due is not None]
            nxt = max(min(dues), t + 1) if dues else None
            if nxt is None or nxt > self.until:
                return self._finish("until")
            t = nxt

    async def _instant(self, t: int) -> bool:
        """Run every round of instant ``t`` until nothing is sent and nothing is due."""
        expect: dict[str, int] = {}
        k = 0
        while True:
            # a process that is down is waited for: time stands still until it is back
            if not await self._wait_for(self._all_ready):
                return False
            self.now = t
            self._round = (t, k)
            for part in self.parts.values():
                part.report = None
            await self._broadcast("round", lambda p: {"expect": expect.get(p.name, 0)}, t=t, k=k)
            self.rounds += 1
            parts = self.parts.values()
            if not await self._wait_for(lambda: all(p.report is not None for p in parts) or not self._all_ready()):
                return False
            if not self._all_ready():
                # a process died or lost its server in this round: what it sent may never come
                # and what was sent to it may be lost. The others stop waiting for it ("release"),
                # and the round is redone once everyone is back with nothing expected: the
                # reliable layer resends what was lost when time moves on.
                self.disturbances += 1
                await self._broadcast("release")
                if not await self._wait_for(lambda: all(p.report is not None or not p.up for p in parts)):
                    return False
                expect = {}
                k += 1
                continue
            sent: dict[str, int] = {}
            again = False
            for part in self.parts.values():
                report = part.report or {}
                again = again or bool(report.get("again"))
                for dest, n in (report.get("sent") or {}).items():
                    sent[dest] = sent.get(dest, 0) + int(n)
            # messages to a process that restarted meanwhile went to its old incarnation
            if not sent and not again:
                self._round = None
                return True
            expect = sent
            k += 1
