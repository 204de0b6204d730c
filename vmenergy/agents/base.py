"""The SPADE agent shell around a role engine.

A VME agent is thin: a received stanza becomes a protocol message value, the engine decides, the
agent persists what changed and carries out the engine's effects (send, drive a device, log).
Everything is sent over XMPP, also to agents in the same process, so the server sees (and a plain
XMPP client can join) all traffic.
"""

from __future__ import annotations

import asyncio
import logging
import random
import sqlite3
import time
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional, Protocol, TypeVar

from spade.agent import Agent
from spade.behaviour import CyclicBehaviour
from spade.message import SPADE_X_METADATA, Message as SpadeMessage
from spade.template import Template

from vmenergy.flexoffer import FlexOfferError
from vmenergy.flexoffer.timeutil import format_utc
from vmenergy.protocol.engine import Effect, Engine, Execute, Ledger, Note, RunDefault, Send, bare
from vmenergy.protocol import messages
from vmenergy.protocol.messages import Message
from vmenergy.protocol.operators import Operators
from vmenergy.runtime.clock import Clock, RealClock
from vmenergy.store import Store
from vmenergy.wire.messages import decode, encode_element, summary
from vmenergy.wire.stanzas import NS
from vmenergy.wire.xml import MAX_DEPTH, too_deep, written_size

from . import smacks
from .after_read import after_each_read
from .coalesced_writes import coalesce_writes, write_now
from .keepalive import Keepalive
from .stream_acks import BurstAcks
from .received import use_received_messages
from .send_now import send_now
from .unsent import keep, keep_unsent
from .operator import AdHocCommands, OperatorDesk
from .web.channel import WebPeers
from .web.config import WebConfig

__all__ = ["ServerAddress", "VmeMessage", "VmeAgent", "MAX_PAYLOAD_BYTES", "SIM_NS", "Driver"]

log = logging.getLogger("vmenergy.agent")

#: Largest protocol payload an agent reads (bytes of XML); bigger ones get an error reply.
#: Prosody's default c2s stanza limit is 256 KiB, so a bigger payload rarely even arrives.
MAX_PAYLOAD_BYTES = 256 * 1024
ONTOLOGY = "vmenergy"
#: Unanswered messages are resent after this many real seconds, doubling up to the maximum.
RESEND_REAL_SECONDS = 5.0
MAX_BACKOFF_REAL_SECONDS = 60.0
#: With a virtual clock nothing is lost while every process is up (time only moves when every
#: message has arrived), so resends only matter after a crash: scenario seconds.
RESEND_VIRTUAL_SECONDS = 60
MAX_BACKOFF_VIRTUAL_SECONDS = 900
#: Payloads up to this size are decoded on the event loop (microseconds to a millisecond); bigger
#: ones in a worker thread (a big polytope's satisfiability LP takes up to the solver budget,
#: vmenergy.flexoffer.limits.check_seconds).
DECODE_INLINE_BYTES = 16 * 1024
#: A commit of at least this many records (a round's aggregates and assignments) is written in a
#: worker thread, so the event loop keeps serving every agent of the process meanwhile.
OFFLOAD_WRITE_RECORDS = 2000
#: Namespace of the co-simulation tag a message carries under a virtual clock: the scenario
#: time and round that produced it (see vmenergy.runtime.coordinator).
SIM_NS = "urn:vmenergy:sim:1"
#: Reconnecting after the stream dropped: the first wait, the longest, and how long one attempt
#: may take (real seconds).
RECONNECT_FIRST = 0.5
RECONNECT_MAX = 30.0
RECONNECT_ATTEMPT_SECONDS = 20.0
#: While a peer has not been seen available, the subscription to it is repeated: first after
#: this many seconds, then at doubling intervals up to RESUBSCRIBE_MAX. A peer slow to answer is
#: mostly a busy one (an aggregator that 500 prosumers subscribe to): asking it every 2 s fed it
#: hundreds of requests a second more.
RESUBSCRIBE_EVERY = 2.0
RESUBSCRIBE_MAX = 30.0

#: Which element each message type travels as (without encoding it to find out): declared by
#: each message type, read live from the registry in vmenergy.protocol.messages.
ELEMENT_OF = messages.ELEMENT_OF
#: Per-message events logged at DEBUG (they happen all the time under load); the rest at INFO.
#: An accepted offer is one of them: a line per offer on both sides was 4-5 % of an agent's CPU
#: in a pipelined run; a rejection, which needs a look, stays at INFO.
QUIET_EVENTS = frozenset({"presence", "duplicate", "stray-ack", "resend", "queued", "offer-accepted"})

#: element -> SPADE performative, as each message type declares it.
_PERFORMATIVE = messages.PERFORMATIVE
T = TypeVar("T")


class Driver(Protocol):
    """What runs an agent's steps under a coordinated (virtual) clock instead of its SPADE
    behaviours: it takes the agent's incoming messages and presence changes, and tags and counts
    what it sends (see vmenergy.runtime.worker)."""

    def received(self, agent: "VmeAgent", sender: str, payload: Message, tag: Optional[tuple[int, int]]) -> None: ...

    def presence(self, agent: "VmeAgent", peer: str, available: bool) -> None: ...

    def sending(self, agent: "VmeAgent", to: str) -> Optional[tuple[int, int]]: ...

    def stepped(self, agent: "VmeAgent") -> None: ...


@dataclass(frozen=True)
class ServerAddress:
    """Where an agent connects: host and port of the XMPP server, and the CA file that signs its
    certificate (None: the system trust store). Certificates are always verified."""

    host: str = "127.0.0.1"
    port: int = 5222
    ca_file: Optional[str] = None


class VmeMessage(SpadeMessage):
    """A SPADE message that also carries one protocol element (``payload``).

    SPADE's Message only knows body, thread and string metadata; this adds the namespaced XML
    element on the way out (:meth:`prepare`) and keeps the decoded value on the way in.
    """

    __slots__ = ("payload", "arrived")

    def __init__(self, *args, payload: Optional[Message] = None, arrived: Optional[int] = None, **kw) -> None:
        super().__init__(*args, **kw)
        self.payload = payload
        self.arrived = arrived  # clock time the stanza was read from the stream

    def prepare(self, client):
        if self.payload is None or self.thread or set(self._metadata) != _METADATA_KEYS:
            return super().prepare(client)  # not one of ours as VmeMessage.of makes them
        # a VmeMessage carries SPADE metadata by construction, and SPADE's prepare writes it
        return protocol_stanza(client, str(self.to), str(self.sender), self.body, self.payload,
                               spade_metadata=True)

    @classmethod
    def of(cls, to: str, payload: Message) -> "VmeMessage":
        name = ELEMENT_OF[type(payload)]
        m = cls(to=to, body=summary(payload), payload=payload)
        m.set_metadata("ontology", ONTOLOGY)
        m.set_metadata("performative", _PERFORMATIVE.get(name, "inform"))
        m.set_metadata("vme-element", name)
        return m


#: The SPADE metadata a protocol message carries (a VmeMessage always; on the wire only with the
#: agent's ``spade_metadata`` switch, docs/protocol.md section 7).
_METADATA_KEYS = frozenset({"ontology", "performative", "vme-element"})
_CLIENT_NS = "jabber:client"
_FORM_NS = "jabber:x:data"
_FORMS: dict[str, ET.Element] = {}


def metadata_form(element: str) -> ET.Element:
    """The XEP-0004 form of SPADE metadata a protocol element travels with (``ontology``,
    ``performative``, ``vme-element``), as SPADE's ``Message.prepare`` writes it.

    It depends on the element only, so it is built once per element and copied (a C-level copy
    of a dozen nodes) instead of through slixmpp's ``Form`` stanza objects, which cost about
    60 us per message, most of an aggregator's send path (bench/RESULTS.md)."""
    form = _FORMS.get(element)
    if form is None:
        form = ET.Element(f"{{{_FORM_NS}}}x", {"type": "form"})
        for var, value in (("ontology", ONTOLOGY), ("performative", _PERFORMATIVE.get(element, "inform")),
                           ("vme-element", element)):
            field_el = ET.SubElement(form, f"{{{_FORM_NS}}}field", {"var": var, "type": "text-single"})
            ET.SubElement(field_el, f"{{{_FORM_NS}}}value").text = value
        ET.SubElement(form, f"{{{_FORM_NS}}}title").text = SPADE_X_METADATA
        _FORMS[element] = form
    return form.__deepcopy__({})


def protocol_stanza(client, to: str, sender: str, body: Optional[str], payload: Message, *,
                    spade_metadata: bool = False):
    """The ``<message/>`` stanza of a protocol message, written straight into the stanza's XML:
    the body line and the protocol element (docs/protocol.md section 7).

    ``spade_metadata``: also SPADE's metadata form, for third-party SPADE agents that route by
    templates; the stanza is then byte for byte what SPADE's ``Message.prepare`` plus the
    appended payload make of :meth:`VmeMessage.of` (a test compares them). Off by default: no
    receiver needs it, and it was half the elements of each stanza, which the server parses,
    copies and writes for every message (bench/RESULTS.md, "Agent path, round 4")."""
    stanza = client.Message()  # its id and xml:lang, as SPADE's
    stanza["to"] = to
    stanza["from"] = sender
    xml = stanza.xml
    if body:
        ET.SubElement(xml, f"{{{_CLIENT_NS}}}body").text = body
    xml.set("type", "chat")
    if spade_metadata:
        xml.append(metadata_form(ELEMENT_OF[type(payload)]))
    xml.append(encode_element(payload))
    return stanza


class InboxBehaviour(CyclicBehaviour):
    """Takes protocol messages (ontology ``vmenergy``) to the engine."""

    async def run(self) -> None:
        # what is queued already is taken at once; otherwise wait for the next message with no
        # timeout: SPADE's receive(timeout) starts a task and a timer for every message an idle
        # agent gets (each message of a one-at-a-time exchange), and polling would cost idle
        # agents CPU. kill() wakes the wait.
        msg = await self.receive(timeout=0)
        if msg is None:
            msg = await self.queue.get()
        if msg is None:  # kill()'s wake-up
            return
        # and what else has arrived meanwhile: one engine step each, one commit for them all
        burst = [msg]
        while len(burst) < INBOX_BURST and (more := await self.receive(timeout=0)) is not None:
            burst.append(more)
        agent: VmeAgent = self.agent  # type: ignore[assignment]
        steps = [agent.receiving(m) for m in burst if isinstance(m, VmeMessage) and m.payload is not None]
        if steps:
            await agent.handle_all(steps)

    def kill(self, exit_code=None) -> None:
        super().kill(exit_code)
        if self.queue is not None:
            self.queue.put_nowait(None)  # wakes run()'s wait, which then sees the kill


#: A read from the stream that brings at most this many protocol messages to an idle agent has
#: them stepped at once (VmeAgent._read_handled); a bigger one goes through the inbox.
DIRECT_STEPS_PER_READ = 4

#: At most this many queued messages are handled in one go (one commit): a longer burst is cut so
#: the agent's timed steps and other agents get the loop between commits.
INBOX_BURST = 256

#: Message types an operator's chat arrives as; errors, headlines and group chat are not answered
#: (answering an error could start a loop of errors between two parties).
CHAT_TYPES = ("chat", "normal", "")


class OperatorBehaviour(CyclicBehaviour):
    """Answers plain chat (an operator in any XMPP client) through the operator desk
    (:mod:`vmenergy.agents.operator`): commands by role, access by the ``[operators]`` table."""

    async def run(self) -> None:
        msg = await self.receive(timeout=30.0)
        if msg is None or isinstance(msg, VmeMessage) and msg.payload is not None:
            return
        if msg.get_metadata("xmpp-type") not in CHAT_TYPES:
            return
        agent: VmeAgent = self.agent  # type: ignore[assignment]
        answer = await agent.desk.chat(str(msg.sender), msg.body or "")
        if answer is not None:
            agent.tell(str(msg.sender), answer)


class StepBehaviour(CyclicBehaviour):
    """One timed step of the engine (a round, settlement, deadlines, resends...) as a behaviour
    of its own: it waits until the step is due, or until the agent's state changed (a message
    may bring the step forward), then runs it. An idle agent spends no CPU on waiting."""

    def __init__(self, step: str) -> None:
        super().__init__()
        self.step = step
        self.changed = asyncio.Event()

    def match(self, message) -> bool:
        # no template means "every message" to SPADE: each chat line would be queued here, where
        # nothing ever reads it (a leak, and two tasks per message and timed step)
        return False

    def kill(self, exit_code=None) -> None:
        # SPADE only sets a flag that a waiting behaviour never looks at: wake the wait too
        super().kill(exit_code)
        self.changed.set()

    async def run(self) -> None:
        agent: VmeAgent = self.agent  # type: ignore[assignment]
        engine = agent.engine
        timed = next(s for s in engine.timed_steps() if s.name == self.step)
        now = agent.now()
        due = timed.due(now)
        if due is not None and due <= now:
            # timed work (aggregation, planning, settlement) can take seconds: run it off the
            # event loop so the agent keeps reading its stream and time-stamping arrivals
            await agent.handle(lambda t: engine.run_step(self.step, t), offload=agent.heavy_ticks)
            after = timed.due(agent.now())
            if after is not None and after <= now:  # a step that stays due must not spin
                agent.log.error("event=step-stays-due step=%s", self.step)
                await asyncio.sleep(agent.tick_seconds)
            return
        self.changed.clear()
        if self.is_killed():
            return
        waits = {asyncio.ensure_future(self.changed.wait())}
        if due is not None:
            waits.add(asyncio.ensure_future(agent.clock.sleep_until(due)))
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            # SPADE's loop swallows a cancellation and runs the behaviour again: a loop that shuts
            # down would wait for it forever. Cancelled means done.
            self.kill()
            raise
        finally:
            for w in waits:
                w.cancel()
        if self.changed.is_set():  # a burst of messages: look again once, not after each one
            await asyncio.sleep(agent.tick_seconds)


class VmeAgent(Agent):
    """Base agent: connection, persistence, message plumbing, presence, status.

    With a real or accelerated clock the agent runs its own SPADE behaviours (an inbox, a
    periodic tick). With a virtual clock a :class:`Driver` runs its steps in the coordinator's
    rounds instead: incoming protocol messages and presence changes go to the driver, and every
    outgoing protocol message carries the round that produced it."""

    role = "node"
    #: XEP-0198 ack window (None: no stream management; see vmenergy.agents.smacks); a class
    #: setting so a benchmark can compare (bench_agents.py --sm).
    stream_management: Optional[int] = smacks.WINDOW
    #: Whether timed work can take long (aggregation, planning, clearing) and runs in a thread;
    #: a prosumer's ticks are cheap and a thread hop per tick is what idle agents spend CPU on.
    heavy_ticks = True
    #: SQLite page cache of the agent's store, KiB (None: SQLite's default, 2,000 KiB).
    store_cache_kib: Optional[int] = None
    #: Prepared statements the agent's store keeps for reuse (None: Python's default, 128).
    store_statements: Optional[int] = None

    def __init__(
        self,
        jid: str,
        password: str,
        *,
        server: ServerAddress = ServerAddress(),
        store_path: Optional[Path] = None,
        clock: Optional[Clock] = None,
        tick: float = 0.5,
        peers: tuple[str, ...] = (),
        max_payload_bytes: int = MAX_PAYLOAD_BYTES,
        driver: Optional[Driver] = None,
        operators: Operators = Operators(),
        web: Optional["WebConfig"] = None,
        spade_metadata: bool = False,
    ) -> None:
        super().__init__(jid, password, port=server.port, verify_security=True)
        self.server = server
        self.clock: Clock = clock or RealClock()
        self.driver = driver
        self.tick_seconds = tick
        self.peers = tuple(bare(p) for p in peers)
        self.max_payload_bytes = max_payload_bytes
        #: Whether protocol messages carry SPADE's metadata form (docs/protocol.md section 7): for
        #: third-party SPADE agents that route by templates; VME's receivers do not need it.
        self.spade_metadata = spade_metadata
        self.store = (Store(store_path, cache_kib=self.store_cache_kib, statements=self.store_statements)
                      if store_path is not None else None)
        # the ledger is loaded before the engine exists: engines rebuild what they keep live
        # (aggregates awaiting a schedule, open market sessions) from it in their constructor
        ledger = self.store.load() if self.store is not None else Ledger()
        self.engine: Engine = self.make_engine(ledger)
        if self.clock.mode == "virtual":
            self.engine.resend_after = RESEND_VIRTUAL_SECONDS
            self.engine.max_backoff = MAX_BACKOFF_VIRTUAL_SECONDS
        else:  # resend timeouts are about the network, which runs in real time: scale to clock time
            speed = float(getattr(self.clock, "speed", 1.0) or 1.0)
            self.engine.resend_after = max(1, int(RESEND_REAL_SECONDS * speed))
            self.engine.max_backoff = max(self.engine.resend_after, int(MAX_BACKOFF_REAL_SECONDS * speed))
        self._status = ""
        self._engine_lock = asyncio.Lock()
        self._available: dict[str, bool] = {}  # the peers' availability as presence last said
        self._ready = asyncio.Event()
        self._ticking = False
        self._step_behaviours: list[StepBehaviour] = []
        self._inbox: Optional[InboxBehaviour] = None  # where protocol messages go (no driver)
        self._decoding: Optional[asyncio.Future] = None  # the last payload being decoded off the loop
        #: Protocol messages of the read being handled, for an idle agent (None outside a read)
        self._read_arrivals: Optional[list[tuple["_Arrival", Message]]] = None
        self._down_since: Optional[float] = None  # monotonic time the stream dropped; None while up
        self._unflushed: list = []  # ledger changes a failing store (a full disk) held back
        self._batch: Optional[_Batch] = None  # this loop turn's steps, waiting for their commit
        #: What the agent did, counted (engine steps; presence stanzas from peers, and the ones
        #: that changed a peer's availability): reported per role in a run's timings.json.
        self.work: Counter[str] = Counter()
        self._writing: Optional[asyncio.Future] = None  # a big commit being written in a thread
        self._store_failing = False
        self._held_sends: list[Send] = []  # messages of steps a failing store could not persist
        self._reconnecting: Optional[asyncio.Future] = None
        self._stopping = False
        #: Called with (agent, up) when the link to the server drops or comes back (the swarm
        #: process tells its coordinator; ``vmenergy agent`` gives up after a while).
        self.link_watchers: list[Callable[["VmeAgent", bool], None]] = []
        #: Real seconds the first connection may take before start() fails naming the server
        #: (None: wait as long as it takes; ``vmenergy agent`` sets it, a swarm's server is up)
        self.connect_deadline: Optional[float] = None
        self.burst_acks: Optional[BurstAcks] = None  # with stream management, once connecting
        self.events: list[Note] = []  # recent notes, for tests and the operator
        self.log = _AgentLog(log, self)
        self.operators = operators
        self.desk = OperatorDesk(self)
        #: The ``[web]`` settings (None: no console, no REST interface); see vmenergy.agents.web.
        self.web_config = web
        self.console = None
        # protocol messages for token holders go to their HTTP mailboxes, not to XMPP
        self.web_peers: Optional[WebPeers] = None
        #: Called after every engine step (the console's live updates).
        self.step_watchers: list[Callable[[], None]] = []

    # -- to be provided by roles -----------------------------------------------------------
    def make_engine(self, ledger: Ledger) -> Engine:
        """The role's engine over ``ledger`` (empty, or restored from the store)."""
        raise NotImplementedError

    def approve(self, peer: str) -> bool:
        """Whether to accept a presence subscription from ``peer`` (a protocol peer; operators
        are approved apart, see :meth:`_on_subscribe`)."""
        return bare(peer) in self.peers

    def on_execute(self, effect: Execute) -> None:
        self.log.warning("event=execute-ignored offer=%s", effect.offer.id)

    def on_default(self, effect: RunDefault) -> None:
        """The offer will not be scheduled: its devices run their normal programme."""

    def startup_steps(self) -> list[Callable[[int], list[Effect]]]:
        """Engine steps to run when scenario time starts (a prosumer's initial offers)."""
        return []

    def progress(self) -> dict:
        """Counts for the run's progress line (summed over all agents by the coordinator)."""
        return {}

    # -- connection (SPADE's, with our server address and shared TLS context) ---------------
    async def _async_connect(self) -> None:  # pragma: no cover - exercised by integration tests
        from vmenergy.runtime.xmpp_tuning import apply_to_client

        apply_to_client(self.client, self.server.ca_file)
        client = self.client
        use_received_messages(client)  # SPADE's metadata forms stay XML (see received.py)
        coalesce_writes(client)  # a burst's stanzas in one TLS write (see coalesced_writes.py)
        # what one read brought is committed and answered when it has been handled (after_read.py)
        after_each_read(client, self._read_handled, before=self._reading)
        # XEP-0198 where the server offers it: after a network cut the stream is resumed and
        # what was sent in the gap is sent again (the reliable layer covers the rest)
        if self.stream_management is not None:
            # and asked for its ack when a burst ends, so sent stanzas do not wait in the queue
            # for the next burst (stream_acks.py, smacks.py)
            self.burst_acks = smacks.enable_stream_management(client, self.stream_management)
        # what was queued for sending when the stream dropped is resent after it, not lost
        # (after XEP-0198's filter: see unsent.py)
        keep_unsent(client)
        # Subscription requests are answered by _on_subscribe alone. slixmpp's defaults answer
        # every request too (approve, directed presence, and a request back): with VME's own
        # answer that was five stanzas per request, each answered again by the peer, which
        # flooded an aggregator's stream while 500 prosumers subscribed (bench/RESULTS.md).
        client.auto_authorize = None
        client.auto_subscribe = False
        # before connecting: requests held by the server while we were away arrive with our
        # first presence, before setup(), and the server does not deliver a repeated request
        # while one is pending (SPADE's default handler would drop them for good)
        self.presence.on_subscribe = self._on_subscribe
        # SPADE's XEP-0199 keepalive cut busy links and reconnected behind our back: a silence
        # watch instead, which leaves reconnecting to _reconnect (see keepalive.py)
        client.plugin["xep_0199"].disable_keepalive()
        client.plugin["xep_0199"].keepalive = False
        self.keepalive = Keepalive(client, self._cut_link, busy=self._server_busy)
        client.connected_event = asyncio.Event()
        client.disconnected_event = asyncio.Event()
        client.failed_auth_event = asyncio.Event()
        client.add_event_handler("session_start", self._session_started)
        client.add_event_handler("session_resumed", self._session_resumed)
        client.add_event_handler("disconnected", self._disconnected)
        client.add_event_handler("failed_all_auth", lambda _: client.failed_auth_event.set())
        client.add_event_handler("message", self._message_received)
        # slixmpp retries a refused or unreachable server forever without a word: a node started by
        # hand (connect_deadline set) says within seconds which host and port, and why
        failed = asyncio.Event()
        why: list[str] = []

        def connection_failed(error) -> None:
            why.append(str(error) or type(error).__name__)
            failed.set()

        client.add_event_handler("connection_failed", connection_failed)
        client.connect(host=self.server.host, port=self.server.port)
        tasks = {
            "connected": asyncio.create_task(client.connected_event.wait()),
            "disconnected": asyncio.create_task(client.disconnected_event.wait()),
            "failed_auth": asyncio.create_task(client.failed_auth_event.wait()),
        }
        if self.connect_deadline is not None:
            tasks["failed"] = asyncio.create_task(failed.wait())
        done, pending = await asyncio.wait(tasks.values(), timeout=self.connect_deadline,
                                           return_when=asyncio.FIRST_COMPLETED)
        for t in pending:
            t.cancel()
        client.del_event_handler("connection_failed", connection_failed)
        if tasks["failed_auth"] in done:
            from spade.agent import AuthenticationFailure

            raise AuthenticationFailure(f"{self.jid}: authentication failed at {self.server.host}:{self.server.port} "
                                        "(wrong password, or the account does not exist: register it first)")
        if tasks["connected"] not in done:
            from spade.agent import DisconnectedException

            client.cancel_connection_attempt()
            reason = why[-1] if why else (f"no XMPP session within {self.connect_deadline:g} s"
                                          if not done else "the server closed the stream")
            where = f"{self.server.host}:{self.server.port}"
            raise DisconnectedException(f"{self.jid}: cannot connect to {where}: {reason}")
        self.log.info("event=connected server=%s:%s", self.server.host, self.server.port)

    # -- the link to the server: reconnect with backoff, never a silent zombie --------------------
    @property
    def link_up(self) -> bool:
        """Whether the agent has a session with its server now."""
        client = self.client
        return bool(client is not None and getattr(client, "connected_event", None) and client.connected_event.is_set())

    def down_for(self) -> float:
        """Real seconds since the stream dropped (0 while connected)."""
        return 0.0 if self._down_since is None else time.monotonic() - self._down_since

    def _session_started(self, _event) -> None:
        """A new session (the first, or after a reconnect the server could not resume)."""
        fresh = self._down_since is not None
        self._link(True)
        self.keepalive.start()
        if fresh and self.presence is not None:
            # a new session starts unavailable, and some servers drop messages to a bare JID
            # without an explicit priority: say who we are again, and ask the peers afresh (a
            # restarted server forgot who was online; presence probes tell us again)
            self._available.clear()
            self.presence.set_presence(status=self.status_text(), priority=1)
            for peer in self.peers:
                self.presence.subscribe(peer)
            self.log.info("event=reconnected resumed=no")

    def _session_resumed(self, _event) -> None:
        self._link(True)
        self.keepalive.start()
        self.log.info("event=reconnected resumed=yes")

    def _cut_link(self) -> None:
        """The server has been silent through a ping: drop the transport (``disconnected``
        follows, and with it the one reconnect loop)."""
        self.log.warning("event=link-silent server=%s:%s", self.server.host, self.server.port)
        self.client.abort()

    def _server_busy(self) -> None:
        """The server has not answered a ping in time but its host takes our bytes: behind, not
        gone; the link is kept (keepalive.py)."""
        self.log.info("event=server-busy server=%s:%s", self.server.host, self.server.port)

    def _disconnected(self, _event) -> None:
        client = self.client
        self.keepalive.stop()
        client.disconnected_event.set()
        client.connected_event.clear()
        if self._stopping or not self.is_alive():
            return
        self._link(False)
        if self._reconnecting is None or self._reconnecting.done():
            self._reconnecting = asyncio.ensure_future(self._reconnect())

    def _link(self, up: bool) -> None:
        client = self.client
        if up:
            client.connected_event.set()
            self._down_since = None
        elif self._down_since is None:
            self._down_since = time.monotonic()
            self.log.warning("event=disconnected server=%s:%s", self.server.host, self.server.port)
        for watcher in list(self.link_watchers):
            watcher(self, up)

    async def _reconnect(self) -> None:
        """Connect again until a session is up: waits of 0.5 s doubling to 30 s, each with up to
        a quarter of random jitter (a restarted server is not hit by every agent at once)."""
        delay = RECONNECT_FIRST
        client = self.client
        while not self._stopping and self.is_alive() and not self.link_up:
            await asyncio.sleep(delay * (1 + random.random() / 4))
            if self._stopping or self.link_up:
                return
            client.disconnected_event.clear()
            self.log.info("event=reconnecting after=%.1fs", self.down_for())
            client.connect(host=self.server.host, port=self.server.port)
            up = asyncio.ensure_future(client.connected_event.wait())
            lost = asyncio.ensure_future(client.disconnected_event.wait())
            try:
                await asyncio.wait({up, lost}, timeout=RECONNECT_ATTEMPT_SECONDS, return_when=asyncio.FIRST_COMPLETED)
            finally:
                up.cancel()
                lost.cancel()
            if not self.link_up:
                client.cancel_connection_attempt()
                if client.transport is not None:
                    client.abort()
            delay = min(RECONNECT_MAX, delay * 2)

    async def setup(self) -> None:
        # The protocol elements are not registered as plugins of slixmpp's Message (plain clients
        # may, vmenergy.wire.stanzas.register_protocol_plugins): the agent reads and writes the
        # stanza's XML itself, and a registered element made slixmpp build a stanza object for
        # every element of every payload it received (about 45 us for an offer)
        self.presence.on_available = lambda jid, info, last: self._presence(jid, True)
        self.presence.on_unavailable = lambda jid, info, last: self._presence(jid, False)
        # explicit priority: some servers drop messages to a bare JID without it after a restart
        self.presence.set_presence(status=self.status_text(), priority=1)
        for peer in self.peers:
            self.presence.subscribe(peer)
        self._presence_from_contacts()
        self._check_ready()
        template = Template()
        template.set_metadata("ontology", ONTOLOGY)
        if self.driver is None:
            self._inbox = InboxBehaviour()
            self.add_behaviour(self._inbox, template)
        self.add_behaviour(OperatorBehaviour(), ~template)
        AdHocCommands(self).start()
        if self.web_config is not None:
            await self.start_web()
        if self.driver is None and self.clock.running:
            await self.start_time()
        self.log.info("event=started role=%s status=%r", self.role, self.engine.status())

    def mount_web(self) -> None:
        """Add the console and the REST interface (``[web]``) to SPADE's web application, and
        route the protocol messages for token holders to their HTTP mailboxes."""
        from .web.server import WebConsole

        self.console = WebConsole(self, self.web_config)  # type: ignore[arg-type]
        self.web_peers = WebPeers(frozenset(self.console.tokens.by_digest.values()))

    async def start_web(self) -> None:
        """Mount the web side and listen (on loopback unless configured otherwise)."""
        self.mount_web()
        await self.console.start()  # type: ignore[union-attr]

    def wake_steps(self) -> None:
        """The engine's state was changed outside an engine step (an operator, a test): the
        timed steps look again when they are due."""
        for behaviour in self._step_behaviours:
            behaviour.changed.set()

    async def start_time(self) -> None:
        """Scenario time has started (at once for a real clock; when every agent of the run is
        up for an accelerated one): run the start-up steps, then one behaviour per timed step
        of the engine."""
        if self._ticking:
            return
        self._ticking = True
        await self.handle_all(self.startup_steps())
        for timed in self.engine.timed_steps():
            behaviour = StepBehaviour(timed.name)
            self._step_behaviours.append(behaviour)
            self.add_behaviour(behaviour)

    # -- readiness --------------------------------------------------------------------------
    def _check_ready(self) -> None:
        if all(self._available.get(p, False) for p in self.peers):
            self._ready.set()

    async def wait_ready(self) -> None:
        """Until every peer this agent subscribes to has been seen available: before that a
        scenario's time must not start (its first messages would find nobody).

        A subscription sent before the peer's account existed (the peer's process is still
        starting) is dropped by some servers (ejabberd): it is sent again while a peer is missing."""
        wait = RESUBSCRIBE_EVERY
        while not self._ready.is_set():
            try:
                await asyncio.wait_for(self._ready.wait(), wait)
            except asyncio.TimeoutError:
                self._presence_from_contacts()
                for peer in self.missing_peers():
                    self.presence.subscribe(peer)
                wait = min(RESUBSCRIBE_MAX, wait * 2)

    def missing_peers(self) -> list[str]:
        return [p for p in self.peers if not self._available.get(p, False)]

    # -- incoming ---------------------------------------------------------------------------
    def _message_received(self, stanza):
        # first of all, before anything serialises or copies the stanza (both recurse: a stanza
        # nested ~1,000 deep overflowed the stack and slixmpp's error reply, a deep copy of it,
        # cut the stream for good)
        if any(too_deep(el) for el in stanza.xml):
            return self._error_reply(stanza, f"elements nested more than {MAX_DEPTH} deep")
        payloads = [el for el in stanza.xml if isinstance(el.tag, str) and el.tag.startswith("{" + NS + "}")]
        if not payloads:
            # chat (an operator): SPADE's message keeps no stanza type, which the desk needs
            msg = SpadeMessage.from_node(stanza)
            msg.set_metadata("xmpp-type", str(stanza["type"] or ""))
            return self.dispatch(msg)
        if stanza["type"] == "error":
            self.log.warning("event=error-received from=%s text=%r", stanza["from"], stanza["error"]["text"])
            return []
        sender = str(stanza["from"])
        if len(payloads) > 1:
            return self._error_reply(stanza, "one protocol element per message")
        el = payloads[0]
        size = written_size(el)
        if size > self.max_payload_bytes:
            return self._error_reply(stanza, f"payload of {size} bytes exceeds {self.max_payload_bytes}")
        arrival = _Arrival(sender, stanza["body"], _sim_tag(stanza), self.now())
        if size <= DECODE_INLINE_BYTES and self._decoding is None:
            try:  # the common case: small, and nothing ahead of it
                payload = decode(el)
            except FlexOfferError as exc:
                return self._error_reply(stanza, str(exc))
            return self._deliver(arrival, payload)
        # a big payload (a polytope's LP can take a while) is decoded in a worker thread, so the
        # event loop keeps serving every agent of the process; what arrives meanwhile waits
        # behind it, so the agent still sees its messages in the order they came
        ahead = self._decoding
        task = asyncio.ensure_future(self._decode_later(ahead, stanza, el, arrival, size > DECODE_INLINE_BYTES))
        self._decoding = task
        task.add_done_callback(self._decoded)
        return []

    async def _decode_later(self, ahead: Optional[asyncio.Future], stanza, el: ET.Element, arrival: "_Arrival",
                            offload: bool) -> None:
        if ahead is not None:
            await asyncio.wait({ahead})
        try:
            payload = await asyncio.to_thread(decode, el) if offload else decode(el)
        except FlexOfferError as exc:
            self._error_reply(stanza, str(exc))
            return
        self._deliver(arrival, payload)

    def _decoded(self, task: asyncio.Future) -> None:
        if self._decoding is task:
            self._decoding = None
        if not task.cancelled() and task.exception() is not None:
            self.log.error("event=decode-failed error=%r", task.exception())

    def _deliver(self, arrival: "_Arrival", payload: Message) -> list:
        self.desk.watch(False, arrival.sender, payload)
        if self.driver is not None:
            self.driver.received(self, arrival.sender, payload, arrival.tag)
            return []
        if self._read_arrivals is not None and self._inbox_idle():
            # in a read from the stream, with nothing ahead of it: held until the read is over,
            # then stepped at once if the read brought only a few (see _read_handled)
            self._read_arrivals.append((arrival, payload))
            return []
        return self._to_inbox(arrival, payload)

    def _to_inbox(self, arrival: "_Arrival", payload: Message) -> list:
        msg = VmeMessage(to=str(self.jid), sender=arrival.sender, body=arrival.body, payload=payload,
                         arrived=arrival.at)
        msg.set_metadata("ontology", ONTOLOGY)
        inbox = self._inbox
        if inbox is None or inbox.is_killed():
            return self.dispatch(msg)
        # straight into the inbox: SPADE's dispatch would match every behaviour's template, start
        # two tasks per match and format the message for a debug line and its trace store
        inbox.queue.put_nowait(msg)
        return []

    def _error_reply(self, stanza, text: str) -> list:
        self.log.warning("event=bad-stanza from=%s reason=%r", stanza["from"], text)
        if stanza["type"] == "error":  # never answer an error with an error (RFC 6120 8.3.1)
            return []
        err = self.client.make_message(mto=stanza["from"], mbody=f"error: {text}", mtype="error")
        if stanza["id"]:
            err["id"] = stanza["id"]
        err["error"]["type"] = "modify"
        err["error"]["condition"] = "bad-request"
        err["error"]["text"] = text[:1000]
        err.send()
        return []

    def _on_subscribe(self, peer: str) -> None:
        """One answer per request: approve a peer (and ask for its presence in turn unless the
        server's roster says we have it already); approve an operator; ignore anyone else."""
        self.work["subscriptions_in"] += 1
        if self.approve(peer):
            self.presence.approve_subscription(peer)
            if not self._subscribed_to(peer):
                self.presence.subscribe(peer)
        elif peer in self.operators:  # operators see the agent's status; it need not see theirs
            self.presence.approve_subscription(peer)

    def _subscribed_to(self, peer: str) -> bool:
        """Whether the server's roster (its pushes, not our own guess) says we receive ``peer``'s
        presence. A pending request does not count: the server keeps it pending even when it
        could not deliver it (the peer's account did not exist yet), so it is asked again."""
        roster = self.client.client_roster
        return bool(roster.has_jid(peer) and roster[peer]["to"])

    def _presence_from_contacts(self) -> None:
        """Peers SPADE saw available whose presence we missed: it arrived between session start
        and :meth:`setup` (the server answers its probes at once, before the callbacks above
        exist; SPADE records it in its contacts). Found by the prosumer drill: a restarted
        process whose aggregator was idle (time held while it was down) never heard of it again
        and waited for it for ever."""
        for peer in self.peers:
            contact = self.presence.contacts.get(peer)
            if contact is not None and contact.is_available():
                self._presence(peer, True)

    def _presence(self, jid: str, available: bool) -> None:
        peer = bare(jid)
        self.work["presence_stanzas"] += 1
        if peer == bare(str(self.jid)) or self._available.get(peer) is available:
            return  # our own resources, or only the status text changed
        if peer in self.operators and peer not in self.peers:
            return  # a person's presence is none of the engine's business
        self._available[peer] = available
        self.work["presence_changes"] += 1
        self._check_ready()
        if self.driver is not None:
            self.driver.presence(self, peer, available)
            return
        asyncio.ensure_future(self.handle(lambda now: self.engine.presence(peer, available, now)))

    # -- effects ----------------------------------------------------------------------------
    def now(self) -> int:
        return int(self.clock.now())

    def full_jid(self) -> str:
        """The JID of this agent's session (with its resource): where ad-hoc commands are."""
        client = self.client
        return str(client.boundjid.full) if client is not None else str(self.jid)

    def receiving(self, msg: VmeMessage) -> Callable[[int], list[Effect]]:
        """The engine step that takes protocol message ``msg`` in; deadlines are judged at its
        arrival, not after whatever the agent was busy with."""
        payload = msg.payload
        if payload is None:
            raise ValueError("receiving: a message without a protocol payload")
        sender, arrived = str(msg.sender), msg.arrived
        return lambda now: self.engine.receive(sender, payload, arrived if arrived is not None else now)

    async def read(self, view: Callable[[int], "T"], *, offload: bool = False) -> "T":
        """``view(now)`` between engine steps, so it sees a consistent ledger (an operator's
        read); ``offload``: in a worker thread, for a view that may take long."""
        async with self._engine_lock:
            if offload:
                return await asyncio.to_thread(view, self.now())
            return view(self.now())

    def tell(self, to: str, text: str) -> None:
        """A plain chat line to a person (an operator's reply, a watch line)."""
        self.client_send(SpadeMessage(to=str(to), body=text))

    async def handle(self, step: Callable[[int], list[Effect]], *, offload: bool = False) -> list[Effect]:
        """Run one engine step, persist what changed, then carry out its effects (see
        :meth:`handle_all`); ``offload``: the step runs in a worker thread while the event loop
        keeps serving the connection (timed work that can take seconds)."""
        return await self.handle_all([step], offload=offload)

    async def handle_all(self, steps: list[Callable[[int], list[Effect]]], *, offload: bool = False) -> list[Effect]:
        """Run engine steps one after the other, persist what they changed, then carry out their
        effects; returns the effects carried out.

        Steps are serialised (one at a time per agent). What steps change in one turn of the event
        loop is written in one SQLite transaction (:class:`_Batch`), not one per step: a burst of
        messages costs one commit. Their effects wait for that commit: persisting before sending
        means a crash can only lose input that was not acknowledged yet (the sender resends it)
        and messages not sent yet (the restarted engine resends them from its outbox)."""
        if self.driver is not None:
            self.driver.stepped(self)
        made: list[tuple[_Batch, list[Effect]]] = []
        async with self._engine_lock:
            for step in steps:
                if offload:
                    done, changes = await asyncio.to_thread(self._run_step, step)
                else:
                    done, changes = self._run_step(step)
                made.append((self._batched(changes, done), done))
        effects: list[Effect] = []
        for batch, done in made:
            await batch.committed
            effects += done if batch.persisted else [e for e in done if not isinstance(e, Send)]
        return effects

    def step_now(self, step: Callable[[int], list[Effect]]) -> None:
        """Run one engine step at once, from a callback of the event loop (not a coroutine): as
        :meth:`handle` does, but nobody waits for it; its changes join this turn's commit and its
        effects are carried out after it. Only while no step is running (the engine lock is free),
        or the steps would interleave."""
        if self._engine_lock.locked():
            raise RuntimeError("step_now: an engine step is running (its lock is held)")
        done, changes = self._run_step(step)
        batch = self._batched(changes, done)
        if not batch.watched:  # a failed commit is a bug; with no caller to see it, the log does
            batch.watched = True
            batch.committed.add_done_callback(self._commit_failed)

    def _commit_failed(self, committed: asyncio.Future) -> None:
        if not committed.cancelled() and committed.exception() is not None:
            self.log.error("event=commit-failed error=%r", committed.exception())

    def _run_step(self, step: Callable[[int], list[Effect]]) -> tuple[list[Effect], list]:
        self.work["steps"] += 1
        try:
            effects = step(self.now())
        except Exception:  # an engine bug must not kill the agent; it is logged loudly
            self.log.exception("event=engine-error")
            self.engine.ledger.take_changes()
            return [], []
        return effects, self.engine.ledger.take_changes()

    def _batched(self, changes: list, effects: list[Effect]) -> "_Batch":
        """Add a step's changes and effects to this loop turn's batch (opening one, whose commit
        runs when the loop has run what is ready now)."""
        batch = self._batch
        if batch is None:
            loop = asyncio.get_running_loop()
            batch = self._batch = _Batch(loop.create_future())
            loop.call_soon(self._commit, batch)
        batch.changes += changes
        batch.effects += effects
        return batch

    def _inbox_idle(self) -> bool:
        """No engine step runs (the lock is free) and no message waits in the inbox."""
        inbox = self._inbox
        return inbox is not None and not inbox.is_killed() and inbox.queue.empty() and not self._engine_lock.locked()

    def _reading(self) -> None:
        self._read_arrivals = []

    def _read_handled(self) -> None:
        """The client has handled one read from the stream. The protocol messages it brought to
        an idle agent are stepped now, in the callback that read them, if they are at most
        DIRECT_STEPS_PER_READ; instead of in the inbox's task, a task switch later (each message
        of a one-at-a-time exchange paid that switch, ~0.1 ms a side: bench/RESULTS.md, "Agent
        path, round 5"). Nothing else stepped meanwhile (the lock was free, the inbox empty), so
        the engine sees messages in the order they came. A read that brought more (a burst of
        offers) goes to the inbox as before, which takes what arrives while it works in one
        commit: stepped here, every read of a pipelined burst was its own commit and write,
        3x the aggregator's commits and ~19 % more Prosody CPU per offer.

        Then what the steps changed is committed now and the answers written, rather than on the
        loop's next round (see after_read.py): the same commit, earlier."""
        arrivals, self._read_arrivals = self._read_arrivals or [], None
        if arrivals:
            if len(arrivals) <= DIRECT_STEPS_PER_READ and self._inbox_idle():
                for arrival, payload in arrivals:
                    sender, at = arrival.sender, arrival.at
                    self.step_now(lambda now, sender=sender, payload=payload, at=at:
                                  self.engine.receive(sender, payload, at))
            else:
                for arrival, payload in arrivals:
                    self._to_inbox(arrival, payload)
        batch = self._batch
        if batch is not None:
            self._commit(batch)
        if self.client is not None:
            write_now(self.client)

    def _commit(self, batch: "_Batch") -> None:
        if batch.started:  # committed at the end of a read already; this is its call_soon
            return
        batch.started = True
        if self._batch is batch:
            self._batch = None  # steps from now on go into the next batch
        ahead = self._writing
        if (ahead is not None and not ahead.done()) or len(batch.changes) >= OFFLOAD_WRITE_RECORDS:
            # a big write (a round's aggregates and assignments) goes to a thread; what comes
            # after it waits behind it, so effects still go out in the order the steps made them
            self._writing = asyncio.ensure_future(self._commit_later(batch, ahead))
            return
        try:
            self._done(batch, self.store is None or self._persist(batch.changes))
        except Exception as exc:  # a bug (a record the codec cannot write): the steps' callers see it
            if not batch.committed.done():
                batch.committed.set_exception(exc)

    async def _commit_later(self, batch: "_Batch", ahead: Optional[asyncio.Future]) -> None:
        if ahead is not None:
            await asyncio.wait({ahead})
        try:
            ok = self.store is None or await asyncio.to_thread(self._persist, batch.changes)
            self._done(batch, ok)
        except Exception as exc:
            if not batch.committed.done():
                batch.committed.set_exception(exc)

    def _done(self, batch: "_Batch", persisted: bool) -> None:
        # not persisted (a full disk), so not sent: a crash now must not leave a peer holding an
        # answer the store does not know. They are held until the store writes (then sent at
        # once, so a full disk that is freed changes nothing but time); after a crash, reliable
        # messages go out again from the outbox and answers are repeated when the peer resends.
        batch.persisted = persisted
        if not persisted:
            self._held_sends += [e for e in batch.effects if isinstance(e, Send)]
            self._apply([e for e in batch.effects if not isinstance(e, Send)])
        else:
            held, self._held_sends = self._held_sends, []
            self._apply(held + batch.effects)
        self.wake_steps()  # the state changed: a step may be due sooner
        for watcher in list(self.step_watchers):  # the console's live updates
            watcher()
        if not batch.committed.done():
            batch.committed.set_result(None)

    async def settled(self) -> None:
        """Until what the steps so far changed is written and their effects carried out."""
        while self._batch is not None or (self._writing is not None and not self._writing.done()):
            if self._batch is not None:
                await self._batch.committed
            else:
                await asyncio.wait({self._writing})  # type: ignore[arg-type]

    @property
    def store_failing(self) -> bool:
        """The last write to the store failed (a full disk); changes are held back."""
        return self._store_failing

    async def retry_store(self) -> bool:
        """Try again to write what a failing store held back; True once it is written, and then
        the messages held meanwhile are sent."""
        await self.settled()  # a commit under way comes first
        async with self._engine_lock:
            if not self._persist([]):
                return False
            held, self._held_sends = self._held_sends, []
        self._apply(held)
        return True

    def _persist(self, changes: list) -> bool:
        """Write ``changes`` (and any a full disk held back) to the store; False if it failed."""
        pending = self._unflushed + changes
        try:
            if self.store.flush(pending):  # type: ignore[union-attr]
                self.work["commits"] += 1
        except (sqlite3.Error, OSError) as exc:
            # a full disk: keep the changes (newest value per key) for the next write
            self._unflushed = [(t, k, v) for (t, k), v in {(t, k): v for t, k, v in pending}.items()]
            if not self._store_failing:
                self._store_failing = True
                self.log.error("event=store-write-failed error=%r (held back until it can write; nothing is "
                               "sent meanwhile)", exc)
            return False
        if self._store_failing:
            self._store_failing = False
            self.log.warning("event=store-writable-again records=%d", len(pending))
        self._unflushed = []
        return True

    def _apply(self, effects: list[Effect]) -> None:
        for effect in effects:
            if isinstance(effect, Send):
                if self.web_peers is not None and effect.to in self.web_peers:
                    self.web_peers.deliver(effect.to, effect.msg)
                else:
                    self.send_protocol(effect.to, effect.msg)
                self.desk.watch(True, effect.to, effect.msg)
            elif isinstance(effect, Execute):
                self.on_execute(effect)
            elif isinstance(effect, RunDefault):
                self.on_default(effect)
            elif isinstance(effect, Note):
                self.events.append(effect)
                del self.events[:-500]
                level = logging.DEBUG if effect.event in QUIET_EVENTS else logging.INFO
                if self.log.isEnabledFor(level):
                    fields = " ".join(f"{k}={v}" for k, v in effect.fields.items())
                    self.log.log(level, "event=%s %s", effect.event, fields)
        self._update_status()

    def client_send(self, msg: SpadeMessage) -> None:
        if msg.sender is None or str(msg.sender) == "None":
            msg.sender = str(self.jid)
        if isinstance(msg, VmeMessage) and msg.payload is not None:
            return self.send_protocol(str(msg.to), msg.payload)
        if self.client is not None:
            self._send_stanza(msg.prepare(self.client))

    def send_protocol(self, to: str, payload: Message) -> None:
        """Send one protocol message (with its body line, and SPADE's metadata form if the agent
        is set to, see :func:`protocol_stanza`), tagged with its round under a driver."""
        if self.client is None:
            return  # not started, or stopped: reliable messages stay in the outbox and are resent
        stanza = protocol_stanza(self.client, to, str(self.jid), summary(payload), payload,
                                 spade_metadata=self.spade_metadata)
        if self.driver is not None:
            tag = self.driver.sending(self, to)
            if tag is not None:
                stanza.xml.append(_sim_element(tag))
        self._send_stanza(stanza)

    def _send_stanza(self, stanza) -> None:
        """Send, or while the link is down keep it for the stream's return (unsent.keep): after
        a resumption it follows what the server had not acknowledged, in the order sent. It was
        dropped here before, so an answer made while the link was down (an aggregator taking in
        the offers it read just before its stream was cut) never reached its peer."""
        if self.link_up:
            send_now(self.client, stanza)  # written in this turn unless slixmpp's queue holds some
        else:
            keep(self.client, stanza)

    def _update_status(self) -> None:
        # presence goes to every subscriber (an aggregator's thousands of prosumers): it says
        # whether the agent is there and whether an operator paused it, nothing that changes
        # with each message (counts are the desk's ``status``), so work causes no broadcast
        status = self.status_text()
        if status != self._status and self.presence is not None and self.is_alive():
            self._status = status
            self.presence.set_presence(status=status, priority=1)

    def status_text(self) -> str:
        """The presence status: the role, and whether an operator paused it (constant while the
        agent works; see :meth:`_update_status`)."""
        return self.role + (" (paused)" if self.engine.paused else "")

    async def stop(self) -> None:
        self._stopping = True
        if self._reconnecting is not None:
            self._reconnecting.cancel()
        await super().stop()
        await self.settled()  # what was handled is written before the store closes
        if self.store is not None:
            # closing checkpoints the WAL into the file and syncs it: ~13 ms of waiting on the
            # disk per store, which a process stopping thousands of agents did one after the
            # other on its event loop (bench/RESULTS.md, "Scale ladder, round 4")
            await asyncio.to_thread(self.store.close)


class _AgentLog(logging.LoggerAdapter):
    """Log lines name the agent and, unless the clock is the wall clock, the scenario time
    (``at=``): a log of a simulated day is read in simulated time."""

    def __init__(self, logger: logging.Logger, agent: "VmeAgent") -> None:
        super().__init__(logger, {"agent": str(agent.jid)})
        self.agent = agent

    def process(self, msg, kwargs):
        extra = {"agent": str(self.agent.jid)}
        if self.agent.clock.mode != "real":
            extra["at"] = format_utc(int(self.agent.clock.now()))
        kwargs["extra"] = extra
        return msg, kwargs


@dataclass(eq=False)
class _Batch:
    """The steps of one event-loop turn: their changes go to the store in one transaction, then
    their effects are carried out (see :meth:`VmeAgent.handle_all`)."""

    committed: asyncio.Future
    changes: list = field(default_factory=list)
    effects: list = field(default_factory=list)
    persisted: bool = False
    watched: bool = False  # a failed commit is logged (steps run by step_now have no caller)
    started: bool = False  # its commit has begun (at the end of a read, or in its loop turn)


@dataclass(frozen=True)
class _Arrival:
    """What the stream said of a protocol message when it arrived (its payload may be decoded
    later, off the event loop)."""

    sender: str
    body: Optional[str]
    tag: Optional[tuple[int, int]]
    at: int


def _sim_element(tag: tuple[int, int]) -> ET.Element:
    """``<at xmlns="urn:vmenergy:sim:1" t="..." round="..."/>``: when a message was produced."""
    return ET.Element(f"{{{SIM_NS}}}at", {"t": str(int(tag[0])), "round": str(int(tag[1]))})


def _sim_tag(stanza) -> Optional[tuple[int, int]]:
    el = stanza.xml.find(f"{{{SIM_NS}}}at")
    if el is None:
        return None
    try:
        return int(el.get("t", "")), int(el.get("round", ""))
    except ValueError:
        return None
