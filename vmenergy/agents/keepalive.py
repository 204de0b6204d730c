"""Whether an agent's link to its server is alive: any stanza received proves it; a ping is
sent only after a silence, and the link is cut only when that ping goes unanswered.

Why not slixmpp's XEP-0199 keepalive (which SPADE turns on): it pings every 55 s whatever the
traffic and, when the answer is late by 30 s, calls slixmpp's own ``reconnect()``. An aggregator
busy with the presence of 500 subscribing prosumers reads its stream far behind the server, so
the answer was late although the link was fine (the stream dropped exactly 85 s after each
connect), and slixmpp's reconnect then raced VME's reconnect loop on the same client: two
connection attempts interleaved, which the server saw as TLS "wrong version number" and the
client as a parse error. Here a late answer on a link that keeps delivering is no failure, and a
dead link is only cut: reconnecting stays with the agent's one reconnect loop.

:class:`LinkPolicy` is the decision (events in, an action out; no clock, no I/O);
:class:`Keepalive` runs it on a client in real time (a link is wall-clock business, not
scenario time).

A ping unanswered is not yet a dead link: a server whose host still takes the bytes we send
(the kernel's acknowledgements, :class:`Transport`) is alive but behind. At 10,000 prosumers the
noon burst left ~236 MB of offers in Prosody's socket buffers; one pass of its loop over 10,000
sockets took minutes, every agent's ping waited that long, every link was cut at once, and the
10,000 reconnects queued behind the same backlog (bench/RESULTS.md, "10,000 prosumers: the server
starved"). Now such a link waits (:attr:`Action.BUSY`) up to ``hung_after``; a link whose bytes
stop being acknowledged (a dead path) is still cut after ``cut_after``.
"""

from __future__ import annotations

import asyncio
import enum
import fcntl
import socket
import struct
import termios
import time
from dataclasses import dataclass
from typing import Any, Callable, Optional

from .smacks import ARRIVAL_ONLY

from vmenergy.errors import VmeError

__all__ = ["Action", "LinkPolicy", "Keepalive", "Transport", "transport_state"]

#: Seconds of silence before a ping, and seconds of further silence after it before the link is
#: cut. SPADE's interval; the time-out is longer than slixmpp's 30 s because only silence counts.
PING_AFTER = 55.0
CUT_AFTER = 60.0
#: A watch that wakes this many seconds after its due time found its own event loop busy: the
#: time it was late is not counted as the link's silence (:meth:`LinkPolicy.stalled`).
STALL_AFTER = 1.0
#: Seconds after the ping that a server whose host still takes our bytes may stay silent before
#: it is judged hung and the link cut anyway (a stopped or wedged server process keeps its
#: kernel acknowledging; a backlog of minutes at 10,000 agents is not that).
HUNG_AFTER = 600.0
#: While a link waits on a busy server, how often the kernel's view is read again.
BUSY_RECHECK = 5.0


class Action(enum.Enum):
    NOTHING = "nothing"
    PING = "ping"
    CUT = "cut"
    BUSY = "busy"  # the ping is overdue but the server's host takes our bytes: wait, look again


@dataclass(frozen=True)
class Transport:
    """What the kernel says about the connection when a ping is overdue."""

    unacked_bytes: int  # written by us and not yet acknowledged by the server's host
    since_ack: float  # seconds since the server's host last acknowledged anything

    def taking(self, within: float) -> bool:
        """Whether the server's host takes what we send: everything acknowledged, or an
        acknowledgement within ``within`` seconds (a full receive window still answers the
        kernel's window probes)."""
        return self.unacked_bytes == 0 or self.since_ack < within


@dataclass
class LinkPolicy:
    """When to ping and when to give a link up, from the times stanzas arrived (seconds on any
    monotonic clock)."""

    ping_after: float = PING_AFTER
    cut_after: float = CUT_AFTER
    hung_after: float = HUNG_AFTER
    last_heard: float = 0.0
    ping_sent: Optional[float] = None  # when the ping still unanswered by any stanza went out

    def __post_init__(self) -> None:
        for name in ("ping_after", "cut_after", "hung_after"):
            value = getattr(self, name)
            if not value > 0:
                raise VmeError(name, f"must be a positive number of seconds, got {value!r}")
        if self.hung_after < self.cut_after:
            raise VmeError("hung_after", f"must be at least cut_after ({self.cut_after!r} s), got {self.hung_after!r}")

    def connected(self, now: float) -> None:
        """A session started (or resumed): a fresh start, nothing owed."""
        self.last_heard = now
        self.ping_sent = None

    def heard(self, now: float) -> None:
        """A stanza arrived: the link works, whatever was asked of it before."""
        self.last_heard = max(self.last_heard, now)
        self.ping_sent = None

    def pinged(self, now: float) -> None:
        self.ping_sent = now

    def stalled(self, gap: float) -> None:
        """The agent's own event loop ran no I/O for ``gap`` seconds (a long synchronous step:
        a swarm process's first round plans the devices of thousands of prosumers at once).
        Whatever the server sent meanwhile is still unread, and the watch's timer runs before
        the loop reads its sockets (uvloop), so that time is not silence: the watch moves
        forward by ``gap``. (Written for the 5,000 and 10,000 rungs of round 4, whose links were
        all cut; it did not prevent that: the server was behind, see the module docstring.)"""
        if gap > 0:
            self.last_heard += gap
            if self.ping_sent is not None:
                self.ping_sent += gap

    def check(self, now: float, transport: Optional[Transport] = None) -> Action:
        """What to do at ``now``: a link silent since a ping went out ``cut_after`` ago is cut,
        unless ``transport`` shows the server's host taking our bytes (then it waits, up to
        ``hung_after`` after the ping); a link silent for ``ping_after`` is pinged; otherwise
        nothing. Without ``transport`` (not known) an overdue ping cuts."""
        if self.ping_sent is not None:
            waited = now - self.ping_sent
            if waited < self.cut_after:
                return Action.NOTHING
            if transport is not None and transport.taking(self.cut_after) and waited < self.hung_after:
                return Action.BUSY
            return Action.CUT
        return Action.PING if now - self.last_heard >= self.ping_after else Action.NOTHING

    def next_check(self, now: float) -> float:
        """Seconds until :meth:`check` can answer something else than it does at ``now``."""
        if self.ping_sent is not None:
            return max(0.0, self.ping_sent + self.cut_after - now)
        return max(0.0, self.last_heard + self.ping_after - now)


def transport_state(sock: Any) -> Optional[Transport]:
    """The kernel's view of a connected TCP socket (anything with ``fileno()`` and
    ``getsockopt()``: a socket, asyncio's or uvloop's stand-in for it): bytes not yet
    acknowledged (``SIOCOUTQ``) and the time since the last acknowledgement (``TCP_INFO``
    ``tcpi_last_ack_recv``). None where it cannot be read (not Linux, not TCP, closed)."""
    try:
        fd = sock.fileno()
        unacked = struct.unpack("i", fcntl.ioctl(fd, termios.TIOCOUTQ, b"\0\0\0\0"))[0]
        # struct tcp_info: 8 one-byte fields, then u32s: rto, ato, snd_mss, rcv_mss, unacked,
        # sacked, lost, retrans, fackets, last_data_sent, last_ack_sent, last_data_recv,
        # last_ack_recv (milliseconds) at offset 56
        info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 60)
        (last_ack_recv,) = struct.unpack_from("I", info, 56)
    except (OSError, ValueError, AttributeError, struct.error):
        return None
    return Transport(unacked_bytes=int(unacked), since_ack=last_ack_recv / 1000.0)


class Keepalive:
    """:class:`LinkPolicy` on a slixmpp client: incoming stanzas are noted by an ``in`` filter
    (one float stored per stanza), a task wakes when the policy's next decision is due, pings
    the server when told to, reads the kernel's view of the connection when a ping is overdue,
    calls ``busy`` once per overdue ping the server's host still acknowledges, and calls ``cut``
    (which aborts the transport; the agent's ``disconnected`` handler then reconnects) when
    told to."""

    def __init__(self, client: Any, cut: Callable[[], None], policy: Optional[LinkPolicy] = None,
                 clock: Callable[[], float] = time.monotonic,
                 busy: Optional[Callable[[], None]] = None) -> None:
        self.client = client
        self.cut = cut
        self.busy = busy
        self.policy = policy or LinkPolicy()
        self.clock = clock
        self._busy_for: Optional[float] = None  # the ping already reported busy
        self._task: Optional[asyncio.Task] = None
        self._wake = asyncio.Event()
        client.add_filter("in", self._heard)

    def _heard(self, stanza: Any) -> Any:
        self.policy.heard(self.clock())
        return stanza

    # it reads nothing of the stanza: the stream-management short way calls it for an <r/> or
    # <a/> without building a stanza object (smacks.ARRIVAL_ONLY)
    setattr(_heard, ARRIVAL_ONLY, True)

    def start(self) -> None:
        """The session is up: watch it (again)."""
        self.policy.connected(self.clock())
        if self._task is None or self._task.done():
            self._task = asyncio.ensure_future(self._run())
        self._wake.set()

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None

    def _transport(self) -> Optional[Transport]:
        transport = getattr(self.client, "transport", None)
        sock = transport.get_extra_info("socket") if transport is not None else None
        return transport_state(sock) if sock is not None else None

    async def _run(self) -> None:
        wait: Optional[float] = None  # set while waiting on a busy server
        while True:
            self._wake.clear()
            now = self.clock()
            due = now + (wait if wait is not None else self.policy.next_check(now) + 0.01)
            wait = None
            try:
                await asyncio.wait_for(self._wake.wait(), due - self.clock())
            except asyncio.TimeoutError:
                pass
            late = self.clock() - due
            if late > STALL_AFTER:
                # the loop was busy past the due time, and timers run before the loop reads its
                # sockets (uvloop): give the time back, read what waits, then decide
                self.policy.stalled(late)
                continue
            now = self.clock()
            action = self.policy.check(now)
            if action is Action.CUT:  # overdue: ask the kernel whether the server takes our bytes
                action = self.policy.check(now, self._transport())
            if action is Action.PING:
                self.policy.pinged(now)
                # no answer is awaited here: any stanza, the answer included, is proof of life
                answer = self.client.plugin["xep_0199"].send_ping(self.client.boundjid.host,
                                                                  timeout=self.policy.cut_after)
                answer.add_done_callback(_forget)
            elif action is Action.BUSY:
                if self.busy is not None and self._busy_for != self.policy.ping_sent:
                    self._busy_for = self.policy.ping_sent
                    self.busy()
                sent = self.policy.ping_sent if self.policy.ping_sent is not None else now
                wait = max(0.01, min(BUSY_RECHECK, sent + self.policy.hung_after - now))
            elif action is Action.CUT:
                self.policy.connected(now)  # one cut per silence
                self.cut()


def _forget(answer: "asyncio.Future[Any]") -> None:
    """A ping's answer (or its time-out, or its cancellation by a disconnect) is of no further
    interest: the policy judged the link by the stanzas themselves."""
    if not answer.cancelled():
        answer.exception()
