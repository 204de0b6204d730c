"""Writes piedmont-2026-11-prices.csv: a synthetic hourly energy price for the days of the weather
file beside it. Not market data: the demo market's winter day-ahead shape by local hour (Rome),
10 % lower on Saturdays and Sundays, 0.004 EUR/kWh higher per degree the day's mean temperature
is below 10 C, plus noise (sd 0.01 EUR/kWh, seed 2026). Run: python make_prices.py"""

import csv
import random
from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

HERE = Path(__file__).parent
SHAPE = (0.08, 0.08, 0.08, 0.08, 0.08, 0.09, 0.18, 0.24, 0.22, 0.16, 0.14, 0.12,
         0.12, 0.13, 0.15, 0.18, 0.26, 0.32, 0.34, 0.30, 0.22, 0.16, 0.12, 0.10)
ROME = ZoneInfo("Europe/Rome")


def main() -> None:
    temps: dict[str, list[float]] = {}
    with open(HERE / "piedmont-2026-11-weather.csv") as f:
        for row in csv.DictReader(line for line in f if not line.startswith("#")):
            temps.setdefault(row["time"][:10], []).append(float(row["temp_air"]))
    rng = random.Random(2026)
    t = datetime(2026, 11, 18, tzinfo=timezone.utc)
    end = datetime(2026, 11, 30, tzinfo=timezone.utc)
    out = ["# Synthetic hourly energy price, EUR/kWh, UTC (see make_prices.py: not market data).", "time,price"]
    while t < end:
        local = t.astimezone(ROME)
        day = temps[t.strftime("%Y-%m-%d")]
        p = SHAPE[local.hour] * (0.9 if local.weekday() >= 5 else 1.0)
        p += 0.004 * max(0.0, 10.0 - sum(day) / len(day)) + rng.gauss(0, 0.01)
        out.append(f"{t.strftime('%Y-%m-%dT%H:%M:%SZ')},{max(0.01, p):.4f}")
        t += timedelta(hours=1)
    (HERE / "piedmont-2026-11-prices.csv").write_text("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
