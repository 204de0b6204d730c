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
  down     {part, agents}                              agents of the process lost their server
                                                       (they reconnect); ``ready`` follows when
                                                       every one is back
  bye      {part}                                      stopped (answer to ``stop``)
shard orchestrator -> coordinator (``vmenergy run --shard k/n``, k > 1)
  join     {shard, token}                              first line; the answer is ``plan``
  store    {name, data}                                after ``stop``: an agent store (base64)
  bye      {shard}                                     every store sent
coordinator -> shard orchestrator
  plan     {plan}                                      the run's plan, with the passwords of this
                                                       shard's agents only
  stop     {}                                          the run ended: stop, then send the stores
coordinator -> process
  welcome  {time, mode}                                the scenario time to start at
  start    {wall_anchor}                               accelerated clock: when time starts
  round    {t, k, expect}                              advance to scenario time t (k = 0), wait
                                                       until ``expect`` messages of round (t, k-1)
                                                       arrived, then process round k
  release  {}                                          stop waiting for this round's messages: a
                                                       process died or lost its server (the round
                                                       is then redone)
  stop     {}                                          stop the agents and say ``bye``
"""

from __future__ import annotations

import asyncio
import hmac
import json
import secrets
import ssl
from typing import Any, Optional

__all__ = ["ControlError", "send", "receive", "new_token", "token_matches", "MAX_LINE", "SERVER_NAME",
           "server_context", "client_context", "connect"]

#: The name in the coordinator's certificate (a sharded run's control channel is TLS with a
#: self-signed certificate that the join file carries: its holders pin it).
SERVER_NAME = "vme-coordinator"

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
    except (ValueError, RecursionError):  # a line nested thousands deep comes before any token check
        raise ControlError("control line is not JSON (or nested too deeply)") from None
    if not isinstance(obj, dict) or not isinstance(obj.get("op"), str):
        raise ControlError("control line without an op")
    return obj


def server_context(cert_file: str, key_file: str) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert_file, key_file)
    return ctx


def client_context(cert_file: str) -> ssl.SSLContext:
    """Trust exactly the coordinator's own certificate (verification and name check on)."""
    return ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=cert_file)


async def connect(address: dict) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Open the control channel described by ``address`` (``host``, ``port`` and, for TLS,
    ``cert``: the coordinator's certificate file)."""
    cert = address.get("cert")
    if cert:
        return await asyncio.open_connection(address["host"], int(address["port"]), limit=MAX_LINE,
                                             ssl=client_context(cert), server_hostname=SERVER_NAME)
    return await asyncio.open_connection(address["host"], int(address["port"]), limit=MAX_LINE)
