"""The market and aggregator tables, checked by the code the agents themselves run.

A ``[market]`` or ``[aggregator]`` table (in a scenario or in an agent's node config) becomes
the agent's config object, and the agent builds its engine from it when it starts. Checking
means doing exactly that, without a server: ``MarketConfig`` and the market engine with its
clearing mechanism; ``AggregatorConfig``, its aggregation parameters, contract and objective,
and the aggregator engine. So a setting that would stop an agent is found here, and a field
added to one of these classes is known here the moment it exists.
"""

from __future__ import annotations

import re
from typing import Any, Callable, Optional

from vmenergy.flexoffer import FlexOfferError

from .locate import KeyPath
from .problems import Problems, parse_path, suggest
from .tables import check_keys

__all__ = ["check_market", "check_aggregator", "check_dso", "check_operators", "build_all"]


def check_market(settings: dict, at: KeyPath, problems: Problems, jid: str) -> Optional[Any]:
    """The ``MarketConfig`` of a market table whose keys were checked, or None (problems added)."""
    from vmenergy.protocol.market import MarketConfig, MarketEngine

    errors = len(problems.errors)
    config = build_all(at, MarketConfig.from_dict, settings, problems)
    if config is None or len(problems.errors) > errors:
        return None
    # what the market agent does with its config when it starts and opens a session
    made = build_all(at, lambda _: (MarketEngine(jid, config), config.mechanism_object()), {}, problems)
    return None if made is None else config


def check_aggregator(settings: dict, at: KeyPath, problems: Problems, jid: str) -> Optional[Any]:
    """The ``AggregatorConfig`` of an aggregator table whose keys were checked, or None."""
    from vmenergy.aggregation import AggregationParams
    from vmenergy.protocol.aggregator import AggregatorConfig, AggregatorEngine, objective_from
    from vmenergy.agents.plugins import aggregator_strategies
    from vmenergy.settlement import default_contract

    def make(kw: dict) -> Any:
        if isinstance(kw.get("enrolment"), list):
            kw = dict(kw, enrolment=tuple(kw["enrolment"]))
        return AggregatorConfig(**kw)

    errors = len(problems.errors)
    config = build_all(at, make, settings, problems)
    if config is None:
        return None
    # the pieces the aggregator engine builds from its config, each checked under its own key ...
    if "class" not in config.aggregation:  # else a user's aggregation class takes these as its options
        params = check_keys(AggregationParams, config.aggregation, at + ("aggregation",), problems)
        build_all(at + ("aggregation",), lambda kw: AggregationParams(**kw), params, problems, strip="params")
    build_all(at + ("contract",), lambda kw: default_contract(jid, kw), config.contract, problems)
    build_all(at + ("objective",), objective_from, config.objective, problems, strip="objective")
    if len(problems.errors) > errors:
        return None
    # ... and the engine itself, with the user's strategy classes the table names (imported, as
    # the agent will), for whatever else it checks when an agent starts
    made = build_all(at, lambda _: AggregatorEngine(jid, config, strategies=aggregator_strategies(config, jid)),
                     {}, problems)
    return None if made is None else config


def check_dso(settings: dict, at: KeyPath, problems: Problems, jid: str) -> Optional[Any]:
    """The ``DsoConfig`` of a DSO table whose keys were checked, and its engine, or None."""
    from vmenergy.protocol.dso import DsoConfig, DsoEngine

    errors = len(problems.errors)
    config = build_all(at, lambda kw: DsoConfig(**kw), settings, problems)
    if config is None or len(problems.errors) > errors:
        return None
    made = build_all(at, lambda _: DsoEngine(jid, config), {}, problems)
    return None if made is None else config


def check_operators(table: Any, at: KeyPath, problems: Problems, *, also: tuple[str, ...] = ()) -> Optional[Any]:
    """The :class:`~vmenergy.protocol.operators.Operators` of an ``[operators]`` table (a node's
    or a scenario's; ``also``: keys the caller reads itself), or None (problems added)."""
    from vmenergy.protocol.operators import Operators

    errors = len(problems.errors)
    settings = check_keys(Operators, table, at, problems, also=also)
    settings = {k: tuple(v) if isinstance(v, list) else v for k, v in settings.items()}
    made = build_all(at, lambda kw: Operators(**kw), settings, problems)
    return None if made is None or len(problems.errors) > errors else made


def check_web(table: Any, at: KeyPath, problems: Problems) -> Optional[Any]:
    """The :class:`~vmenergy.agents.web.WebConfig` of a ``[web]`` table, or None (problems added)."""
    from vmenergy.agents.web.config import WebConfig

    errors = len(problems.errors)
    settings = check_keys(WebConfig, table, at, problems)
    made = build_all(at, lambda kw: WebConfig(**kw), settings, problems)
    return None if made is None or len(problems.errors) > errors else made


def build_all(at: KeyPath, make: Callable[[dict], Any], table: dict, problems: Problems, strip: str = "") -> Any:
    """``make(table)``, adding its errors under ``at``.

    The agents' config classes stop at their first error; to report all of them the key an
    error names is left out and the object built again, as long as errors name keys that are
    written in the table (an error about a default would not be the user's). Returns what was
    built in the end, without the refused keys (so the checks of its parts can go on), or None.
    ``strip``: a prefix the class puts on its error paths (``params.method``)."""
    current, failed = dict(table), False
    while True:
        try:
            return make(current)
        except FlexOfferError as exc:
            sub = parse_path(exc.path)
            if strip and sub[:1] == (strip,):
                sub = sub[1:]
            key = sub[0] if sub else None
            if not failed or key in current:
                problems.error(at + sub, exc.reason, _spelling(table, sub, exc.reason))
            if key not in current:
                return None
            del current[key]
            failed = True
        except (TypeError, ValueError) as exc:
            if not failed:
                problems.error(at, str(exc))
            return None


_WORD = re.compile(r"[A-Za-z][A-Za-z0-9_-]*")


def _spelling(table: dict, path: KeyPath, reason: str) -> Optional[str]:
    """A likely intended spelling for what an error refused: the word of the error message
    closest to the refused string (``must be uniform or pay-as-bid`` lists the choices) or, for
    an unknown key, to the key."""
    value: Any = table
    for part in path:
        try:
            value = value[part]
        except (KeyError, IndexError, TypeError):
            value = None
            break
    if not isinstance(value, str):
        value = path[-1] if path and isinstance(path[-1], str) and reason.startswith("unknown") else None
    if value is None:
        return None
    return suggest(value, set(_WORD.findall(reason)) - {value}, cutoff=0.75)
