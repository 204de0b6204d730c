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
from vmenergy.validation import Checks

__all__ = ["SettlementError", "check"]


class SettlementError(FlexOfferError):
    """Invalid settlement input: ``path`` names the field, ``reason`` says why."""


#: The field checks of settlement input (contracts, metering, market results).
check = Checks(SettlementError)
