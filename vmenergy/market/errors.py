"""The error type of the market: bad calls and bad bids, named by field path and reason.

Session misuse (opening twice, clearing before closing) raises :class:`MarketError`. A bad *bid*
does not raise from :meth:`MarketSession.place`: it is answered with a rejected
:class:`~vmenergy.market.events.BidAck` carrying the same path and reason, because a market must
keep running when one participant sends nonsense.
"""

from __future__ import annotations

from vmenergy.flexoffer import FlexOfferError
from vmenergy.flexoffer.limits import MAX_ABS_ENERGY
from vmenergy.validation import Checks

__all__ = ["MarketError", "check"]


class MarketError(FlexOfferError):
    """Invalid market call or bid: ``path`` names the field, ``reason`` says why."""


#: The field checks of bids and sessions (numbers within the model's energy limit).
check = Checks(MarketError, limit=MAX_ABS_ENERGY)
