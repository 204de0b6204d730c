"""The control channel between the time coordinator and the swarm processes.

One TCP connection per swarm process, one JSON object per line. The coordinator listens (on
loopback unless a sharded run says otherwise); a process connects, proves it belongs to the run
with the run's token, and from then on the two exchange the operations below. The channel carries
no agent traffic: agents talk only over XMPP.

process -> coordinator
  hello    {part, token, incarnation, agents}          first line; the answer is ``welcome``
  ready    {part, summary, next_due}                   every agent connected and subscribed
  done     {t, k, sent, next_due, again, summary}      round (t, k) processed; ``sent`` maps the
                                                       destination part to the number of agent
                                                       messages this process sent in the round
  bye      {part}                                      stopped (answer to ``stop``)
coordinator -> process
  welcome  {time, mode}                                the scenario time to start at
  start    {wall_anchor}                               accelerated clock: when time starts
  round    {t, k, expect}                              advance to scenario time t (k = 0), wait
                                                       until ``expect`` messages of round (t, k-1)
                                                       arrived, then process round k
  stop     {}                                          stop the agents and say ``bye``
"""

from __future__ import annotations

import asyncio
import hmac
import json
import secrets
from typing import Any, Optional

__all__ = ["ControlError", "send", "receive", "new_token", "token_matches", "MAX_LINE"]

#: Longest control line accepted (a summary of a big process stays far below this).
MAX_LINE = 16 * 1024 * 1024


class ControlError(ConnectionError):
    """The control channel broke or carried something that is not part of the protocol."""


def new_token() -> str:
    return secrets.token_urlsafe(24)


def token_matches(given: Any, expected: str) -> bool:
    return isinstance(given, str) and hmac.compare_digest(given.encode(), expected.encode())


async def send(writer: asyncio.StreamWriter, op: str, **fields: Any) -> None:
    writer.write(json.dumps({"op": op, **fields}, separators=(",", ":"), sort_keys=True).encode() + b"\n")
    await writer.drain()


async def receive(reader: asyncio.StreamReader) -> Optional[dict]:
    """The next operation, or None when the other side closed the connection."""
    try:
        line = await reader.readuntil(b"\n")
    except asyncio.IncompleteReadError as exc:
        if exc.partial.strip():
            raise ControlError("control connection closed in the middle of a line") from None
        return None
    except asyncio.LimitOverrunError:
        raise ControlError(f"control line longer than {MAX_LINE} bytes") from None
    except (ConnectionError, OSError):
        return None
    try:
        obj = json.loads(line)
    except ValueError:
        raise ControlError("control line is not JSON") from None
    if not isinstance(obj, dict) or not isinstance(obj.get("op"), str):
        raise ControlError("control line without an op")
    return obj
