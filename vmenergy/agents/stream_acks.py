"""XEP-0198: ask the server to acknowledge what was sent when a burst of sending ends.

slixmpp keeps every stanza it sent in its stream-management queue until the server acknowledges
it, and asks for that acknowledgement only after every ``window`` (5) stanzas. A prosumer sends a
few stanzas at a time (its day's offers at noon, a measurement, an ack): the last up to four of
them, offers with their polytopes as XML, stayed in the queue until its next burst, hours of
scenario time later. In a process of 300 prosumers through a day that was ~170 KiB per agent of
live Python objects on the first evening, the largest item the day added (tracemalloc); the
process's peak resident memory fell by less (368 -> 357 MiB; why not more was not found)
(bench/RESULTS.md, "Scale ladder, round 4").

:class:`BurstAcks` asks once more when a burst of sending is over (below): the server answers
``<a/>`` and slixmpp drops what it acknowledged. One ``<r/>`` and one ``<a/>`` per burst, not
per stanza (an aggregator sending thousands in one turn asks once). What the queue is for,
resending what the server did not get after a cut, is unchanged: a stanza leaves the queue only
when the server says it has it.

At most one such request is outstanding: while one is unanswered, turns that send do not ask
again, and when its answer comes with stanzas still held, they are asked for in turn.
Asking at the end of every turn that sent was one ``<r/>``/``<a/>`` per offer when a prosumer
sends one offer per turn, ~150-200 us more CPU per offer at the prosumers and the server in the
pipelined benchmark (bench/RESULTS.md, "Agent path, round 2").

A burst ends when the client has sent nothing for :data:`QUIET` seconds, not at the end of the
loop turn: an agent answering one message at a time (an aggregator acking offers as they come,
each in its own turn) asked after every answer, an ``<r/>`` and an ``<a/>`` more through the
server for each message, which doubled the server's and the agents' CPU per offer in the
sequential benchmark (bench/RESULTS.md, "Agent path, round 3"). While sending goes on, the
plugin's window (:data:`~vmenergy.agents.smacks.WINDOW`) still asks every so many stanzas, so
what is held stays bounded; once sending stops, it is asked for within ``QUIET`` seconds, so an
agent between bursts still holds none.
"""

from __future__ import annotations

import asyncio
from typing import Any, Optional

__all__ = ["BurstAcks", "QUIET"]

#: Seconds without sending after which a burst is over and its stanzas' ack is asked for (real
#: time: it is about the network, whatever the scenario's clock).
QUIET = 0.2


class BurstAcks:
    """Installed on a client whose ``xep_0198`` plugin is registered (see the module docstring)."""

    def __init__(self, client: Any, quiet: float = QUIET) -> None:
        if isinstance(quiet, bool) or not isinstance(quiet, (int, float)) or not quiet >= 0:
            raise ValueError(f"quiet: seconds, a number >= 0 (got {quiet!r})")
        self.client = client
        self.sm = client.plugin["xep_0198"]
        self.quiet = float(quiet)
        self._asking: Optional[asyncio.TimerHandle] = None
        self._last_sent = 0.0  # loop time of the last stanza sent
        self._outstanding = False  # a request of ours not answered yet
        # after slixmpp's own out_sync filter, which appends the stanza to the queue
        client.add_filter("out_sync", self._sent)
        # an answer acknowledges each stanza sent before the request (slixmpp: one event each)
        client.add_event_handler("stanza_acked", self._acked)
        for event in ("sm_enabled", "session_resumed", "disconnected"):  # a new stream: nothing outstanding
            client.add_event_handler(event, self._reset)

    def _sent(self, stanza: Any) -> Any:
        # one timer per quiet period, not one per stanza: it looks at the last send when it fires
        loop = asyncio.get_running_loop()
        self._last_sent = loop.time()
        if self._asking is None and not self._outstanding and self.sm.enabled_out:
            self._asking = loop.call_later(self.quiet, self._ask)
        return stanza

    def _acked(self, _stanza: Any) -> None:
        self._outstanding = False
        if self._asking is None and self.sm.unacked_queue:
            self._asking = asyncio.get_running_loop().call_later(self.quiet, self._ask)

    def _reset(self, _event: Any) -> None:
        self._outstanding = False

    def _ask(self) -> None:
        self._asking = None
        if self._outstanding or not self.sm.enabled_out or not self.sm.unacked_queue \
                or self.client.transport is None:
            return
        loop = asyncio.get_running_loop()
        wait = self._last_sent + self.quiet - loop.time()
        if wait > 0:  # still sending: look again when it may have stopped
            self._asking = loop.call_later(wait, self._ask)
            return
        self._outstanding = True
        self.sm.request_ack()
        # slixmpp's own count toward its next request starts again: it would otherwise ask a
        # second time a few stanzas later for what this request already covers
        self.sm.window_counter = self.sm.window
