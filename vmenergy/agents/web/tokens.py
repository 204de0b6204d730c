"""Per-user tokens of an agent's web console and REST interface.

A token stands for one bare JID; what that JID may do is the agent's ``[operators]`` table
(:class:`~vmenergy.protocol.operators.Operators`: viewers read, controllers also write), so the
web and XMPP are governed by one access list. The file keeps only SHA-256 digests of the tokens
(a copy of the file lets nobody in) and is private (mode 0600, :mod:`vmenergy.runtime.private`):
``{"tokens": {"<sha256 hex>": "alice@example.org", ...}}``. ``vmenergy web-token`` adds one.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Optional

from vmenergy.flexoffer import FlexOfferError
from vmenergy.protocol.operators import check_bare_jid
from vmenergy.runtime.private import PrivateFileError, read_private, write_private

__all__ = ["Tokens", "TokenFile", "issue_token", "digest"]

#: Bytes of randomness in a token (URL-safe base64 of 32 bytes: 43 characters).
TOKEN_BYTES = 32


def digest(token: str) -> str:
    """The SHA-256 hex digest of ``token`` (what the file keeps)."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(frozen=True)
class Tokens:
    """Digest -> bare JID. ``who(token)`` answers in constant time per entry, so a guess
    learns nothing from how long the refusal took."""

    by_digest: Mapping[str, str]

    @classmethod
    def load(cls, path: Path | str) -> "Tokens":
        """The tokens of a private file; FlexOfferError naming the file or the entry otherwise."""
        try:
            raw = read_private(path, "web token file")
        except PrivateFileError as exc:
            raise FlexOfferError("tokens", str(exc)) from None
        try:
            data = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise FlexOfferError("tokens", f"{path} is not JSON: {exc}") from None
        table = data.get("tokens") if isinstance(data, dict) else None
        if not isinstance(table, dict):
            raise FlexOfferError("tokens", f"{path}: a JSON object {{\"tokens\": {{digest: jid}}}}")
        out = {}
        for k, v in table.items():
            if not (isinstance(k, str) and len(k) == 64 and all(c in "0123456789abcdef" for c in k)):
                raise FlexOfferError(f"tokens.{k[:16]}", "a SHA-256 hex digest (64 lower-case hex digits)")
            out[k] = check_bare_jid(v, f"tokens.{k[:16]}")
        return cls(out)

    def who(self, token: Optional[str]) -> Optional[str]:
        """The bare JID ``token`` stands for, or None."""
        if not token:
            return None
        d = digest(token)
        found = None
        for k, jid in self.by_digest.items():
            if hmac.compare_digest(k, d):
                found = jid
        return found


class TokenFile:
    """The tokens of a file as it is now: a token added with ``vmenergy web-token`` (or removed
    from the file) counts from the next request, without restarting the agent. The file is read
    again only when it changed (a ``stat`` per request). A file that became unreadable or
    malformed keeps the tokens last read, and says why once (``problem``): an operator's typo must
    not lock everyone out or take the console down; a file that was removed holds no tokens."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.problem: Optional[str] = None
        self._seen: Optional[tuple[int, int, int]] = None
        self._tokens = Tokens.load(self.path)  # at start, a bad file is the agent's error to report
        self._seen = self._stamp()

    def _stamp(self) -> Optional[tuple[int, int, int]]:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return None
        return st.st_mtime_ns, st.st_size, st.st_ino

    def current(self) -> Tokens:
        stamp = self._stamp()
        if stamp == self._seen:
            return self._tokens
        self._seen = stamp
        if stamp is None:
            self._tokens, self.problem = Tokens({}), None
            return self._tokens
        try:
            self._tokens, self.problem = Tokens.load(self.path), None
        except FlexOfferError as exc:
            self.problem = f"{exc.path}: {exc.reason}"
        return self._tokens


def issue_token(path: Path | str, jid: str) -> str:
    """A new token for ``jid``, added to the private file at ``path`` (made if missing); the
    token itself is returned once and never stored."""
    jid = check_bare_jid(jid, "jid")
    p = Path(path)
    table: dict[str, str] = dict(Tokens.load(p).by_digest) if p.exists() else {}
    token = secrets.token_urlsafe(TOKEN_BYTES)
    table[digest(token)] = jid
    write_private(p, json.dumps({"tokens": table}, indent=1, sort_keys=True) + "\n")
    return token
