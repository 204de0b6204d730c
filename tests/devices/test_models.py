"""Each device model's offers are feasible for its own physics, and its baseline is what it does.

For every model: schedules taken from corners of its offer (and its baseline) are executed by
the model's physics, which must then meter exactly the scheduled energy (it never had to refuse
a command) and keep its physical limits (comfort band, state of charge, what the sun gives)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from vmenergy.devices.models import (
    EV, PV, BaseLoad, DeviceError, Dishwasher, Dryer, Freezer, HeatPump, HomeBattery, OwnerSettings, Washer,
    WaterBoiler, meter_noise,
)
from vmenergy.devices.models.baseload import base_forecast
from vmenergy.devices.models.pv import pv_kwh
from vmenergy.devices.models.thermal import staffell_cop
from vmenergy.devices.models.wet import PROGRAMMES, programme_kwh

from .helpers import baseline_schedule, context, device, offer, play, predicted, runs, vertices

THERMAL = [(HeatPump, {}), (WaterBoiler, {}), (Freezer, {})]


def band(dev):
    return dev.band()


@pytest.mark.parametrize("cls, params", THERMAL)
@pytest.mark.parametrize("temp_air", [-8.0, 3.0, 12.0])
def test_thermal_schedules_inside_the_offer_keep_the_temperature_in_the_band(cls, params, temp_air):
    dev = device(cls, context(temp_air=temp_air), **params)
    (run,) = runs(dev)
    fo = offer(dev, run)
    lo, hi = band(dev)
    for schedule in [baseline_schedule(fo), *vertices(fo, 12, seed=int(temp_air) + 20)]:
        assert fo.is_feasible(schedule), fo.check(schedule)
        metered, temps = play(dev, run, schedule, watch=lambda d: d.state.temp)
        spread = fo.profiles[0].spread(schedule.energy)
        assert np.allclose(metered, spread, atol=1e-9), "the device refused part of a feasible schedule"
        # where the thermostat itself could not stay in the band the offer follows it; else the band holds
        base_temps = play(dev, run, baseline_schedule(fo), watch=lambda d: d.state.temp)[1]
        for t, b in zip(temps, base_temps):
            assert min(lo, b) - 1e-6 <= t <= max(hi, b) + 1e-6


def test_a_heat_pump_band_holds_on_an_ordinary_day_and_the_offer_has_flexibility():
    dev = device(HeatPump, context(temp_air=3.0))
    (run,) = runs(dev)
    fo = offer(dev, run)
    temps = play(dev, run, baseline_schedule(fo), watch=lambda d: d.state.temp)[1]
    assert all(20.0 <= t <= 23.0 for t in temps)
    # the cheapest and dearest schedules in the offer differ: there is energy (pre-heating) to move
    energies = [sum(s.energy) for s in vertices(fo, 10, seed=3)]
    assert max(energies) - min(energies) > 1.0


def test_rebound_after_a_shift_is_in_the_heat_pump_model():
    """Heating nothing for the first three hours leaves the house colder; the thermostat that
    takes over when that schedule ends then draws more than it would have (the rebound)."""
    dev = device(HeatPump, context(temp_air=0.0))
    (run,) = runs(dev)
    offer(dev, run)
    shifted, normal = predicted(dev, run), predicted(dev, run)
    shifted.decide(shifted.run_of(run.id), "schedule", shifted.t, run.start, np.zeros(12))
    after_shift = [shifted.step(t, shifted.command(t)) for t in range(run.start, run.start + 24)]
    after_normal = [normal.step(t, None) for t in range(run.start, run.start + 24)]
    assert sum(after_shift[:12]) == 0
    assert sum(after_shift[12:]) > sum(after_normal[12:]) + 0.1


def test_cop_follows_staffell_and_falls_with_the_lift():
    assert staffell_cop(np.array([30.0]))[0] == pytest.approx(6.81 - 0.121 * 30 + 0.000630 * 900)
    assert staffell_cop(np.array([20.0]))[0] > staffell_cop(np.array([40.0]))[0]


@pytest.mark.parametrize("seed", ["1", "2", "3", "4", "5"])
def test_an_ev_offer_never_asks_more_than_the_battery_can_take_before_departure(seed):
    dev = device(EV, context(seed=seed), home_probability=1.0, early_probability=0.0)
    for run in runs(dev, days=3):
        twin = predicted(dev, run)
        soc = twin.soc_on_arrival(run)
        fo = twin.offer(run, run.release)
        if fo is None:
            continue
        run.offer, run.offered = fo, True
        p = dev.p
        room = (p.capacity - soc) / p.efficiency
        total = fo.profiles[0].total
        assert total.max <= room + 1e-6
        assert total.max <= p.charger * 0.25 * (run.data["departure"] - fo.earliest_start()) + 1e-6
        for s in [baseline_schedule(fo), *vertices(fo, 8, seed=int(seed))]:
            metered, socs = play(dev, run, s, watch=lambda d: d.state.soc)
            assert np.allclose(metered, fo.profiles[0].spread(s.energy), atol=1e-9)
            assert max(socs) <= p.capacity + 1e-9
            assert s.start + fo.profiles[0].duration <= run.data["departure"]
        dev.decide(run, "default", run.release)


def test_an_ev_that_leaves_early_updates_its_offer_to_the_new_departure():
    dev = device(EV, context(seed="11"), home_probability=1.0, early_probability=1.0)
    (run,) = [r for r in runs(dev, days=1)]
    first = offer(dev, run)
    assert run.change_at is not None and run.data["actual"] < run.data["departure"]
    twin = predicted(dev, run)
    for t in range(twin.t, run.change_at):
        twin.step(t, twin.command(t))
    revised = twin.revise(run, run.change_at)
    assert revised is not None and revised.id == first.id
    assert revised.latest_start() + revised.profiles[0].duration <= run.data["actual"]
    assert revised.max_total_energy <= first.max_total_energy + 1e-9


def test_a_car_that_leaves_during_its_schedule_stops_charging():
    dev = device(EV, context(seed="11"), home_probability=1.0, early_probability=1.0)
    (run,) = runs(dev)
    fo = offer(dev, run)
    s = baseline_schedule(fo)
    twin = predicted(dev, run)
    energy = fo.profiles[0].spread(s.energy)
    twin.decide(twin.run_of(run.id), "schedule", twin.t, s.start, energy)
    metered = [twin.step(t, twin.command(t)) for t in range(s.start, run.data["departure"])]
    gone = run.data["actual"] - s.start
    assert all(e == 0 for e in metered[gone:])


@pytest.mark.parametrize("day", [0, 1, 2])
def test_a_pv_offer_never_produces_more_than_pvlib_gives(day):
    dev = device(PV, peak=6.0, azimuth=160.0)
    run = runs(dev, days=day + 1)[-1]
    fo = offer(dev, run)
    n = run.end - run.start
    sun = pv_kwh(dev.p, dev.ctx, run.start, n)
    per_slice = sun  # one slice per interval
    mins = np.array([s.min for s in fo.profiles[0].slices])
    assert np.all(mins >= -per_slice - 1e-8)
    assert np.all(np.array([s.max for s in fo.profiles[0].slices]) == 0)
    assert sum(sun) > 5.0  # a clear November day at 45 N gives a 6 kWp array well over 5 kWh
    for s in [baseline_schedule(fo), *vertices(fo, 5)]:
        metered, _ = play(dev, run, s)
        assert np.allclose(metered, fo.profiles[0].spread(s.energy), atol=1e-8)
        assert np.all(metered >= -sun - 1e-9)


def test_a_battery_schedule_inside_its_offer_keeps_the_charge_within_limits():
    dev = device(HomeBattery, capacity=9.0, power=4.0, round_trip=0.88)
    lo, hi = dev.limits()
    for run in runs(dev, days=2):
        fo = offer(dev, run)
        dev.decide(run, "default", run.release)
        for s in [baseline_schedule(fo), *vertices(fo, 10, seed=run.start)]:
            metered, socs = play(dev, run, s, watch=lambda d: d.state.soc)
            assert np.allclose(metered, fo.profiles[0].spread(s.energy), atol=1e-8), "the BMS had to step in"
            assert lo - 1e-6 <= min(socs) and max(socs) <= hi + 1e-6
        # losses: going round the battery returns less than went in
        charged = sum(e for e in fo.profiles[0].spread(baseline_schedule(fo).energy) if e > 0)
        assert charged >= 0


def test_battery_losses_make_a_round_trip_cost_energy():
    dev = device(HomeBattery, capacity=10.0, power=5.0, round_trip=0.81, initial_soc=0.1, soc_min=0.1)
    twin = dev.fork()
    put = sum(twin.step(t, 1.25) for t in range(dev.t, dev.t + 4))
    got = -sum(twin.step(t, -1.25) for t in range(dev.t + 4, dev.t + 12))
    assert got == pytest.approx(put * 0.81, rel=1e-9)


@pytest.mark.parametrize("cls", [Washer, Dishwasher, Dryer])
def test_wet_appliances_offer_their_programmes_as_exclusive_alternatives(cls):
    dev = device(cls, cycles_per_day=1.0, programme=1)
    (run,) = runs(dev)
    fo = offer(dev, run)
    progs = [programme_kwh(p, 900) for p in PROGRAMMES[dev.machine].values()]
    usual = progs[1]
    assert len(fo.profiles) == 2
    assert [s.min for s in fo.profiles[0].slices] == pytest.approx(list(usual))  # the owner's usual one first
    assert fo.baseline.start == run.start
    for k, prof in enumerate(fo.profiles):
        assert prof.start_before + prof.duration <= run.end  # done when the owner wants it
        s = vertices(fo, 1, profile=k)[0]
        metered, _ = play(dev, run, s)
        assert np.allclose(metered, prof.spread(s.energy))


def test_a_wet_appliance_that_is_not_scheduled_starts_its_usual_programme_when_told():
    dev = device(Dishwasher, cycles_per_day=1.0)
    (run,) = runs(dev)
    offer(dev, run)
    t = run.start + 3
    for k in range(dev.t, t):
        assert dev.step(k, dev.command(k)) == 0.0  # waits for its schedule
    dev.decide(run, "default", t)
    prog = programme_kwh(next(iter(PROGRAMMES["dishwasher"].values())), 900)
    ran = [dev.step(k, dev.command(k)) for k in range(t, t + len(prog) + 2)]
    assert ran[:len(prog)] == pytest.approx(list(prog)) and ran[len(prog):] == [0.0, 0.0]


def test_an_event_device_without_a_decision_runs_its_programme_from_its_latest_start():
    dev = device(Washer, cycles_per_day=1.0)
    (run,) = runs(dev)
    offer(dev, run)
    metered = [dev.step(k, dev.command(k)) for k in range(dev.t, run.end)]
    k = run.latest_start - run.release
    assert sum(metered[:k]) == 0 and sum(metered[k:]) > 0.5
    assert run.decided == "default"


def test_base_load_follows_the_h25_profile_scaled_to_the_annual_consumption():
    ctx = context()
    day = base_forecast(ctx, 3650.0, 0, 1)  # any interval: a positive expectation
    assert day[0] > 0
    year = sum(base_forecast(ctx, 3650.0, d * 96 + 2000000 - 2000000 % 96, 96).sum() for d in range(0, 365, 7)) * 7
    assert year == pytest.approx(3650.0, rel=0.05)


def test_base_load_offers_its_forecast_and_meters_around_it():
    dev = device(BaseLoad, annual=4000.0, noise=0.2)
    (run,) = runs(dev)
    fo = offer(dev, run)
    assert all(s.min == s.max for s in fo.profiles[0].slices)  # nothing in it moves
    metered, _ = play(dev, run, baseline_schedule(fo))
    expected = fo.profiles[0].spread(fo.baseline.energy)
    assert not np.allclose(metered, expected)  # the real load is not its forecast ...
    assert sum(metered) == pytest.approx(sum(expected), rel=0.25)  # ... but close to it


@pytest.mark.parametrize("cls", [HeatPump, WaterBoiler, Freezer, HomeBattery, PV])
def test_executing_the_baseline_meters_the_baseline(cls):
    dev = device(cls)
    (run,) = runs(dev)
    fo = offer(dev, run)
    metered, _ = play(dev, run, baseline_schedule(fo))
    assert np.allclose(metered, fo.profiles[0].spread(fo.baseline.energy), atol=1e-8)


@pytest.mark.parametrize("cls", [HeatPump, WaterBoiler, Freezer, HomeBattery, PV])
def test_a_rejected_continuous_device_runs_its_normal_behaviour_which_its_baseline_describes(cls):
    dev = device(cls)
    (run,) = runs(dev)
    fo = offer(dev, run)
    twin = predicted(dev, run)
    twin.decide(twin.run_of(run.id), "default", run.release)
    metered = [twin.step(t, twin.command(t)) for t in range(run.start, run.end)]
    starts = np.cumsum([0] + [s.duration for s in fo.profiles[0].slices[:-1]])
    assert np.allclose(np.add.reduceat(metered, starts), fo.baseline.energy, atol=1e-6)


def test_offer_prices_come_from_the_owners_settings():
    ctx = context()
    dev = device(HeatPump, type(ctx)(**{**ctx.__dict__, "owner": OwnerSettings(comfort_cost=0.1, priority=3,
                                                                                priority_factor=2.0)}))
    (run,) = runs(dev)
    fo = offer(dev, run)
    assert fo.prices.slices[0].up == pytest.approx(0.4) and fo.prices.slices[0].down == pytest.approx(0.4)
    assert OwnerSettings(priority=1).prices().slices[0].up < OwnerSettings(priority=5).prices().slices[0].up


def test_parameters_out_of_range_are_refused_naming_the_field():
    with pytest.raises(DeviceError) as err:
        HeatPump.Params(capacity=-1.0)
    assert err.value.path == "capacity"
    with pytest.raises(DeviceError) as err:
        EV.Params(min_soc=0.9, target_soc=0.5)
    assert err.value.path == "min_soc"
    with pytest.raises(DeviceError) as err:
        OwnerSettings(priority=9)
    assert err.value.path == "priority"


def test_meter_noise_is_bounded_and_repeatable():
    energy = np.full(50, 2.0)
    a = meter_noise(energy, 0.05, "seed", "offer")
    assert a == meter_noise(energy, 0.05, "seed", "offer")
    assert a != meter_noise(energy, 0.05, "seed", "other")
    assert all(abs(x - 2.0) <= 0.1 + 1e-12 for x in a) and not all(x == 2.0 for x in a)
    assert meter_noise(energy, 0.0, "x") == energy.tolist()


def test_the_same_seed_gives_the_same_offers_and_another_seed_others():
    def offers(seed):
        out = []
        for cls in (EV, Washer, WaterBoiler, BaseLoad):
            dev = device(cls, context(seed=seed))
            for run in runs(dev, days=3):
                fo = offer(dev, run)
                out.append(None if fo is None else fo.to_json())
                dev.decide(run, "default", run.release)
        return out

    assert offers("1") == offers("1")
    assert offers("1") != offers("2")
    assert not math.isnan(len(offers("3")))
