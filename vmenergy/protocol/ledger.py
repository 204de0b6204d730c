"""An engine's state: named tables of plain records, and the keys changed since the last flush.

Engines read and write their tables through typed :class:`Table` constants declared beside the
records they hold (``ledger[OUTBOX].get(key)`` is an ``OutboxEntry``); the table's name is what
the store persists under, so a typed table reads what an earlier version wrote. The untyped
access by name (:meth:`Ledger.get`, :meth:`Ledger.values`, ...) is for readers that handle any
role's ledger (the store, the run report).
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Callable, Generic, Iterator, Mapping, Optional, TypeVar, overload

__all__ = ["Table", "TableView", "Ledger"]

R = TypeVar("R")


@dataclass(frozen=True)
class Table(Generic[R]):
    """A ledger table: its persisted ``name`` and the ``record`` type of its values.

    Declare one as ``OFFERS: Table[ProsumerOffer] = Table("offers", ProsumerOffer)``. ``record``
    is checked on every write (for tuple-valued tables it is ``tuple``), so a value of the wrong
    kind fails where it is written, not when the store or a report reads it back."""

    name: str
    record: type
    doc: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError("Table.name: a non-empty string")
        if not isinstance(self.record, type):
            raise TypeError(f"Table {self.name!r}: record must be a type (got {self.record!r})")


class TableView(Generic[R]):
    """One table of one ledger, typed by its :class:`Table`; reads and writes go to the ledger."""

    __slots__ = ("_ledger", "_table", "_rows")

    def __init__(self, ledger: "Ledger", table: Table[R]) -> None:
        self._ledger = ledger
        self._table = table
        self._rows: dict[str, R] = ledger.tables.setdefault(table.name, {})

    @overload
    def get(self, key: str) -> Optional[R]: ...

    @overload
    def get(self, key: str, default: R) -> R: ...

    def get(self, key: str, default: Optional[R] = None) -> Optional[R]:
        return self._rows.get(key, default)

    def require(self, key: str) -> R:
        """The record under ``key``; a missing one is a bug of the caller (KeyError naming it)."""
        try:
            return self._rows[key]
        except KeyError:
            raise KeyError(f"no {key!r} in ledger table {self._table.name!r}") from None

    def put(self, key: str, value: R) -> None:
        if not isinstance(value, self._table.record):
            raise TypeError(f"ledger table {self._table.name!r} holds {self._table.record.__name__} records, "
                            f"not {type(value).__name__}")
        self._ledger.put(self._table.name, key, value)

    def delete(self, key: str) -> None:
        self._ledger.delete(self._table.name, key)

    def values(self) -> list[R]:
        """A snapshot: the table may be written while the caller iterates."""
        return list(self._rows.values())

    def items(self) -> list[tuple[str, R]]:
        return list(self._rows.items())

    def keys(self) -> list[str]:
        return list(self._rows)

    def mapping(self) -> Mapping[str, R]:
        """A live read-only mapping of the table, for functions that look records up by key."""
        return MappingProxyType(self._rows)

    def __contains__(self, key: object) -> bool:
        return key in self._rows

    def __len__(self) -> int:
        return len(self._rows)

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._rows))


class Ledger:
    """Tables of records (table -> key -> value) and the keys changed since the last flush."""

    def __init__(self) -> None:
        self.tables: dict[str, dict[str, Any]] = {}
        self._dirty: set[tuple[str, str]] = set()
        self._views: dict[Table, TableView] = {}
        self._watchers: dict[str, list[Callable[[str, Any, Any], None]]] = {}

    def watch(self, table: Table, watcher: Callable[[str, Any, Any], None]) -> None:
        """Call ``watcher(key, old, new)`` after every write of ``table`` (None: absent), so an
        engine can keep an index of a big table instead of scanning it (restoring from the store
        with :meth:`load` does not call it: the engine builds its index after loading)."""
        self._watchers.setdefault(table.name, []).append(watcher)

    def __getitem__(self, table: Table[R]) -> TableView[R]:
        view = self._views.get(table)
        if view is None:
            view = self._views[table] = TableView(self, table)
        return view

    # -- untyped access by table name (the store; readers of any role's ledger) ---------------
    def table(self, name: str) -> dict[str, Any]:
        return self.tables.setdefault(name, {})

    def get(self, table: str, key: str, default: Any = None) -> Any:
        return self.tables.get(table, {}).get(key, default)

    def put(self, table: str, key: str, value: Any) -> None:
        rows = self.table(table)
        old = rows.get(key)
        rows[key] = value
        self._dirty.add((table, key))
        for watcher in self._watchers.get(table, ()):
            watcher(key, old, value)

    def delete(self, table: str, key: str) -> None:
        old = self.tables.get(table, {}).pop(key, None)
        if old is not None:
            self._dirty.add((table, key))
            for watcher in self._watchers.get(table, ()):
                watcher(key, old, None)

    def values(self, table: str) -> Iterator[Any]:
        return iter(list(self.tables.get(table, {}).values()))

    def load(self, table: str, key: str, value: Any) -> None:
        """Put without marking dirty (used when restoring from the store)."""
        self.table(table)[key] = value

    def take_changes(self) -> list[tuple[str, str, Any]]:
        """(table, key, value or None if deleted) for everything changed since the last call."""
        out = [(t, k, self.tables.get(t, {}).get(k)) for t, k in sorted(self._dirty)]
        self._dirty.clear()
        return out
