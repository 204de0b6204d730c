"""Private XMPP servers on loopback: start, stop, inspect and register accounts.

VME agents are ordinary XMPP clients, so every run, test and demo needs a server. This module
starts one of three kinds in a run directory of its own, so runs never share state and a crashed
run leaves nothing behind but its directory:

- ``prosody`` (Debian ``prosody``): the default; starts in a fraction of a second.
- ``ejabberd`` (Debian ``ejabberd``): the server for large deployments and clusters.
- ``embedded``: SPADE's pyjabber in a child Python process, for machines with neither package;
  it has known defects, which :func:`start_server` logs and returns in ``ServerInfo.limitations``.

Every kind listens on 127.0.0.1 only, with STARTTLS and a self-signed certificate made with
openssl (clients verify it by using the certificate as their CA file), and allows in-band
registration without throttling (SPADE agents register themselves with ``auto_register``).
The server runs in the foreground as a child in its own process group, so :func:`stop_server`
can end it and everything it spawned, even from another process (``vmenergy server stop``).
``run_dir/server.json`` records what a client needs (:class:`ServerInfo`).

Configs are generated from the commented templates in ``xmpp-server/prosody`` and
``xmpp-server/ejabberd``; the facts behind each setting are in the project's STACK-NOTES.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import resource
import secrets
import shutil
import signal
import socket
import string
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable, Optional, Sequence

log = logging.getLogger(__name__)

KINDS = ("prosody", "ejabberd", "embedded")
HOST = "127.0.0.1"
INFO_FILE = "server.json"
LOG_FILE = "server.log"
CERT_FILE = "server.crt"
KEY_FILE = "server.key"

# Open-files limit for the server child: one descriptor per connected agent, and ejabberd dies
# at ~1,000 connections with the usual soft limit of 1024.
NOFILE_WANTED = 65536
START_TIMEOUT = {"prosody": 15.0, "ejabberd": 60.0, "embedded": 45.0}

# What the embedded server cannot do, seen with pyjabber 0.4.5 (STACK-NOTES.md and
# tests/integration/test_servers.py, which checks the first two). TLS works: STARTTLS with the
# certificate VME makes, verified by clients like on the other kinds.
EMBEDDED_LIMITATIONS = (
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

_TEMPLATES = Path(__file__).resolve().parents[2] / "xmpp-server"


class ServerError(RuntimeError):
    """A server could not be started, stopped or used; the message says why and what to do."""


@dataclass
class ServerInfo:
    """What a client needs to reach a private server, as written to ``run_dir/server.json``.

    ``ca_file`` is the server's self-signed certificate: give it to clients as their CA file so
    that certificate and host-name verification stay on. ``host``/``port`` is where to connect;
    ``domain`` is the XMPP domain of the JIDs (``user@domain``) and the name the certificate
    covers (with "localhost").
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
    limitations: list[str] = field(default_factory=list)
    extra: dict[str, str] = field(default_factory=dict)

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
    """Result of :func:`server_status`: whether the recorded server is alive and accepting."""

    running: bool
    accepting: bool
    info: Optional[ServerInfo]
    detail: str


# ---------------------------------------------------------------------------------------------
# Availability


def _ejabberdctl() -> Optional[str]:
    return shutil.which("ejabberdctl") or (
        "/usr/sbin/ejabberdctl" if os.access("/usr/sbin/ejabberdctl", os.X_OK) else None
    )


def check_kind(kind: str) -> tuple[bool, str]:
    """Whether a server kind can run here; when not, the reason says what to install."""
    if kind not in KINDS:
        return False, f"unknown server kind {kind!r} (choose one of {', '.join(KINDS)})"
    if not shutil.which("openssl"):
        return False, "openssl is not installed (it makes the server certificate): sudo apt-get install openssl"
    if kind == "prosody":
        if not (shutil.which("prosody") and shutil.which("prosodyctl")):
            return False, "prosody is not installed: sudo apt-get install prosody"
        return True, "prosody found at " + str(shutil.which("prosody"))
    if kind == "ejabberd":
        ctl = _ejabberdctl()
        if not ctl:
            return False, "ejabberd is not installed: sudo apt-get install ejabberd"
        if not shutil.which("erl"):
            return False, "ejabberd is installed but Erlang (erl) is missing: sudo apt-get install --reinstall ejabberd"
        if os.geteuid() != 0 and _user_name() != "ejabberd":
            return False, (
                "Debian's ejabberdctl only runs as root or as the ejabberd user; "
                "run as root (e.g. in CI) or use prosody"
            )
        return True, f"ejabberd found at {ctl}"
    import importlib.util

    if importlib.util.find_spec("pyjabber") is None:
        return False, "the embedded server needs pyjabber, which comes with SPADE: pip install spade"
    return True, "pyjabber (SPADE's embedded server) is importable"


def available_kinds() -> list[str]:
    """The server kinds that can run on this machine, preferred first."""
    return [k for k in KINDS if check_kind(k)[0]]


def _user_name() -> str:
    import pwd

    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return str(os.geteuid())


# ---------------------------------------------------------------------------------------------
# Small helpers


def free_port(host: str = HOST) -> int:
    """A TCP port that is free on ``host`` right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _port_in_use(port: int, host: str = HOST) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, port))
        except OSError:
            return True
    return False


def _render(template: str, dest: Path, values: dict[str, object]) -> Path:
    """Fill a template from xmpp-server/ (``$name`` placeholders) and write it to ``dest``."""
    src = _TEMPLATES / template
    try:
        text = src.read_text()
    except OSError as exc:
        raise ServerError(f"cannot read config template {src}: {exc.strerror or exc}") from None
    dest.write_text(string.Template(text).substitute({k: str(v) for k, v in values.items()}))
    return dest


def make_certificate(run_dir: Path, domain: str) -> tuple[Path, Path]:
    """A self-signed certificate (P-256, 10 years) whose SAN covers ``domain``, "localhost" and
    127.0.0.1. Clients use the certificate itself as their CA file. Reused if already there and
    covering the domain, so a restart in the same run dir keeps clients' CA files valid."""
    cert, key = run_dir / CERT_FILE, run_dir / KEY_FILE
    stamp = run_dir / "server.crt.domain"
    if cert.exists() and key.exists() and stamp.exists() and stamp.read_text() == domain:
        return cert, key
    names = [domain] + (["localhost"] if domain != "localhost" else [])
    san = ",".join([f"DNS:{n}" for n in names] + ["IP:127.0.0.1"])
    cmd = [
        "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
        "-nodes", "-days", "3650", "-subj", f"/O=VME private XMPP server/CN={domain}",
        "-addext", f"subjectAltName={san}", "-keyout", str(key), "-out", str(cert),
    ]
    old_umask = os.umask(0o077)
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    finally:
        os.umask(old_umask)
    if res.returncode != 0:
        raise ServerError(f"openssl could not make the certificate: {res.stderr.strip()[-500:]}")
    cert.chmod(0o644)
    stamp.write_text(domain)
    return cert, key


def log_tail(path: Path | str, lines: int = 30) -> str:
    """The last lines of a log file (for error messages)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 16384))
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return f"(no log at {path})"
    return "\n".join(text.splitlines()[-lines:])


def _raise_nofile() -> None:
    """In the child before exec: a high open-files limit (one descriptor per agent)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = NOFILE_WANTED if hard == resource.RLIM_INFINITY else min(NOFILE_WANTED, hard)
    if soft < want:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
        except (ValueError, OSError):
            pass


def _xmpp_probe(host: str, port: int, domain: str, timeout: float = 2.0) -> bool:
    """True when the server answers a client stream header with stream features for ``domain``."""
    header = (
        f"<?xml version='1.0'?><stream:stream to='{domain}' xmlns='jabber:client' "
        "xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>"
    ).encode()
    try:
        with socket.create_connection((host, port), timeout=timeout) as s:
            s.sendall(header)
            data = b""
            deadline = time.monotonic() + timeout
            while b"features" not in data and time.monotonic() < deadline:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
            try:
                s.sendall(b"</stream:stream>")
            except OSError:
                pass
            return b"features" in data
    except OSError:
        return False


# ---------------------------------------------------------------------------------------------
# Processes


def _proc_cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode("utf-8", "replace")
    except OSError:
        return ""


def _group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes in process group ``pgid``, found in /proc."""
    members = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        # Fields after the command name in parentheses: state ppid pgrp ...
        rest = stat.rsplit(")", 1)[-1].split()
        if len(rest) >= 3 and rest[0] != "Z" and int(rest[2]) == pgid:
            members.append(int(entry))
    return members


def _owned_group(info: ServerInfo) -> list[int]:
    """Processes of the server's group that belong to this run dir (guards against pid reuse)."""
    members = _group_members(info.pid)
    if any(info.run_dir in _proc_cmdline(p) for p in members):
        return members
    return []


def _reap(pid: int) -> None:
    """Collect an exited child of this process, if it is one (no zombie left behind)."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def _spawn(cmd: Sequence[str], run_dir: Path, env: Optional[dict[str, str]] = None) -> subprocess.Popen:
    """Start the server in the foreground, in its own session and process group, with stdout
    and stderr appended to server.log."""
    log_path = run_dir / LOG_FILE
    with open(log_path, "ab") as logf:
        logf.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} starting: {' '.join(cmd)}\n".encode())
        logf.flush()
        try:
            return subprocess.Popen(
                list(cmd), cwd=run_dir, stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT,
                start_new_session=True, preexec_fn=_raise_nofile, env=env, close_fds=True,
            )
        except OSError as exc:
            raise ServerError(f"cannot run {cmd[0]}: {exc.strerror or exc}") from None


# Log lines that mean the client port could not be opened (Prosody keeps running without it).
_PORT_BUSY = ("port is in use", "address already in use", "eaddrinuse")


def _log_since(path: Path | str, offset: int) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            return f.read(1 << 20).decode("utf-8", "replace")
    except OSError:
        return ""


def _wait_ready(
    proc: subprocess.Popen, info: ServerInfo, timeout: float, extra_logs: Iterable[Path] = (), log_offset: int = 0
) -> None:
    """Poll until the server answers XMPP; fail fast if it exits or reports its port busy."""
    deadline = time.monotonic() + timeout
    delay = 0.02
    while True:
        code = proc.poll()
        if code is not None:
            _kill_group(info)
            raise ServerError(
                f"{info.kind} exited with code {code} before accepting connections on "
                f"{info.host}:{info.port}; end of {info.log_path}:\n{_all_tails(info, extra_logs)}"
            )
        if _xmpp_probe(info.host, info.port, info.domain, timeout=1.0):
            return
        recent = _log_since(info.log_path, log_offset).lower()
        if any(p in recent for p in _PORT_BUSY):
            _kill_group(info)
            raise ServerError(
                f"port {info.port} on {info.host} is already in use ({info.kind} could not listen); "
                f"end of {info.log_path}:\n{_all_tails(info, extra_logs)}"
            )
        if time.monotonic() > deadline:
            _kill_group(info)
            raise ServerError(
                f"{info.kind} did not accept XMPP connections on {info.host}:{info.port} within "
                f"{timeout:g} s; end of {info.log_path}:\n{_all_tails(info, extra_logs)}"
            )
        time.sleep(delay)
        delay = min(delay * 1.5, 0.25)


def _all_tails(info: ServerInfo, extra_logs: Iterable[Path]) -> str:
    parts = [log_tail(info.log_path)]
    for p in extra_logs:
        if Path(p).exists():
            parts.append(f"--- {p}:\n{log_tail(p, 15)}")
    return "\n".join(parts)


def _kill_group(info: ServerInfo, grace: float = 10.0) -> None:
    """SIGTERM to the server's process group, wait up to ``grace`` s, then SIGKILL."""
    _reap(info.pid)
    members = _owned_group(info)
    if not members:
        return
    try:
        os.killpg(info.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        _reap(info.pid)
        if not _group_members(info.pid):
            return
        time.sleep(0.05)
    log.warning("%s (pid %d) did not stop within %g s of SIGTERM; killing it", info.kind, info.pid, grace)
    try:
        os.killpg(info.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and _group_members(info.pid):
        _reap(info.pid)
        time.sleep(0.05)
    _reap(info.pid)


# ---------------------------------------------------------------------------------------------
# Per-kind start-up


def _start_prosody(info: ServerInfo, run_dir: Path) -> tuple[subprocess.Popen, list[Path]]:
    data = run_dir / "prosody-data"
    data.mkdir(exist_ok=True, mode=0o700)
    cfg = _render("prosody/prosody.cfg.lua.in", run_dir / "prosody.cfg.lua", {
        "pidfile": run_dir / "prosody.pid",
        "cert_dir": run_dir,
        "data_path": data,
        "run_as_root": "true" if os.geteuid() == 0 else "false",
        "log_level": "info",
        "port": info.port,
        "key_file": info.key_file,
        "cert_file": info.ca_file,
        "domain": info.domain,
    })
    info.config_path = str(cfg)
    return _spawn([shutil.which("prosody") or "prosody", "-F", "--config", str(cfg)], run_dir), []


def _ejabberd_node(run_dir: Path) -> str:
    """A node name unique to the run dir, so parallel runs never share one."""
    digest = hashlib.sha1(str(run_dir).encode()).hexdigest()[:10]
    return f"vme{digest}@localhost"


def _start_ejabberd(info: ServerInfo, run_dir: Path) -> tuple[subprocess.Popen, list[Path]]:
    spool, logs = run_dir / "ejabberd-spool", run_dir / "ejabberd-logs"
    for d in (spool, logs, run_dir / "contrib" / "conf"):
        d.mkdir(parents=True, exist_ok=True, mode=0o700)
    dist_port, api_port = free_port(), free_port()
    cfg = _render("ejabberd/ejabberd.yml.in", run_dir / "ejabberd.yml", {
        "domain": info.domain, "log_level": "notice", "cert_file": info.ca_file, "key_file": info.key_file,
        "port": info.port, "api_port": api_port,
    })
    ctl_cfg = run_dir / "ejabberdctl.cfg"
    old_umask = os.umask(0o077)
    try:
        _render("ejabberd/ejabberdctl.cfg.in", ctl_cfg, {
            "config_path": cfg, "pid_path": run_dir / "ejabberd.pid", "dist_port": dist_port,
            "cookie": secrets.token_hex(16), "run_dir": run_dir,
        })
    finally:
        os.umask(old_umask)
    _render("ejabberd/inetrc.in", run_dir / "inetrc", {})  # --config-dir points Erlang here
    info.config_path = str(cfg)
    info.extra.update({
        "node": _ejabberd_node(run_dir), "dist_port": str(dist_port), "api_port": str(api_port),
        "ctl_config": str(ctl_cfg), "spool": str(spool), "logs": str(logs),
    })
    cmd = _ejabberdctl_args(info) + ["foreground"]
    return _spawn(cmd, run_dir), [logs / "ejabberd.log", logs / "error.log"]


def _ejabberdctl_args(info: ServerInfo) -> list[str]:
    e = info.extra
    return [
        _ejabberdctl() or "ejabberdctl", "--ctl-config", e["ctl_config"], "--config", info.config_path,
        "--config-dir", info.run_dir, "--spool", e["spool"], "--logs", e["logs"], "--node", e["node"],
    ]


def _start_embedded(info: ServerInfo, run_dir: Path) -> tuple[subprocess.Popen, list[Path]]:
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
    s2s_port = free_port()
    db = run_dir / "embedded.db"
    db.unlink(missing_ok=True)  # see EMBEDDED_LIMITATIONS: it may not start on an old database
    info.config_path = ""
    info.extra.update({"s2s_port": str(s2s_port), "database": str(db)})
    cmd = [
        sys.executable, "-m", "vmenergy.runtime.servers", "embedded-child", "--domain", info.domain,
        "--port", str(info.port), "--s2s-port", str(s2s_port), "--db", str(db), "--cert-dir", str(certs),
        "--run-dir", str(run_dir),
    ]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return _spawn(cmd, run_dir, env=env), []


def _embedded_child(argv: Sequence[str]) -> int:
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


_STARTERS = {"prosody": _start_prosody, "ejabberd": _start_ejabberd, "embedded": _start_embedded}


# ---------------------------------------------------------------------------------------------
# Public API


def start_server(
    kind: str = "prosody",
    run_dir: Path | str = Path("run/xmpp"),
    domain: str = "localhost",
    port: Optional[int] = None,
    timeout: Optional[float] = None,
) -> ServerInfo:
    """Start a private server of ``kind`` on 127.0.0.1, wait until it accepts XMPP connections
    and write ``run_dir/server.json``. ``port=None`` picks a free port (and retries on a race
    with another process taking it). Raises :class:`ServerError` with the reason (missing
    binary, port in use, server exited, with the end of its log)."""
    ok, reason = check_kind(kind)
    if not ok:
        raise ServerError(reason)
    run_dir = Path(run_dir).resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    current = server_status(run_dir)
    if current.running:
        raise ServerError(
            f"a {current.info.kind} server is already running in {run_dir} (pid {current.info.pid}); "  # type: ignore[union-attr]
            "stop it first (vmenergy server stop --dir ...)"
        )
    if port is not None and _port_in_use(port):
        raise ServerError(f"port {port} on {HOST} is already in use; choose another --port or omit it")
    cert, key = make_certificate(run_dir, domain)
    attempts = 1 if port is not None else 3
    for attempt in range(attempts):
        info = ServerInfo(
            kind=kind, domain=domain, host=HOST, port=port if port is not None else free_port(), pid=0,
            ca_file=str(cert), key_file=str(key), log_path=str(run_dir / LOG_FILE), run_dir=str(run_dir),
            started_at=time.time(),
        )
        if kind == "embedded":
            info.limitations = list(EMBEDDED_LIMITATIONS)
        log_file = run_dir / LOG_FILE
        log_offset = log_file.stat().st_size if log_file.exists() else 0
        proc, extra_logs = _STARTERS[kind](info, run_dir)
        info.pid = proc.pid
        (run_dir / INFO_FILE).write_text(info.to_json())
        try:
            _wait_ready(proc, info, timeout or START_TIMEOUT[kind], extra_logs, log_offset)
        except ServerError as exc:
            in_use = str(exc).startswith(f"port {info.port} on {info.host} is already in use")
            if attempt + 1 < attempts and in_use:
                log.info("port %d was taken meanwhile; retrying with another", info.port)
                continue
            (run_dir / INFO_FILE).unlink(missing_ok=True)
            raise
        break
    _PROCS[info.pid] = proc
    for item in info.limitations:
        log.warning("embedded XMPP server limitation: %s", item)
    log.info("%s server for %s listening on %s:%d (run dir %s)", kind, domain, HOST, info.port, run_dir)
    return info


# Popen objects of servers started by this process, so stop_server can reap them.
_PROCS: dict[int, subprocess.Popen] = {}


def read_info(run_dir: Path | str) -> Optional[ServerInfo]:
    """The ServerInfo recorded in ``run_dir/server.json``, or None when there is none."""
    path = Path(run_dir).resolve() / INFO_FILE
    try:
        return ServerInfo.from_json(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError) as exc:
        raise ServerError(f"unreadable {path}: {exc}") from None


def server_status(run_dir: Path | str) -> ServerStatus:
    """Whether the server recorded in ``run_dir`` is running and answering XMPP."""
    info = read_info(run_dir)
    if info is None:
        return ServerStatus(False, False, None, f"no server recorded in {Path(run_dir).resolve()}")
    _reap(info.pid)
    if not _owned_group(info):
        return ServerStatus(False, False, info, f"{info.kind} (pid {info.pid}) is not running")
    accepting = _xmpp_probe(info.host, info.port, info.domain, timeout=2.0)
    detail = f"{info.kind} for {info.domain} on {info.host}:{info.port}, pid {info.pid}, " + (
        "accepting connections" if accepting else "NOT answering XMPP"
    )
    return ServerStatus(True, accepting, info, detail)


def stop_server(run_dir: Path | str, grace: float = 10.0) -> bool:
    """Stop the server recorded in ``run_dir`` (SIGTERM to its process group, SIGKILL after
    ``grace`` s). Idempotent: returns False when nothing was running."""
    info = read_info(run_dir)
    if info is None:
        return False
    was_running = bool(_owned_group(info))
    _kill_group(info, grace)
    proc = _PROCS.pop(info.pid, None)
    if proc is not None:
        try:
            proc.wait(timeout=1)
        except subprocess.TimeoutExpired:
            pass
    if was_running:
        log.info("stopped %s (pid %d) in %s", info.kind, info.pid, info.run_dir)
    return was_running


# ---------------------------------------------------------------------------------------------
# Accounts


def _lua_string(s: str) -> str:
    """A Lua string literal for any text (decimal escapes for everything but safe characters)."""
    safe = set(string.ascii_letters + string.digits + "-_.@+:/ ")
    return '"' + "".join(c if c in safe else "".join(f"\\{b}" for b in c.encode()) for c in s) + '"'


def register_accounts(info: ServerInfo, accounts: Sequence[tuple[str, str]], timeout: float = 120.0) -> None:
    """Create accounts (or reset their passwords) with the server's own admin tool.

    In-band registration stays the default for agents; this is for accounts made ahead of a
    run. Prosody: ``prosodyctl register`` for one account; many go through one ``prosodyctl
    shell`` session (one process instead of one per account). ejabberd: ``ejabberdctl
    register`` (an Erlang VM per call, ~1 s); more than two go through the loopback HTTP API
    of the private config (milliseconds each). The embedded server has no admin tool: its
    clients register in-band.
    """
    accounts = list(accounts)
    for user, _ in accounts:
        if not user or any(c in user for c in "@/ \"'&<>:") or user != user.lower():
            raise ServerError(f"invalid account name {user!r} (lower-case, no @ / spaces or quotes)")
    if not accounts:
        return
    if info.kind == "prosody":
        if len(accounts) == 1:
            _prosodyctl(info, ["register", accounts[0][0], info.domain, accounts[0][1]], timeout)
        else:
            _prosody_shell_register(info, accounts, timeout)
    elif info.kind == "ejabberd":
        if len(accounts) <= 2:
            for user, password in accounts:
                _ejabberdctl_register(info, user, password, timeout)
        else:
            _ejabberd_api_register(info, accounts, timeout)
    else:
        raise ServerError(
            "the embedded server has no account tool; agents register in-band (SPADE auto_register=True)"
        )


def _prosodyctl(info: ServerInfo, args: list[str], timeout: float, stdin: Optional[str] = None) -> str:
    cmd = [shutil.which("prosodyctl") or "prosodyctl", "--config", info.config_path] + args
    try:
        res = subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=timeout, cwd=info.run_dir)
    except subprocess.TimeoutExpired:
        raise ServerError(f"prosodyctl {args[0]} did not finish within {timeout:g} s") from None
    if res.returncode != 0:
        raise ServerError(f"prosodyctl {args[0]} failed ({res.returncode}): {(res.stderr or res.stdout).strip()[-800:]}")
    return res.stdout


def _prosody_shell_register(info: ServerInfo, accounts: Sequence[tuple[str, str]], timeout: float) -> None:
    lines = []
    for user, password in accounts:
        # One Lua statement per account, run inside the server: create, or set the password
        # of an existing account, and print a marker so failures can be reported.
        lines.append(
            "> local um = require 'core.usermanager'; local u, h, p = "
            f"{_lua_string(user)}, {_lua_string(info.domain)}, {_lua_string(password)}; "
            "local ok, err; if um.user_exists(u, h) then ok, err = um.set_password(u, p, h, nil) "
            "else ok, err = um.create_user(u, p, h) end; "
            "print((ok and 'VME-OK ' or 'VME-FAIL ') .. u .. ' ' .. tostring(err))"
        )
    out = _prosodyctl(info, ["shell"], timeout, stdin="\n".join(lines) + "\n")
    # The shell echoes each input line after its prompt and prefixes output lines with "| ".
    # Output lines start with "| ", but under load a result can land on the prompt's line
    # ("prosody> | VME-OK u nil"): find the marker anywhere in the line.
    results = [m.group(1) for ln in out.splitlines() if (m := re.search(r"\| (VME-(?:OK|FAIL) .*)", ln))]
    ok = sum(1 for r in results if r.startswith("VME-OK "))
    if ok != len(accounts):
        fails = [r for r in results if r.startswith("VME-FAIL")][:5]
        raise ServerError(
            f"prosodyctl shell created {ok} of {len(accounts)} accounts: {' | '.join(fails) or out[-500:]}"
        )


def _ejabberdctl_register(info: ServerInfo, user: str, password: str, timeout: float) -> None:
    base = _ejabberdctl_args(info)
    for args in (["register", user, info.domain, password], ["change_password", user, info.domain, password]):
        try:
            res = subprocess.run(base + args, capture_output=True, text=True, timeout=timeout, cwd=info.run_dir)
        except subprocess.TimeoutExpired:
            raise ServerError(f"ejabberdctl {args[0]} did not finish within {timeout:g} s") from None
        if res.returncode == 0:
            return
        out = (res.stdout + res.stderr).strip()
        if args[0] == "register" and ("already registered" in out or "conflict" in out):
            continue  # exists: set the password instead
        raise ServerError(f"ejabberdctl {args[0]} {user} failed ({res.returncode}): {out[-800:]}")


def _ejabberd_api_register(info: ServerInfo, accounts: Sequence[tuple[str, str]], timeout: float) -> None:
    base = f"http://{info.host}:{info.extra['api_port']}/api/"
    deadline = time.monotonic() + timeout

    def call(command: str, body: dict[str, str]) -> tuple[int, str]:
        req = urllib.request.Request(
            base + command, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(req, timeout=max(1.0, deadline - time.monotonic())) as resp:
                return resp.status, resp.read().decode("utf-8", "replace")
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode("utf-8", "replace")
        except OSError as exc:
            raise ServerError(f"ejabberd account API at {base} unreachable: {exc}") from None

    for user, password in accounts:
        status, text = call("register", {"user": user, "host": info.domain, "password": password})
        if status == 200:
            continue
        if status in (409, 500) or "already registered" in text or "conflict" in text.lower():
            status, text = call("change_password", {"user": user, "host": info.domain, "newpass": password})
            if status == 200:
                continue
        raise ServerError(f"ejabberd API register {user} failed (HTTP {status}): {text[:300]}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "embedded-child":
        sys.exit(_embedded_child(sys.argv[2:]))
    print("usage: python -m vmenergy.runtime.servers embedded-child ... (internal; use `vmenergy server`)")
    sys.exit(2)
