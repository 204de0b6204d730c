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


def setup_logging(level: str | int = "INFO") -> None:
    fmt = logging.Formatter("%(asctime)s.%(msecs)03dZ %(levelname)s %(name)s %(agent)s%(message)s",
                            datefmt="%Y-%m-%dT%H:%M:%S")
    fmt.converter = time.gmtime
    handler = logging.StreamHandler()
    handler.setFormatter(fmt)
    handler.addFilter(_Noise())
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
