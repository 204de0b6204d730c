"""What a client needs to reach a server, as recorded in ``run_dir/server.json``, and the error
every part of this package raises.

One record for every kind, private or external, so the orchestrator, the swarm processes and
``vmenergy server status`` read the same file whatever started the server.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional

# Kinds VME starts and stops itself, preferred first.
KINDS = ("prosody", "ejabberd", "embedded")
# A standing server run by someone else: VME connects to it and never starts or stops it.
EXTERNAL = "external"
HOST = "127.0.0.1"
INFO_FILE = "server.json"
LOG_FILE = "server.log"
CERT_FILE = "server.crt"
KEY_FILE = "server.key"


class ServerError(RuntimeError):
    """A server could not be started, stopped or used; the message says why and what to do."""


@dataclass
class ServerInfo:
    """What a client needs to reach a server, as written to ``run_dir/server.json``.

    ``ca_file`` is the certificate clients trust: for a private server its self-signed
    certificate, so that certificate and host-name verification stay on; for an external server
    the operator's CA file, or "" for the system trust store. ``host``/``port`` is where to
    connect; ``domain`` is the XMPP domain of the JIDs (``user@domain``) and the name the
    certificate covers. An external server has no ``pid``, log or config of VME's (0 and "").
    ``registration``: whether anyone who reaches the port may make an account in-band (closed
    unless asked for: runs make their accounts with the server's admin tool).
    """

    kind: str
    domain: str
    host: str
    port: int
    pid: int
    ca_file: str
    log_path: str
    run_dir: str
    key_file: str = ""
    config_path: str = ""
    started_at: float = 0.0
    registration: bool = False
    limitations: list[str] = field(default_factory=list)
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def external(self) -> bool:
        """Whether someone else runs this server (VME must leave it alone)."""
        return self.kind == EXTERNAL

    def jid(self, user: str) -> str:
        """The bare JID of ``user`` on this server."""
        return f"{user}@{self.domain}"

    @property
    def address(self) -> tuple[str, int]:
        """(host, port) to pass to ``ClientXMPP.connect``."""
        return (self.host, self.port)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "ServerInfo":
        data = json.loads(text)
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass
class ServerStatus:
    """Result of :func:`server_status`: whether the recorded server is alive and accepting.

    For an external server ``running`` means "answers XMPP" (VME cannot see its process)."""

    running: bool
    accepting: bool
    info: Optional[ServerInfo]
    detail: str


def read_info(run_dir: Path | str) -> Optional[ServerInfo]:
    """The ServerInfo recorded in ``run_dir/server.json``, or None when there is none."""
    path = Path(run_dir).resolve() / INFO_FILE
    try:
        return ServerInfo.from_json(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError) as exc:
        raise ServerError(f"unreadable {path}: {exc}") from None


def write_info(info: ServerInfo, run_dir: Path | str) -> Path:
    """Record ``info`` as ``run_dir/server.json``."""
    path = Path(run_dir) / INFO_FILE
    path.write_text(info.to_json())
    return path
