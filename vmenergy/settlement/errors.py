"""The error type of the settlement core.

Settlement reads contracts, metering, schedules and market results that people and other programs
write; every way such input can be wrong ends in a :class:`SettlementError` naming the field
(``contracts[1].reward.revenue_share``, ``meter.energy``) and a reason a person can act on.
It subclasses :class:`~vmenergy.flexoffer.FlexOfferError`, so a caller that already catches the
core's one error type catches this one too.

Bad *meter values* (gaps, negative counters, readings beyond a device's rating) are not errors:
they are facts about the field to be flagged per prosumer and interval (see
:mod:`vmenergy.settlement.metering`); only inputs that cannot be interpreted at all raise.
"""

from __future__ import annotations

from vmenergy.flexoffer.errors import FlexOfferError

__all__ = ["SettlementError"]


class SettlementError(FlexOfferError):
    """Invalid settlement input: ``path`` names the field, ``reason`` says why."""

    def within(self, prefix: str) -> "SettlementError":
        err = super().within(prefix)
        out = SettlementError(err.path, err.reason)
        out.__cause__ = self.__cause__
        return out

    def __reduce__(self):  # keep pickling working with two arguments
        return (SettlementError, (self.path, self.reason))
