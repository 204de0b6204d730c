"""A tiny in-memory network for engine tests: routes Send effects between engines by JID,
can drop or duplicate messages and take peers offline, and records Execute and RunDefault effects."""

from __future__ import annotations

from collections import deque
from typing import Callable, Optional

from vmenergy.protocol.engine import Engine, Execute, RunDefault, Send, bare


class Net:
    def __init__(self, *engines: Engine) -> None:
        self.engines = {e.jid: e for e in engines}
        self.queue: deque[tuple[str, Send]] = deque()
        self.delivered: list[tuple[str, str, object]] = []
        self.executions: list[tuple[str, Execute]] = []
        self.defaults: list[tuple[str, RunDefault]] = []
        self.drop: Optional[Callable[[str, Send], bool]] = None
        self.offline: set[str] = set()

    def take(self, sender: str, effects) -> None:
        for e in effects:
            if isinstance(e, Send):
                self.queue.append((sender, e))
            elif isinstance(e, Execute):
                self.executions.append((sender, e))
            elif isinstance(e, RunDefault):
                self.defaults.append((sender, e))

    def run(self, now: int, limit: int = 100_000) -> int:
        n = 0
        while self.queue and n < limit:
            sender, send = self.queue.popleft()
            to = bare(send.to)
            if to in self.offline or to not in self.engines:
                continue
            if self.drop is not None and self.drop(sender, send):
                continue
            n += 1
            self.delivered.append((sender, to, send.msg))
            self.take(to, self.engines[to].receive(sender, send.msg, now))
        return n

    def tick(self, now: int) -> None:
        for jid, e in self.engines.items():
            if jid not in self.offline:
                self.take(jid, e.tick(now))
        self.run(now)

    def presence(self, jid: str, available: bool, now: int) -> None:
        jid = bare(jid)
        if available:
            self.offline.discard(jid)
        else:
            self.offline.add(jid)
        for other, e in self.engines.items():
            if other != jid and other not in self.offline:
                self.take(other, e.presence(jid, available, now))
        self.run(now)
