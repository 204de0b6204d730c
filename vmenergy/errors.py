"""The one error root of VME: every refused input names the field path and a reason.

Offers, schedules, contracts, bids, planning input, agent configs and scenarios are written by
people and by other programs. However deep the mistake sits, the error says where
(``profiles[0].slices[1].max``, ``contracts[2].reward.revenue_share``, ``aggregator[0].upstream``)
and why, so a caller can reply with the path instead of a traceback. Each area has its own
subclass (:class:`~vmenergy.flexoffer.FlexOfferError`, ``SettlementError``, ``MarketError``,
``PlanningError``, ``ConfigError``, ``ScenarioError``); code that does not care which area
refused catches :class:`VmeError`.
"""

from __future__ import annotations

from typing import Any, TypeVar

__all__ = ["VmeError", "DOCUMENT"]

#: Path used for problems with a document as a whole (malformed JSON/XML, oversize input).
DOCUMENT = "(document)"

E = TypeVar("E", bound="VmeError")


class VmeError(ValueError):
    """Invalid input: ``path`` names the field, ``reason`` says why.

    Subclasses :class:`ValueError` so generic code that expects value errors still works.
    """

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"{path}: {reason}" if path else reason)

    def within(self: E, prefix: str) -> E:
        """The same error with ``prefix`` put in front of the path.

        Lets a nested object validate itself with a local path while the caller that knows
        where it sits adds the rest (``slices[1]`` becomes ``profiles[0].slices[1]``).
        """
        if not prefix:
            return self
        if not self.path or self.path == DOCUMENT:
            path = prefix
        elif self.path.startswith("["):
            path = prefix + self.path
        else:
            path = f"{prefix}.{self.path}"
        err = type(self).__new__(type(self))  # keeps the subclass and its extra fields (e.g. violations)
        err.__dict__.update(self.__dict__)
        err.path = path
        err.args = (f"{path}: {self.reason}",)
        err.__cause__ = self.__cause__
        return err

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickling (multiprocessing) would rebuild from ``args``, which holds the one formatted
        # text; rebuild from the two fields instead, then restore any extra state of a subclass.
        return (type(self), (self.path, self.reason), self.__dict__)
