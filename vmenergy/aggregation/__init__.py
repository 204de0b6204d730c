"""Aggregation and disaggregation of flex-offers, with flexibility-loss metrics.

An aggregator turns many small prosumer offers into few large ones worth trading, and turns a
schedule of an aggregate back into one feasible schedule per member. Pure core: no I/O, no clock.
See docs/aggregation.md for the methods, the soundness argument and the metrics.
"""

from .disaggregation import InfeasibleScheduleError, MemberSchedules, disaggregate, disaggregate_many
from .pipeline import aggregate
from .incremental import Changes, IncrementalAggregator
from .metrics import FlexibilityLoss, flexibility_loss
from .offer import AggregatedFlexOffer, AggregationResult, Member
from .params import FLEX_AWARE, METHODS, START_ALIGNMENT, AggregationParams

__all__ = [
    "aggregate",
    "disaggregate",
    "disaggregate_many",
    "InfeasibleScheduleError",
    "MemberSchedules",
    "AggregationParams",
    "flexibility_loss",
    "FlexibilityLoss",
    "IncrementalAggregator",
    "Changes",
    "AggregatedFlexOffer",
    "AggregationResult",
    "Member",
    "START_ALIGNMENT",
    "FLEX_AWARE",
    "METHODS",
]
