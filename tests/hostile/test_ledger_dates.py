"""Finding 2 of the hostile-input probe (issue 16): a measurement dated in the year 1 was
accepted, stored, written as ``1-01-01T...`` and then refused when the aggregator restarted,
with an error that blamed its config file. Now every time is written with a four-digit year, a
measurement must lie within its schedule, and a record that cannot be read names the store."""

from __future__ import annotations

import sqlite3

import pytest

from tests.protocol.test_engines import AGG, NOW, setup
from vmenergy.flexoffer.timeutil import format_utc, parse_utc
from vmenergy.protocol.aggregator import AggregatorEngine
from vmenergy.protocol.engine import Send
from vmenergy.protocol.messages import Measurement
from vmenergy.store import Store

YEAR_1 = parse_utc("0001-01-01T00:00:00Z", "t")


def answer(effects) -> object:
    (ack,) = [e.msg for e in effects if isinstance(e, Send)]
    return ack


@pytest.mark.parametrize("text", ["0001-01-01T00:00:00Z", "0999-12-31T23:59:59Z", "1970-01-01T00:00:00Z",
                                  "9999-12-31T23:45:00Z"])
def test_every_time_is_written_with_four_year_digits_and_reads_back(text):
    assert format_utc(parse_utc(text, "t")) == text


def scheduled(tmp_path):
    agg, (p,), net = setup(1)
    net.tick(NOW)
    rec = agg.ledger.get("offers", "fo-ev-17-0")
    assert rec.schedule is not None
    return agg, net, rec


@pytest.mark.parametrize("where", ["year 1", "before", "after", "overlapping the end"])
def test_a_measurement_outside_its_schedule_is_refused_and_not_stored(tmp_path, where):
    agg, net, rec = scheduled(tmp_path)
    s = rec.schedule
    n = rec.offer.profiles[s.profile].duration
    start, length = {"year 1": (YEAR_1 // 900, n), "before": (s.start - n, n), "after": (s.start + n, 1),
                     "overlapping the end": (s.start + 1, n)}[where]
    ack = answer(agg.receive("p0@localhost", Measurement("m-bad", rec.offer.id, start, (1.0,) * length), NOW))
    assert not ack.accepted and "not within the schedule" in ack.reason
    assert agg.ledger.get("offers", rec.offer.id).measurement is None


def test_the_aggregator_restarts_after_a_hostile_measurement(tmp_path):
    agg, net, rec = scheduled(tmp_path)
    store = Store(tmp_path / "agg.sqlite")
    agg.receive("p0@localhost", Measurement("m-old", rec.offer.id, YEAR_1 // 900, (1.0,)), NOW)
    store.flush(agg.ledger.take_changes())
    store.close()
    again = AggregatorEngine(AGG, ledger=Store(tmp_path / "agg.sqlite").load())
    assert again.ledger.get("offers", rec.offer.id).measurement is None
    good = Measurement("m-good", rec.offer.id, rec.schedule.start, (1.0,) * rec.offer.profiles[0].duration)
    assert answer(again.receive("p0@localhost", good, NOW)).accepted


def test_an_unreadable_record_names_the_store_table_and_key(tmp_path):
    path = tmp_path / "agg.sqlite"
    Store(path).close()
    db = sqlite3.connect(path)
    db.execute("INSERT INTO records VALUES ('offers', 'fo-1', ?)",
               ('{"$":"msg","v":"<measurement xmlns=\\"urn:vmenergy:flexoffer:1\\" id=\\"m\\" offer-id=\\"o\\" '
                'start=\\"1-01-01T00:00:00Z\\"><energy>1.0</energy></measurement>"}',))
    db.commit()
    db.close()
    from vmenergy.store import StoreError

    with pytest.raises(StoreError) as info:
        Store(path).load()
    assert str(path) in info.value.path and "offers[fo-1]" in info.value.path
    assert "start" in info.value.reason
