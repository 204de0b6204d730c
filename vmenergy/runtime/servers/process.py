"""The server process: ports, spawning in its own process group, waiting until it answers,
and ending it with everything it spawned (also from another process, by its recorded pid).

Shared by the three private kinds; none of this applies to an external server.
"""

from __future__ import annotations

import logging
import os
import random
import resource
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Iterable, Optional, Sequence

from .info import HOST, LOG_FILE, ServerError, ServerInfo
from .probe import xmpp_probe

log = logging.getLogger(__name__)

# Open-files limit for the server child: one descriptor per connected agent, and ejabberd dies
# at ~1,000 connections with the usual soft limit of 1024.
NOFILE_WANTED = 65536

# How much the server child's scheduling priority is raised (niceness lowered) above the process
# that starts it, where the OS allows it (root or CAP_SYS_NICE; otherwise it runs as its parent).
# Every agent's traffic passes through the one server process: at 10,000 prosumers Prosody was
# runnable all the time but ran 25 % of it (/proc/PID/schedstat: 2.5 s on a core, 7.4 s waiting
# in the run queue, per 10 s) behind a dozen equally weighted agent processes on 2 cores, so one
# pass of its loop over 10,000 sockets holding a noon burst of offers took minutes and the agents'
# pings went unanswered (bench/RESULTS.md, "10,000 prosumers: the server starved"). At -10 the
# kernel weighs it 9.3 times a default process: it gets most of a core when it has work and
# costs nothing when idle.
SERVER_NICENESS = -10

# Log lines that mean the client port could not be opened (Prosody keeps running without it).
PORT_BUSY = ("port is in use", "address already in use", "eaddrinuse")


# Where listening ports are drawn when the kernel's ephemeral range cannot be read (Linux's default
# range starts at 32768).
LISTEN_PORTS = (20000, 32767)


def ephemeral_ports() -> tuple[int, int]:
    """The kernel's range for the local ports of outgoing connections (Linux; a default elsewhere)."""
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return LISTEN_PORTS[1] + 1, 60999


def listen_port_range() -> tuple[int, int]:
    """Ports to listen on: below the ephemeral range. A server listening on an ephemeral port
    that dies (a drill, a crash) leaves its port to outgoing connections: the agents reconnecting
    to it on loopback, thousands of them, sooner or later get that very port as their own local
    port and connect to themselves (TCP simultaneous open), and the server cannot be restarted
    on its port (seen: a killed ejabberd node whose port was 'already in use')."""
    low, _ = ephemeral_ports()
    top = min(LISTEN_PORTS[1], low - 1)
    bottom = min(LISTEN_PORTS[0], max(1024, top - 4096))
    return bottom, top


def free_port(host: str = HOST) -> int:
    """A TCP port that is free on ``host`` right now, outside the ephemeral range (see
    :func:`listen_port_range`); the OS picks one only if that range is exhausted."""
    bottom, top = listen_port_range()
    draw = random.SystemRandom()  # not the scenario's randomness: a port is no result of a run
    for _ in range(64) if top > bottom else ():
        port = draw.randint(bottom, top)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
            return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def port_in_use(port: int, host: str = HOST) -> bool:
    """Whether something listens on ``port``. The probe binds with SO_REUSEADDR, as the servers
    do: connections of a server that just died linger in TIME_WAIT for a minute and would make
    a plain bind fail although the port is free to listen on (a restart on the same port)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return True
    return False


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


def _log_since(path: Path | str, offset: int) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            return f.read(1 << 20).decode("utf-8", "replace")
    except OSError:
        return ""


def _prepare_server() -> None:
    """In the server child before exec (inherited by every thread and process it starts): a
    high open-files limit and a raised priority."""
    _raise_nofile()
    _raise_priority()


def _raise_priority() -> None:
    """Lower the niceness by :data:`SERVER_NICENESS` where the OS allows it; where it does not,
    the server runs as its parent does (the run says so: :func:`priority_note`).

    With Linux's autogroup scheduling (``kernel.sched_autogroup_enabled``, on by default) the
    kernel first shares the CPU equally between sessions, and the server child starts its own
    session: its own niceness then only weighs it against itself. Its session's group gets the
    same niceness (``/proc/self/autogroup``; this runs after ``setsid``). Measured at 10,000
    prosumers: with the process niceness alone Prosody still ran 4 s of 15 while runnable the
    whole time; with its group's too, 6 s of 7.7 runnable, and it accepted 70 instead of 40
    connections a second."""
    try:
        current = os.getpriority(os.PRIO_PROCESS, 0)
        os.setpriority(os.PRIO_PROCESS, 0, max(-20, current + SERVER_NICENESS))
    except OSError:
        return
    try:
        with open("/proc/self/autogroup", "w") as f:
            f.write(f"{max(-20, SERVER_NICENESS)}\n")
    except OSError:
        pass  # no autogroup scheduling here (not Linux, or turned off): the niceness is enough


def priority_note(pid: int) -> Optional[str]:
    """A warning when the server ``pid`` could not be given its raised priority (None when it
    has it, or when it cannot be read): large runs will starve it."""
    try:
        theirs = os.getpriority(os.PRIO_PROCESS, pid)
        ours = os.getpriority(os.PRIO_PROCESS, 0)
    except OSError:
        return None
    if theirs < ours or ours == -20:
        return None
    return (f"the server runs at the same priority as the agents (niceness {theirs}): raising it needs "
            "root or CAP_SYS_NICE; with thousands of agents on few cores it can be starved (docs/scaling.md)")


def _raise_nofile() -> None:
    """In the child before exec: a high open-files limit (one descriptor per agent)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = NOFILE_WANTED if hard == resource.RLIM_INFINITY else min(NOFILE_WANTED, hard)
    if soft < want:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
        except (ValueError, OSError):
            pass


def _proc_cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode("utf-8", "replace")
    except OSError:
        return ""


def proc_table() -> list[tuple[int, str, int, int]]:
    """(pid, state, parent pid, process group) of every process, from /proc."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        # Fields after the command name in parentheses: state ppid pgrp ...
        rest = stat.rsplit(")", 1)[-1].split()
        if len(rest) >= 3:
            out.append((int(entry), rest[0], int(rest[1]), int(rest[2])))
    return out


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes in process group ``pgid``, found in /proc."""
    return [pid for pid, state, _, group in proc_table() if state != "Z" and group == pgid]


def owned_group(info: ServerInfo) -> list[int]:
    """Processes of the server's group that belong to this run dir (guards against pid reuse)."""
    if info.pid <= 0:  # an external server: no process of ours
        return []
    members = group_members(info.pid)
    if any(info.run_dir in _proc_cmdline(p) for p in members):
        return members
    return []


def reap(pid: int) -> None:
    """Collect an exited child of this process, if it is one (no zombie left behind)."""
    if pid <= 0:
        return
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def spawn(cmd: Sequence[str], run_dir: Path, env: Optional[dict[str, str]] = None) -> subprocess.Popen:
    """Start the server in the foreground, in its own session and process group, with stdout
    and stderr appended to server.log."""
    log_path = run_dir / LOG_FILE
    with open(log_path, "ab") as logf:
        logf.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} starting: {' '.join(cmd)}\n".encode())
        logf.flush()
        try:
            return subprocess.Popen(
                list(cmd), cwd=run_dir, stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT,
                start_new_session=True, preexec_fn=_prepare_server, env=env, close_fds=True,
            )
        except OSError as exc:
            raise ServerError(f"cannot run {cmd[0]}: {exc.strerror or exc}") from None


def wait_ready(
    proc: subprocess.Popen, info: ServerInfo, timeout: float, extra_logs: Iterable[Path] = (), log_offset: int = 0
) -> None:
    """Poll until the server answers XMPP; fail fast if it exits or reports its port busy."""
    deadline = time.monotonic() + timeout
    delay = 0.02
    while True:
        code = proc.poll()
        if code is not None:
            kill_group(info)
            raise ServerError(
                f"{info.kind} exited with code {code} before accepting connections on "
                f"{info.host}:{info.port}; end of {info.log_path}:\n{_all_tails(info, extra_logs)}"
            )
        if xmpp_probe(info.host, info.port, info.domain, timeout=1.0):
            return
        recent = _log_since(info.log_path, log_offset).lower()
        if any(p in recent for p in PORT_BUSY):
            kill_group(info)
            raise ServerError(
                f"port {info.port} on {info.host} is already in use ({info.kind} could not listen); "
                f"end of {info.log_path}:\n{_all_tails(info, extra_logs)}"
            )
        if time.monotonic() > deadline:
            kill_group(info)
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


def kill_group(info: ServerInfo, grace: float = 10.0) -> None:
    """SIGTERM to the server's process group, wait up to ``grace`` s, then SIGKILL."""
    reap(info.pid)
    members = owned_group(info)
    if not members:
        return
    try:
        os.killpg(info.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        reap(info.pid)
        if not group_members(info.pid):
            return
        time.sleep(0.05)
    log.warning("%s (pid %d) did not stop within %g s of SIGTERM; killing it", info.kind, info.pid, grace)
    try:
        os.killpg(info.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and group_members(info.pid):
        reap(info.pid)
        time.sleep(0.05)
    reap(info.pid)
