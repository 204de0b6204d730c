"""A user's strategy classes, named in a config, loaded and built (see docs/extending.md).

The core parses ``bidding = "mypackage.module:MyBidding"`` into a
:class:`~vmenergy.protocol.aggregator_config.StrategySpec`; importing the module is I/O, so it
happens here, in the shell, when an agent builds its engine. Errors name the config key.
"""

from __future__ import annotations

import importlib

from vmenergy.flexoffer import FlexOfferError
from vmenergy.protocol.aggregator_config import AggregatorConfig, StrategySpec
from vmenergy.protocol.engine import bare
from vmenergy.protocol.strategies import AggregatorStrategies

__all__ = ["load_class", "build_strategy", "aggregator_strategies"]


def load_class(target: str, path: str) -> type:
    """The class ``"package.module:Class"`` names (the module must be importable: installed,
    or on ``PYTHONPATH``)."""
    module_name, _, qualname = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise FlexOfferError(path, f"cannot import {module_name!r} ({exc}); is it installed or on PYTHONPATH?") from None
    except Exception as exc:  # noqa: BLE001 - the user's module failed while importing: say so, with the key
        raise FlexOfferError(path, f"importing {module_name!r} failed: {type(exc).__name__}: {exc}") from exc
    obj: object = module
    for part in qualname.split("."):
        if not hasattr(obj, part):
            raise FlexOfferError(path, f"module {module_name!r} has no {qualname!r}")
        obj = getattr(obj, part)
    if not isinstance(obj, type):
        raise FlexOfferError(path, f"{target} is not a class")
    return obj


def build_strategy(spec: StrategySpec) -> object:
    """An instance of the class ``spec`` names, built with its options as keyword arguments."""
    cls = load_class(spec.target, spec.path)
    try:
        return cls(**spec.options)
    except TypeError as exc:  # options the class does not take
        raise FlexOfferError(spec.path, f"{spec.target}(**{dict(spec.options)!r}) failed: {exc}") from None


def aggregator_strategies(config: AggregatorConfig, jid: str) -> AggregatorStrategies:
    """The strategies of an aggregator: VME's defaults, with the user's classes its config names."""
    return AggregatorStrategies.from_config(config, bare(jid), load=build_strategy)
