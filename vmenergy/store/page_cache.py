"""SQLite's page cache without its first bulk allocation, for processes of thousands of stores.

SQLite gives every connection's page cache an initial bulk allocation of 20 pages (~88 KiB with
4 KiB pages) at the first read of the file, before any ``PRAGMA cache_size`` can apply: the
pragma itself reads the schema first. A prosumer's store keeps ~80 KiB of ledger, so the bulk was
most of the ~125 KiB of SQLite memory each store held (1,000 stores, one process): 2,500 stores
per swarm process held ~300 MiB. Without it the cache grows page by page up to its
``cache_size``; with a 16 KiB cache a store holds ~54 KiB (bench/RESULTS.md).

The setting is process-wide (``sqlite3_config(SQLITE_CONFIG_PAGECACHE, NULL, 0, 0)``) and SQLite
takes it only between ``sqlite3_shutdown`` and ``sqlite3_initialize``, which must not run while a
connection is open. Python's ``sqlite3`` does not expose it, so this calls the library that
Python's ``_sqlite3`` module is linked with, through ``ctypes``, and only while SQLite holds no
memory at all (nothing open yet) in a build that counts its memory. Where any of that is not
possible it changes nothing.
"""

from __future__ import annotations

import ctypes
import logging
import threading

__all__ = ["no_bulk_page_cache", "sqlite_memory_used"]

log = logging.getLogger(__name__)

SQLITE_OK = 0
SQLITE_CONFIG_PAGECACHE = 7

_lock = threading.Lock()
_applied = False


def _library() -> ctypes.CDLL | None:
    try:
        import _sqlite3

        lib = ctypes.CDLL(_sqlite3.__file__)  # its symbols, and its libsqlite3's
        lib.sqlite3_memory_used.restype = ctypes.c_int64
        for name in ("sqlite3_shutdown", "sqlite3_config", "sqlite3_initialize"):
            getattr(lib, name)
        return lib
    except (ImportError, OSError, AttributeError):
        return None


def sqlite_memory_used() -> int | None:
    """Bytes SQLite holds in this process (all connections), or None where it cannot be read."""
    lib = _library()
    return None if lib is None else int(lib.sqlite3_memory_used())


def _memory_is_counted(lib: ctypes.CDLL) -> bool:
    """Whether this SQLite counts its memory (``SQLITE_DEFAULT_MEMSTATUS``): a probe connection
    must show, and its close give back to 0, or "0 bytes used" proves nothing."""
    import sqlite3

    probe = sqlite3.connect(":memory:")
    try:
        counted = lib.sqlite3_memory_used() > 0
    finally:
        probe.close()
    return counted and lib.sqlite3_memory_used() == 0


def no_bulk_page_cache() -> bool:
    """Turn off the page cache's initial bulk allocation for every connection opened from now
    on, if nothing of SQLite is in use yet in this process; whether it is off."""
    global _applied
    with _lock:
        if _applied:
            return True
        lib = _library()
        if lib is None:
            return False
        if lib.sqlite3_memory_used() != 0:
            # a connection (or a statement) is open: shutting SQLite down under it is undefined
            log.info("event=sqlite-page-cache-kept reason=connections-open")
            return False
        if not _memory_is_counted(lib):
            # a build without memory statistics reads 0 with connections open: no way to tell
            log.info("event=sqlite-page-cache-kept reason=no-memory-statistics")
            return False
        if lib.sqlite3_shutdown() != SQLITE_OK:
            return False
        rc = lib.sqlite3_config(ctypes.c_int(SQLITE_CONFIG_PAGECACHE), ctypes.c_void_p(None), ctypes.c_int(0),
                                ctypes.c_int(0))
        lib.sqlite3_initialize()
        _applied = rc == SQLITE_OK
        return _applied
