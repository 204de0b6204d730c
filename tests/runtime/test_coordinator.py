"""The time coordinator's protocol, against processes scripted on its control channel.

Each fake process below speaks the control protocol (vmenergy/runtime/control.py) the way a
swarm process does, with the counts a test chooses, so the rules can be checked one by one:
rounds go on while anything was sent, each process is told how many messages to wait for, time
jumps to the earliest next due time, the run ends when the work is done or at ``until``, a
process that goes away stops time until it is back.
"""

from __future__ import annotations

import asyncio
from typing import Optional

import pytest

from vmenergy.runtime import control
from vmenergy.runtime.coordinator import Coordinator


class FakePart:
    """A scripted swarm process: answers each round with what ``script(t, k, expect)`` says."""

    def __init__(self, coord: Coordinator, name: str, script, token: Optional[str] = None) -> None:
        self.coord, self.name, self.script = coord, name, script
        self.token = coord.token if token is None else token
        self.rounds: list[tuple[int, int, int]] = []
        self.welcome: Optional[dict] = None
        self.task: Optional[asyncio.Task] = None
        self.writer: Optional[asyncio.StreamWriter] = None

    async def connect(self, next_due: Optional[int]) -> Optional[dict]:
        reader, writer = await asyncio.open_connection(self.coord.host, self.coord.port)
        self.writer = writer
        await control.send(writer, "hello", part=self.name, token=self.token, incarnation="x", agents=1)
        self.welcome = await control.receive(reader)
        if self.welcome is None:
            return None
        await control.send(writer, "ready", part=self.name, summary={"agents": 1}, next_due=next_due)
        self.task = asyncio.ensure_future(self._serve(reader, writer))
        return self.welcome

    async def _serve(self, reader, writer) -> None:
        while True:
            msg = await control.receive(reader)
            if msg is None or msg["op"] == "stop":
                return
            if msg["op"] == "round":
                t, k, expect = msg["t"], msg["k"], msg["expect"]
                self.rounds.append((t, k, expect))
                sent, next_due, again, summary = self.script(t, k, expect)
                await control.send(writer, "done", t=t, k=k, sent=sent, next_due=next_due, again=again,
                                   summary=summary)

    def drop(self) -> None:
        assert self.writer is not None
        self.writer.close()
        if self.task is not None:
            self.task.cancel()


async def started(coord: Coordinator) -> asyncio.Task:
    await coord.listen()
    return asyncio.ensure_future(coord.run())


def idle(next_due):
    return lambda t, k, expect: ({}, next_due(t) if callable(next_due) else next_due, False, {"agents": 1})


async def test_rounds_continue_while_messages_are_sent_and_each_process_is_told_what_to_expect():
    coord = Coordinator(["a", "b"], start=1000, until=1000)
    run = await started(coord)

    def a(t, k, expect):  # sends 2 messages to b in round 0, then 1 to b in round 1
        return ({"b": {0: 2, 1: 1}.get(k, 0)} if k < 2 else {}), None, False, {}

    def b(t, k, expect):  # answers each message it waited for in the round after
        return ({"a": expect} if expect else {}), None, False, {}

    pa, pb = FakePart(coord, "a", a), FakePart(coord, "b", b)
    await pa.connect(None)
    await pb.connect(None)
    assert await asyncio.wait_for(run, 10) == "until"
    # round 1: b waits for a's 2; round 2: a waits for b's 2 answers, b for a's 1; round 3: a for 1
    assert pb.rounds == [(1000, 0, 0), (1000, 1, 2), (1000, 2, 1), (1000, 3, 0)]
    assert pa.rounds == [(1000, 0, 0), (1000, 1, 0), (1000, 2, 2), (1000, 3, 1)]
    await coord.close()


async def test_time_jumps_to_the_earliest_next_due_time_and_ends_at_until():
    coord = Coordinator(["a", "b"], start=0, until=5000)
    run = await started(coord)
    pa = FakePart(coord, "a", idle(lambda t: t + 900))
    pb = FakePart(coord, "b", idle(lambda t: 2500 if t < 2500 else None))
    await pa.connect(900)
    await pb.connect(2500)
    assert await asyncio.wait_for(run, 10) == "until"
    assert [t for t, k, _ in pa.rounds] == [0, 900, 1800, 2500, 3400, 4300]
    assert coord.snapshot().time == 4300
    await coord.close()


async def test_an_engine_asking_again_gets_another_round_at_the_same_time():
    coord = Coordinator(["a"], start=0, until=0)
    run = await started(coord)
    pa = FakePart(coord, "a", lambda t, k, e: ({}, None, k < 2, {}))
    await pa.connect(None)
    assert await asyncio.wait_for(run, 10) == "until"
    assert pa.rounds == [(0, 0, 0), (0, 1, 0), (0, 2, 0)]
    await coord.close()


async def test_the_run_is_done_when_the_work_is_done():
    coord = Coordinator(["a"], start=0, until=10**6, finished=lambda s: s.get("settled", 0) >= 3)
    run = await started(coord)
    pa = FakePart(coord, "a", lambda t, k, e: ({}, t + 100, False, {"settled": t // 100}))
    await pa.connect(100)
    assert await asyncio.wait_for(run, 10) == "done"
    assert coord.snapshot().time == 300
    await coord.close()


async def test_a_process_with_a_wrong_token_or_an_unknown_part_is_refused():
    coord = Coordinator(["a"], start=0, until=0)
    await coord.listen()
    assert await FakePart(coord, "a", idle(None), token="guess").connect(None) is None
    assert await FakePart(coord, "z", idle(None)).connect(None) is None
    assert coord.snapshot().parts_up == 0
    await coord.close()


async def test_time_stands_still_while_a_process_is_down_and_goes_on_when_it_is_back():
    coord = Coordinator(["a", "b"], start=0, until=2700)
    held = asyncio.Event()
    coord.pause_when = lambda snap: snap.time == 900 and not held.is_set()
    run = await started(coord)
    pa = FakePart(coord, "a", idle(lambda t: t + 900))
    pb = FakePart(coord, "b", idle(lambda t: t + 900))
    await pa.connect(900)
    await pb.connect(900)
    while not coord.snapshot().paused:
        await asyncio.sleep(0.01)
    held.set()
    pb.drop()
    while coord.snapshot().parts_up != 1:
        await asyncio.sleep(0.01)
    coord.resume()
    await asyncio.sleep(0.2)
    assert coord.snapshot().time == 900 and not run.done()  # waiting for b
    pb2 = FakePart(coord, "b", idle(lambda t: t + 900))
    welcome = await pb2.connect(1800)
    assert welcome["time"] == 900  # the new process starts where time stands
    assert await asyncio.wait_for(run, 10) == "until"
    assert [t for t, k, _ in pb2.rounds] == [1800, 2700]
    await coord.close()


async def test_stop_request_ends_a_run_that_waits_for_processes():
    coord = Coordinator(["a"], start=0, until=100)
    run = await started(coord)
    coord.request_stop()
    assert await asyncio.wait_for(run, 5) == "stopped"
    await coord.close()


def test_only_virtual_or_accelerated_time_is_coordinated():
    with pytest.raises(ValueError, match="virtual or accelerated"):
        Coordinator(["a"], start=0, until=1, mode="real")
