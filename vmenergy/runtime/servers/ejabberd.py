"""ejabberd (Debian ``ejabberd``), the private server for large runs: ``ejabberdctl ...
foreground`` with a private ctl config, node name and distribution port per run directory, and
its accounts made with ``ejabberdctl`` or the loopback HTTP API.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Optional, Sequence

from vmenergy.runtime.private import read_private, write_private

from . import process, templates
from .info import ServerError, ServerInfo

NAME = "ejabberd"
START_TIMEOUT = 60.0
#: The account the loopback HTTP API authenticates (its password: API_SECRET in the run dir).
API_USER = "vme-api-admin"
API_SECRET = "api-admin.secret"


def ejabberdctl() -> Optional[str]:
    return shutil.which("ejabberdctl") or (
        "/usr/sbin/ejabberdctl" if os.access("/usr/sbin/ejabberdctl", os.X_OK) else None
    )


def _user_name() -> str:
    import pwd

    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return str(os.geteuid())


def check() -> tuple[bool, str]:
    """Whether ejabberd can run here; when not, what to install or how to run."""
    ctl = ejabberdctl()
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


def node_name(run_dir: Path) -> str:
    """A node name unique to the run dir, so parallel runs never share one."""
    digest = hashlib.sha1(str(run_dir).encode()).hexdigest()[:10]
    return f"vme{digest}@localhost"


def start(info: ServerInfo, run_dir: Path) -> tuple[subprocess.Popen, list[Path]]:
    """Write the configs and start ejabberd; returns the process and the extra logs to show."""
    spool, logs = run_dir / "ejabberd-spool", run_dir / "ejabberd-logs"
    for d in (spool, logs, run_dir / "contrib" / "conf"):
        d.mkdir(parents=True, exist_ok=True, mode=0o700)
    dist_port, api_port = process.free_port(), process.free_port()
    cfg = templates.render("ejabberd/ejabberd.yml.in", run_dir / "ejabberd.yml", {
        "domain": info.domain, "log_level": "notice", "cert_file": info.ca_file, "key_file": info.key_file,
        "port": info.port, "api_port": api_port, "api_user": API_USER,
        "registration": "allow" if info.registration else "deny",
        # seconds ejabberd waits for an answer to its ack request before it cuts the stream; a
        # test that makes a client answer late sets a short one (tests/integration/
        # test_stream_resumption.py); see the template for why it is infinity otherwise
        "ack_timeout": info.extra.get("ack_timeout", "infinity"),
    })
    ctl_cfg = run_dir / "ejabberdctl.cfg"
    old_umask = os.umask(0o077)
    try:
        values: dict[str, object] = {"config_path": cfg, "pid_path": run_dir / "ejabberd.pid", "dist_port": dist_port,
                                     "cookie": secrets.token_hex(16), "run_dir": run_dir}
        if "cluster_cookie" in info.extra:  # a node of a cluster (see cluster.py): epmd, shared cookie
            values.update(cookie=info.extra["cluster_cookie"], epmd_port=info.extra["epmd_port"])
            templates.render("ejabberd/cluster/ejabberdctl.cfg.in", ctl_cfg, values)
        else:
            templates.render("ejabberd/ejabberdctl.cfg.in", ctl_cfg, values)
    finally:
        os.umask(old_umask)
    templates.render("ejabberd/inetrc.in", run_dir / "inetrc", {})  # --config-dir points Erlang here
    info.config_path = str(cfg)
    info.extra.update({
        "node": node_name(run_dir), "dist_port": str(dist_port), "api_port": str(api_port),
        "ctl_config": str(ctl_cfg), "spool": str(spool), "logs": str(logs),
    })
    cmd = _ctl_args(info) + ["foreground"]
    return process.spawn(cmd, run_dir), [logs / "ejabberd.log", logs / "error.log"]


def _ctl_args(info: ServerInfo) -> list[str]:
    e = info.extra
    return [
        ejabberdctl() or "ejabberdctl", "--ctl-config", e["ctl_config"], "--config", info.config_path,
        "--config-dir", info.run_dir, "--spool", e["spool"], "--logs", e["logs"], "--node", e["node"],
    ]


def register(info: ServerInfo, accounts: Sequence[tuple[str, str]], timeout: float) -> None:
    """``ejabberdctl register`` (an Erlang VM per call, ~1 s) for one or two accounts; more go
    through the loopback HTTP API of the private config (milliseconds each)."""
    if len(accounts) <= 2:
        for user, password in accounts:
            _ctl_register(info, user, password, timeout)
    else:
        _api_register(info, accounts, timeout)


def _ctl_register(info: ServerInfo, user: str, password: str, timeout: float) -> None:
    base = _ctl_args(info)
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


def api_credentials(info: ServerInfo, timeout: float) -> tuple[str, str]:
    """The API account's JID and password, made with ejabberdctl on first use (about a second,
    once per server); the password is kept in a file only its owner can read."""
    secret = Path(info.run_dir) / API_SECRET
    if secret.exists():
        return info.jid(API_USER), read_private(secret, "ejabberd API password").decode().strip()
    password = secrets.token_urlsafe(24)
    _ctl_register(info, API_USER, password, timeout)
    write_private(secret, password)
    return info.jid(API_USER), password


def _api_register(info: ServerInfo, accounts: Sequence[tuple[str, str]], timeout: float) -> None:
    base = f"http://{info.host}:{info.extra['api_port']}/api/"
    deadline = time.monotonic() + timeout
    user, password = api_credentials(info, timeout)
    auth = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()

    def call(command: str, body: dict[str, str]) -> tuple[int, str]:
        req = urllib.request.Request(
            base + command, data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json", "Authorization": auth},
        )
        try:
            with urllib.request.urlopen(req, timeout=max(1.0, deadline - time.monotonic())) as resp:
                return resp.status, resp.read().decode("utf-8", "replace")
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode("utf-8", "replace")
        except OSError as exc:
            raise ServerError(f"ejabberd account API at {base} unreachable: {exc}") from None

    for user_name, pw in accounts:
        status, text = call("register", {"user": user_name, "host": info.domain, "password": pw})
        if status == 200:
            continue
        if status in (409, 500) or "already registered" in text or "conflict" in text.lower():
            status, text = call("change_password", {"user": user_name, "host": info.domain, "newpass": pw})
            if status == 200:
                continue
        raise ServerError(f"ejabberd API register {user_name} failed (HTTP {status}): {text[:300]}")
