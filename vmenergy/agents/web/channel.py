"""Protocol messages for peers that speak HTTP instead of XMPP (an EMS posting offers over REST).

A token holder who posts an offer is a peer of the engine like any prosumer: the engine sends
it assignments, rejections and bills with ``send_reliable`` and waits for their acks. The
agent hands those messages here instead of to its XMPP stream; they wait in the peer's mailbox
(one entry per outbox key, so a resend replaces rather than repeats) until the peer's event
stream (``GET /flexoffer/stream``) takes them. A message written to an open stream has reached
the client as surely as one written to its XMPP stream, so the agent then acknowledges it on the
client's behalf through the engine (an engine step, as an XMPP ack would be); a client that is not
listening leaves it in the mailbox and the engine keeps it in its outbox.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from typing import Optional

from vmenergy.protocol.engine import bare
from vmenergy.protocol.messages import Ack, Message, needs_ack

__all__ = ["WebPeers", "MAX_WAITING"]

#: Messages kept per peer while nobody listens (the oldest are dropped first; the engine's outbox
#: still holds every unacknowledged one and resends it).
MAX_WAITING = 10_000


class WebPeers:
    """The mailboxes of the HTTP peers (bare JIDs) of one agent."""

    def __init__(self, jids: frozenset[str]) -> None:
        self.jids = frozenset(bare(j) for j in jids)
        self._boxes: dict[str, OrderedDict[tuple, Message]] = {}
        self._signal: dict[str, asyncio.Event] = {}

    def __contains__(self, jid: object) -> bool:
        return isinstance(jid, str) and bare(jid) in self.jids

    def deliver(self, to: str, msg: Message) -> None:
        """Keep ``msg`` for ``to``; acks are not kept (the HTTP response carries them)."""
        if isinstance(msg, Ack):
            return
        to = bare(to)
        box = self._boxes.setdefault(to, OrderedDict())
        box[_key(msg)] = msg
        while len(box) > MAX_WAITING:
            box.popitem(last=False)
        self._event(to).set()

    def _event(self, jid: str) -> asyncio.Event:
        ev = self._signal.get(jid)
        if ev is None:
            ev = self._signal[jid] = asyncio.Event()
        return ev

    def waiting(self, jid: str) -> int:
        return len(self._boxes.get(bare(jid), ()))

    async def next(self, jid: str, timeout: float) -> Optional[Message]:
        """The oldest message waiting for ``jid`` (taken out), or None after ``timeout`` s."""
        jid = bare(jid)
        ev = self._event(jid)
        box = self._boxes.setdefault(jid, OrderedDict())
        if not box:
            ev.clear()
            try:
                await asyncio.wait_for(ev.wait(), timeout)
            except asyncio.TimeoutError:
                return None
            if not box:
                return None
        _, msg = box.popitem(last=False)
        return msg

    def put_back(self, jid: str, msg: Message) -> None:
        """A message that could not be written (the stream closed): first in line again."""
        box = self._boxes.setdefault(bare(jid), OrderedDict())
        box[_key(msg)] = msg
        box.move_to_end(_key(msg), last=False)


def _key(msg: Message) -> tuple:
    kind = needs_ack(msg)
    return (kind, *msg.ack_ref()) if kind is not None else msg.key()


def ack_for(msg: Message) -> Optional[Ack]:
    """The ack a receiving client gives ``msg`` (None for a notice)."""
    kind = needs_ack(msg)
    if kind is None:
        return None
    ref, version = msg.ack_ref()
    return Ack(kind, ref, "accepted", None, version)
