"""How many prepared statements an agent's SQLite store keeps: two for a prosumer, of which
thousands share a process (vmenergy/store/sqlite.py; bench/RESULTS.md "Prosumer memory, round 5").
Python's default cache kept every statement a store ever ran, ~17 KiB of SQLite memory a store."""

from __future__ import annotations

import gc

import pytest

from vmenergy.agents import AggregatorAgent, ProsumerAgent
from vmenergy.errors import VmeError
from vmenergy.store import Store


def _statements() -> int:
    """Prepared statements alive in this process (sqlite3's Statement objects)."""
    gc.collect()
    return sum(1 for o in gc.get_objects() if type(o).__name__ == "Statement" and type(o).__module__ == "sqlite3")


def _a_day_of_statements(store: Store) -> None:
    """Every kind of statement a store runs in a day: the load, commits that insert and delete,
    and the checks an agent makes."""
    store.load()
    for i in range(5):
        store.flush([("offers", f"o{i}", {"v": i}), ("notes", f"n{i}", "x")])
        store.flush([("notes", f"n{i}", None)])
    store.ready()
    store.count("offers")
    store.load(tables=["offers"])


def test_a_store_given_a_statement_bound_keeps_no_more_prepared_statements_than_that(tmp_path):
    before = _statements()
    store = Store(tmp_path / "a.sqlite", cache_kib=16, statements=2)
    _a_day_of_statements(store)
    assert _statements() - before <= 2
    assert Store(tmp_path / "a.sqlite").load().get("offers", "o4") == {"v": 4}  # it still writes


def test_without_a_bound_a_store_keeps_every_statement_it_ran(tmp_path):
    # what the bound is for: Python's default cache (128) keeps the pragmas, loads and counts too
    before = _statements()
    store = Store(tmp_path / "a.sqlite")
    _a_day_of_statements(store)
    assert _statements() - before >= 6


def test_a_store_with_no_statements_kept_still_reads_and_writes(tmp_path):
    before = _statements()
    store = Store(tmp_path / "a.sqlite", statements=0)
    _a_day_of_statements(store)
    assert _statements() - before == 0
    assert store.load().get("offers", "o2") == {"v": 2} and store.load().get("notes", "n2") is None


@pytest.mark.parametrize("bad", [-1, True, 1.5, "2"])
def test_a_statement_bound_that_is_not_a_whole_number_is_refused_naming_the_field(tmp_path, bad):
    with pytest.raises(VmeError) as err:
        Store(tmp_path / "a.sqlite", statements=bad)
    assert err.value.path == "statements" and repr(bad) in err.value.reason


def test_a_prosumers_store_keeps_two_statements_and_an_aggregators_the_default(tmp_path):
    before = _statements()
    prosumer = ProsumerAgent("p@localhost", "pw", aggregator="agg@localhost", store_path=tmp_path / "p.sqlite")
    assert prosumer.store is not None and ProsumerAgent.store_statements == 2
    _a_day_of_statements(prosumer.store)
    assert _statements() - before <= 2
    aggregator = AggregatorAgent("agg@localhost", "pw", store_path=tmp_path / "agg.sqlite")
    assert aggregator.store is not None and AggregatorAgent.store_statements is None
