"""A TCP proxy on loopback between the agents and the XMPP server that spoils the traffic on
purpose: it delays every chunk, swallows everything for a while (a link that drops all
packets), and cuts connections. The network drill (:mod:`.run`) puts it in the server's place
in the plan, so every agent's stream goes through it; TLS passes through untouched (the proxy
sees bytes only).

It runs on its own event loop in a thread, so that the orchestrator (which waits on the
coordinator with blocking calls) can steer it. Delays are drawn from a generator seeded per
connection and direction (``random.Random(f"{seed}/{n}/{direction}")``), so a drill's traffic is
spoilt the same way each time it is run with the same seed; the scenario's results do not
depend on it at all (scenario time is coordinated).
"""

from __future__ import annotations

import asyncio
import random
import threading
from dataclasses import dataclass
from typing import Optional

__all__ = ["Impairment", "LossyProxy"]

#: Bytes read from a socket at a time.
CHUNK = 65536


@dataclass(frozen=True)
class Impairment:
    """What the proxy does to traffic: each chunk is held ``0..delay_max`` seconds (drawn per
    chunk; order within a direction is kept, as TCP keeps it); while ``blackhole`` is on, every
    chunk is read and thrown away (the sender believes it was sent: only acknowledgements at the
    XMPP level, XEP-0198, can tell it otherwise)."""

    delay_max: float = 0.0
    blackhole: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.delay_max, (int, float)) or isinstance(self.delay_max, bool) \
                or not 0 <= self.delay_max <= 60:
            raise ValueError(f"delay_max: must be 0..60 seconds (got {self.delay_max!r})")


class LossyProxy:
    """``LossyProxy(("127.0.0.1", server_port), seed)``; :meth:`start` returns the port agents
    should connect to. :meth:`impair` changes what it does to traffic from then on, :meth:`cut`
    closes every open connection (both sides, at once), :meth:`stop` ends it. Counters say
    what it did (for the drill's figures)."""

    def __init__(self, target: tuple[str, int], seed: int, host: str = "127.0.0.1") -> None:
        self.target = target
        self.seed = seed
        self.host = host
        self.impairment = Impairment()
        self.connections = 0
        self.cuts = 0
        self.dropped_bytes = 0
        self.forwarded_bytes = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="lossy-proxy", daemon=True)
        self._server: Optional[asyncio.base_events.Server] = None
        self._open: set[asyncio.StreamWriter] = set()

    # -- control (from any thread) -----------------------------------------------------------
    def start(self) -> int:
        self._thread.start()
        self._server = self._call(asyncio.start_server(self._accept, self.host, 0))
        return self._server.sockets[0].getsockname()[1]

    def impair(self, impairment: Impairment) -> None:
        self.impairment = impairment  # read by the pumps chunk by chunk: an attribute swap is enough

    def cut(self) -> int:
        """Close every open connection; returns how many streams (agent or server side) it closed."""
        return self._call(self._cut())

    def stop(self) -> None:
        if not self._thread.is_alive():
            return
        if self._server is not None:
            self._server.close()
        self._call(self._cut())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def _call(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(30)

    # -- the proxy itself (on its loop) ------------------------------------------------------
    async def _cut(self) -> int:
        writers = list(self._open)
        for w in writers:
            w.close()
        self._open.clear()
        self.cuts += len(writers)
        return len(writers)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        n = self.connections
        self.connections += 1
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:  # the server is down (a drill may have killed it): the client retries
            writer.close()
            return
        self._open.update((writer, up_writer))
        await asyncio.gather(self._pump(reader, up_writer, random.Random(f"{self.seed}/{n}/up")),
                             self._pump(up_reader, writer, random.Random(f"{self.seed}/{n}/down")))

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, rng: random.Random) -> None:
        """Copy one direction, each chunk delayed; when either side ends, both are closed."""
        loop = asyncio.get_running_loop()
        due = loop.time()
        try:
            while data := await reader.read(CHUNK):
                imp = self.impairment
                if imp.blackhole:
                    self.dropped_bytes += len(data)
                    continue
                # a chunk never overtakes the one before it: its time is after that one's
                due = max(due, loop.time() + rng.uniform(0, imp.delay_max))
                await asyncio.sleep(max(0.0, due - loop.time()))
                if writer.is_closing():
                    break
                writer.write(data)
                await writer.drain()
                self.forwarded_bytes += len(data)
        except (ConnectionError, OSError):
            pass  # a side went away: the other is closed below, as a router would
        finally:
            self._open.discard(writer)
            writer.close()
