"""The server of a scenario run and the password of each agent, from the ``[server]`` table.

The orchestrator calls :func:`prepare_server` once, before any agent process starts:

- a private kind (``prosody``, ``ejabberd``) is started in the run directory with in-band
  registration closed, and the run's accounts (generated passwords, or an accounts file's) are
  made with its admin tool; the embedded server cannot close registration, so its agents
  register in-band (SPADE ``auto_register``);
- ``external`` is a standing server VME only connects to: it is probed (XMPP answers, the
  certificate verifies with ``ca_file``) and recorded in the run directory; agents register
  in-band with generated passwords (``accounts = "register"``, the server must allow it) or
  log in with the passwords of an accounts file (format in :mod:`.accounts`).

Keys of the table: ``kind``, ``domain``, ``host``, ``port``, ``ca_file``, ``accounts``.

A cluster (docs/scaling.md) is given as ``nodes``, by name, first = the default: for a private
``ejabberd`` the run starts that many clustered nodes (:mod:`.cluster`) and makes the accounts
through the first (ejabberd replicates them); for ``external`` each node (``host``, ``port``,
``ca_file``) is probed and the first recorded.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

from .accounts import new_password, read_accounts_file, register_accounts
from .cluster import start_cluster, stop_cluster
from .external import external_server, record_external
from .info import EXTERNAL, KINDS, ServerError, ServerInfo
from .lifecycle import start_server, stop_server
from .probe import check_reachable

REGISTER = "register"
TABLE_KEYS = ("kind", "domain", "host", "port", "ca_file", "accounts")
DEFAULT_XMPP_PORT = 5222
_EXTERNAL_ONLY = ("host", "ca_file")


class ServerTableError(ServerError, ValueError):
    """A ``[server]`` table VME cannot use; ``path`` names the key (``server.port``)."""

    def __init__(self, path: str, reason: str) -> None:
        self.path, self.reason = path, reason
        super().__init__(f"{path}: {reason}")


@dataclass(frozen=True)
class ServerSpec:
    """The ``[server]`` table, checked. ``accounts`` is ``"register"`` or the path of an accounts
    file; ``ca_file`` "" means the system trust store (external only: a private server makes its
    own certificate); ``port`` None lets a private server pick a free one."""

    kind: str = "prosody"
    domain: str = "localhost"
    host: str = ""
    port: Optional[int] = None
    ca_file: str = ""
    accounts: str = REGISTER

    def __post_init__(self) -> None:
        kinds = KINDS + (EXTERNAL,)
        if self.kind not in kinds:
            raise ServerTableError("server.kind", f"{self.kind!r} is not one of {', '.join(kinds)}")
        if not self.domain or any(c in self.domain for c in "@/ ") or self.domain != self.domain.lower():
            raise ServerTableError("server.domain", f"{self.domain!r} is not an XMPP domain (lower-case, no @ / or spaces)")
        if self.port is not None and (isinstance(self.port, bool) or not isinstance(self.port, int)
                                      or not 1 <= self.port <= 65535):
            raise ServerTableError("server.port", f"{self.port!r} is not a TCP port (an integer 1..65535)")
        if self.kind != EXTERNAL:
            for key in _EXTERNAL_ONLY:
                if getattr(self, key):
                    raise ServerTableError(
                        f"server.{key}", f"only for kind = \"external\" (a private {self.kind} server listens on "
                        "127.0.0.1 with a certificate of its own)"
                    )
        if not self.accounts:
            raise ServerTableError("server.accounts", f"\"{REGISTER}\" or the path of an accounts file")
        if self.kind == "embedded" and self.accounts != REGISTER:
            raise ServerTableError("server.accounts", "the embedded server has no account tool: use \"register\"")

    @classmethod
    def from_table(cls, table: Mapping[str, Any], base_dir: Path | str | None = None) -> "ServerSpec":
        """Check a ``[server]`` table; relative ``ca_file``/``accounts`` paths are resolved against
        ``base_dir`` (the scenario file's folder)."""
        unknown = sorted(set(table) - set(TABLE_KEYS))
        if unknown:
            raise ServerTableError(f"server.{unknown[0]}", f"unknown key (known: {', '.join(TABLE_KEYS)})")
        for key in ("kind", "domain", "host", "ca_file", "accounts"):
            if key in table and not isinstance(table[key], str):
                raise ServerTableError(f"server.{key}", f"must be a string, not {type(table[key]).__name__}")
        values = dict(table)
        base = Path(base_dir) if base_dir is not None else Path.cwd()
        for key in ("ca_file", "accounts"):
            value = values.get(key)
            if value and not (key == "accounts" and value == REGISTER):
                values[key] = str((base / Path(value).expanduser()).resolve())
        return cls(**values)

    @property
    def accounts_file(self) -> Optional[Path]:
        return None if self.accounts == REGISTER else Path(self.accounts)


@dataclass(frozen=True)
class RunServer:
    """What a run needs of its server: where it is (``info``), each agent's password by bare JID,
    and whether agents register themselves in-band (SPADE ``auto_register``) or log in to
    accounts that already exist. ``info.external`` says whether the run must leave it running."""

    info: ServerInfo
    passwords: Mapping[str, str] = field(default_factory=dict)
    register_in_band: bool = True
    #: A cluster's nodes by name (the first is ``info``); empty for a single server.
    nodes: Mapping[str, ServerInfo] = field(default_factory=dict)

    @property
    def owned(self) -> bool:
        """Whether VME started this server (and stops it at the end of the run)."""
        return not self.info.external


def prepare_server(
    table: Mapping[str, Any] | ServerSpec,
    jids: Sequence[str],
    run_dir: Path | str,
    *,
    base_dir: Path | str | None = None,
    timeout: float = 10.0,
    nodes: Optional[Mapping[str, Mapping[str, Any]]] = None,
) -> RunServer:
    """Start (private kinds) or check (external) the run's server and decide each agent's password.

    ``run_dir`` is the server's directory (``RUN/xmpp``): a private server runs there, an
    external one is recorded there. ``jids`` are the agents' bare JIDs, all on the table's
    domain. With an accounts file every JID must be in it; the error names the missing ones.
    ``nodes``: a cluster's nodes by name (see the module's docstring; the values are ignored
    for a private cluster). Raises :class:`ServerTableError` (naming the key) or
    :class:`ServerError`."""
    spec = table if isinstance(table, ServerSpec) else ServerSpec.from_table(table, base_dir)
    wanted = [j.strip().lower() for j in jids]
    for i, jid in enumerate(wanted):
        local, at, domain = jid.partition("@")
        if not at or domain != spec.domain:
            raise ServerError(f"jids[{i}]: {jids[i]!r} is not on the server's domain {spec.domain!r}")
    passwords = _passwords(spec, wanted)
    if spec.kind == EXTERNAL:
        where = dict(nodes) if nodes else {"": {"host": spec.host, "port": spec.port, "ca_file": spec.ca_file}}
        infos = {name: _standing(spec, node, f"server.nodes.{name}" if name else "server", timeout)
                 for name, node in where.items()}
        info = record_external(next(iter(infos.values())), run_dir)
        return RunServer(info, passwords, register_in_band=spec.accounts_file is None,
                         nodes=infos if nodes else {})
    if nodes:
        return _private_cluster(spec, list(nodes), wanted, passwords, run_dir)
    # deny by default: in-band registration stays closed and the run's accounts are made with
    # the server's admin tool before any agent starts, so a stranger who reaches the port
    # cannot make an account (the embedded server cannot close it, and says so)
    in_band = spec.kind == "embedded"
    info = start_server(spec.kind, run_dir, domain=spec.domain, port=spec.port, registration=in_band)
    if not in_band:
        try:
            register_accounts(info, [(jid.partition("@")[0], passwords[jid]) for jid in wanted])
        except ServerError:
            stop_server(run_dir)
            raise
    return RunServer(info, passwords, register_in_band=in_band)


def _standing(spec: ServerSpec, node: Mapping[str, Any], at: str, timeout: float) -> ServerInfo:
    """A standing server (or one node of a standing cluster), probed: XMPP answers and its
    certificate verifies."""
    host, port = node.get("host") or spec.domain, node.get("port") or DEFAULT_XMPP_PORT
    info = external_server(host, port, spec.domain, node.get("ca_file") or "")
    reach = check_reachable(info.host, info.port, info.domain, info.ca_file, timeout=timeout)
    if not reach.usable:
        raise ServerTableError(at, f"the external server {host}:{port} cannot be used: {reach.detail}")
    return info


def _private_cluster(spec: ServerSpec, names: Sequence[str], jids: Sequence[str], passwords: Mapping[str, str],
                     run_dir: Path | str) -> RunServer:
    """A private ejabberd cluster in ``run_dir`` (``node1``, ``node2``, ...) with the run's
    accounts made through its first node (Mnesia replicates them to the others)."""
    if spec.kind != "ejabberd":
        raise ServerTableError("server.nodes", f"a cluster VME starts is of ejabberd nodes, not {spec.kind}")
    cluster = start_cluster(run_dir, len(names), spec.domain)
    try:
        register_accounts(cluster.nodes[0], [(jid.partition("@")[0], passwords[jid]) for jid in jids])
    except ServerError:
        stop_cluster(cluster)
        raise
    return RunServer(cluster.nodes[0], passwords, register_in_band=False, nodes=dict(zip(names, cluster.nodes)))


def _passwords(spec: ServerSpec, jids: Sequence[str]) -> dict[str, str]:
    """Generated passwords, or the accounts file's, for every JID (all of them or an error)."""
    path = spec.accounts_file
    if path is None:
        return {jid: new_password() for jid in jids}
    known = read_accounts_file(path)
    missing = [jid for jid in dict.fromkeys(jids) if jid not in known]
    if missing:
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        raise ServerTableError(
            "server.accounts", f"{path} has no password for {', '.join(missing[:5])}{more} "
            f"({len(missing)} of the run's {len(jids)} agents)"
        )
    return {jid: known[jid] for jid in jids}
