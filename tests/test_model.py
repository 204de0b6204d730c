"""Unit tests of the flex-offer model: construction rules, lifecycle, feasibility, measures."""

from __future__ import annotations

import math

import pytest

from vmenergy.flexoffer import (
    MAX_PROFILES,
    MAX_SLICES,
    TOLERANCE,
    Baseline,
    FlexOffer,
    FlexOfferError,
    Polytope,
    Prices,
    Profile,
    Schedule,
    Slice,
    SlicePrice,
    State,
    TotalEnergy,
)
from vmenergy.flexoffer.timeutil import (
    datetime_to_interval,
    format_duration,
    format_utc,
    interval_to_datetime,
    parse_duration,
    parse_utc,
)

T = 1_994_872  # 2026-11-22T22:00:00Z at 900 s


def ev(**kw) -> FlexOffer:
    base = dict(
        id="fo-ev",
        start_after=T,
        start_before=T + 24,
        profiles=(Profile((Slice(1, 0.0, 2.8), Slice(2, 1.0, 5.6), Slice(4, 2.0, 11.2)), total=TotalEnergy(12.0, 16.0)),),
    )
    base.update(kw)
    return FlexOffer(**base)


def sched(energy, start=T, **kw) -> Schedule:
    return Schedule(offer_id=kw.pop("offer_id", "fo-ev"), start=start, energy=tuple(energy), **kw)


def raises(path: str, fragment: str):
    """Context manager: a FlexOfferError with exactly ``path`` and ``fragment`` in its reason."""

    class _Ctx:
        def __enter__(self):
            return self

        def __exit__(self, et, ev_, tb):
            assert et is FlexOfferError, f"expected FlexOfferError, got {et}"
            assert ev_.path == path, f"path {ev_.path!r} != {path!r} ({ev_})"
            assert fragment in ev_.reason, f"{fragment!r} not in {ev_.reason!r}"
            return True

    return _Ctx()


# -- time conversions -----------------------------------------------------------------------------

def test_time_round_trip_and_grid():
    s = parse_utc("2026-11-22T22:00:00Z", "t")
    assert format_utc(s) == "2026-11-22T22:00:00Z"
    assert s // 900 == T
    assert parse_utc("2026-11-22T22:00:00+00:00", "t") == s
    assert parse_utc("2026-11-22T22:00:00.000Z", "t") == s
    assert interval_to_datetime(T).isoformat() == "2026-11-22T22:00:00+00:00"
    assert datetime_to_interval(interval_to_datetime(T)) == T


@pytest.mark.parametrize("text", ["2026-11-22 22:00", "2026-11-22T22:00:00", "2026-11-22T22:00:00+01:00",
                                  "2026-13-01T00:00:00Z", "22:00", "", "2026-11-22T22:00:00.5Z"])
def test_bad_times_are_refused(text):
    with raises("start_after", "ISO 8601 UTC"):
        parse_utc(text, "start_after")


def test_non_string_time_is_refused():
    with raises("x", "not an ISO 8601 UTC time"):
        parse_utc(12, "x")


def test_durations():
    assert parse_duration("PT2H", "d") == 7200
    assert parse_duration("P1DT30M", "d") == 86400 + 1800
    assert parse_duration("P1W", "d") == 7 * 86400
    assert format_duration(7200) == "PT2H"
    assert format_duration(86400 + 1800 + 5) == "P1DT30M5S"
    assert format_duration(0) == "PT0S"
    for bad in ("P1Y", "P1M", "PT", "P", "2H", "PT-1H"):
        with raises("d", "ISO 8601 duration"):
            parse_duration(bad, "d")


def test_naive_datetime_is_refused():
    from datetime import datetime

    with raises("time", "naive"):
        datetime_to_interval(datetime(2026, 11, 22, 22))


# -- slices, totals, polytopes, profiles ------------------------------------------------------------

def test_slice_rules():
    assert Slice(1, 0, 1).min == 0.0 and isinstance(Slice(1, 0, 1).min, float)
    with raises("", "min > max"):
        Slice(1, 2.0, 1.0)
    with raises("duration", "duration must be >= 1"):
        Slice(0, 0.0, 1.0)
    with raises("duration", "duration must be >= 1"):
        Slice(-3, 0.0, 1.0)
    with raises("duration", "integer"):
        Slice(1.5, 0.0, 1.0)
    with raises("min", "not a number"):
        Slice(1, float("nan"), 1.0)
    with raises("max", "not a number"):
        Slice(1, 0.0, "2")
    with raises("max", "not a number"):
        Slice(1, 0.0, True)
    with raises("max", "out of range"):
        Slice(1, 0.0, float("inf"))


def test_discrete_values_rules():
    s = Slice(1, 0.0, 2.0, (0.0, 1.0, 2.0))
    assert s.admits(1.0) and s.admits(1.0 + TOLERANCE / 2) and not s.admits(0.5)
    with raises("values[1]", "outside [min, max]"):
        Slice(1, 0.0, 1.0, (0.0, 3.0))
    with raises("values[1]", "strictly increasing"):
        Slice(1, 0.0, 1.0, (0.5, 0.5))
    with raises("values", "must not be empty"):
        Slice(1, 0.0, 1.0, ())


def test_total_rules():
    assert TotalEnergy(min=1.0).max is None
    with raises("", "min > max"):
        TotalEnergy(2.0, 1.0)
    with raises("", "give min, max or both"):
        TotalEnergy()
    with raises("total", "outside the sum of slice bounds"):
        Profile((Slice(1, 0, 1), Slice(1, 0, 1)), total=TotalEnergy(min=2.5))
    with raises("total", "outside the sum of slice bounds"):
        Profile((Slice(1, 1, 2),), total=TotalEnergy(max=0.5))
    # touching the reachable range is fine
    Profile((Slice(1, 0, 1), Slice(1, 0, 1)), total=TotalEnergy(min=2.0))


def test_polytope_rules():
    with raises("b", "has 1 entries but A has 2 rows"):
        Polytope(((1.0,), (2.0,)), (1.0,))
    with raises("A", "at least one row"):
        Polytope((), ())
    with raises("A[0][1]", "not a number"):
        Polytope(((1.0, "x"),), (1.0,))
    with raises("polytope.A[0]", "row length differs from slice count"):
        Profile((Slice(1, 0, 1),), polytope=Polytope(((1.0, 1.0),), (1.0,)))
    with raises("polytope", "no energy profile satisfies"):
        # x0 + x1 <= -1 with both slices in [0, 1]: empty
        Profile((Slice(1, 0, 1), Slice(1, 0, 1)), polytope=Polytope(((1.0, 1.0),), (-1.0,)))


def test_profile_rules():
    with raises("slices", "at least one slice"):
        Profile(())
    with raises("slices", f"more than {MAX_SLICES}"):
        Profile(tuple(Slice(1, 0, 1) for _ in range(MAX_SLICES + 1)))
    assert Profile(tuple(Slice(1, 0, 1) for _ in range(MAX_SLICES))).n_slices == MAX_SLICES
    with raises("start_before", "start_before before start_after"):
        Profile((Slice(1, 0, 1),), start_after=10, start_before=5)
    p = Profile((Slice(2, 0, 1), Slice(3, -1, 4)), total=TotalEnergy(0.5, 2.0))
    assert p.duration == 5 and p.min_total == 0.5 and p.max_total == 2.0


# -- offers -----------------------------------------------------------------------------------------

def test_offer_required_fields_and_identifiers():
    with raises("id", "required"):
        ev(id=None)
    with raises("id", "required"):
        ev(id="")
    with raises("id", "whitespace"):
        ev(id="a b")
    with raises("id", "longer than"):
        ev(id="x" * 300)
    with raises("issuer", "whitespace"):
        ev(issuer="bad\x00jid")
    with raises("label", "control characters"):
        ev(label="two\nlines")
    with raises("profiles", "at least one profile"):
        ev(profiles=())
    with raises("profiles", f"more than {MAX_PROFILES}"):
        ev(profiles=tuple(Profile((Slice(1, 0, 1),)) for _ in range(MAX_PROFILES + 1)))
    with raises("resolution", "must be > 0"):
        ev(resolution=0)
    with raises("resolution", "must be > 0"):
        ev(resolution=-900)
    with raises("state", "unknown state"):
        ev(state="paused")
    with raises("version", ">= 0"):
        ev(version=-1)


def test_offer_window_and_deadline_rules():
    with raises("start_before", "start_before before start_after"):
        ev(start_before=T - 1)
    with raises("start_before_duration", "not both"):
        ev(start_before_duration=4)
    with raises("start_before_duration", ">= 0"):
        ev(start_after=None, start_before=None, start_before_duration=-1)
    c = T * 900 - 3600
    with raises("acceptance_before", "before creation_time"):
        ev(creation_time=c, acceptance_before=c - 1)
    with raises("assignment_before", "before acceptance_before"):
        ev(acceptance_before=c, assignment_before=c - 1)
    with raises("assignment_before", "after the latest start"):
        ev(assignment_before=(T + 25) * 900)
    ev(creation_time=c, acceptance_before=c, assignment_before=c + 10)


def test_profile_window_must_fit_the_offer_window():
    p = Profile((Slice(1, 0, 1),), start_after=T - 1)
    with raises("profiles[0].start_after", "before the offer's start_after"):
        ev(profiles=(p,))
    p = Profile((Slice(1, 0, 1),), start_before=T + 30)
    with raises("profiles[0].start_before", "after the offer's latest start"):
        ev(profiles=(p,))


def test_baseline_must_be_a_feasible_default_schedule():
    ok = ev(baseline=Baseline((2.8, 5.6, 7.6), start=T))
    assert ok.baseline.profile == 0
    with raises("baseline.total", "must be feasible"):
        ev(baseline=Baseline((0.0, 1.0, 2.0), start=T))
    with raises("baseline.energy", "must be feasible"):
        ev(baseline=Baseline((2.8, 5.6)))
    with raises("baseline.start", "must be feasible"):
        ev(baseline=Baseline((2.8, 5.6, 7.6), start=T - 4))
    with raises("baseline.profile", "no profile 1"):
        ev(baseline=Baseline((2.8, 5.6, 7.6), profile=1))


def test_prices_rules():
    ev(prices=Prices((SlicePrice(0.1, 0.2),)))
    ev(prices=Prices(tuple(SlicePrice(0.1, 0.2) for _ in range(3))))
    with raises("prices.slices", "give 1 or 3"):
        ev(prices=Prices(tuple(SlicePrice(0.1, 0.2) for _ in range(2))))
    with raises("currency", "ISO 4217"):
        Prices((SlicePrice(0.1, 0.2),), currency="euro")
    with raises("up", "not a number"):
        SlicePrice(float("nan"), 0.1)


def test_state_transitions():
    fo = ev()
    assert fo.state is State.INITIAL
    fo = fo.with_state("offered").with_state(State.ACCEPTED).with_state("assigned").with_state("assigned")
    fo = fo.with_state("executing").with_state("executed").with_state("settled")
    assert fo.state is State.SETTLED
    with raises("state", "illegal transition settled -> offered"):
        fo.with_state("offered")
    with raises("state", "illegal transition initial -> assigned"):
        ev().with_state("assigned")
    with raises("state", "illegal transition assigned -> withdrawn"):
        ev(state="assigned").with_state("withdrawn")
    with raises("state", "unknown state"):
        ev().with_state("nope")
    assert ev(state="offered").with_state("withdrawn").state is State.WITHDRAWN


def test_a_state_change_copies_the_offer_without_revalidating_and_equals_a_rebuilt_one():
    from dataclasses import replace

    fo = ev(state="accepted")
    moved = fo.with_state("assigned")
    assert moved == replace(fo, state=State.ASSIGNED) and type(moved) is FlexOffer
    assert moved.state is State.ASSIGNED and fo.state is State.ACCEPTED  # the original is untouched
    assert hash(moved) == hash(replace(fo, state=State.ASSIGNED))


def test_revised_bumps_version_and_keeps_id():
    fo = ev(state="accepted", version=2)
    new = fo.revised(start_before=T + 12)
    assert (new.version, new.state, new.start_before, new.id) == (3, State.OFFERED, T + 12, fo.id)
    with raises("id", "keeps the offer id"):
        fo.revised(id="other")
    with raises("state", "can no longer be updated"):
        ev(state="assigned").revised(label="x")


def test_implicit_time_flexibility():
    fo = ev(start_after=None, start_before=None, start_before_duration=8)
    assert fo.is_implicit and fo.time_flexibility == 8
    assert fo.earliest_start() is None and fo.earliest_start(now=100) == 100 and fo.latest_start(now=100) == 108
    r = fo.resolve(100)
    assert (r.start_after, r.start_before, r.start_before_duration) == (100, 108, None)
    s = sched((2.8, 5.6, 7.6), start=104)
    assert fo.is_feasible(s, now=100)
    assert [v.field for v in fo.check(s)] == ["start"]
    assert "needs now" in fo.check(s)[0].reason
    assert [v.field for v in fo.check(s, now=105)] == ["start"]
    # start_after given, start_before from a duration
    fo2 = ev(start_before=None, start_before_duration=4)
    assert fo2.latest_start() == T + 4 and fo2.time_flexibility == 4
    # nothing given: start now, exactly
    fo3 = ev(start_after=None, start_before=None)
    assert fo3.time_flexibility == 0 and fo3.latest_start(now=7) == 7


# -- feasibility ------------------------------------------------------------------------------------

def test_check_reports_every_violation():
    fo = ev()
    s = sched((3.0, 0.5, 20.0), start=T + 30)
    fields = [v.field for v in fo.check(s)]
    assert fields == ["start", "energy[0]", "energy[1]", "energy[2]", "total"]
    assert all(str(v).startswith(v.field + ": ") for v in fo.check(s))


def test_check_tolerance_boundary():
    fo = ev()
    assert fo.is_feasible(sched((2.8 + TOLERANCE * 0.9, 5.6, 7.6 - TOLERANCE * 0.9 - 1e-12)))
    assert not fo.is_feasible(sched((2.8 + TOLERANCE * 1.5, 5.6, 7.6 - 0.1)))


def test_check_other_fields():
    fo = ev()
    assert [v.field for v in fo.check(sched((2.8, 5.6, 7.6), offer_id="other"))] == ["offer_id"]
    assert [v.field for v in fo.check(sched((2.8, 5.6, 7.6), profile=1))] == ["profile"]
    assert [v.field for v in fo.check(sched((2.8, 5.6, 7.6), resolution=3600))] == ["resolution"]
    assert [v.field for v in fo.check(sched((2.8, 5.6)))] == ["energy"]


def test_check_discrete_values_and_polytope():
    kettle = FlexOffer(id="k", start_after=0, start_before=4, profiles=(Profile((Slice(1, 0.0, 0.5, (0.0, 0.5)),)),))
    assert kettle.is_feasible(Schedule("k", 2, (0.5,)))
    assert [v.field for v in kettle.check(Schedule("k", 2, (0.25,)))] == ["energy[0]"]
    poly = Polytope(((1.0, 1.0), (-1.0, 0.0)), (1.5, 0.0))
    fo = FlexOffer(id="p", start_after=0, start_before=0, profiles=(Profile((Slice(1, 0, 1), Slice(1, 0, 1)), polytope=poly),))
    assert fo.is_feasible(Schedule("p", 0, (1.0, 0.5)))
    v = fo.check(Schedule("p", 0, (1.0, 1.0)))
    assert [x.field for x in v] == ["polytope.A[0]"] and "exceeds" in v[0].reason


def test_xor_profiles_and_profile_windows():
    from vmenergy.flexoffer.builders import conditional_profiles

    base = Profile((Slice(1, 0.0, 4.0), Slice(1, 0.0, 4.0)), total=TotalEnergy(4.0, 8.0))
    prior, after = conditional_profiles(base, T + 4, after_portion=0.5)
    fo = FlexOffer(id="c", start_after=T, start_before=T + 8, profiles=(prior, after))
    assert fo.is_feasible(Schedule("c", T + 3, (4.0, 4.0), profile=0))
    assert [v.field for v in fo.check(Schedule("c", T + 4, (4.0, 4.0), profile=0))] == ["start"]
    assert fo.is_feasible(Schedule("c", T + 4, (2.0, 2.0), profile=1))
    assert [v.field for v in fo.check(Schedule("c", T + 4, (4.0, 4.0), profile=1))] == ["energy[0]", "energy[1]", "total"]
    assert [v.field for v in fo.check(Schedule("c", T + 3, (2.0, 2.0), profile=1))] == ["start"]
    assert after.total == TotalEnergy(2.0, 4.0) and after.start_after == T + 4 and prior.start_before == T + 3
    with raises("after_portion", "[0, 1]"):
        conditional_profiles(base, T, after_portion=1.5)


# -- builders ---------------------------------------------------------------------------------------

def test_battery_profile_is_a_state_of_charge_polytope():
    from vmenergy.flexoffer.builders import battery_profile

    p = battery_profile(4, capacity=5.0, soc=3.0, charge=1.25, discharge=1.25, final_soc_min=1.0, final_soc_max=5.0)
    fo = FlexOffer(id="b", start_after=0, start_before=0, profiles=(p,))
    assert fo.is_feasible(Schedule("b", 0, (1.25, 0.75, -1.25, -1.0)))
    # charging 1.25 twice then more would pass 5 kWh: soc 3 + 1.25 + 1.25 = 5.5
    assert any(v.field.startswith("polytope") for v in fo.check(Schedule("b", 0, (1.25, 1.25, 0.0, 0.0))))
    # final soc 3 - 2.5 = 0.5 < 1
    assert [v.field for v in fo.check(Schedule("b", 0, (-1.25, -1.25, 0.0, 0.0)))] == ["total"]
    with raises("soc", "soc_min <= soc"):
        battery_profile(2, capacity=5.0, soc=6.0, charge=1.0, discharge=1.0)


def test_dependency_profile_with_dependent_bounds():
    from vmenergy.flexoffer.builders import dependency_profile

    # charger that tapers: x_i <= 2 - 0.5 * level_{i-1}, starting at level 0
    p = dependency_profile((Slice(1, 0, 2), Slice(1, 0, 2), Slice(1, 0, 2)), max_slope=-0.5)
    fo = FlexOffer(id="d", start_after=0, start_before=0, profiles=(p,))
    assert fo.is_feasible(Schedule("d", 0, (2.0, 1.0, 0.5)))  # levels 0, 2, 3 -> caps 2, 1, 0.5
    assert not fo.is_feasible(Schedule("d", 0, (2.0, 1.5, 0.0)))
    p2 = dependency_profile((Slice(1, 0, 2), Slice(1, 0, 2)), min_slope=0.5, initial=2.0)  # x_i >= 0.5 * level
    fo2 = FlexOffer(id="e", start_after=0, start_before=0, profiles=(p2,))
    assert fo2.is_feasible(Schedule("e", 0, (1.0, 1.5)))
    assert not fo2.is_feasible(Schedule("e", 0, (0.5, 2.0)))


# -- measures ---------------------------------------------------------------------------------------

def test_measures():
    fo = ev()
    assert fo.time_flexibility == 24
    assert fo.energy_flexibility == pytest.approx(2.8 + 4.6 + 9.2)
    assert fo.product_flexibility == pytest.approx(24 * (2.8 + 4.6 + 9.2))
    assert (fo.min_total_energy, fo.max_total_energy) == (12.0, 16.0)
    assert fo.direction == "consumption"
    pv = FlexOffer(id="pv", start_after=0, start_before=0, profiles=(Profile((Slice(1, -1.0, 0.0),)),))
    assert pv.direction == "production" and pv.time_flexibility == 0 and pv.product_flexibility == 0
    # XOR: the most flexible profile counts, each with its own window
    a = Profile((Slice(1, 0, 1),), start_before=T + 2)
    b = Profile((Slice(1, 0, 3),), start_after=T + 20)
    fo = ev(profiles=(a, b))
    assert fo.time_flexibility == 4 and fo.energy_flexibility == 3.0
    assert fo.product_flexibility == max(2 * 1.0, 4 * 3.0)
    assert math.isclose(ev(profiles=(a,)).max_total_energy, 1.0)


def test_offers_are_immutable_and_hashable_by_value():
    a, b = ev(), ev()
    assert a == b and hash(a) == hash(b)
    with pytest.raises(AttributeError):
        a.id = "x"  # type: ignore[misc]


def test_error_path_prefix_keeps_the_subclass():
    class Sub(FlexOfferError):
        pass

    e = Sub("max", "not a number").within("profiles[0].slices[1]")
    assert type(e) is Sub and e.path == "profiles[0].slices[1].max" and str(e).startswith("profiles[0].slices[1].max:")
    assert FlexOfferError("", "min > max").within("total").path == "total"
    assert FlexOfferError("[2].id", "x").within("items").path == "items[2].id"
