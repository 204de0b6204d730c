"""The aggregator's round without a server: disaggregating the round's aggregates and building the
members' assignments, columnar (``split_many``) against one aggregate at a time (``split``, the
path every aggregate took before), in the same run on the same offers.

An ``AggregatorEngine`` (upstream "plan") takes N offers from N/10 prosumers (copies of the
example offers with unique ids), then one tick aggregates, plans and assigns them. Timed: the
assignment step (``_assign_many``: disaggregation, one schedule and one message per member, the
ledger writes), and the whole tick. Both variants must send the same assignments.

Usage: python bench/bench_aggregator_round.py [--offers 20000] [--quick]
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from machine import describe as machine  # noqa: E402  (bench/machine.py)

from vmenergy.aggregation import disaggregate  # noqa: E402
from vmenergy.flexoffer import FlexOffer  # noqa: E402
from vmenergy.flexoffer.timeutil import parse_utc  # noqa: E402
from vmenergy.protocol.aggregator import AggregatorConfig, AggregatorEngine  # noqa: E402
from vmenergy.protocol.engine import Send  # noqa: E402
from vmenergy.protocol.messages import AssignmentMessage, OfferMessage  # noqa: E402
from vmenergy.protocol.strategies import AggregatorStrategies, Disaggregation  # noqa: E402

EXAMPLES = HERE.parent / "scenarios" / "examples"
NOW = parse_utc("2026-11-22T18:30:00Z", "now")
AGG = "agg@localhost"


class OneByOne(Disaggregation):
    """The per-aggregate path (no ``split_many``)."""

    def split(self, aggregate, schedule):
        return disaggregate(aggregate, schedule)


def run(n: int, columnar: bool) -> dict:
    config = AggregatorConfig()
    strat = AggregatorStrategies.from_config(config, AGG)
    if not columnar:
        strat = replace(strat, disaggregation=OneByOne())
    agg = AggregatorEngine(AGG, config, strategies=strat)
    kinds = [FlexOffer.from_json((EXAMPLES / f"{k}.json").read_text()) for k in ("ev-overnight", "dishwasher-xor")]
    for i in range(n):
        sender = f"p{i // 10}@localhost"
        fo = replace(kinds[i % 2], id=f"o-{i}", issuer=sender)
        agg.receive(sender, OfferMessage("insert", fo.id, fo), NOW)
    timed = {"assign_s": 0.0}
    inner = agg._assign_many

    def assign_many(plan, now):
        t0 = time.perf_counter()
        out = inner(plan, now)
        timed["assign_s"] += time.perf_counter() - t0
        return out

    agg._assign_many = assign_many  # type: ignore[method-assign]
    t0 = time.perf_counter()
    effects = agg.tick(NOW)
    tick_s = time.perf_counter() - t0
    sent = sorted((e.msg.schedule.offer_id, e.msg.schedule.start, e.msg.schedule.energy)
                  for e in effects if isinstance(e, Send) and isinstance(e.msg, AssignmentMessage))
    return {"tick_s": tick_s, "assign_s": timed["assign_s"], "members": len(sent), "sent": sent,
            "aggregates": len(agg.ledger.table("aggregates"))}


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--offers", type=int, default=20000)
    ap.add_argument("--quick", action="store_true", help="2,000 offers")
    args = ap.parse_args(argv)
    n = 2000 if args.quick else args.offers
    print(f"# {time.strftime('%Y-%m-%d')} on {machine()}; {n:,} offers")
    ref = run(n, columnar=False)
    col = run(n, columnar=True)
    same = ref["sent"] == col["sent"]
    for name, r in (("one aggregate at a time (split)", ref), ("columnar (split_many)", col)):
        print(f"{name}: {r['members']:,} assignments from {r['aggregates']:,} aggregates; assignment step "
              f"{r['assign_s']:.3f} s ({1e6 * r['assign_s'] / max(1, r['members']):.1f} us/member), whole tick "
              f"{r['tick_s']:.3f} s")
    print(f"assignment step speed-up {ref['assign_s'] / col['assign_s']:.2f}x; same assignments: {same}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
