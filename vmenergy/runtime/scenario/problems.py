"""What is wrong with a scenario: every problem found, each with its key path, line and reason.

Checking reports all problems at once (a user fixes a file in one pass, not one error per run),
so validators add to a :class:`Problems` list instead of raising at the first. Warnings are
problems that do not stop a run (a key that has no effect). :class:`ScenarioError` is what a
caller gets when it wants a scenario and the file has errors.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from typing import Iterable, Optional, Sequence

from vmenergy.errors import VmeError

from .locate import KeyLines, KeyPath

__all__ = ["Problem", "Problems", "ScenarioError", "format_path", "parse_path", "suggest"]

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+\Z")
_PATH_PART = re.compile(r"\[(\d+)\]|\.?(\"(?:[^\"\\]|\\.)*\"|[^.\[]+)")


def format_path(path: KeyPath) -> str:
    """``("prosumers", 1, "aggregator")`` -> ``prosumers[1].aggregator`` (keys that are not bare
    TOML keys are quoted, as they would be written in the file)."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            key = part if _BARE_KEY.match(part) else '"' + part.replace("\\", "\\\\").replace('"', '\\"') + '"'
            out += f".{key}" if out else key
    return out


def parse_path(text: str) -> KeyPath:
    """The inverse of :func:`format_path`, also for the dotted paths other validators use in
    their errors (``liquidity.sell.prices``, ``contracts[0].reward``)."""
    parts: list = []
    for m in _PATH_PART.finditer(text):
        if m.group(1) is not None:
            parts.append(int(m.group(1)))
        else:
            key = m.group(2)
            if key.startswith('"'):
                key = key[1:-1].replace('\\"', '"').replace("\\\\", "\\")
            parts.append(key)
    return tuple(parts)


def suggest(word: str, choices: Iterable[str], cutoff: float = 0.6) -> Optional[str]:
    """The choice closest to a misspelt ``word`` (``sped`` -> ``speed``), or None."""
    close = difflib.get_close_matches(word, [c for c in choices if c != word], n=1, cutoff=cutoff)
    return close[0] if close else None


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a file. ``line`` is 1-based (None when the file has no such place,
    e.g. it cannot be read); ``hint`` is a likely intended spelling."""

    path: str
    reason: str
    line: Optional[int] = None
    hint: Optional[str] = None
    warning: bool = False

    def format(self, file: str) -> str:
        """``FILE:LINE: path: reason (did you mean X?)``; warnings say so after the line."""
        where = f"{file}:{self.line}" if self.line is not None else file
        kind = " warning:" if self.warning else ""
        hint = f" (did you mean {self.hint}?)" if self.hint else ""
        return f"{where}:{kind} {self.path}: {self.reason}{hint}"


@dataclass
class Problems:
    """The problems found in one file, in the order found; lines come from the file's text."""

    lines: Optional[KeyLines] = None
    items: list[Problem] = field(default_factory=list)

    def error(self, path: KeyPath, reason: str, hint: Optional[str] = None) -> None:
        self._add(path, reason, hint, warning=False)

    def warn(self, path: KeyPath, reason: str, hint: Optional[str] = None) -> None:
        self._add(path, reason, hint, warning=True)

    def unknown_key(self, path: KeyPath, known: Iterable[str], what: str = "key") -> None:
        """An unknown key at ``path`` (its last part), with the closest known key as a hint."""
        known = sorted(known)
        self.error(path, f"unknown {what} (known: {', '.join(known)})", suggest(str(path[-1]), known))

    def _add(self, path: KeyPath, reason: str, hint: Optional[str], warning: bool) -> None:
        line = self.lines.line(path) if self.lines is not None else None
        self.items.append(Problem(format_path(path), reason, line, hint, warning))

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.items if not p.warning]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.items if p.warning]


class ScenarioError(VmeError):
    """A scenario that cannot be used: ``path`` names the (first) key, ``reason`` says why;
    ``problems`` holds every problem found in the file (errors and warnings)."""

    def __init__(self, path: str, reason: str, problems: Sequence[Problem] = ()) -> None:
        super().__init__(path, reason)
        self.problems = tuple(problems) or (Problem(path, reason),)

    @classmethod
    def of(cls, problems: Sequence[Problem]) -> "ScenarioError":
        first = next(p for p in problems if not p.warning)
        return cls(first.path, first.reason, problems)
