"""The error type of the market: bad calls and bad bids, named by field path and reason.

Session misuse (opening twice, clearing before closing) raises :class:`MarketError`. A bad *bid*
does not raise from :meth:`MarketSession.place`: it is answered with a rejected
:class:`~vmenergy.market.events.BidAck` carrying the same path and reason, because a market must
keep running when one participant sends nonsense.
"""

from __future__ import annotations

from vmenergy.flexoffer import FlexOfferError

__all__ = ["MarketError"]


class MarketError(FlexOfferError):
    """Invalid market call or bid: ``path`` names the field, ``reason`` says why."""

    def __reduce__(self):
        return (MarketError, (self.path, self.reason))
