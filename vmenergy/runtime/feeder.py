"""A congestion point's limits from a grid model: a SimBench feeder in pandapower.

A DSO's limit per interval (:class:`vmenergy.protocol.dso.CongestionPoint`) can be a day's
profile; this computes one from a real feeder model instead of a guess. The SimBench network
``code`` (an LV or MV benchmark grid) is loaded with its year of load and generation profiles
(15-minute steps); for each interval of ``day`` its power flow is solved twice, as the profiles
say and with a small extra load at ``bus`` (by default the low-voltage side of the feeder's
transformer, where VME's prosumers connect), and every transformer's and line's loading is
taken as linear in that extra load (loading is the size of the flow, so an element that
exports turns first). The headroom is the extra load that takes the first element
to ``max_loading`` percent: what the flexible load behind the point may draw on top of the
feeder's other load, in kWh per interval. So the limit is low where the feeder's own evening
peak is high.

pandapower and simbench are optional (``pip install 'vmenergy[grid]'``); the rest of VME does
not import this module. ``vmenergy feeder CODE --day DATE`` prints the profile as the ``limit``
of a ``[[dso]]`` point.
"""

from __future__ import annotations

from datetime import date
from typing import Optional

from vmenergy.flexoffer import FlexOfferError

__all__ = ["feeder_limits", "SIMBENCH_STEP"]

#: SimBench profiles are 15-minute values over a (leap) year.
SIMBENCH_STEP = 900
#: The extra load (MW) whose effect on the loadings is measured.
PROBE_MW = 0.01
#: Halvings when the linear guess of the headroom fails its check (1/256 of the guess).
BISECTIONS = 8


def _modules():
    try:
        import pandapower
        import simbench
    except ImportError as exc:
        raise FlexOfferError("feeder", f"needs the optional packages pandapower and simbench "
                                       f"(pip install 'vmenergy[grid]'): {exc}") from None
    return pandapower, simbench


def feeder_limits(code: str, day: date, *, bus: Optional[int] = None, max_loading: float = 100.0) -> tuple[float, ...]:
    """96 values: the headroom at ``bus`` in kWh per 15 minutes over ``day`` (UTC), from the
    feeder's own profiles for that day of the year (see the module docstring)."""
    import numpy as np

    pp, sb = _modules()
    if not 0 < max_loading <= 200:
        raise FlexOfferError("max_loading", f"a loading in percent, 0 < x <= 200 (got {max_loading!r})")
    try:
        net = sb.get_simbench_net(code)
    except Exception as exc:  # simbench says what it does not know in its own words
        raise FlexOfferError("feeder", f"no SimBench network {code!r}: {exc}") from None
    if bus is None:
        if not len(net.trafo):
            raise FlexOfferError("bus", f"{code} has no transformer: name the bus of the congestion point")
        bus = int(net.trafo.lv_bus.iloc[0])
    elif bus not in net.bus.index:
        raise FlexOfferError("bus", f"{code} has no bus {bus}")
    profiles = sb.get_absolute_values(net, profiles_instead_of_study_cases=True)
    per_day = 86400 // SIMBENCH_STEP
    first = (day.timetuple().tm_yday - 1) * per_day  # SimBench's year has 366 days
    probe = pp.create_load(net, bus, p_mw=0.0, name="vme-flexible-load")
    # no guess beyond twice the transformers' rating (a power flow that far out may not converge)
    cap_mw = 2.0 * float(net.trafo.sn_mva.sum()) if len(net.trafo) else 10.0
    out = []
    for k in range(first, first + per_day):
        for (element, column), values in profiles.items():
            if len(values.columns):
                getattr(net, element).loc[values.columns, column] = values.iloc[k].to_numpy()
        net.load.at[probe, "p_mw"] = 0.0
        base = _loadings(pp, net)
        net.load.at[probe, "p_mw"] = PROBE_MW
        per_mw = (_loadings(pp, net) - base) / PROBE_MW
        # loading is |flow|: where the extra load raises it, it reaches the maximum after
        # (max - L0) / slope; where it lowers it (the element exports, e.g. PV at noon) the flow
        # first falls to zero and turns, so after (max + L0) / |slope|
        moves = np.abs(per_mw) > 1e-9
        if not moves.any():
            raise FlexOfferError("bus", f"no transformer or line of {code} carries load at bus {bus}")
        room = np.where(per_mw > 0, max_loading - base, max_loading + base)[moves] / np.abs(per_mw[moves])
        headroom_mw = min(max(0.0, float(room.min())), cap_mw)
        # near the turn of a flow (reactive power keeps the loading up) the line is a poor guess:
        # check it with a power flow, and halve the gap by bisection until it holds
        net.load.at[probe, "p_mw"] = headroom_mw
        if _loadings(pp, net).max() > max_loading + 0.5:
            lo, hi = 0.0, headroom_mw
            for _ in range(BISECTIONS):
                net.load.at[probe, "p_mw"] = (lo + hi) / 2
                lo, hi = ((lo + hi) / 2, hi) if _loadings(pp, net).max() <= max_loading else (lo, (lo + hi) / 2)
            headroom_mw = lo
        out.append(round(headroom_mw * 1000 * SIMBENCH_STEP / 3600, 3))
    return tuple(out)


def _loadings(pp, net):
    import numpy as np

    try:
        pp.runpp(net, numba=False)  # numba is not a dependency; without it pandapower warns once
    except pp.LoadflowNotConverged:  # far beyond what the feeder carries
        return np.full(len(net.trafo) + len(net.line), np.inf)
    return np.concatenate([net.res_trafo.loading_percent.to_numpy(), net.res_line.loading_percent.to_numpy()])
