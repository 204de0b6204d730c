"""The run's PNG plots (matplotlib, Agg canvas: no display, no pyplot state shared between runs).

Each function draws one figure from the series or the summary and returns the file name it wrote,
or None when there is nothing to draw (no market in the scenario, no schedule yet); the HTML
page says why a plot is missing.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Optional

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
from matplotlib.figure import Figure

from .series import Series

__all__ = ["PLOTS", "write_plots", "plot_load", "plot_envelope", "plot_market", "plot_rewards", "plot_dso"]

#: Prosumers shown one bar each; more are shown as a histogram.
MAX_BARS = 40
DPI = 110


def _utc(seconds) -> list[datetime]:
    return [datetime.fromtimestamp(int(t), tz=timezone.utc) for t in seconds]


def _figure(height: float = 4.2) -> tuple[Figure, object]:
    fig = Figure(figsize=(9.5, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot()


def _time_axis(ax) -> None:
    locator = AutoDateLocator(tz=timezone.utc)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(ConciseDateFormatter(locator, tz=timezone.utc))
    ax.set_xlabel("time (UTC)")
    ax.grid(True, alpha=0.3)


def _steps(s: Series) -> list[datetime]:
    """Interval edges (one more than intervals), for step plots where each value holds for its interval."""
    return _utc(np.append(s.times(), (s.start + s.n_intervals) * s.resolution))


def _hold(values: np.ndarray) -> np.ndarray:
    return np.append(values, values[-1:])


def _unit(s: Series) -> str:
    minutes = s.resolution // 60
    return f"kWh per {minutes} min interval" if minutes < 60 else f"kWh per {s.resolution // 3600} h interval"


def _save_energy_plot(fig: Figure, ax, s: Series, title: str, path: Path) -> str:
    """The common frame of the kWh-over-time plots: zero line, title, axes, legend; then save."""
    ax.axhline(0, color="0.2", linewidth=0.6)
    ax.set_title(title)
    ax.set_ylabel(_unit(s))
    _time_axis(ax)
    ax.legend(loc="best")
    fig.savefig(path)
    return path.name


def plot_load(s: Series, _summary: dict, path: Path) -> Optional[str]:
    if s.n_intervals == 0 or not np.any(s.scheduled) and not np.any(s.baseline):
        return None
    fig, ax = _figure()
    t = _steps(s)
    # the portfolio: every aggregator's intervals summed (measured: only where every reading is in)
    ax.step(t, _hold(s.baseline.sum(axis=0)), where="post", label="baseline (default schedules)", color="0.45",
            linestyle="--")
    ax.step(t, _hold(s.scheduled.sum(axis=0)), where="post", label="scheduled", color="tab:blue", linewidth=2)
    ax.step(t, _hold(s.measured.sum(axis=0)), where="post", label="measured", color="tab:orange")
    return _save_energy_plot(fig, ax, s, "Flexible load of all prosumers: baseline, scheduled and measured (+ consumption, - production)", path)


def plot_envelope(s: Series, _summary: dict, path: Path) -> Optional[str]:
    if s.n_intervals == 0 or not (np.any(s.flex_max) or np.any(s.flex_min)):
        return None
    fig, ax = _figure()
    t = _steps(s)
    ax.fill_between(t, _hold(s.flex_min.sum(axis=0)), _hold(s.flex_max.sum(axis=0)), step="post", alpha=0.3,
                    color="tab:green", label="envelope of the accepted offers (min .. max)")
    ax.step(t, _hold(s.scheduled.sum(axis=0)), where="post", color="tab:blue", linewidth=2, label="scheduled")
    return _save_energy_plot(fig, ax, s, "Aggregated flexibility: what the accepted offers could do, and the schedule inside it", path)


def plot_market(_s: Series, summary: dict, path: Path) -> Optional[str]:
    sessions = summary["market"]["sessions"]
    if not sessions:
        return None
    fig, ax = _figure()
    seconds = [datetime.fromisoformat(x["gate_closure"].replace("Z", "+00:00")).timestamp() for x in sessions]
    when = _utc(seconds)
    # bars a fortieth of the time span wide (at least 10 minutes), so a lone session still shows
    width = max((max(seconds) - min(seconds)) / 40, 600) / 86400
    volume = [x["volume_kwh"] for x in sessions]
    bars = ax.bar(when, volume, width=width, color="tab:blue", alpha=0.7, label="cleared volume (kWh)")
    for b, x in zip(bars, sessions):
        ax.annotate(x["id"], (b.get_x() + b.get_width() / 2, b.get_height()), ha="center", va="bottom", fontsize=8)
    ax.set_ylabel("cleared volume (kWh over the delivery period)")
    ax.set_ylim(0, max(volume + [1e-9]) * 1.12)
    _time_axis(ax)
    ax.set_xlabel("gate closure (UTC)")
    right = ax.twinx()
    priced = [(w, x["price_eur_per_kwh"]) for w, x in zip(when, sessions) if x["price_eur_per_kwh"] is not None]
    if priced:
        right.plot([w for w, _ in priced], [p for _, p in priced], "o", color="tab:red", markersize=7,
                   label="price (EUR/kWh)")
        right.set_ylim(0, max(p for _, p in priced) * 1.15)
    right.set_ylabel("volume-weighted clearing price (EUR/kWh)")
    handles = [bars] + right.get_legend_handles_labels()[0]
    fig.legend(handles, [h.get_label() for h in handles], loc="outside lower center", ncols=2)
    ax.set_title("Market sessions: volume cleared and price")
    fig.savefig(path)
    return path.name


def plot_rewards(_s: Series, summary: dict, path: Path) -> Optional[str]:
    rows = summary["money"]["prosumers"]
    if not rows:
        return None
    eur = np.array([r["received"]["cents"] for r in rows]) / 100
    if len(rows) <= MAX_BARS:
        fig, ax = _figure(max(3.0, 0.28 * len(rows) + 1.4))
        y = np.arange(len(rows))
        ax.barh(y, eur, color=np.where(eur >= 0, "tab:green", "tab:red"))
        ax.set_yticks(y, [r["jid"].split("@")[0] for r in rows])
        ax.invert_yaxis()
        ax.axvline(0, color="0.2", linewidth=0.6)
        ax.set_xlabel("EUR received from the aggregator (net of penalties)")
        ax.set_ylabel("prosumer")
    else:
        fig, ax = _figure()
        ax.hist(eur, bins=min(40, max(5, len(rows) // 10)), color="tab:green")
        ax.set_xlabel("EUR received from the aggregator (net of penalties)")
        ax.set_ylabel("prosumers")
    ax.grid(True, axis="x", alpha=0.3)
    ax.set_title(f"Reward per prosumer ({len(rows)} prosumers, total EUR {eur.sum():.2f})")
    fig.savefig(path)
    return path.name


def plot_dso(_s: Series, summary: dict, path: Path) -> Optional[str]:
    """Each congestion point's loading without flexibility (the baselines) and with it (measured),
    against its limit: one panel per point."""
    points = [p for p in summary["dso"]["points"] if p["loading"]["without_kwh"]]
    if not points:
        return None
    fig = Figure(figsize=(10, 3.2 * len(points) + 1.0), layout="constrained")
    for i, p in enumerate(points):
        ax = fig.add_subplot(len(points), 1, i + 1)
        load = p["loading"]
        start = datetime.fromisoformat(load["start"].replace("Z", "+00:00")).timestamp()
        n = len(load["without_kwh"])
        t = _utc(start + np.arange(n + 1) * load["resolution_s"])
        ax.step(t, _hold(np.asarray(load["without_kwh"])), where="post", color="0.45", linestyle="--",
                label=f"without flexibility (baselines), peak {p['peak_without_kwh']:.1f}")
        ax.step(t, _hold(np.asarray(load["with_kwh"])), where="post", color="tab:blue", linewidth=2,
                label=f"with the DSO's orders (measured), peak {p['peak_with_kwh']:.1f}")
        ax.step(t, _hold(np.asarray(load["limit_kwh"])), where="post", color="tab:red", linewidth=1.2, label="limit")
        ax.set_title(f"{p['point']} ({p['dso']}, {p['prosumers']} prosumers behind it)")
        ax.set_ylabel(f"kWh per {load['resolution_s'] // 60} min")
        _time_axis(ax)
        ax.legend(loc="upper right")
    fig.savefig(path)
    return path.name


#: (file name, caption, drawing function) of every plot, in page order.
PLOTS: tuple[tuple[str, str, Callable], ...] = (
    ("load.png", "Baseline, scheduled and measured load", plot_load),
    ("envelope.png", "Flexibility envelope and schedule", plot_envelope),
    ("market.png", "Market sessions", plot_market),
    ("rewards.png", "Reward per prosumer", plot_rewards),
    ("dso.png", "Congestion points: loading without and with flexibility", plot_dso),
)


def write_plots(s: Series, summary: dict, run_dir: Path) -> dict[str, Optional[str]]:
    """Caption -> file name written (None: nothing to draw)."""
    return {caption: draw(s, summary, run_dir / name) for name, caption, draw in PLOTS}
