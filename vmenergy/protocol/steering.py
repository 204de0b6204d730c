"""Steering: what an operator may change in a running engine, and the audit of every change.

An operator (a controller, see :mod:`.operators`) steers an agent from an XMPP client: pause
and resume it, withdraw a prosumer's offer, change an aggregator's planning objective, open,
close or clear a market session. Each action is an engine method marked ``@steers("name")``
and runs as an engine step like any other (the shell calls :meth:`Engine.steer
<vmenergy.protocol.engine.Engine.steer>` inside ``agent.handle``), so it is persisted, its
messages go out reliably, and the timed steps it affects look again.

Every action carried out is written to the engine's :data:`STEERING` table: who, when (scenario
time), what, with which arguments and what came of it. An action that does not apply (an
unknown offer, pausing what is paused) raises :class:`SteeringError` *before* anything changes,
and is not recorded: the ledger holds what was done, the log what was tried.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, TypeVar

from vmenergy.errors import VmeError

from .ledger import Table

__all__ = ["SteeringRecord", "STEERING", "OVERRIDES", "SteeringError", "steers"]


class SteeringError(VmeError):
    """A steering action that does not apply now: ``path`` names the argument (or ``action``),
    ``reason`` says why. Nothing was changed."""


@dataclass(frozen=True, slots=True)
class SteeringRecord:
    """One steering action carried out: its sequence number, the scenario time ``at`` (epoch
    seconds), the ``operator`` (bare JID) who asked, the ``action`` and its ``params`` as given
    to the engine, and the one-line ``outcome`` the operator was told."""

    seq: int
    at: int
    operator: str
    action: str
    params: dict = field(default_factory=dict)
    outcome: str = ""


#: The audit of steering actions, by zero-padded sequence number (so keys sort in order).
STEERING: Table[SteeringRecord] = Table("steering", SteeringRecord)
#: Settings an operator changed at run time, by name (an aggregator's ``objective``); they
#: outlive a restart because the engine reads them back when it is rebuilt from its ledger.
OVERRIDES: Table[dict] = Table("overrides", dict)

F = TypeVar("F", bound=Callable[..., Any])


def steers(action: str) -> Callable[[F], F]:
    """Mark an engine method as the steering action ``action``.

    The method is called as ``method(now=now, **params)`` and returns ``(effects, outcome)``;
    it raises :class:`SteeringError` before changing anything when the action does not apply."""
    if not isinstance(action, str) or not action.isidentifier():
        raise TypeError(f"@steers takes an action name, not {action!r}")

    def mark(fn: F) -> F:
        fn._vme_steers = action  # type: ignore[attr-defined]
        return fn

    return mark
