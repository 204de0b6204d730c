"""An agent whose disk fills up (a drill of issue 16): writing its store fails, so it holds the
changes back and sends nothing it has not persisted; once there is room again it writes them
and answers what its peers resend. Nothing is lost, and the agent never stops."""

from __future__ import annotations

import errno
import os
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from tests.hostile.test_squatting import HOUSE
from tests.protocol.test_engines import AGG as FMAN
from tests.protocol.test_engines import NOW, offer
from vmenergy.agents import AggregatorAgent
from vmenergy.protocol.aggregator import AggregatorConfig
from vmenergy.protocol.engine import Send
from vmenergy.protocol.messages import OfferMessage
from vmenergy.runtime.clock import VirtualClock
from vmenergy.store import read_ledger


@pytest.fixture
def small_disk(tmp_path):
    mnt = tmp_path / "disk"
    mnt.mkdir()
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)], capture_output=True, text=True)
    if res.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {res.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def fill(disk: Path) -> Path:
    ballast = disk / "ballast"
    fd = os.open(ballast, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError as exc:
        assert exc.errno == errno.ENOSPC
    finally:
        os.close(fd)
    return ballast


async def test_a_full_disk_holds_changes_and_sends_back_until_there_is_room(small_disk):
    store = small_disk / "fman.sqlite"
    agent = AggregatorAgent(FMAN, "pw", config=AggregatorConfig(enrolment=(HOUSE,)), clock=VirtualClock(NOW),
                            store_path=store)
    fo = replace(offer("ev-overnight", 0), issuer=HOUSE)
    insert = OfferMessage("insert", fo.id, fo)
    ballast = fill(small_disk)
    effects = await agent.handle(lambda now: agent.engine.receive(HOUSE, insert, now))
    assert not [e for e in effects if isinstance(e, Send)]  # not persisted: not acknowledged
    assert agent.engine.ledger.get("offers", fo.id) is not None  # the engine has it
    ballast.unlink()
    effects = await agent.handle(lambda now: agent.engine.receive(HOUSE, insert, now))  # the prosumer resends
    (ack,) = [e.msg for e in effects if isinstance(e, Send)]  # the step's own answer (the held one went out too)
    assert ack.accepted and ack.ref == fo.id
    ledger = read_ledger(store)
    assert ledger is not None and ledger.get("offers", fo.id) is not None
    agent.store.close()


async def test_messages_held_by_a_full_disk_go_out_as_soon_as_the_store_writes(small_disk):
    """Found by the disk drill: the held messages went out only on the peers' resends, 30 s or
    more of scenario time later, so a freed disk still moved the day's end. Now they are sent as
    soon as the store has written the changes they depend on."""
    store = small_disk / "fman.sqlite"
    agent = AggregatorAgent(FMAN, "pw", config=AggregatorConfig(enrolment=(HOUSE,)), clock=VirtualClock(NOW),
                            store_path=store)
    sent: list = []
    agent.send_protocol = lambda to, msg: sent.append(msg)  # type: ignore[method-assign]
    fo = replace(offer("ev-overnight", 0), issuer=HOUSE)
    ballast = fill(small_disk)
    await agent.handle(lambda now: agent.engine.receive(HOUSE, OfferMessage("insert", fo.id, fo), now))
    assert not sent and agent.store_failing
    assert not await agent.retry_store()  # still full: nothing goes out
    assert not sent
    ballast.unlink()
    assert await agent.retry_store()
    assert len(sent) == 1 and not agent.store_failing
    ledger = read_ledger(store)
    assert ledger is not None and ledger.get("offers", fo.id) is not None
    agent.store.close()
