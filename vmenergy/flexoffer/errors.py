"""The error type of the flex-offer core, and the field checks bound to it.

Every way an offer, a schedule or a document can be wrong ends in a :class:`FlexOfferError` that
names the field path (``profiles[0].slices[1].max``) and a reason a person can act on. Callers
(agents, the command line, a device maker's test harness) catch this single type and can reply
with the path instead of guessing from a traceback. Planning, market and settlement errors
subclass it, so a caller catching the core's error type catches theirs too; all of them are
:class:`~vmenergy.errors.VmeError`.
"""

from __future__ import annotations

from vmenergy.errors import DOCUMENT, VmeError
from vmenergy.validation import Checks

from .limits import MAX_ABS_ENERGY

__all__ = ["FlexOfferError", "DOCUMENT", "check"]


class FlexOfferError(VmeError):
    """Invalid flex-offer, schedule or document: ``path`` names the field, ``reason`` says why."""


#: The field checks of the model; numbers beyond :data:`~.limits.MAX_ABS_ENERGY` are refused.
check = Checks(FlexOfferError, limit=MAX_ABS_ENERGY)
