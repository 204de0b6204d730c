"""The one exception type of the flex-offer core.

Every way an input can be wrong ends in a :class:`FlexOfferError` that names the field path
(``profiles[0].slices[1].max``) and a reason a person can act on. Callers (agents, the command
line, a device maker's test harness) catch this single type and can reply with the path instead of
guessing from a traceback.
"""

from __future__ import annotations

__all__ = ["FlexOfferError", "DOCUMENT"]

#: Path used for problems with a document as a whole (malformed JSON/XML, oversize input).
DOCUMENT = "(document)"


class FlexOfferError(ValueError):
    """Invalid flex-offer, schedule or document: ``path`` names the field, ``reason`` says why.

    Subclasses :class:`ValueError` so generic code that expects value errors still works.
    """

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"{path}: {reason}" if path else reason)

    def within(self, prefix: str) -> "FlexOfferError":
        """Return the same error with ``prefix`` put in front of the path.

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

    def __reduce__(self):  # keep pickling (multiprocessing) working with two arguments
        return (type(self), (self.path, self.reason))
