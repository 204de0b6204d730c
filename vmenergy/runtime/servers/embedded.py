"""The embedded server: SPADE's pyjabber in a child Python process, for machines with neither
Prosody nor ejabberd. It has known defects (:data:`LIMITATIONS`), which start-up logs and
returns in ``ServerInfo.limitations``.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import Sequence

from . import process
from .info import ServerError, ServerInfo

NAME = "embedded"
START_TIMEOUT = 45.0

# What the embedded server cannot do, seen with pyjabber 0.4.5 (STACK-NOTES.md and
# tests/integration/test_servers.py, which checks the first two). TLS works: STARTTLS with the
# certificate VME makes, verified by clients like on the other kinds.
LIMITATIONS = (
    "presence does not work: subscriptions are never confirmed and available presence never reaches "
    "contacts (SPADE's on_available never fires), so presence-based behaviour is not exercised",
    "IQs to a full JID time out (e.g. XEP-0199 ping), so XEP-0050 ad-hoc (operator) commands do not work",
    "after an agent restarts, messages to its bare JID are lost unless it sends available presence "
    "with an explicit priority in setup()",
    "nothing survives a server restart: pyjabber fails to start on a database holding pending "
    "subscriptions, so VME gives it a fresh database each time (agents re-register in-band)",
    "SASL offers PLAIN only (inside TLS); no SCRAM",
    "it serves an admin web page on 127.0.0.1:9090 (fixed port, cannot be turned off) and opens a "
    "server-to-server listener on a second loopback port",
)

#: Said when a closed server was asked for: pyjabber cannot close registration nor make accounts.
REGISTRATION_OPEN = ("in-band registration cannot be closed (pyjabber has neither the setting nor an account "
                     "tool): anyone who can reach its port can make an account")


def check() -> tuple[bool, str]:
    """Whether pyjabber is importable here."""
    import importlib.util

    if importlib.util.find_spec("pyjabber") is None:
        return False, "the embedded server needs pyjabber, which comes with SPADE: pip install spade"
    return True, "pyjabber (SPADE's embedded server) is importable"


def start(info: ServerInfo, run_dir: Path) -> tuple[subprocess.Popen, list[Path]]:
    """Start pyjabber in a child process (``python -m vmenergy.runtime.servers embedded-child``)."""
    try:
        addr = socket.gethostbyname(info.domain)
    except OSError:
        addr = ""
    if not addr.startswith("127."):
        raise ServerError(
            f"the embedded server listens on the address its domain resolves to; {info.domain!r} "
            f"resolves to {addr or 'nothing'}, not loopback. Use --domain localhost (or prosody/ejabberd)"
        )
    certs = run_dir / "embedded-certs"
    certs.mkdir(exist_ok=True, mode=0o700)
    # pyjabber loads <domain>_cert.pem / <domain>_key.pem from its cert dir; giving it ours
    # (instead of letting it sign one with the CA key shipped inside the package) lets clients
    # verify the server with the same CA file as on prosody and ejabberd.
    shutil.copyfile(info.ca_file, certs / f"{info.domain}_cert.pem")
    shutil.copyfile(info.key_file, certs / f"{info.domain}_key.pem")
    s2s_port = process.free_port()
    db = run_dir / "embedded.db"
    db.unlink(missing_ok=True)  # see LIMITATIONS: it may not start on an old database
    info.config_path = ""
    info.limitations = list(LIMITATIONS)
    if not info.registration:
        info.limitations.append(REGISTRATION_OPEN)
        info.registration = True
    info.extra.update({"s2s_port": str(s2s_port), "database": str(db)})
    cmd = [
        sys.executable, "-m", "vmenergy.runtime.servers", "embedded-child", "--domain", info.domain,
        "--port", str(info.port), "--s2s-port", str(s2s_port), "--db", str(db), "--cert-dir", str(certs),
        "--run-dir", str(run_dir),
    ]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return process.spawn(cmd, run_dir, env=env), []


def register(info: ServerInfo, accounts: Sequence[tuple[str, str]], timeout: float) -> None:
    raise ServerError(
        "the embedded server has no account tool; agents register in-band (SPADE auto_register=True)"
    )


def child_main(argv: Sequence[str]) -> int:
    """Entry point of the embedded server's process (``python -m vmenergy.runtime.servers
    embedded-child ...``). Uses pyjabber's own API the way ``spade run`` does, with one change:
    it does not also listen on the machine's public address (pyjabber binds the address of the
    default route besides the domain's). The admin page stays: pyjabber's IQ handling breaks
    without the HTTP upload service that brings it."""
    import argparse

    p = argparse.ArgumentParser(prog="vmenergy-embedded-xmpp")
    for name in ("--domain", "--db", "--cert-dir", "--run-dir"):
        p.add_argument(name, required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--s2s-port", type=int, required=True)
    a = p.parse_args(list(argv))

    from loguru import logger
    from pyjabber import server as pj_server
    from pyjabber.server_parameters import Parameters

    logger.remove()
    logger.add(sys.stderr, level="INFO", format="{time:YYYY-MM-DD HH:mm:ss.SSS} {level}: {message}")
    pj_server.setup_query_local_ip = lambda: None  # loopback only: no listener on the public IP
    params = Parameters(
        host=a.domain, client_port=a.port, server_port=a.s2s_port, connection_timeout=600,
        database_path=a.db, database_purge=False, database_in_memory=False, cert_path=a.cert_dir,
        message_persistence=True,
    )
    srv = pj_server.Server(params)
    try:
        import uvloop

        uvloop.run(srv.start())
    except ImportError:  # pragma: no cover - uvloop comes with SPADE
        import asyncio

        asyncio.run(srv.start())
    return 0
