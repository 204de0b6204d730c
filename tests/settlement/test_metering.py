"""Bad meter data is flagged with the prosumer and the interval: never a crash, never dropped."""

from __future__ import annotations

import math

import numpy as np
import pytest

from vmenergy.flexoffer import Schedule
from vmenergy.settlement import (
    Contract,
    MeterData,
    MeterFlag,
    SettlementError,
    bills_to_json,
    check_meter,
    flags_to_csv,
)

from .helpers import AGG, DAY0, meter, offer, settle_objects


def test_plausibility_flags_each_kind_with_prosumer_and_interval():
    m = meter(
        [[0.5, math.nan, 0.2, 0.1], [math.inf, 0.3, -3.0, 4.0]],
        rating_kw=np.array([10.0, 10.0]),  # 2.5 kWh per 15-minute interval
        export_rating_kw=np.array([0.0, 4.0]),  # h0 cannot produce; h1 up to 1 kWh per interval
    )
    flags = check_meter(m)
    got = {(r["prosumer"], r["interval"] - DAY0): r["flags"] for r in flags.records(m.prosumers, m.resolution)}
    assert got == {
        ("h0", 1): ["gap"],
        ("h1", 0): ["invalid"],
        ("h1", 2): ["export_above_rating"],  # -3 kWh > 1 kWh export
        ("h1", 3): ["above_rating"],  # 4 kWh > 2.5 kWh
    }


def test_a_reading_exactly_at_the_rating_is_not_flagged():
    m = meter([[2.5, -1.0]], rating_kw=np.array([10.0]), export_rating_kw=np.array([4.0]))
    assert len(check_meter(m)) == 0


def test_registers_flag_negative_and_backward_counters_and_keep_the_values():
    imp = np.array([[100.0, 101.0, 100.5, 101.5, -1.0, 2.0], [5.0, 5.5, math.nan, 6.5, 7.0, 7.5]])
    exp = np.array([[0.0, 0.0, 0.0, 0.5, 0.5, 0.5], [0.0] * 6])
    m = MeterData.from_registers(["a", "b"], DAY0, 900, imp, exp)
    # energy is import difference minus export difference, flagged values kept as computed
    np.testing.assert_allclose(m.energy[0], [1.0, -0.5, 0.5, -102.5, 3.0], atol=1e-5)
    assert np.isnan(m.energy[1, 1]) and np.isnan(m.energy[1, 2])
    got = {(r["prosumer"], r["interval"] - DAY0): set(r["flags"]) for r in check_meter(m).records(m.prosumers, 900)}
    assert got == {
        ("a", 1): {"counter_backwards"},
        ("a", 3): {"negative_counter", "counter_backwards"},
        ("a", 4): {"negative_counter"},
        ("b", 1): {"gap"},
        ("b", 2): {"gap"},
    }


def test_settlement_of_bad_data_flags_and_never_crashes_or_mutates_input():
    fo = offer("o", "h0", [(1, 0.0, 2.0)] * 4, DAY0, DAY0, default=[1.0] * 4)
    s = Schedule(offer_id="o", start=DAY0, energy=(0.0, 0.0, 0.0, 0.0))
    rows = np.array([[math.nan, math.inf, -math.inf, 1e6]])
    m = meter(rows, rating_kw=np.array([5.0]), export_rating_kw=np.array([0.0]))
    before = m.energy.copy()
    c = Contract(id="c", mode="delegated", aggregator=AGG)
    res = settle_objects([fo], [s], m, [c], ["c"])
    np.testing.assert_array_equal(m.energy, before)  # settlement works on copies
    assert res.quantities["unverified_intervals"][0] == 4
    assert res.quantities["verified_kwh"][0] == 0.0
    assert sorted(res.flags.counts().items()) == sorted(
        {"gap": 1, "invalid": 2, "above_rating": 1, "export_above_rating": 0, "negative_counter": 0,
         "counter_backwards": 0, "no_baseline": 0}.items())
    csv = flags_to_csv(res).splitlines()
    assert csv[0] == "prosumer,interval,time,flags,reasons"
    assert csv[1].startswith(f"h0,{DAY0},2026-11-23T00:00:00Z,gap,")
    assert '"flag_counts": {"gap": 1' in bills_to_json(res)


@pytest.mark.parametrize(
    "kw, path",
    [
        ({"energy": np.zeros((2, 3))}, "meter.energy"),
        ({"energy": np.zeros((1, 3), dtype=np.int64)}, "meter.energy"),
        ({"rating_kw": np.array([-1.0])}, "meter.rating_kw[0]"),
        ({"rating_kw": np.array([1.0, 2.0])}, "meter.rating_kw"),
        ({"history": np.zeros((1, 2, 4))}, "meter.history"),
        ({"resolution": 700}, "meter.resolution"),
        ({"prosumers": ["a", "a"], "energy": np.zeros((2, 3))}, "meter.prosumers[1]"),
    ],
)
def test_uninterpretable_meter_data_is_an_error(kw, path):
    args = {"prosumers": ["a"], "start": DAY0, "resolution": 900, "energy": np.zeros((1, 3))}
    args.update(kw)
    with pytest.raises(SettlementError) as e:
        MeterData(**args)
    assert e.value.path == path


def test_flag_bits_are_distinct():
    bits = [int(f) for f in MeterFlag]
    assert len(set(bits)) == len(bits) and all(b & (b - 1) == 0 for b in bits)
