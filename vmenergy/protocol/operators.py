"""Who may look at an agent and who may steer it: the ``[operators]`` table of a node or scenario.

An operator is a person with an ordinary XMPP client (Gajim, Conversations, Dino, profanity).
``viewers`` may read (chat commands such as ``status`` and ``offers``, the read-only ad-hoc
commands, ``watch``); ``controllers`` may also steer (pause, resume, withdraw, change the
objective, open, close or clear a market session). Anyone else is refused: "not authorized" in
chat, ``forbidden`` for an ad-hoc command, and nothing changes. With no table nobody is an
operator, so an agent answers no one: access is given, never assumed.

JIDs are bare (``alice@example.org``) and compared case-insensitively, as servers compare them;
a resource is refused because it would let any client of that account in under one name and no
client under another.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, Mapping

from vmenergy.flexoffer import FlexOfferError
from vmenergy.validation import set_field

__all__ = ["Access", "Operators", "check_bare_jid"]

# local@domain: no resource, no spaces, one @; the characters XMPP forbids in a local part too
_JID = re.compile(r"[^@/\s\"&'<>:]{1,1023}@[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?\Z")


class Access(IntEnum):
    """What a sender may do with an agent; ordered, so ``access >= Access.VIEW`` reads well."""

    NONE = 0
    VIEW = 1
    CONTROL = 2

    def __str__(self) -> str:
        return {0: "none", 1: "viewer", 2: "controller"}[int(self)]


def check_bare_jid(value: Any, path: str) -> str:
    """``value`` as a bare JID in lower case; FlexOfferError naming ``path`` otherwise."""
    if not isinstance(value, str):
        raise FlexOfferError(path, f"a bare JID such as \"alice@example.org\", got {type(value).__name__}")
    jid = value.strip().lower()
    if "/" in jid:
        raise FlexOfferError(path, f"{value!r} has a resource; name the account only (user@domain)")
    if not _JID.match(jid):
        raise FlexOfferError(path, f"{value!r} is not a bare JID (user@domain)")
    return jid


@dataclass(frozen=True)
class Operators:
    """The operators of an agent (see the module docstring). Both lists are normalised to
    lower-case bare JIDs; a JID in both is an error (which one was meant?)."""

    controllers: tuple[str, ...] = ()
    viewers: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        seen: dict[str, str] = {}
        for name in ("controllers", "viewers"):
            value = getattr(self, name)
            if isinstance(value, str) or not isinstance(value, (tuple, list)):
                raise FlexOfferError(name, "a list of bare JIDs, e.g. [\"alice@example.org\"]")
            jids = []
            for i, item in enumerate(value):
                jid = check_bare_jid(item, f"{name}[{i}]")
                if jid in seen:
                    raise FlexOfferError(f"{name}[{i}]", f"{jid} is already listed in {seen[jid]}")
                seen[jid] = name
                jids.append(jid)
            set_field(self, name, tuple(jids))

    @classmethod
    def from_dict(cls, table: Mapping[str, Any]) -> "Operators":
        """The ``[operators]`` table (``controllers``, ``viewers``); other keys are refused."""
        for key in table:
            if key not in ("controllers", "viewers"):
                raise FlexOfferError(str(key), "unknown operators setting (known: controllers, viewers)")
        values = {k: tuple(v) if isinstance(v, list) else v for k, v in table.items()}
        return cls(**values)

    def with_controller(self, jid: str) -> "Operators":
        """These operators and one more controller (a scenario's own operator account)."""
        jid = check_bare_jid(jid, "controllers")
        if jid in self.controllers:
            return self
        return Operators(self.controllers + (jid,), tuple(v for v in self.viewers if v != jid))

    def access(self, jid: str) -> Access:
        """What the sender ``jid`` (bare or full) may do."""
        bare = str(jid).split("/", 1)[0].strip().lower()
        if bare in self.controllers:
            return Access.CONTROL
        if bare in self.viewers:
            return Access.VIEW
        return Access.NONE

    def __bool__(self) -> bool:
        """Whether anyone may operate the agent (an agent with nobody offers no commands)."""
        return bool(self.controllers or self.viewers)

    def __contains__(self, jid: object) -> bool:
        return isinstance(jid, str) and self.access(jid) > Access.NONE

    def to_dict(self) -> dict:
        """The table form (what a plan carries to an agent's process)."""
        return {"controllers": list(self.controllers), "viewers": list(self.viewers)}
