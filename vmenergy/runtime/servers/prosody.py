"""Prosody (Debian ``prosody``), the default private server: ``prosody -F --config FILE`` in
the run directory, and its accounts made with ``prosodyctl``.
"""

from __future__ import annotations

import os
import re
import shutil
import string
import subprocess
from pathlib import Path
from typing import Iterable, Mapping, Optional, Sequence

from . import templates
from .info import ServerError, ServerInfo
from .process import spawn

NAME = "prosody"
START_TIMEOUT = 15.0


def check() -> tuple[bool, str]:
    """Whether Prosody can run here; when not, what to install."""
    if not (shutil.which("prosody") and shutil.which("prosodyctl")):
        return False, "prosody is not installed: sudo apt-get install prosody"
    return True, "prosody found at " + str(shutil.which("prosody"))


def start(info: ServerInfo, run_dir: Path) -> tuple[subprocess.Popen, list[Path]]:
    """Write the config and start Prosody; returns the process and the extra logs to show."""
    data = run_dir / "prosody-data"
    data.mkdir(exist_ok=True, mode=0o700)
    cfg = templates.render("prosody/prosody.cfg.lua.in", run_dir / "prosody.cfg.lua", {
        "pidfile": run_dir / "prosody.pid",
        "cert_dir": run_dir,
        "data_path": data,
        "run_as_root": "true" if os.geteuid() == 0 else "false",
        "log_level": "info",
        "port": info.port,
        "key_file": info.key_file,
        "cert_file": info.ca_file,
        "domain": info.domain,
        "allow_registration": "true" if info.registration else "false",
    })
    info.config_path = str(cfg)
    return spawn([shutil.which("prosody") or "prosody", "-F", "--config", str(cfg)], run_dir), []


def register(info: ServerInfo, accounts: Sequence[tuple[str, str]], timeout: float) -> None:
    """``prosodyctl register`` for one account; many go through one ``prosodyctl shell``
    session (one process instead of one per account)."""
    if len(accounts) == 1:
        _prosodyctl(info, ["register", accounts[0][0], info.domain, accounts[0][1]], timeout)
    else:
        _shell_register(info, accounts, timeout)


def _lua_string(s: str) -> str:
    """A Lua string literal for any text (decimal escapes for everything but safe characters)."""
    safe = set(string.ascii_letters + string.digits + "-_.@+:/ ")
    return '"' + "".join(c if c in safe else "".join(f"\\{b}" for b in c.encode()) for c in s) + '"'


def _prosodyctl(info: ServerInfo, args: list[str], timeout: float, stdin: Optional[str] = None) -> str:
    cmd = [shutil.which("prosodyctl") or "prosodyctl", "--config", info.config_path] + args
    try:
        res = subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=timeout, cwd=info.run_dir)
    except subprocess.TimeoutExpired:
        raise ServerError(f"prosodyctl {args[0]} did not finish within {timeout:g} s") from None
    if res.returncode != 0:
        raise ServerError(f"prosodyctl {args[0]} failed ({res.returncode}): {(res.stderr or res.stdout).strip()[-800:]}")
    return res.stdout


#: Contacts written per shell line when a roster is preset (a line stays a few KiB long).
CONTACTS_PER_LINE = 100


def preset_contacts(info: ServerInfo, contacts: Mapping[str, Iterable[str]], timeout: float) -> None:
    """Write mutual presence subscriptions (``both``) into the rosters of existing accounts:
    ``contacts[user]`` are the bare JIDs ``user`` shares presence with, both ways (give each
    pair once or both ways: each side's roster gets the other). Made ahead of a run, before
    anyone connects.

    Why: Prosody's internal storage keeps a roster as one file, read and rewritten whole on
    every subscription change. While N prosumers subscribed to their aggregator (about four
    changes each), the aggregator's roster of up to N contacts was rewritten ~4N times:
    O(N^2) bytes and Lua serialisation in the server's one thread; at 2,000 prosumers Prosody
    wrote 11 MiB/s and start-up fell to 2-3 agents/s (bench/RESULTS.md, "Scale ladder").
    Preset, each roster is written once, and at run time a ``subscribe`` to a contact
    already subscribed changes no roster (Prosody answers ``subscribed`` itself)."""
    rosters: dict[str, set[str]] = {}
    for user, jids in contacts.items():
        for jid in jids:
            peer, _, host = str(jid).partition("@")
            if host != info.domain:
                raise ServerError(f"preset contacts: {jid} is not on the server's domain {info.domain}")
            rosters.setdefault(user, set()).add(f"{peer}@{host}")
            rosters.setdefault(peer, set()).add(f"{user}@{info.domain}")
    if not rosters:
        return
    host = _lua_string(info.domain)
    lines = ["> VME_R = {}"]
    for user, jids in sorted(rosters.items()):
        u = _lua_string(user)
        # merge into what the account has (an operator's subscription made earlier stays)
        lines.append(f"> local s = require 'core.storagemanager'.open({host}, 'roster', 'keyval'); "
                     f"local r = s:get({u}) or {{}}; r[false] = r[false] or {{version = 1, pending = {{}}}}; "
                     f"VME_R[{u}] = r")
        ordered = sorted(jids)
        for i in range(0, len(ordered), CONTACTS_PER_LINE):
            items = ", ".join(_lua_string(j) for j in ordered[i:i + CONTACTS_PER_LINE])
            lines.append(f"> local r = VME_R[{u}]; for _, j in ipairs({{{items}}}) do "
                         "r[j] = {subscription = 'both', groups = {}} end")
        lines.append(f"> local s = require 'core.storagemanager'.open({host}, 'roster', 'keyval'); "
                     f"local ok, err = s:set({u}, VME_R[{u}]); VME_R[{u}] = nil; "
                     f"print((ok and 'VME-OK ' or 'VME-FAIL ') .. {u} .. ' ' .. tostring(err))")
    ok, fails, out = _shell_run(info, lines, timeout)
    if ok != len(rosters):
        raise ServerError(f"prosodyctl shell preset {ok} of {len(rosters)} rosters: {' | '.join(fails) or out[-500:]}")


def _shell_run(info: ServerInfo, lines: Sequence[str], timeout: float) -> tuple[int, list[str], str]:
    """Run Lua lines in one ``prosodyctl shell`` session; each line that reports prints a
    ``VME-OK ...`` or ``VME-FAIL ...`` marker. Returns (OK markers, first failures, output)."""
    out = _prosodyctl(info, ["shell"], timeout, stdin="\n".join(lines) + "\n")
    # The shell echoes each input line after its prompt and prefixes output lines with "| ".
    # Output lines start with "| ", but under load a result can land on the prompt's line
    # ("prosody> | VME-OK u nil"): find the marker anywhere in the line.
    results = [m.group(1) for ln in out.splitlines() if (m := re.search(r"\| (VME-(?:OK|FAIL) .*)", ln))]
    return (sum(1 for r in results if r.startswith("VME-OK ")), [r for r in results if r.startswith("VME-FAIL")][:5],
            out)


def _shell_register(info: ServerInfo, accounts: Sequence[tuple[str, str]], timeout: float) -> None:
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
    ok, fails, out = _shell_run(info, lines, timeout)
    if ok != len(accounts):
        raise ServerError(
            f"prosodyctl shell created {ok} of {len(accounts)} accounts: {' | '.join(fails) or out[-500:]}"
        )
