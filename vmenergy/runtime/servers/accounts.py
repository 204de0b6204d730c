"""Accounts: made with a private server's own admin tool, generated for a run, or read from an
accounts file that the operator of an external server hands over.

The accounts file is CSV (UTF-8), one account per line: the bare JID, then the password::

    # accounts of the Aarhus study on vme.example.org
    jid,password
    house1@vme.example.org,Zq8v...
    "house2@vme.example.org","a password, with a comma"

The header line ``jid,password`` is optional; blank lines and lines starting with ``#`` are
skipped; a field with a comma or a double quote is quoted as in RFC 4180 (``""`` for a quote).
Because it holds passwords it must be readable by its owner only (``chmod 600``): a file that
its group or others can read or change is refused. A run takes from it the passwords of its own
agents; other lines (more accounts on the same server) are fine.
"""

from __future__ import annotations

import csv
import io
import secrets
from pathlib import Path
from typing import Iterable, Mapping, Sequence

from vmenergy.runtime.private import PrivateFileError, read_private

from .info import ServerError, ServerInfo
from .lifecycle import kind_module

ACCOUNTS_HEADER = ("jid", "password")
# Characters that cannot be in a local part VME makes accounts for (XMPP forbids most of them,
# the rest would need quoting in the admin tools).
_BAD_USER_CHARS = "@/ \"'&<>:"


def check_user(user: str) -> None:
    """Refuse a local part that the servers' tools or a JID cannot carry as it is."""
    if not user or any(c in user for c in _BAD_USER_CHARS) or user != user.lower():
        raise ServerError(f"invalid account name {user!r} (lower-case, no @ / spaces or quotes)")


def new_password() -> str:
    """A password for an account VME makes itself (96 random bits, URL-safe text)."""
    return secrets.token_urlsafe(12)


def register_accounts(info: ServerInfo, accounts: Sequence[tuple[str, str]], timeout: float = 120.0) -> None:
    """Create accounts (or reset their passwords) with the server's own admin tool.

    In-band registration stays the default for agents; this is for accounts made ahead of a
    run. Prosody: ``prosodyctl register`` for one account; many go through one ``prosodyctl
    shell`` session (one process instead of one per account). ejabberd: ``ejabberdctl
    register`` (an Erlang VM per call, ~1 s); more than two go through the loopback HTTP API
    of the private config (milliseconds each). The embedded server has no admin tool: its
    clients register in-band. An external server's accounts are its operator's business.
    """
    accounts = list(accounts)
    for user, _ in accounts:
        check_user(user)
    if not accounts:
        return
    if info.external:
        raise ServerError(
            f"VME does not manage accounts on the external server {info.host}:{info.port}; its operator makes "
            "them (prosodyctl adduser, ejabberdctl register) and hands over an accounts file, or agents "
            "register in-band"
        )
    kind_module(info.kind).register(info, accounts, timeout)


def preset_contacts(info: ServerInfo, contacts: Mapping[str, Iterable[str]], timeout: float = 600.0) -> bool:
    """Write mutual presence subscriptions between existing accounts into the server's rosters
    before anyone connects (``contacts[user]``: the bare JIDs ``user`` shares presence with,
    both ways). Returns False where the kind has no way to (ejabberd, embedded): there the
    agents' own subscription handshake makes them, as always. Only for accounts VME made (a
    private server); see :func:`vmenergy.runtime.servers.prosody.preset_contacts` for why."""
    contacts = {user: list(jids) for user, jids in contacts.items()}
    for user, jids in contacts.items():
        check_user(user)
        for jid in jids:
            check_user(str(jid).partition("@")[0])
    if info.external:
        raise ServerError(f"VME does not write rosters on the external server {info.host}:{info.port}")
    preset = getattr(kind_module(info.kind), "preset_contacts", None)
    if preset is None:
        return False
    if contacts:
        preset(info, contacts, timeout)
    return True


def _bare_jid(text: str) -> str:
    """The canonical form of a bare JID for look-ups (JIDs compare case-insensitively)."""
    return text.strip().lower()


def _jid_problem(jid: str) -> str:
    local, at, domain = jid.partition("@")
    if not at or not local or not domain:
        return f"{jid!r} is not a bare JID (user@domain)"
    if "/" in jid or any(c.isspace() for c in jid) or "@" in domain:
        return f"{jid!r} is not a bare JID (no resource, spaces or second @)"
    return ""


def read_accounts_file(path: Path | str) -> dict[str, str]:
    """The passwords of an accounts file (format in this module's docstring), by bare JID in
    lower case. Raises :class:`ServerError` naming the file (and line) when the file is not
    private to its owner, cannot be read, or a line is malformed or repeats a JID."""
    path = Path(path)
    try:
        raw = read_private(path, "accounts file")
    except PrivateFileError as exc:
        raise ServerError(str(exc)) from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ServerError(f"accounts file {path} is not UTF-8 text: {exc}") from None
    # Comment lines become empty rows (skipped below) so csv's line numbers stay the file's.
    lines = ("\n" if ln.lstrip().startswith("#") else ln for ln in io.StringIO(text))
    reader = csv.reader(lines, strict=True)
    found: dict[str, str] = {}
    first_line: dict[str, int] = {}
    try:
        for row in reader:
            where = f"{path}:{reader.line_num}"
            if not row or all(not cell.strip() for cell in row):
                continue
            if not found and tuple(c.strip().lower() for c in row) == ACCOUNTS_HEADER:
                continue
            if len(row) != 2:
                raise ServerError(f"{where}: expected 2 fields (jid,password), found {len(row)}")
            jid, password = _bare_jid(row[0]), row[1]
            problem = _jid_problem(jid)
            if problem:
                raise ServerError(f"{where}: {problem}")
            if not password:
                raise ServerError(f"{where}: empty password for {jid}")
            if jid in found:
                raise ServerError(f"{where}: {jid} is listed twice (first on line {first_line[jid]})")
            found[jid] = password
            first_line[jid] = reader.line_num
    except csv.Error as exc:
        raise ServerError(f"{path}:{reader.line_num}: not valid CSV: {exc}") from None
    return found
