"""SQLite's page cache without its 20-page bulk allocation in swarm processes
(vmenergy/store/page_cache.py): thousands of stores share a process, and the bulk, taken before
a store's own ``cache_size`` applies, was most of each store's SQLite memory."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from vmenergy.store.page_cache import sqlite_memory_used

pytestmark = pytest.mark.skipif(sqlite_memory_used() is None, reason="SQLite's library is not reachable here")

BULK_PAGES = 20  # SQLITE_DEFAULT_PCACHE_INITSZ

_STORES = """
import json, sys, tempfile
from pathlib import Path
from vmenergy.store.page_cache import no_bulk_page_cache, sqlite_memory_used
turned_off = no_bulk_page_cache() if sys.argv[1] == "off" else None
from vmenergy.store import Store
folder = Path(tempfile.mkdtemp())
before = sqlite_memory_used()
stores = []
for i in range(20):
    s = Store(folder / f"s{i}.sqlite", cache_kib=16)
    for j in range(30):  # a prosumer's day of commits: offers of a few KiB each
        s.flush([("offers", f"o{j}", {"energy": list(range(200))})])
    stores.append(s)
page = stores[0].db.execute("PRAGMA page_size").fetchone()[0]
print(json.dumps({"turned_off": turned_off, "per_store": (sqlite_memory_used() - before) / len(stores),
                  "page": page, "read_back": stores[0].load().get("offers", "o29")["energy"][-1]}))
"""


def _stores(mode: str) -> dict:
    out = subprocess.run([sys.executable, "-c", _STORES, mode], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def test_a_store_opened_after_the_bulk_is_turned_off_holds_fewer_pages_than_the_bulk_alone():
    off, default = _stores("off"), _stores("default")
    assert off["turned_off"] is True
    assert off["read_back"] == default["read_back"] == 199  # the stores work alike
    assert default["per_store"] >= BULK_PAGES * default["page"]  # the bulk, whatever the cache size
    # the cache then holds what its 16 KiB allow, plus SQLite's other per-connection state
    assert default["per_store"] - off["per_store"] >= BULK_PAGES * off["page"] / 2, (default, off)


_OPEN_FIRST = """
import json, sqlite3
db = sqlite3.connect(":memory:")
db.execute("CREATE TABLE t (v)")
from vmenergy.store.page_cache import no_bulk_page_cache
refused = no_bulk_page_cache()
db.execute("INSERT INTO t VALUES (1)")
print(json.dumps({"applied": refused, "rows": db.execute("SELECT COUNT(*) FROM t").fetchone()[0]}))
"""


def test_with_a_connection_open_nothing_is_changed_and_the_connection_keeps_working():
    # shutting SQLite down under an open connection is undefined: the setting is left alone
    out = subprocess.run([sys.executable, "-c", _OPEN_FIRST], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == {"applied": False, "rows": 1}


def test_turning_it_off_twice_is_harmless():
    code = ("from vmenergy.store.page_cache import no_bulk_page_cache as f; "
            "a = f(); from vmenergy.store import Store; import tempfile, pathlib; "
            "s = Store(pathlib.Path(tempfile.mkdtemp()) / 'a.sqlite'); print(a, f())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "True"]
