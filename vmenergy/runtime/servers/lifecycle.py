"""Start, stop and inspect the server of a run directory, whatever its kind.

Private kinds (:data:`KINDS`) are started here, each by its own module (``prosody``,
``ejabberd``, ``embedded``: a ``check``, a ``start`` and a ``START_TIMEOUT``), in the foreground
as a child in its own process group, so :func:`stop_server` can end it and everything it spawned,
even from another process (``vmenergy server stop``). An external server recorded in a run
directory (:func:`vmenergy.runtime.servers.external.record_external`) is only ever probed:
stopping it is someone else's job.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import time
from pathlib import Path
from types import ModuleType
from typing import Optional

from vmenergy.runtime.private import private_dir

from . import ejabberd, embedded, process, prosody
from .certs import make_certificate
from .info import EXTERNAL, HOST, INFO_FILE, KINDS, LOG_FILE, ServerError, ServerInfo, ServerStatus, read_info
from .probe import check_reachable, xmpp_probe

log = logging.getLogger(__name__)

_MODULES: dict[str, ModuleType] = {m.NAME: m for m in (prosody, ejabberd, embedded)}
START_TIMEOUT = {name: float(m.START_TIMEOUT) for name, m in _MODULES.items()}

# Popen objects of servers started by this process, so stop_server can reap them.
_PROCS: dict[int, subprocess.Popen] = {}


def kind_module(kind: str) -> ModuleType:
    """The module that starts and provisions a private ``kind``."""
    try:
        return _MODULES[kind]
    except KeyError:
        raise ServerError(f"unknown server kind {kind!r} (choose one of {', '.join(KINDS)})") from None


def check_kind(kind: str) -> tuple[bool, str]:
    """Whether a private server kind can run here; when not, the reason says what to install."""
    if kind == EXTERNAL:
        return False, "an external server is not started by VME; give its host, port, domain and CA file instead"
    if kind not in KINDS:
        return False, f"unknown server kind {kind!r} (choose one of {', '.join(KINDS)})"
    if not shutil.which("openssl"):
        return False, "openssl is not installed (it makes the server certificate): sudo apt-get install openssl"
    ok, reason = _MODULES[kind].check()
    return bool(ok), str(reason)


def available_kinds() -> list[str]:
    """The server kinds that can run on this machine, preferred first."""
    return [k for k in KINDS if check_kind(k)[0]]


def start_server(
    kind: str = "prosody",
    run_dir: Path | str = Path("run/xmpp"),
    domain: str = "localhost",
    port: Optional[int] = None,
    timeout: Optional[float] = None,
    registration: bool = False,
    options: Optional[dict[str, str]] = None,
) -> ServerInfo:
    """Start a private server of ``kind`` on 127.0.0.1, wait until it accepts XMPP connections
    and write ``run_dir/server.json``. ``port=None`` picks a free port (and retries on a race
    with another process taking it). ``registration``: open in-band registration to anyone who
    reaches the port (for development; closed by default, the embedded kind cannot close it).
    ``options``: settings for the kind's module, kept in ``ServerInfo.extra`` (a cluster node's
    cookie, see :mod:`.cluster`). Raises :class:`ServerError` with the reason (missing
    binary, port in use, server exited, with the end of its log)."""
    run_dir = Path(run_dir).resolve()
    recorded = read_info(run_dir)
    if recorded is not None and recorded.external:
        raise ServerError(
            f"{run_dir} records the external server {recorded.host}:{recorded.port}; "
            "use another run directory for a private server"
        )
    ok, reason = check_kind(kind)
    if not ok:
        raise ServerError(reason)
    module = _MODULES[kind]
    private_dir(run_dir)  # the server's key, its accounts and its admin credentials: owner only
    if recorded is not None and server_status(run_dir).running:
        raise ServerError(
            f"a {recorded.kind} server is already running in {run_dir} (pid {recorded.pid}); "
            "stop it first (vmenergy server stop --dir ...)"
        )
    if port is not None and process.port_in_use(port):
        raise ServerError(f"port {port} on {HOST} is already in use; choose another --port or omit it")
    cert, key = make_certificate(run_dir, domain)
    attempts = 1 if port is not None else 3
    for attempt in range(attempts):
        info = ServerInfo(
            kind=kind, domain=domain, host=HOST, port=port if port is not None else process.free_port(), pid=0,
            ca_file=str(cert), key_file=str(key), log_path=str(run_dir / LOG_FILE), run_dir=str(run_dir),
            started_at=time.time(), registration=registration, extra=dict(options or {}),
        )
        log_file = run_dir / LOG_FILE
        log_offset = log_file.stat().st_size if log_file.exists() else 0
        proc, extra_logs = module.start(info, run_dir)
        info.pid = proc.pid
        (run_dir / INFO_FILE).write_text(info.to_json())
        try:
            process.wait_ready(proc, info, timeout or START_TIMEOUT[kind], extra_logs, log_offset)
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
    note = process.priority_note(info.pid)
    if note:  # a run of many agents says so where its user reads (orchestrator.priority_notes)
        log.info("%s", note)
    log.info("%s server for %s listening on %s:%d (run dir %s)", kind, domain, HOST, info.port, run_dir)
    return info


def server_exit_code(run_dir: Path | str) -> Optional[int]:
    """None while the private server recorded in ``run_dir`` runs; once it has ended, its exit
    code (negative: the signal that killed it; -1 when it was not started by this process and its
    code is unknown). A supervisor polls this to restart a server that died."""
    info = read_info(run_dir)
    if info is None or info.external:
        return None
    proc = _PROCS.get(info.pid)
    if proc is not None:
        return proc.poll()
    process.reap(info.pid)
    return None if process.owned_group(info) else -1


def server_status(run_dir: Path | str) -> ServerStatus:
    """Whether the server recorded in ``run_dir`` is running and answering XMPP. For an external
    server: whether it answers XMPP and its certificate verifies (VME cannot see its process)."""
    info = read_info(run_dir)
    if info is None:
        return ServerStatus(False, False, None, f"no server recorded in {Path(run_dir).resolve()}")
    if info.external:
        reach = check_reachable(info.host, info.port, info.domain, info.ca_file)
        state = "reachable" if reach.usable else "NOT reachable"
        return ServerStatus(reach.answers, reach.usable, info,
                            f"external server for {info.domain} at {info.host}:{info.port}, {state} "
                            f"(VME does not start or stop it): {reach.detail}")
    process.reap(info.pid)
    if not process.owned_group(info):
        return ServerStatus(False, False, info, f"{info.kind} (pid {info.pid}) is not running")
    accepting = xmpp_probe(info.host, info.port, info.domain, timeout=2.0)
    detail = f"{info.kind} for {info.domain} on {info.host}:{info.port}, pid {info.pid}, " + (
        "accepting connections" if accepting else "NOT answering XMPP"
    )
    return ServerStatus(True, accepting, info, detail)


def stop_server(run_dir: Path | str, grace: float = 10.0) -> bool:
    """Stop the server recorded in ``run_dir`` (SIGTERM to its process group, SIGKILL after
    ``grace`` s). Idempotent: returns False when nothing was running. An external server is left
    alone (False): VME never started it."""
    info = read_info(run_dir)
    if info is None:
        return False
    if info.external:
        log.info("external server %s:%d left running (VME does not stop it)", info.host, info.port)
        return False
    was_running = bool(process.owned_group(info))
    process.kill_group(info, grace)
    proc = _PROCS.pop(info.pid, None)
    if proc is not None:
        try:
            proc.wait(timeout=1)
        except subprocess.TimeoutExpired:
            pass
    if was_running:
        log.info("stopped %s (pid %d) in %s", info.kind, info.pid, info.run_dir)
    return was_running
