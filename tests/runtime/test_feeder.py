"""Limits from a SimBench feeder (pandapower): the headroom found is what a power flow allows.
Needs the `grid` extra (pandapower, simbench): `make test` installs it; without it this is skipped."""

from __future__ import annotations

from datetime import date

import pytest

from vmenergy.flexoffer import FlexOfferError

pp = pytest.importorskip("pandapower")
sb = pytest.importorskip("simbench")

CODE = "1-LV-rural1--0-no_sw"


def loading_with(extra_mw: float, step: int) -> float:
    """The highest transformer or line loading (%) at 15-minute step ``step`` of the year with
    ``extra_mw`` more load at the transformer's LV bus: an independent power flow."""
    net = sb.get_simbench_net(CODE)
    profiles = sb.get_absolute_values(net, profiles_instead_of_study_cases=True)
    for (element, column), values in profiles.items():
        if len(values.columns):
            getattr(net, element).loc[values.columns, column] = values.iloc[step].to_numpy()
    pp.create_load(net, int(net.trafo.lv_bus.iloc[0]), p_mw=extra_mw)
    pp.runpp(net, numba=False)
    return max(net.res_trafo.loading_percent.max(), net.res_line.loading_percent.max())


def test_the_headroom_takes_the_feeder_to_its_maximum_loading_and_no_further():
    from vmenergy.runtime.feeder import feeder_limits

    day = date(2026, 11, 22)
    limits = feeder_limits(CODE, day)
    assert len(limits) == 96 and all(v > 0 for v in limits)
    k = 80  # 20:00 UTC, the feeder's own evening load
    step = (day.timetuple().tm_yday - 1) * 96 + k
    mw = limits[k] * 4 / 1000  # kWh per 15 minutes -> MW
    assert loading_with(mw, step) <= 100.0 + 0.5
    assert loading_with(mw * 1.1, step) > 100.0  # and not far below it


def test_an_unknown_network_or_bus_is_named():
    from vmenergy.runtime.feeder import feeder_limits

    with pytest.raises(FlexOfferError, match="feeder: no SimBench network"):
        feeder_limits("no-such-grid", date(2026, 11, 22))
    with pytest.raises(FlexOfferError, match="bus: .* has no bus 9999"):
        feeder_limits(CODE, date(2026, 11, 22), bus=9999)
