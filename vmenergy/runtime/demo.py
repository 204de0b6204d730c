"""``vmenergy demo``: the richest real thing the project can run end to end.

Until the agents land this validates the example flex-offers, summarises each, checks the example
schedules against their offers with the vectorised checker, and writes a Markdown report.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TextIO

from vmenergy.cli import describe, load_file, one_line
from vmenergy.flexoffer import FlexOffer, FlexOfferError, FlexOfferSet, Schedule, ScheduleSet
from vmenergy.flexoffer.offerset import check

EXAMPLES = Path(__file__).resolve().parents[2] / "scenarios" / "examples"


def run_demo(out_dir: Path, out: TextIO, examples: Path = EXAMPLES) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    offers: list[FlexOffer] = []
    schedules: list[Schedule] = []
    lines = ["# VME demo report", "", f"Generated {time.strftime('%Y-%m-%d %H:%M:%S %Z')} from `{examples}`.", ""]
    problems = 0
    for path in sorted(examples.glob("*")):
        if path.suffix not in (".json", ".xml"):
            continue
        try:
            items = load_file(path)
        except FlexOfferError as exc:
            problems += 1
            lines.append(f"- INVALID `{path.name}`: {exc}")
            print(f"INVALID {path.name}: {exc}", file=out)
            continue
        for item in items:
            print(f"OK {path.name}: {one_line(item)}", file=out)
            if isinstance(item, FlexOffer):
                if item.id not in {o.id for o in offers}:
                    offers.append(item)
            else:
                schedules.append(item)
    lines += ["## Offers", ""]
    for fo in offers:
        lines += ["```", describe(fo), "```", ""]
    fs = FlexOfferSet.from_offers(offers)
    ss = ScheduleSet.from_schedules(schedules, fs)
    result = check(fs, ss)
    lines += ["## Schedules", ""]
    for k, s in enumerate(schedules):
        verdict = "feasible" if result.feasible[k] else "INFEASIBLE: " + ", ".join(result.violated(k))
        lines.append(f"- {one_line(s)}: {verdict}")
    totals = f"{len(offers)} offers ({fs.n_slices} slices), {len(schedules)} schedules, {problems} invalid files"
    lines += ["", f"Summary: {totals}.", ""]
    report = out_dir / "report.md"
    report.write_text("\n".join(lines))
    print(f"\n{totals}", file=out)
    print(f"report: {report.resolve()}", file=out)
    return report
