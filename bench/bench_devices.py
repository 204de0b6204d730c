"""Benchmark: the offers of 100,000 mixed devices for a day, made by their FOAs' device models.

Usage: python bench/bench_devices.py [--quick] [--n N] [--digest] [--foa-households H]

Households are drawn as scenarios/city-1k.toml draws them (same device mix and parameter ranges)
until they hold N devices (default 100,000; --quick: 10,000); every household is a device fleet
on the shipped Piedmont inputs. Timed: building the fleets, then one day of offers: each fleet's
daily offers at noon (heat pumps, boilers, freezers, batteries, PV, base loads: the day ahead,
from their predicted state) and the offers its EVs and machines make through the day when they
plug in or are loaded (the physics simulated up to each event; nothing is scheduled, so event
devices fall back to their own programme). Memory: the process's resident high-water mark.
Reference in the same run: the same number of offers made from the shipped JSON templates the
way a template scenario makes them (vary_offer), which is what a swarm did before device models.
``--foa-households H``: fleets of H households each (an FOA of ``households = H``, as
scenarios/million-devices.toml has them, built as its swarm builds them), instead of one fleet per
household; N devices rounded up to whole fleets. ``--digest``: also print a SHA-256 of every offer's JSON in order, so a change that should leave the
offers alone (a faster model, a leaner offer) can show that it did.
"""

from __future__ import annotations

import argparse
import hashlib
import random
import sys
import time
import tomllib
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from vmenergy.devices.inputs import Inputs  # noqa: E402
from vmenergy.devices.population import build_fleet, draw_devices, draw_households  # noqa: E402
from vmenergy.flexoffer import FlexOffer  # noqa: E402
from vmenergy.flexoffer.timeutil import parse_utc  # noqa: E402
from vmenergy.runtime.scenario.plan import vary_offer  # noqa: E402

from machine import describe as machine  # bench/machine.py (the script's folder is on sys.path)

START = parse_utc("2026-11-22T11:00:00Z", "start")  # noon in Rome
DAY = 86400


def _hwm() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024.0
    return 0.0


def households(n_devices: int) -> list[tuple[str, dict]]:
    city = tomllib.loads((ROOT / "scenarios" / "city-1k.toml").read_text())
    group = city["prosumers"][0]
    mix = group["devices"]
    tables = {k: v for k, v in group.items() if isinstance(v, dict) and k not in ("devices", "owner")}
    out, total, i = [], 0, 0
    while total < n_devices:
        name = f"h{i}"
        devices, owner = draw_devices(name, mix, tables, group.get("owner", {}), 1000)
        devices = devices[: n_devices - total]
        out.append((name, {"devices": devices, "owner": owner, "foa": {}}))
        total += len(devices)
        i += 1
    return out


def foas(n_devices: int, per_foa: int) -> list[tuple[str, dict]]:
    """FOAs of ``per_foa`` households each, drawn from city-1k's mix as a ``households`` table of
    a scenario is, until they hold ``n_devices``."""
    city = tomllib.loads((ROOT / "scenarios" / "city-1k.toml").read_text())
    group = city["prosumers"][0]
    tables = {k: v for k, v in group.items() if isinstance(v, dict) and k not in ("devices", "owner")}
    out: list[tuple[str, dict]] = []
    total = 0
    while total < n_devices:
        name = f"foa{len(out)}"
        table = {"name": name, "count": per_foa, "mix": group["devices"], "tables": tables,
                 "owner": group.get("owner", {})}
        total += sum(len(devices) for devices, _ in draw_households(table, 1000))
        out.append((name, {"households": table, "foa": {}}))
    return out


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--n", type=int, default=None)
    ap.add_argument("--digest", action="store_true", help="print a SHA-256 of the offers' JSON")
    ap.add_argument("--foa-households", type=int, default=0, help="fleets of H households each (default: one a household)")
    args = ap.parse_args(argv)
    n = args.n or (10_000 if args.quick else 100_000)
    print(f"machine: {machine()}")
    inputs = Inputs(900, weather=ROOT / "scenarios/inputs/piedmont-2026-11-weather.csv",
                    prices=ROOT / "scenarios/inputs/piedmont-2026-11-prices.csv", latitude=45.0, longitude=8.0,
                    altitude=250.0, timezone="Europe/Rome")
    homes = foas(n, args.foa_households) if args.foa_households else households(n)
    kinds = Counter(d["kind"] for _, c in homes for d in c["devices"]) if not args.foa_households else \
        Counter(d["kind"] for _, c in homes for devices, _ in draw_households(c["households"], 1000) for d in devices)
    print(f"{sum(kinds.values())} devices in {len(homes)} {'FOAs' if args.foa_households else 'households'}: "
          + ", ".join(f"{k} {v}" for k, v in kinds.most_common()))
    rss0 = _hwm()
    t0 = time.perf_counter()
    fleets = [build_fleet(c, inputs, jid=f"{name}@localhost", seed=1000, start=START, until=START + 3 * DAY)
              for name, c in homes]
    t1 = time.perf_counter()
    c1 = time.process_time()  # CPU time as well: wall times on a shared machine are noisy
    made: Counter = Counter()
    slices = 0
    digest = hashlib.sha256() if args.digest else None
    for f in fleets:  # a fleet wakes at each of its events and makes what is due, as an FOA does
        now = START
        while now < START + DAY:
            for _, fo in f.offers(now):
                made[fo.label] += 1
                slices += sum(p.n_slices for p in fo.profiles)
                if digest is not None:  # outside the timed work's own cost only by this
                    digest.update(fo.to_json().encode())
            due = f.next_due(now)
            if due is None or due <= now:
                break
            now = due
    t2 = time.perf_counter()
    c2 = time.process_time()
    offers = sum(made.values())
    print(f"build fleets: {t1 - t0:.2f} s; one day of offers: {t2 - t1:.2f} s for {offers} offers "
          f"({slices} slices), {1e6 * (t2 - t1) / n:.0f} us per device, {1e3 * (t2 - t1) / max(1, offers):.2f} ms "
          f"per offer; CPU {c2 - c1:.2f} s ({1e6 * (c2 - c1) / n:.0f} us per device)")
    if digest is not None:
        print(f"offers digest (SHA-256 of their JSON, in order): {digest.hexdigest()}")
    print("offers by kind: " + ", ".join(f"{k} {v}" for k, v in made.most_common()))
    print(f"resident high-water mark: {_hwm():.0f} MiB (before the fleets: {rss0:.0f} MiB)")
    # reference: the same number of offers from the JSON templates, as a template scenario makes them
    templates = [FlexOffer.from_json(p.read_text()) for p in sorted((ROOT / "scenarios/examples").glob("*.json"))
                 if "schedule" not in p.name]
    rng = random.Random(1)
    t3 = time.perf_counter()
    for i in range(offers):
        t = templates[i % len(templates)]
        vary_offer(t, shift=0, rng=rng, new_id=f"o{i}", issuer="h@localhost")
    t4 = time.perf_counter()
    print(f"reference, {offers} offers varied from {len(templates)} templates: {t4 - t3:.2f} s "
          f"({1e3 * (t4 - t3) / max(1, offers):.2f} ms per offer)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
