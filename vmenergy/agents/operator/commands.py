"""The operator commands, defined once for chat and for XEP-0050 ad-hoc commands.

Each :class:`Command` says which roles have it, the access it needs (a viewer reads, a
controller also steers), its arguments (:class:`Param`: a choice, several choices, free text or
a yes/no) and what it does: a read-only ``view`` of the agent, or a steering ``action`` of the
engine (:meth:`vmenergy.protocol.engine.Engine.steer`) with the arguments it takes. Chat reads
the arguments from the words after the command name; an ad-hoc command shows them as data-form
fields, in one step or, for a command with ``steps``, in several (the second step's fields may
depend on the first's answers). Both check values with :func:`check_values`, so a bad argument
gets the same reason either way.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable, Literal, Optional, Sequence

from vmenergy.errors import VmeError
from vmenergy.flexoffer import FlexOfferError, State
from vmenergy.flexoffer.timeutil import DEFAULT_RESOLUTION, format_utc, parse_utc
from vmenergy.protocol.operators import Access

from . import views
from .views import Ctx, VmeAgent

__all__ = ["ArgError", "Param", "Command", "COMMANDS", "commands_for", "find", "closest", "check_values",
           "chat_values", "OBJECTIVE_KINDS", "objective_spec", "parse_when"]

ROLES = frozenset({"prosumer", "aggregator", "market"})


class ArgError(VmeError):
    """A bad argument of an operator command: ``path`` names the argument (the form field)."""


Options = Callable[[VmeAgent], list[tuple[str, str]]]


@dataclass(frozen=True)
class Param:
    """One argument. ``kind``: ``choice`` (one of ``options``), ``choices`` (several), ``text``,
    ``boolean``. ``options(agent)`` gives (value, label) pairs; ``rest``: in chat it takes every
    remaining word."""

    name: str
    label: str
    kind: Literal["choice", "choices", "text", "boolean"] = "text"
    required: bool = False
    options: Optional[Options] = None
    rest: bool = False
    desc: str = ""
    #: checks a text value (raises ArgError naming ``name``), so a form can say what is wrong
    check: Optional[Callable[[str, str], None]] = None


@dataclass(frozen=True)
class Command:
    """An operator command (see the module docstring). ``view(ctx, values)`` answers a read-only
    command; ``action`` names the engine's steering action and ``to_engine(values, now)`` turns
    the checked values into its parameters. ``steps(done, values)`` gives the fields of ad-hoc
    step ``done`` (0, 1, ...) or None when there are no more; by default one step of ``params``.
    ``chat(words)`` reads chat arguments when words do not map onto ``params`` one by one.
    ``applies(agent)`` narrows a role's command to agents configured for it."""

    name: str
    title: str
    summary: str
    usage: str
    roles: frozenset[str]
    access: Access = Access.VIEW
    params: tuple[Param, ...] = ()
    view: Optional[Callable[[Ctx, dict], str]] = None
    action: Optional[str] = None
    to_engine: Callable[[dict, int], dict] = lambda values, now: {}
    steps: Optional[Callable[[int, dict], Optional[tuple[Param, ...]]]] = None
    chat: Optional[Callable[[list[str]], dict]] = None
    applies: Callable[[VmeAgent], bool] = lambda agent: True
    heavy: bool = False  # its view may take long (runs in a thread)
    aliases: tuple[str, ...] = ()
    #: (role, usage, summary) where a role says it differently (``bill ID`` for a prosumer)
    wording: tuple[tuple[str, str, str], ...] = ()
    #: more on the arguments, shown with the usage after a mistake
    details: str = ""

    def available(self, agent: VmeAgent) -> bool:
        return agent.role in self.roles and self.applies(agent)

    def usage_for(self, role: str) -> str:
        return next((u for r, u, _ in self.wording if r == role), self.usage)

    def summary_for(self, role: str) -> str:
        return next((s for r, _, s in self.wording if r == role), self.summary)

    def step(self, done: int, values: dict) -> Optional[tuple[Param, ...]]:
        """The fields of ad-hoc step ``done`` (0-based), or None when the command can run."""
        if self.steps is not None:
            fields = self.steps(done, values)
            return fields or None
        return self.params if done == 0 and self.params else None


# -- options from the agent's ledger ------------------------------------------------------------
def _offer_ids(agent: VmeAgent) -> list[tuple[str, str]]:
    return [(r.offer.id, f"{r.offer.id} ({r.offer.state.value})") for r in views.offer_records(agent)]


def _scheduled_ids(agent: VmeAgent) -> list[tuple[str, str]]:
    return [(key, key) for key, _ in views.schedules(agent)]


def _aggregate_ids(agent: VmeAgent) -> list[tuple[str, str]]:
    return [(r.aggregate_id, f"{r.aggregate_id} ({r.status})") for r in views.aggregate_records(agent)]


def _withdrawable(agent: VmeAgent) -> list[tuple[str, str]]:
    engine = agent.engine
    return [(r.offer.id, f"{r.offer.id} ({r.state.value}, {views.window(r.offer)})")
            for r in engine.withdrawable()]  # type: ignore[attr-defined]


def _sessions(*states: str) -> Options:
    def options(agent: VmeAgent) -> list[tuple[str, str]]:
        return [(r.notice.session_id, f"{r.notice.session_id} ({r.notice.state}, gate closure "
                                      f"{format_utc(r.notice.gate_closure)[11:16]})")
                for r in views.session_records(agent) if r.notice.state in states]
    return options


def _states(agent: VmeAgent) -> list[tuple[str, str]]:
    return [(s.value, s.value) for s in State]


def _bill_keys(agent: VmeAgent) -> list[tuple[str, str]]:
    return [(k, k) for k in views.bill_keys(agent)]


ON_OFF = lambda agent: [("on", "on"), ("off", "off")]  # noqa: E731


# -- the objective an operator sets (aggregator) ----------------------------------------------
#: The objective kinds an operator may choose, and what each one's series means.
OBJECTIVE_KINDS = {
    "peak": "shave the peak of the portfolio's load",
    "target": "follow a target load (kWh per 15 min)",
    "balance": "balance a forecast imbalance (kWh per 15 min)",
    "cost": "lowest cost at these prices (EUR/kWh per 15 min)",
    "follow_market": "deliver a market commitment (kWh per 15 min)",
    "energy_min": "least total energy",
    "energy_max": "most total energy",
}
#: The kinds that take a series, and the name of the series in the objective's config table.
SERIES = {"target": "values", "balance": "imbalance", "cost": "prices", "follow_market": "commitment"}
_NUMBER = re.compile(r"[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?\Z")


def parse_when(text: str, now: int, path: str = "from") -> int:
    """A time an operator writes, in UTC: ``HH:MM`` (on the current day of scenario time) or
    ``2026-11-22T18:00:00Z``; epoch seconds."""
    text = text.strip()
    m = re.fullmatch(r"(\d{1,2}):(\d{2})Z?", text)
    if m:
        hour, minute = int(m.group(1)), int(m.group(2))
        if hour > 23 or minute > 59:
            raise ArgError(path, f"{text!r} is not a time of day (HH:MM, UTC)")
        return now - now % 86400 + hour * 3600 + minute * 60
    try:
        return parse_utc(text, path)
    except FlexOfferError:
        raise ArgError(path, f"{text!r} is not a time: HH:MM (UTC, today) or 2026-11-22T18:00:00Z") from None


def _numbers(text: str, path: str) -> list[float]:
    words = [w for w in re.split(r"[\s,;]+", text.strip()) if w]
    if not words:
        raise ArgError(path, "numbers separated by spaces or commas")
    for w in words:
        if not _NUMBER.match(w):
            raise ArgError(path, f"{w!r} is not a number")
    return [float(w) for w in words]


def _weight(text: str, path: str) -> float:
    if not _NUMBER.match(text.strip()) or float(text) < 0:
        raise ArgError(path, f"a number >= 0, got {text!r}")
    return float(text)


def objective_spec(values: dict, now: int) -> dict:
    """The objective's config table (as ``[aggregator] objective``) from an operator's answers:
    ``kind``, and ``values`` (numbers), ``from`` (a time) or ``weight`` as the kind takes them.
    A series starts at the interval (15 min) that holds ``from``, by default the current one."""
    kind = values.get("kind")
    if kind not in OBJECTIVE_KINDS:
        raise ArgError("kind", f"one of {', '.join(OBJECTIVE_KINDS)}")
    spec: dict[str, Any] = {"kind": kind}
    if kind in SERIES:
        if not values.get("values"):
            raise ArgError("values", f"{kind} needs its series: numbers separated by spaces or commas")
        spec[SERIES[kind]] = _numbers(str(values["values"]), "values")
        start = parse_when(values["from"], now) if values.get("from") else now
        spec["start"] = start // DEFAULT_RESOLUTION
    elif kind == "peak" and values.get("weight"):
        spec["weight"] = _weight(str(values["weight"]), "weight")
    return spec


def _objective_chat(words: list[str]) -> dict:
    if not words:
        raise ArgError("kind", f"name the objective: {', '.join(OBJECTIVE_KINDS)}")
    values: dict[str, Any] = {"kind": words[0]}
    rest = words[1:]
    if "from" in [w.lower() for w in rest]:
        i = [w.lower() for w in rest].index("from")
        values["from"] = " ".join(rest[i + 1:])
        rest = rest[:i]
    if values["kind"].lower() == "peak":
        if len(rest) > 1:
            raise ArgError("weight", "peak takes one number at most (its weight)")
        values["weight"] = rest[0] if rest else ""
    else:
        values["values"] = " ".join(rest)
    return values


def _objective_steps(done: int, values: dict) -> Optional[tuple[Param, ...]]:
    if done == 0:
        return (Param("kind", "Objective", "choice", True,
                      lambda agent: [(k, f"{k}: {v}") for k, v in OBJECTIVE_KINDS.items()]),)
    if done == 1:
        kind = values.get("kind")
        if kind in SERIES:
            return (Param("values", f"{kind} series", "text", True,
                          desc="numbers separated by spaces or commas, one per 15 minutes", check=_numbers),
                    Param("from", "From (UTC)", "text", desc="HH:MM today or 2026-11-22T18:00:00Z; default: now",
                          check=lambda text, path: parse_when(text, 0, path) and None))
        if kind == "peak":
            return (Param("weight", "Weight", "text", desc="a number >= 0; default 1", check=_weight),)
    return None


# -- withdraw (prosumer): choose offers, then confirm ---------------------------------------------
def _withdraw_steps(done: int, values: dict) -> Optional[tuple[Param, ...]]:
    if done == 0:
        return (Param("offers", "Offers to withdraw", "choices", True, _withdrawable),)
    if done == 1:
        chosen = ", ".join(values.get("offers") or ())
        return (Param("confirm", f"Withdraw {chosen}?", "boolean", True),)
    return None


def _withdraw_params(values: dict, now: int) -> dict:
    if values.get("confirm") is False:
        raise ArgError("confirm", "not confirmed: nothing was withdrawn")
    return {"offers": tuple(values.get("offers") or ())}


def _session_param(values: dict, now: int) -> dict:
    return {"session": values.get("session") or None}


def _has_objective(agent: VmeAgent) -> bool:
    return agent.engine.objective() is not None  # type: ignore[attr-defined]


def _bids_on_market(agent: VmeAgent) -> bool:
    return agent.role == "market" or getattr(getattr(agent, "config", None), "upstream", None) == "market"


def _trades_upstream(agent: VmeAgent) -> bool:
    return agent.role == "aggregator" and agent.engine.trades_upstream  # type: ignore[attr-defined]


ALL = ROLES
#: every role, the DSO's too (it has the generic commands and its own ``grid``)
EVERY = ROLES | {"dso"}
PA = frozenset({"prosumer", "aggregator"})
AGGREGATOR = frozenset({"aggregator"})
MARKET = frozenset({"market"})

#: Every operator command, in the order ``help`` lists them.
COMMANDS: tuple[Command, ...] = (
    Command("help", "Help", "the commands you may use here", "help", EVERY, view=views.help_view, aliases=("?", "h")),
    Command("status", "Status", "what the agent is doing, and who steered it last", "status", EVERY,
            view=views.status, aliases=("s",)),
    Command("offers", "Offers", "the offers, or those in one state", "offers [state]", PA,
            params=(Param("state", "State", "choice", options=_states),), view=views.offers, aliases=("o",)),
    Command("offer", "Offer details", "one offer in full", "offer ID", PA,
            params=(Param("id", "Offer", "choice", True, _offer_ids),), view=views.offer),
    Command("schedule", "Schedules", "the schedules, or one in full", "schedule [ID]", PA,
            params=(Param("id", "Offer or aggregate", "choice", options=_scheduled_ids),), view=views.schedule),
    Command("aggregates", "Aggregates", "the aggregates built", "aggregates", AGGREGATOR,
            view=views.aggregates, aliases=("a",)),
    Command("aggregate", "Aggregate details", "one aggregate in full", "aggregate ID", AGGREGATOR,
            params=(Param("id", "Aggregate", "choice", True, _aggregate_ids),), view=views.aggregate),
    Command("kpi", "KPIs", "key figures of what was traded and billed", "kpi", ALL, view=views.kpi, heavy=True),
    Command("bill", "Bills", "the bills sent, or one prosumer's", "bill [prosumer]", ALL,
            params=(Param("of", "Of", "choice", options=_bill_keys),), view=views.bill, aliases=("bills",),
            wording=(("prosumer", "bill [ID]", "the bills received, or one in full"),
                     ("market", "bill [participant]", "what each participant pays, or one's awards"))),
    Command("market", "Market", "sessions, bids and the last clearing", "market", frozenset({"market", "aggregator"}),
            view=views.market, applies=_bids_on_market),
    Command("devices", "Devices", "the devices behind the offers and what they run", "devices",
            frozenset({"prosumer"}), view=views.devices),
    Command("grid", "Grid", "congestion points, flex requests and the latest orders", "grid", frozenset({"dso"}),
            view=views.grid),
    Command("watch", "Watch", "a line for every message this agent sends or receives", "watch on|off", EVERY,
            params=(Param("state", "Watch", "choice", True, ON_OFF),), view=views.watch),
    Command("pause", "Pause", "stop the aggregation rounds (no new bids or plans)", "pause", EVERY,
            access=Access.CONTROL, action="pause",
            wording=(("prosumer", "pause", "stop sending new offers"), ("dso", "pause", "stop sending flex requests"),
                     ("market", "pause", "stop the session calendar (no new sessions)"))),
    Command("resume", "Resume", "restart what pause stopped", "resume", EVERY, access=Access.CONTROL,
            action="resume"),
    Command("withdraw", "Withdraw offers", "withdraw offers not yet assigned", "withdraw ID [ID ...]",
            frozenset({"prosumer"}), access=Access.CONTROL,
            params=(Param("offers", "Offers to withdraw", "choices", True, _withdrawable, rest=True),),
            action="withdraw", to_engine=_withdraw_params, steps=_withdraw_steps),
    Command("objective", "Change objective", "the planning objective from the next plan on",
            "objective KIND [args]", AGGREGATOR, access=Access.CONTROL, action="objective",
            details="KIND [args]: peak [weight] | energy_min | energy_max | target, balance, cost or "
                    "follow_market NUMBERS [from HH:MM] (one number per 15 min, from now or HH:MM UTC)",
            to_engine=lambda values, now: {"objective": objective_spec(values, now)},
            steps=_objective_steps, chat=_objective_chat, applies=_has_objective),
    Command("trading", "Trading on or off", "send new aggregates upstream (on) or plan them here (off)",
            "trading on|off", AGGREGATOR, access=Access.CONTROL,
            params=(Param("state", "Trading", "choice", True, ON_OFF),), action="trading",
            to_engine=lambda values, now: {"on": values["state"] == "on"}, applies=_trades_upstream),
    Command("open", "Open a session", "open a market session now", "open", MARKET, access=Access.CONTROL,
            action="open"),
    Command("close", "Close a session", "close a session's gate now (it clears at its gate closure)",
            "close [session]", MARKET, access=Access.CONTROL,
            params=(Param("session", "Session", "choice", options=_sessions("open")),), action="close",
            to_engine=_session_param),
    Command("clear", "Clear a session", "clear a session now", "clear [session]", MARKET, access=Access.CONTROL,
            params=(Param("session", "Session", "choice", options=_sessions("open", "closed")),),
            action="clear", to_engine=_session_param),
)


def commands_for(agent: VmeAgent, access: Access = Access.CONTROL) -> list[Command]:
    """The commands of ``agent``'s role that a sender with ``access`` may use."""
    return [c for c in COMMANDS if c.available(agent) and c.access <= access]


def find(agent: VmeAgent, word: str) -> Optional[Command]:
    """The command of ``agent`` named (or abbreviated as) ``word``, or None."""
    word = word.strip().lower()
    for c in COMMANDS:
        if c.available(agent) and (word == c.name or word in c.aliases):
            return c
    return None


def closest(agent: VmeAgent, word: str, access: Access) -> Optional[Command]:
    """The command a mistyped ``word`` most likely meant (among those ``access`` allows)."""
    import difflib

    names = {c.name: c for c in commands_for(agent, access)}
    match = difflib.get_close_matches(word.strip().lower(), list(names), n=1, cutoff=0.5)
    return names[match[0]] if match else None


def check_values(agent: VmeAgent, params: Sequence[Param], values: dict) -> dict:
    """``values`` (param name -> text, a list of texts, or a yes/no) checked against ``params``:
    required ones present, choices among the options (matched without regard to case). Returns
    the values with each choice as the option spells it; raises :class:`ArgError`."""
    out = dict(values)
    for p in params:
        v = values.get(p.name)
        if v in (None, "", (), []):
            if p.required:
                raise ArgError(p.name, "required")
            out[p.name] = None
            continue
        if p.kind == "boolean":
            if isinstance(v, str):
                if v.strip().lower() not in ("1", "0", "true", "false", "yes", "no"):
                    raise ArgError(p.name, f"yes or no, got {v!r}")
                v = v.strip().lower() in ("1", "true", "yes")
            out[p.name] = bool(v)
        elif p.kind in ("choice", "choices") and p.options is not None:
            options = [value for value, _ in p.options(agent)]
            given = [v] if p.kind == "choice" else (list(v) if isinstance(v, (list, tuple)) else str(v).split())
            chosen = tuple(_match(p, str(g), options) for g in given)
            out[p.name] = chosen[0] if p.kind == "choice" else chosen
        else:
            out[p.name] = str(v).strip()
            if p.check is not None:
                p.check(out[p.name], p.name)
    return out


def _match(p: Param, given: str, options: list[str]) -> str:
    if given in options:
        return given
    folded = [o for o in options if o.lower() == given.strip().lower()]
    if len(folded) == 1:
        return folded[0]
    import difflib

    if not options:
        raise ArgError(p.name, f"{given!r}: there is no {p.label.lower()} to choose now")
    near = difflib.get_close_matches(given, options, n=1, cutoff=0.6)
    hint = f"; did you mean {near[0]}?" if near else ""
    shown = ", ".join(options[:8]) + (", ..." if len(options) > 8 else "")
    raise ArgError(p.name, f"{given!r} is not one of {shown}{hint}")


def chat_values(command: Command, words: list[str]) -> dict:
    """The values of a chat command's words (after its name), not yet checked."""
    if command.chat is not None:
        return command.chat(words)
    values: dict[str, Any] = {}
    params = list(command.params)
    for i, p in enumerate(params):
        if i >= len(words):
            break
        values[p.name] = tuple(words[i:]) if p.rest and p.kind == "choices" else (
            " ".join(words[i:]) if p.rest else words[i])
    if len(words) > len(params) and not (params and params[-1].rest):
        extra = " ".join(words[len(params):])
        raise ArgError(params[-1].name if params else "arguments", f"too many words: {extra!r}")
    return values
