"""Store writes grouped per event-loop turn: a burst of messages, or steps started in the same
turn, cost one SQLite transaction; nothing is acknowledged before it is written, so a process
killed between the steps and their commit loses only input it never acknowledged, which the
senders resend and the restarted agent accepts once."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap
from dataclasses import replace
from pathlib import Path

from tests.protocol.test_engines import AGG as FMAN
from tests.protocol.test_engines import NOW, offer
from vmenergy.agents import AggregatorAgent
from vmenergy.protocol.aggregator import AggregatorConfig
from vmenergy.protocol.engine import Send
from vmenergy.protocol.messages import Ack, OfferMessage
from vmenergy.runtime.clock import VirtualClock
from vmenergy.store import read_ledger

ROOT = Path(__file__).resolve().parents[2]
HOUSE = "house@localhost"


def inserts(n: int, prefix: str = "fo") -> list[OfferMessage]:
    base = replace(offer("ev-overnight", 0), issuer=HOUSE)
    return [OfferMessage("insert", f"{prefix}-{i}", replace(base, id=f"{prefix}-{i}")) for i in range(n)]


def transactions(agent: AggregatorAgent) -> list[int]:
    """A counter of the SQLite transactions the agent's store begins from now on."""
    seen = [0]
    agent.store.db.set_trace_callback(lambda sql: seen.__setitem__(0, seen[0] + (sql.strip().upper() == "BEGIN")))
    return seen


def acks(effects) -> list[Ack]:
    return [e.msg for e in effects if isinstance(e, Send) and isinstance(e.msg, Ack)]


async def test_a_burst_of_messages_is_one_transaction_and_every_one_is_answered(tmp_path):
    agent = AggregatorAgent(FMAN, "pw", config=AggregatorConfig(), clock=VirtualClock(NOW), store_path=tmp_path / "a.sqlite")
    begun = transactions(agent)
    msgs = inserts(50)
    effects = await agent.handle_all([lambda now, m=m: agent.engine.receive(HOUSE, m, now) for m in msgs])
    assert [a.ref for a in acks(effects)] == [m.offer_id for m in msgs] and all(a.accepted for a in acks(effects))
    assert begun[0] == 1
    ledger = read_ledger(tmp_path / "a.sqlite")
    assert ledger is not None and all(ledger.get("offers", m.offer_id) is not None for m in msgs)
    agent.store.close()


async def test_steps_started_in_the_same_loop_turn_share_one_transaction(tmp_path):
    agent = AggregatorAgent(FMAN, "pw", config=AggregatorConfig(), clock=VirtualClock(NOW), store_path=tmp_path / "a.sqlite")
    begun = transactions(agent)
    results = await asyncio.gather(*(agent.handle(lambda now, m=m: agent.engine.receive(HOUSE, m, now))
                                     for m in inserts(20)))
    assert all(len(acks(r)) == 1 for r in results)
    assert begun[0] == 1
    # a step in a later turn is a transaction of its own
    await agent.handle(lambda now: agent.engine.receive(HOUSE, inserts(1, "late")[0], now))
    assert begun[0] == 2
    agent.store.close()


#: The child: an aggregator with a store takes "a-*" (awaited: written and acknowledged), then
#: "b-*" in one loop turn, and is killed after their steps ran and before their commit.
CHILD = textwrap.dedent("""
    import asyncio, json, os, signal, sys
    sys.path.insert(0, {root!r})
    from tests.runtime.test_grouped_writes import FMAN, HOUSE, NOW, inserts, acks
    from vmenergy.agents import AggregatorAgent
    from vmenergy.protocol.aggregator import AggregatorConfig
    from vmenergy.runtime.clock import VirtualClock
    from vmenergy.store import read_ledger

    async def main():
        agent = AggregatorAgent(FMAN, "pw", config=AggregatorConfig(), clock=VirtualClock(NOW), store_path={store!r})
        sent = acks(await agent.handle_all([lambda now, m=m: agent.engine.receive(HOUSE, m, now) for m in inserts(5, "a")]))
        print(json.dumps([a.ref for a in sent]), flush=True)
        later = [asyncio.ensure_future(agent.handle(lambda now, m=m: agent.engine.receive(HOUSE, m, now)))
                 for m in inserts(5, "b")]
        while agent.engine.ledger.get("offers", "b-4") is None:
            await asyncio.sleep(0)
        on_disk = read_ledger({store!r})
        print(json.dumps({{"b_in_engine": True, "b_on_disk": on_disk.get("offers", "b-0") is not None,
                          "answered": [t.done() for t in later]}}), flush=True)
        os.kill(os.getpid(), signal.SIGKILL)

    asyncio.run(main())
""")


def test_a_crash_between_steps_and_their_commit_loses_only_unacknowledged_input_which_is_resent(tmp_path):
    store = str(tmp_path / "fman.sqlite")
    proc = subprocess.run([sys.executable, "-c", CHILD.format(root=str(ROOT), store=store)], capture_output=True,
                          text=True, timeout=120, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    first, second = (json.loads(line) for line in proc.stdout.splitlines()[:2])
    assert first == [f"a-{i}" for i in range(5)]  # acknowledged, so written
    assert second == {"b_in_engine": True, "b_on_disk": False, "answered": [False] * 5}  # killed before the commit
    ledger = read_ledger(store)
    assert ledger is not None
    assert sorted(k for k in ledger.table("offers")) == [f"a-{i}" for i in range(5)]

    async def restart() -> None:
        agent = AggregatorAgent(FMAN, "pw", config=AggregatorConfig(), clock=VirtualClock(NOW), store_path=store)
        try:
            # the prosumer resends everything it holds unanswered, and (after a lost ack) may
            # resend what was answered: the b's are taken now, the a's are repeats
            again = await agent.handle_all([lambda now, m=m: agent.engine.receive(HOUSE, m, now)
                                            for m in inserts(5, "a") + inserts(5, "b")])
            answered = {a.ref: a for a in acks(again)}
            assert all(answered[f"{p}-{i}"].accepted for p in "ab" for i in range(5))
            repeats = [n.fields["key"] for n in again if getattr(n, "event", None) == "duplicate"]
            assert len(repeats) == 5 and all(f"'a-{i}'" in k for i, k in enumerate(repeats))
            assert agent.engine.counts() == {"accepted": 10}
        finally:
            await agent.settled()
            agent.store.close()

    asyncio.run(restart())
    ledger = read_ledger(store)
    assert ledger is not None and len(ledger.table("offers")) == 10
