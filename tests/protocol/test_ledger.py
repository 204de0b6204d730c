"""Typed ledger tables: each engine declares the tables it keeps, writes are checked against the
record type, and the persisted form is the one the store always had (table name, key, value)."""

from __future__ import annotations

import pytest

from tests.protocol.test_engines import LATER, NOW, execute_all, setup
from tests.protocol.test_market_engine import run_until_cleared, world
from vmenergy.protocol.aggregator import AGG_OFFERS, AGGREGATES, AggregatorEngine
from vmenergy.protocol.engine import META, OUTBOX, Ledger, Table
from vmenergy.protocol.market import BIDS, MarketEngine
from vmenergy.protocol.prosumer import PROSUMER_BILLS, PROSUMER_OFFERS, ProsumerEngine, ProsumerOffer
from vmenergy.store import Store


def test_a_write_of_the_wrong_record_type_fails_where_it_is_written():
    ledger = Ledger()
    with pytest.raises(TypeError, match="ledger table 'offers' holds ProsumerOffer records, not str"):
        ledger[PROSUMER_OFFERS].put("fo-1", "not a record")
    with pytest.raises(TypeError, match="'meta' holds int records, not str"):
        ledger[META].put("bill_seq", "7")
    assert not ledger.take_changes()


def test_a_missing_record_that_must_exist_names_the_table_and_key():
    with pytest.raises(KeyError, match="no 'fo-9' in ledger table 'aggregates'"):
        Ledger()[AGGREGATES].require("fo-9")


def test_a_table_needs_a_name_and_a_record_type():
    with pytest.raises(ValueError):
        Table("", int)
    with pytest.raises(TypeError):
        Table("x", "int")  # type: ignore[arg-type]


def test_typed_and_by_name_access_see_the_same_rows_and_the_store_reads_them_back(tmp_path):
    agg, pros, net = setup(2)
    net.tick(NOW)
    p = pros[0]
    assert p.ledger[PROSUMER_OFFERS].values() == list(p.ledger.values("offers"))
    assert isinstance(p.ledger[PROSUMER_OFFERS].require("fo-ev-17-0"), ProsumerOffer)
    store = Store(tmp_path / "p.sqlite")
    store.flush(p.ledger.take_changes())
    again = store.load()
    assert again[PROSUMER_OFFERS].mapping() == p.ledger[PROSUMER_OFFERS].mapping()
    assert again[META].get("nothing", 7) == 7


def _written_tables(engine) -> set[str]:
    return {name for name, rows in engine.ledger.tables.items() if rows}


def test_every_table_an_engine_writes_in_a_lifecycle_is_one_it_declares():
    agg, pros, net = setup(4)
    net.tick(NOW)
    execute_all(net, NOW + 60)
    net.tick(LATER)
    assert agg.counts() == {"settled": 4}
    for engine in net.engines.values():
        assert _written_tables(engine) <= {t.name for t in type(engine).tables}, type(engine).__name__
    assert pros[0].ledger[PROSUMER_BILLS].values()
    mkt, agg, pros, net = world()
    run_until_cleared(net)
    assert mkt.ledger[BIDS].values() and agg.ledger[AGGREGATES].values()
    for engine in (mkt, agg, *pros):
        assert _written_tables(engine) <= {t.name for t in type(engine).tables}, type(engine).__name__


def test_the_engines_declare_one_record_type_per_table_name():
    for engine in (ProsumerEngine, AggregatorEngine, MarketEngine):
        names = [t.name for t in engine.tables]
        assert len(names) == len(set(names)), engine.__name__
    assert OUTBOX in AggregatorEngine.tables and AGG_OFFERS in AggregatorEngine.tables
