"""Where a key is in a TOML text: the line of every key path, for error messages.

``tomllib`` gives values without positions, so an error found after parsing could only name the
key, not the line. This is a small scanner for the same text (run only on text ``tomllib``
already accepted, so it need not diagnose anything): it follows table headers, arrays of tables
(``[[prosumers]]`` gets an index per occurrence, nested ones per parent element), dotted keys,
inline tables and arrays (also spread over several lines), and records the line on which each
path is first written. A path is a tuple of keys and array indices:
``("prosumers", 1, "aggregator")``, ``("market", "liquidity", "sell", "prices", 3)``.
"""

from __future__ import annotations

import bisect
import tomllib
from typing import Optional

__all__ = ["KeyPath", "KeyLines"]

KeyPath = tuple  # of str (keys) and int (array / array-of-tables indices)

_BARE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")
_SCALAR_END = frozenset(",]}\n#")


class KeyLines:
    """The line (1-based) of every key path written in ``text``.

    :meth:`line` answers for the path itself or, when the path was never written (a required
    key that is missing, a default), for its nearest written ancestor, so a message can still
    point at the table it belongs in.
    """

    def __init__(self, text: str) -> None:
        self.text = text
        self.lines: dict[KeyPath, int] = {}
        self._starts = [0] + [i + 1 for i, c in enumerate(text) if c == "\n"]
        self._aot_last: dict[KeyPath, int] = {}  # array of tables -> index of its latest element
        self._pos = 0
        self._scan()

    # -- answers ----------------------------------------------------------------------------
    def line(self, path: KeyPath) -> Optional[int]:
        path = tuple(path)
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return None

    def exact(self, path: KeyPath) -> Optional[int]:
        """The line of ``path`` only if that very path is written in the text."""
        return self.lines.get(tuple(path))

    # -- scanner ----------------------------------------------------------------------------
    def _line_at(self, pos: int) -> int:
        return bisect.bisect_right(self._starts, pos)

    def _mark(self, path: KeyPath, pos: int) -> None:
        self.lines.setdefault(path, self._line_at(pos))

    def _peek(self, n: int = 1) -> str:
        return self.text[self._pos:self._pos + n]

    def _skip_blank(self, newlines: bool) -> None:
        """Skip spaces, tabs, comments and (if ``newlines``) line ends."""
        t = self.text
        while self._pos < len(t):
            c = t[self._pos]
            if c in " \t\r" or (newlines and c == "\n"):
                self._pos += 1
            elif c == "#":
                end = t.find("\n", self._pos)
                self._pos = len(t) if end < 0 else end
            else:
                return

    def _scan(self) -> None:
        current: KeyPath = ()
        t = self.text
        while True:
            self._skip_blank(newlines=True)
            if self._pos >= len(t):
                return
            start = self._pos
            if t.startswith("[[", start):
                self._pos += 2
                keys = self._key()
                self._pos = t.index("]]", self._pos) + 2
                table = self._resolve(keys[:-1]) + (keys[-1],)
                index = self._aot_last.get(table, -1) + 1
                self._aot_last[table] = index
                self._mark_prefixes(table, start)
                current = table + (index,)
                self._mark(current, start)
            elif t.startswith("[", start):
                self._pos += 1
                keys = self._key()
                self._pos = t.index("]", self._pos) + 1
                current = self._resolve(keys)
                self._mark_prefixes(current, start)
            else:
                self._key_value(current, newlines=False)

    def _resolve(self, keys: tuple[str, ...]) -> KeyPath:
        """A header's keys as a path: a key naming an array of tables means its latest element."""
        path: KeyPath = ()
        for k in keys:
            path += (k,)
            if path in self._aot_last:
                path += (self._aot_last[path],)
        return path

    def _mark_prefixes(self, path: KeyPath, pos: int) -> None:
        for n in range(1, len(path) + 1):
            self._mark(path[:n], pos)

    def _key_value(self, table: KeyPath, newlines: bool) -> None:
        start = self._pos
        keys = self._key()
        self._skip_blank(newlines)
        if self._peek() != "=":  # not reachable for text tomllib accepted; stop rather than loop
            raise ValueError(f"expected '=' at line {self._line_at(self._pos)}")
        self._pos += 1
        path = table + keys
        self._mark_prefixes(path, start)
        self._skip_blank(newlines)
        self._value(path)

    def _key(self) -> tuple[str, ...]:
        """A (dotted) key; the position ends after its last part."""
        parts = []
        t = self.text
        while True:
            self._skip_blank(newlines=False)
            c = self._peek()
            if c == '"' or c == "'":
                begin = self._pos
                self._string()
                parts.append(tomllib.loads(f"k = {t[begin:self._pos]}")["k"])
            else:
                begin = self._pos
                while self._pos < len(t) and t[self._pos] in _BARE:
                    self._pos += 1
                parts.append(t[begin:self._pos])
            self._skip_blank(newlines=False)
            if self._peek() != ".":
                return tuple(parts)
            self._pos += 1

    def _string(self) -> None:
        """Skip a string of any of TOML's four kinds."""
        t = self.text
        for quote in ('"""', "'''"):
            if t.startswith(quote, self._pos):
                i = self._pos + 3
                while True:
                    if quote == '"""' and t[i] == "\\":
                        i += 2
                        continue
                    if t.startswith(quote, i):
                        # up to two quotes right before the closing three belong to the string
                        while t.startswith(quote[0], i + 3):
                            i += 1
                        self._pos = i + 3
                        return
                    i += 1
        quote = t[self._pos]
        i = self._pos + 1
        while t[i] != quote:
            i += 2 if quote == '"' and t[i] == "\\" else 1
        self._pos = i + 1

    def _value(self, path: KeyPath) -> None:
        t = self.text
        c = self._peek()
        if c in ('"', "'"):
            self._string()
        elif c == "[":
            self._pos += 1
            i = 0
            while True:
                self._skip_blank(newlines=True)
                if self._peek() == "]":
                    self._pos += 1
                    return
                self._mark(path + (i,), self._pos)
                self._value(path + (i,))
                i += 1
                self._skip_blank(newlines=True)
                if self._peek() == ",":
                    self._pos += 1
        elif c == "{":
            self._pos += 1
            while True:
                self._skip_blank(newlines=True)
                if self._peek() == "}":
                    self._pos += 1
                    return
                self._key_value(path, newlines=True)
                self._skip_blank(newlines=True)
                if self._peek() == ",":
                    self._pos += 1
        else:  # number, bool, date/time (which may hold a space): up to a delimiter
            while self._pos < len(t) and t[self._pos] not in _SCALAR_END:
                self._pos += 1
