"""Runs the agents of one swarm process in the coordinator's rounds (virtual time).

See :mod:`vmenergy.runtime.coordinator` for the rounds. The driver is what an agent hands its
incoming messages and presence changes to instead of its SPADE behaviours; in each round it
runs, agent by agent, the steps that round holds, in an order that does not depend on when the
messages happened to arrive:

1. presence changes (by peer), then the messages of earlier rounds (by sender, then in the order
   that sender sent them; XMPP keeps that order between two parties);
2. in round 0 first: the agents' start-up steps (once), and the tasks waiting for this time
   (device executions), which run until they wait again or finish;
3. a tick for every agent whose engine has timed work due now.

It counts what the agents send, by the process of the addressee, so the coordinator can tell
each process how many messages to wait for before the next round. It also counts the protocol
messages its agents receive from the run's agents, by the sender's role and the receiver's
(``messages_prosumer_to_aggregator``: the run's ``work`` in timings.json), so a benchmark can
make plain XMPP clients exchange as many stanzas as the agents did (bench/ladder_reference.py).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Optional

from vmenergy.agents.base import VmeAgent
from vmenergy.protocol.engine import bare
from vmenergy.protocol.messages import Message

from .clock import VirtualClock
from .progress import merge_summaries

__all__ = ["VirtualDriver", "message_key"]

log = logging.getLogger("vmenergy.driver")

#: An engine asking for a tick again and again at the same time has a bug; after this many ticks
#: at one instant it is left alone until its next message (and the error is logged).
MAX_TICKS_PER_INSTANT = 5

#: Real seconds between tries to write a store that failed (a full disk) while time is held.
STORE_RETRY_SECONDS = 0.5

_PRESENCE, _MESSAGE = 0, 1


def message_key(sender_role: str, receiver_role: str) -> str:
    """The ``work`` counter of protocol messages from agents of one role to agents of another."""
    return f"messages_{sender_role}_to_{receiver_role}"


@dataclass(order=True)
class _Event:
    """Something for an agent to handle in a later round."""

    kind: int
    peer: str
    seq: int
    tag: tuple[int, int] = field(compare=False)
    payload: Any = field(compare=False)  # a protocol message, or the availability (bool)


class VirtualDriver:
    """The virtual-time driver of one process's agents (see the module docstring)."""

    def __init__(self, clock: VirtualClock, part_of: dict[str, str], role_of: Optional[dict[str, str]] = None) -> None:
        self.clock = clock
        self.part_of = {bare(j): p for j, p in part_of.items()}
        self.role_of = {bare(j): r for j, r in (role_of or {}).items()}
        self._messages: Counter = Counter()  # messages_<sender role>_to_<receiver role> -> received
        self.agents: list[VmeAgent] = []
        self._inbox: dict[int, list[_Event]] = {}  # id(agent) -> events not yet handled
        self._seq = itertools.count()
        self._arrived: Counter = Counter()  # tag -> messages of that round received
        self._arrival = asyncio.Event()
        self._round: tuple[int, int] = (int(clock.now()), -1)
        self._sent: Counter = Counter()  # part -> messages sent in the current round
        self._due: dict[int, Optional[int]] = {}
        self._heap: list[tuple[int, int, int]] = []  # (due, seq, agent index), lazily invalidated
        self._ticks: Counter = Counter()
        self._instant = None
        self._summary: dict[int, dict] = {}
        self._released = False
        self._index: dict[int, int] = {}  # id(agent) -> its index
        self._waiting: set[int] = set()  # agents with events in their inbox
        self._touched: set[int] = set()  # agents that ran a step since the last refresh
        self._unstarted = True

    def add(self, agent: VmeAgent) -> None:
        agent.driver = self
        self._index[id(agent)] = len(self.agents)
        self.agents.append(agent)
        self._inbox[id(agent)] = []

    # -- called by the agents ------------------------------------------------------------------
    def received(self, agent: VmeAgent, sender: str, payload: Message, tag: Optional[tuple[int, int]]) -> None:
        # untagged messages come from outside the run (a person's client): next round; so do
        # tagged ones from outside it (a stranger cannot make a round start early by forging tags)
        peer = bare(sender)
        if tag is None or peer not in self.part_of:
            tag = (-1, -1)
        elif peer in self.role_of:
            self._messages[message_key(self.role_of[peer], agent.role)] += 1
        self._inbox[id(agent)].append(_Event(_MESSAGE, bare(sender), next(self._seq), tag, payload))
        self._waiting.add(self._index[id(agent)])
        self._arrived[tag] += 1
        self._arrival.set()

    def presence(self, agent: VmeAgent, peer: str, available: bool) -> None:
        self._inbox[id(agent)].append(_Event(_PRESENCE, bare(peer), next(self._seq), (-1, -1), available))
        self._waiting.add(self._index[id(agent)])

    def stepped(self, agent: VmeAgent) -> None:
        """``agent`` ran an engine step (whoever started it): refresh it at the end of the round."""
        self._touched.add(self._index[id(agent)])

    def sending(self, agent: VmeAgent, to: str) -> Optional[tuple[int, int]]:
        part = self.part_of.get(bare(to))
        if part is not None:  # only messages between the run's agents are awaited
            self._sent[part] += 1
        return self._round

    # -- state for the coordinator -------------------------------------------------------------
    def next_due(self) -> Optional[int]:
        while self._heap and self._due.get(self._heap[0][2]) != self._heap[0][0]:
            heapq.heappop(self._heap)
        times = [self._heap[0][0]] if self._heap else []
        timer = self.clock.next_timer()
        if timer is not None:
            times.append(int(-(-timer // 1)))
        return min(times) if times else None

    def summary(self) -> dict:
        return merge_summaries([{"agents": len(self.agents), "work": dict(self._messages)}, *self._summary.values()])

    def refresh(self, index: int) -> None:
        """Recompute what the coordinator needs of agent ``index`` after it changed."""
        agent = self.agents[index]
        due = agent.engine.next_due(int(self.clock.now()))
        if self._ticks[index] >= MAX_TICKS_PER_INSTANT and due is not None and due <= self.clock.now():
            due = None  # see MAX_TICKS_PER_INSTANT
        self._due[index] = due
        if due is not None:
            heapq.heappush(self._heap, (due, next(self._seq), index))
        self._summary[index] = {**agent.progress(),
                                "work": {f"{agent.role}_{k}": v for k, v in agent.work.items()}}

    def start(self) -> None:
        """Every agent is up: learn what each one has due."""
        for i in range(len(self.agents)):
            self.refresh(i)

    # -- rounds --------------------------------------------------------------------------------
    async def run_round(self, t: int, k: int, expect: int) -> dict:
        """Process round ``k`` of instant ``t``; returns the report for the coordinator."""
        if k == 0:
            if self._instant != t:
                self._instant = t
                self._ticks.clear()
                for tag in [tag for tag in self._arrived if tag < (t, 0)]:
                    del self._arrived[tag]
            self.clock.advance(t)
        else:
            await self._arrivals((t, k - 1), expect)
        self._round = (t, k)
        self._sent = Counter()
        # agents touched since the last refresh stay marked: an operator's step between rounds
        # (a resume) is seen at this round's first refresh
        # handle what arrived before this round (later rounds' messages stay for later)
        batches = []
        for i in sorted(self._waiting):
            box = self._inbox[id(self.agents[i])]
            now = [ev for ev in box if ev.tag < (t, k)]
            if now:
                later = [ev for ev in box if not ev.tag < (t, k)]
                self._inbox[id(self.agents[i])] = later
                if not later:
                    self._waiting.discard(i)
                batches.append((i, sorted(now)))
        if batches:
            await asyncio.gather(*(self._handle_events(i, events) for i, events in batches))
        if k == 0:
            if self._unstarted:
                self._unstarted = False
                # every agent at once (each commits once, in the order they were started)
                await asyncio.gather(*(agent.handle_all(agent.startup_steps()) for agent in self.agents))
            # then the tasks waiting for this time (device executions) run until they wait again
            self.clock.wake()
        await self.clock.wait_idle()
        self._refresh_touched()
        due = self._due_now(t)
        if due:
            await asyncio.gather(*(self._tick(i) for i in due))
        await self.clock.wait_idle()
        await self._stores_writable()
        self._refresh_touched()
        again = bool(self._due_now(t, pop=False))
        return {"t": t, "k": k, "sent": dict(self._sent), "next_due": self.next_due(), "again": again,
                "summary": self.summary()}

    async def _stores_writable(self) -> None:
        """Scenario time holds while an agent cannot write its store (a full disk), as it holds
        while a process is down: otherwise the world runs on without the agent, which sends
        nothing it has not persisted, and the day ends with its work undone (the disk drill
        found offers never measured). The wait is for room on a disk, so it is in real time."""
        failing = [a for a in self.agents if a.store_failing]
        if failing:
            log.warning("event=time-held-store-failing agents=%d example=%s", len(failing), failing[0].jid)
        while failing:
            await asyncio.sleep(STORE_RETRY_SECONDS)
            failing = [a for a in failing if not await a.retry_store()]
            for a in self.agents:
                if a not in failing and a.store_failing:  # another one failed meanwhile
                    failing.append(a)

    def _refresh_touched(self) -> None:
        touched, self._touched = self._touched, set()
        for i in touched:
            self.refresh(i)

    def _due_now(self, t: int, pop: bool = True) -> list[int]:
        """Agents whose engine has timed work due at or before ``t``."""
        out: list[int] = []
        seen: set[int] = set()
        keep: list[tuple[int, int, int]] = []
        while self._heap and self._heap[0][0] <= t:
            entry = heapq.heappop(self._heap)
            due, _, i = entry
            if self._due.get(i) != due or i in seen:
                continue
            seen.add(i)
            out.append(i)
            if not pop:
                keep.append(entry)
        for entry in keep:
            heapq.heappush(self._heap, entry)
        return out

    async def _handle_events(self, index: int, events: list[_Event]) -> None:
        agent = self.agents[index]
        engine = agent.engine
        # one step per event, one commit for the agent's events of the round
        await agent.handle_all([
            (lambda now, ev=ev: engine.presence(ev.peer, ev.payload, now)) if ev.kind == _PRESENCE
            else (lambda now, ev=ev: engine.receive(ev.peer, ev.payload, now))
            for ev in events])

    async def _tick(self, index: int) -> None:
        agent = self.agents[index]
        self._ticks[index] += 1
        if self._ticks[index] == MAX_TICKS_PER_INSTANT:
            log.error("event=tick-loop agent=%s time=%s (the engine keeps asking for a tick now; "
                      "left alone until its next message)", agent.jid, self.clock.now())
        self._due[index] = None  # ticked: its next due time is asked afresh afterwards
        await agent.handle(lambda now: agent.engine.tick(now), offload=agent.heavy_ticks)

    async def _arrivals(self, tag: tuple[int, int], expect: int) -> None:
        """Until ``expect`` messages of round ``tag`` have arrived (or :meth:`release`)."""
        self._released = False
        while self._arrived[tag] < expect and not self._released:
            self._arrival.clear()
            await self._arrival.wait()

    def release(self) -> None:
        """Stop waiting for this round's messages: a process died and what it sent may never
        come (the coordinator says so; the reliable layer resends what matters)."""
        self._released = True
        self._arrival.set()
