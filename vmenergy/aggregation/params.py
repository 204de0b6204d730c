"""Parameters of an aggregation run, with their defaults and why they are what they are.

One frozen object holds every knob, so an aggregator agent can log it, compare it and hand the same
settings to the incremental aggregator and to a from-scratch rebuild: the two must agree.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Optional

from vmenergy.flexoffer import FlexOfferError, State
from vmenergy.flexoffer.errors import check
from vmenergy.flexoffer.limits import MAX_SLICES
from vmenergy.flexoffer.timeutil import DEFAULT_RESOLUTION
from vmenergy.validation import set_field

__all__ = [
    "AggregationParams",
    "START_ALIGNMENT",
    "FLEX_AWARE",
    "METHODS",
]

#: The classic method: grid grouping, bins filled in arrival order, members aligned at their
#: earliest start (the aggregate's time flexibility is its least flexible member's).
START_ALIGNMENT = "start"
#: The better method: same grid cells and the same number of bins, but each cell's members are
#: ordered by time flexibility before they are cut into bins, so a bin holds offers of (nearly)
#: equal time flexibility and start alignment loses (almost) nothing. See docs/aggregation.md.
FLEX_AWARE = "flex"
METHODS = (START_ALIGNMENT, FLEX_AWARE)

_XOR = ("most_flexible", "first", "exclude")
_DISCRETE = ("pin", "exclude")
_CONSTRAINED = ("box", "exclude")
_PREFIX_OK = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@/-]{0,63}\Z")

#: States in which an offer is still open for aggregation. Assigned, executing, executed,
#: settled, rejected and withdrawn offers are either bound by a schedule or gone.
DEFAULT_STATES = frozenset({State.INITIAL, State.OFFERED, State.ACCEPTED})


@dataclass(frozen=True)
class AggregationParams:
    """Settings of grouping, aggregation and constraint handling.

    Grouping (grid cells, then bins inside each cell):

    - ``est_tolerance`` (intervals, default 4 = one hour at 15 min): offers whose earliest starts
      fall in the same ``est_tolerance``-wide grid column may share an aggregate. Wider columns
      compress more but make aggregates longer (members start further apart).
    - ``tf_tolerance`` (intervals, default 4): same for time flexibility (latest - earliest start).
      With start alignment every member of an aggregate keeps only the smallest time flexibility
      of its aggregate, so this bounds the time-flexibility loss per member by
      ``tf_tolerance - 1`` intervals.
    - ``mix_directions`` (default False): put consumption, production and mixed offers in the
      same cells. Off by default: a market usually wants to know which way an aggregate goes.
    - ``max_offers`` (default 1000), ``max_energy`` (kWh, default None = no bound),
      ``max_length`` (intervals, default the model's slice limit): bounds per aggregate. A cell
      that exceeds them is cut into the fewest equal bins that respect the count and energy
      bound (bins that still break a bound are re-packed next-fit).

    Aggregation: ``method`` is :data:`START_ALIGNMENT` (``"start"``) or :data:`FLEX_AWARE`
    (``"flex"``, the default: it loses less time flexibility at the same compression).

    Constraints (all handled by a sound inner approximation, see docs/aggregation.md):

    - ``xor``: offers with several exclusive-OR profiles are aggregated with their most flexible
      profile (``"most_flexible"``, default), their first available one (``"first"``), or
      excluded (``"exclude"``).
    - ``discrete``: slices restricted to discrete values are pinned to one allowed value
      (``"pin"``, default) or the offer is excluded (``"exclude"``).
    - ``constrained``: profiles with a total-energy or polytope constraint are replaced by the
      largest box of slice bounds inside their constraints (``"box"``, default) or excluded.

    Time: ``now`` (an interval number at ``now_resolution`` seconds, default 900) resolves
    implicit start windows and trims windows that started in the past; without it, offers with
    implicit time flexibility are excluded. An offer at another resolution uses the first of its
    own intervals that does not begin before ``now``.

    Other: ``states`` that may be aggregated; ``id_prefix`` and ``issuer`` of the aggregates
    (an aggregator agent sets its own so ids are unique across aggregators); ``strict``: raise
    :class:`FlexOfferError` on the first offer that would be excluded instead of reporting it.
    """

    method: str = FLEX_AWARE
    est_tolerance: int = 4
    tf_tolerance: int = 4
    max_offers: Optional[int] = 1000
    max_energy: Optional[float] = None
    max_length: int = MAX_SLICES
    mix_directions: bool = False
    xor: str = "most_flexible"
    discrete: str = "pin"
    constrained: str = "box"
    now: Optional[int] = None
    now_resolution: int = DEFAULT_RESOLUTION
    states: frozenset = field(default=DEFAULT_STATES)
    id_prefix: str = "agg"
    issuer: Optional[str] = None
    strict: bool = False

    def now_at(self, resolution: int) -> Optional[int]:
        """``now`` as an interval number at ``resolution``: the first interval of that grid that
        does not begin before ``now`` (the same number when the resolutions agree)."""
        if self.now is None:
            return None
        return -(-(self.now * self.now_resolution) // resolution)

    def __post_init__(self) -> None:
        def bad(name: str, reason: str) -> FlexOfferError:
            return FlexOfferError(f"params.{name}", reason)

        check.choice(self.method, "params.method", METHODS, what="method")
        for name in ("est_tolerance", "tf_tolerance", "max_length"):
            check.integer(getattr(self, name), f"params.{name}", minimum=1)
        if self.max_length > MAX_SLICES:
            raise bad("max_length", f"at most {MAX_SLICES} (an aggregate is a flex-offer: at most that many slices)")
        check.optional_integer(self.max_offers, "params.max_offers", minimum=1)
        if self.max_energy is not None:
            if self.max_energy == float("inf"):
                raise bad("max_energy", "use None for no bound")
            check.number(self.max_energy, "params.max_energy", positive=True)
        check.choice(self.xor, "params.xor", _XOR, what="choice")
        check.choice(self.discrete, "params.discrete", _DISCRETE, what="choice")
        check.choice(self.constrained, "params.constrained", _CONSTRAINED, what="choice")
        check.optional_integer(self.now, "params.now")  # an interval number
        check.integer(self.now_resolution, "params.now_resolution", minimum=1)  # seconds per interval
        try:
            states = frozenset(State(s) for s in self.states)
        except (TypeError, ValueError):
            raise bad("states", f"must be a set of states (got {self.states!r})") from None
        set_field(self, "states", states)
        if not isinstance(self.id_prefix, str) or not _PREFIX_OK.match(self.id_prefix):
            raise bad("id_prefix", "1-64 characters: letters, digits and ._:@/- (no whitespace), starting alphanumeric")
        check.identifier(self.issuer, "params.issuer", required=False)  # a JID
