"""The page cache of an agent's SQLite store: bounded for prosumers, of which thousands share a
process (vmenergy/store/sqlite.py, bench/RESULTS.md "Scale ladder")."""

from __future__ import annotations

import sqlite3

import pytest

from vmenergy.agents import AggregatorAgent, ProsumerAgent
from vmenergy.errors import VmeError
from vmenergy.store import Store


def _cache_size(store: Store) -> int:
    return store.db.execute("PRAGMA cache_size").fetchone()[0]


def test_a_store_given_a_cache_size_keeps_its_page_cache_to_that_many_kib(tmp_path):
    store = Store(tmp_path / "a.sqlite", cache_kib=64)
    assert _cache_size(store) == -64  # negative: KiB
    store.flush([("t", "k", {"v": 1})])
    assert Store(tmp_path / "a.sqlite", cache_kib=64).load().get("t", "k") == {"v": 1}


def test_a_store_without_a_cache_size_keeps_sqlites_default(tmp_path):
    assert _cache_size(Store(tmp_path / "a.sqlite")) == -2000


@pytest.mark.parametrize("bad", [0, -5, True, 1.5, "64"])
def test_a_cache_size_that_is_not_a_positive_whole_number_is_refused_naming_the_field(tmp_path, bad):
    with pytest.raises(VmeError) as err:
        Store(tmp_path / "a.sqlite", cache_kib=bad)
    assert err.value.path == "cache_kib" and repr(bad) in err.value.reason


def test_a_prosumers_store_has_the_small_cache_and_an_aggregators_the_default(tmp_path):
    prosumer = ProsumerAgent("p@localhost", "pw", aggregator="agg@localhost", store_path=tmp_path / "p.sqlite")
    assert prosumer.store is not None and _cache_size(prosumer.store) == -ProsumerAgent.store_cache_kib
    aggregator = AggregatorAgent("agg@localhost", "pw", store_path=tmp_path / "agg.sqlite")
    assert aggregator.store is not None and _cache_size(aggregator.store) == -2000


def test_a_store_commits_in_wal_with_normal_sync_once_created_and_when_reopened(tmp_path):
    # created without syncing (nothing in it to lose), it then writes the ledger as before:
    # WAL, synchronous=NORMAL (a killed process loses nothing; only an OS crash the last commits)
    for _ in range(2):  # created, then reopened
        store = Store(tmp_path / "a.sqlite", cache_kib=64)
        assert store.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert store.db.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
        store.flush([("t", "k", {"v": 1})])
        store.close()
    assert Store(tmp_path / "a.sqlite").load().get("t", "k") == {"v": 1}


async def test_a_stopped_agent_has_closed_its_store_with_its_ledger_written(tmp_path):
    # the store is closed off the event loop (its WAL checkpoint waits on the disk), yet closed
    # by the time stop() returns, its records in the file
    prosumer = ProsumerAgent("p@localhost", "pw", aggregator="agg@localhost", store_path=tmp_path / "p.sqlite")
    prosumer.engine.ledger.put("meta", "probe", 7)
    await prosumer.handle(lambda now: [])
    await prosumer.stop()
    assert prosumer.store is not None
    with pytest.raises(sqlite3.ProgrammingError):
        prosumer.store.db.execute("SELECT 1")
    assert Store(tmp_path / "p.sqlite").load().get("meta", "probe") == 7
