"""Logging for agent processes: one line per event, ``key=value`` fields, UTC timestamps."""

from __future__ import annotations

import logging
import time

__all__ = ["setup_logging"]


class _Noise(logging.Filter):
    """SPADE reads a presence attribute slixmpp does not define and slixmpp warns on every
    presence stanza ("Unknown stanza interface: ask"); it carries no information."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.levelno == logging.WARNING and record.getMessage().startswith("Unknown stanza interface"))


class _SendAfterDrop(logging.Filter):
    """When the stream dies (the server was killed, the network cut it), stanzas already in
    slixmpp's send queue find no transport, and slixmpp logs each with a traceback as an error
    ("Exception raised in send queue": NotConnectedError). Nothing is lost by it: a reliable
    message stays in the agent's outbox and is sent again, an answer is given again on the
    peer's resend (the server drill counts every item). It becomes one warning line, so that a
    traceback in a log always means something unforeseen (the drills count them)."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if record.name.startswith("slixmpp") and type(exc).__name__ == "NotConnectedError":
            record.levelno, record.levelname = logging.WARNING, "WARNING"
            record.msg, record.args, record.exc_info, record.exc_text = (
                "event=send-after-stream-dropped (not written; reliable messages are resent)", None, None, None)
        return True


def setup_logging(level: str | int = "INFO") -> None:
    fmt = logging.Formatter("%(asctime)s.%(msecs)03dZ %(levelname)s %(name)s %(agent)s%(message)s",
                            datefmt="%Y-%m-%dT%H:%M:%S")
    fmt.converter = time.gmtime
    handler = logging.StreamHandler()
    handler.setFormatter(fmt)
    handler.addFilter(_Noise())
    handler.addFilter(_SendAfterDrop())
    handler.addFilter(_AgentField())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level if isinstance(level, int) else getattr(logging, str(level).upper(), logging.INFO))
    for noisy in ("slixmpp", "spade", "asyncio", "aiohttp", "pyjabber"):
        logging.getLogger(noisy).setLevel(max(root.level, logging.WARNING))


class _AgentField(logging.Filter):
    """``agent=JID`` and, under a simulated clock, ``at=`` scenario time, when the line has them."""

    def filter(self, record: logging.LogRecord) -> bool:
        agent = getattr(record, "agent", None)
        at = getattr(record, "at", None)
        record.agent = (f"agent={agent} " if agent else "") + (f"at={at} " if at else "")
        return True
