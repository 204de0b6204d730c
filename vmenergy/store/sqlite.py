"""One SQLite file per agent holding its ledger, written after every handled event.

A single key-value table keeps the schema stable while engines evolve; WAL mode with
``synchronous=NORMAL`` makes a commit cheap (no fsync per message) and still survives a killed
process: only an OS crash can lose the last commits, and senders resend what was not acked.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Iterable, Optional

from vmenergy.errors import VmeError
from vmenergy.protocol.engine import Ledger
from vmenergy.runtime.private import create_private

from .codec import dumps, loads

__all__ = ["Store", "StoreError", "read_ledger", "read_record"]


class StoreError(VmeError):
    """A record in an agent's store that cannot be read back: ``path`` names the store file,
    the table and the key, so the error is not taken for one in the agent's config."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    tbl   TEXT NOT NULL,
    key   TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (tbl, key)
);
"""


def read_record(text: str, where: str) -> object:
    """One stored record; whatever the text holds, only :class:`StoreError` (naming ``where``)
    escapes."""
    try:
        return loads(text)
    except (ValueError, TypeError, KeyError, AttributeError, RecursionError) as exc:  # VmeError is a ValueError
        raise StoreError(where, f"unreadable record: {type(exc).__name__}: {exc}") from exc


class Store:
    """An agent's ledger in one SQLite file.

    ``cache_kib`` bounds SQLite's page cache for this connection (default: SQLite's 2,000 KiB).
    A prosumer's ledger is small and read whole once at start (:meth:`load`); its writes do
    not need a cache, and a full default cache per agent was ~75 KiB of resident memory each
    after a simulated day (bench/RESULTS.md, "Scale ladder"), with thousands of agents per
    process.

    ``statements`` bounds how many prepared statements the connection keeps for reuse (default:
    Python's 128). Each kept statement holds its compiled program in SQLite's memory, 2-6 KiB,
    and an agent's store kept every statement it ever ran (the open's pragmas, the load, the
    counts): ~17 KiB a store, in a process of thousands of stores. A store's steady work is one
    INSERT per commit (and now and then a DELETE), so two kept statements cost no more CPU per
    commit than 128 (bench/RESULTS.md, "Prosumer memory, round 5")."""

    def __init__(self, path: Path | str, *, readonly: bool = False, cache_kib: Optional[int] = None,
                 statements: Optional[int] = None) -> None:
        if cache_kib is not None and (isinstance(cache_kib, bool) or not isinstance(cache_kib, int) or cache_kib < 1):
            raise VmeError("cache_kib", f"must be a positive whole number of KiB, not {cache_kib!r}")
        if statements is not None and (isinstance(statements, bool) or not isinstance(statements, int)
                                       or statements < 0):
            raise VmeError("statements", f"must be a whole number of statements, 0 or more, not {statements!r}")
        kept = {} if statements is None else {"cached_statements": statements}
        self.path = Path(path)
        if readonly:
            # an observer (orchestrator, report) beside a running agent: no schema or journal
            # changes, which would need a write lock the agent may be holding
            self.db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, isolation_level=None,
                                      check_same_thread=False, timeout=10.0, **kept)
            return
        if str(path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # a ledger is the agent's business only; SQLite gives its -wal and -shm files the
            # database file's mode
            create_private(self.path)
        self.db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False, timeout=10.0, **kept)
        if cache_kib is not None:
            self.db.execute(f"PRAGMA cache_size=-{cache_kib}")  # negative: KiB, not pages
        # Creating a store (a new file switched to WAL, its schema written) are writes that
        # SQLite's default synchronous=FULL syncs to disk: ~15 ms of wall time per store here, a
        # minute for a process of thousands of prosumers before any of them connected
        # (bench/RESULTS.md, "Scale ladder, round 4"). A store being created holds nothing to
        # lose yet, and an existing one is not written by these statements: no sync until the
        # schema exists, then WAL with synchronous=NORMAL for the ledger's commits.
        self.db.execute("PRAGMA synchronous=OFF")
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.executescript(_SCHEMA)
        self.db.execute("PRAGMA synchronous=NORMAL")

    def load(self, ledger: Optional[Ledger] = None, tables: Optional[Iterable[str]] = None) -> Ledger:
        """The stored ledger (into ``ledger`` if given); only ``tables`` if given (a reader
        that needs a few tables does not decode the rest: an aggregator's answers, say)."""
        ledger = ledger if ledger is not None else Ledger()
        if tables is None:
            rows = self.db.execute("SELECT tbl, key, value FROM records")
        else:
            names = sorted(set(tables))
            rows = self.db.execute(f"SELECT tbl, key, value FROM records WHERE tbl IN ({','.join('?' * len(names))})",
                                   names)
        for tbl, key, value in rows:
            ledger.load(tbl, key, read_record(value, f"{self.path}: {tbl}[{key}]"))
        return ledger

    def flush(self, changes: Iterable[tuple[str, str, object]]) -> int:
        """Write (table, key, value or None) changes in one transaction; returns how many rows.

        Only a key's last value is written (a turn's steps often write one record twice, an
        offer sent and then answered), and each value is encoded as SQLite takes it: an FOA's
        noon batch of thousands of offers once held all their texts at the same time."""
        latest = {(tbl, key): value for tbl, key, value in changes}
        if not latest:
            return 0
        rows_del = [k for k, v in latest.items() if v is None]
        with self.db:
            self.db.execute("BEGIN")
            self.db.executemany(
                "INSERT INTO records (tbl, key, value) VALUES (?, ?, ?) "
                "ON CONFLICT (tbl, key) DO UPDATE SET value = excluded.value",
                ((tbl, key, dumps(v)) for (tbl, key), v in latest.items() if v is not None))
            if rows_del:
                self.db.executemany("DELETE FROM records WHERE tbl = ? AND key = ?", rows_del)
        return len(latest)

    def ready(self) -> bool:
        """Whether the schema exists (an observer may open a store its agent is just creating)."""
        return self.db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'records'").fetchone() is not None

    def count(self, table: str) -> int:
        """Records in ``table`` (cheap: no decoding)."""
        if not self.ready():
            return 0
        return self.db.execute("SELECT COUNT(*) FROM records WHERE tbl = ?", (table,)).fetchone()[0]

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def read_ledger(path: Path | str, tables: Optional[Iterable[str]] = None) -> Optional[Ledger]:
    """The ledger in the store at ``path`` (read while its agent may still be writing; WAL
    allows that), or None if there is no store (or no schema) yet; only ``tables`` if given."""
    if not Path(path).exists():
        return None
    with Store(path, readonly=True) as store:
        return store.load(tables=tables) if store.ready() else None
