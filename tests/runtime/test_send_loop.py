"""slixmpp's send loop held each client's last stanza sent (its XML tree and text) until the
client sent another; a process of many agents runs one that keeps nothing
(runtime/xmpp_tuning.py ``install_lean_send_loop``; bench/RESULTS.md "Prosumer memory, round 5")."""

from __future__ import annotations

import asyncio
import gc
import weakref

import pytest
from slixmpp import ClientXMPP
from slixmpp.stanza import Message

from vmenergy.runtime import xmpp_tuning
from vmenergy.runtime.xmpp_tuning import install_lean_send_loop, uninstall_lean_send_loop


@pytest.fixture
def lean():
    was = uninstall_lean_send_loop()  # a test before may have tuned this process
    assert install_lean_send_loop() is True
    yield
    uninstall_lean_send_loop()
    if was:
        install_lean_send_loop()


@pytest.fixture
def own():
    was = uninstall_lean_send_loop()
    yield
    if was:
        install_lean_send_loop()


class Wire:
    """A client whose writes are kept instead of going to a socket, with its send loop running."""

    def __init__(self) -> None:
        self.client = ClientXMPP("p@localhost", "pw")
        self.written: list[str] = []
        self.wrote = asyncio.Event()
        self.client.send_raw = self._write  # type: ignore[method-assign]
        self.task = asyncio.ensure_future(self.client.run_filters())

    def _write(self, data) -> None:
        self.written.append(data if isinstance(data, str) else data.decode())
        self.wrote.set()

    async def send(self, item, use_filters: bool = True) -> None:
        """Queue ``item`` as ``client.send`` does in a session, and wait until the loop is idle."""
        self.client.waiting_queue.put_nowait((item, use_filters))
        await self.client.waiting_queue.join()

    def message(self, body: str) -> Message:
        msg = self.client.make_message(mto="agg@localhost", mbody=body)
        msg["id"] = body
        return msg

    async def close(self) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


async def _last_stanza_alive(wire: Wire) -> bool:
    msg = wire.message("offer-1")
    tree = weakref.ref(msg.xml)
    await wire.send(msg)
    del msg
    gc.collect()
    return tree() is not None


async def test_the_lean_loop_keeps_no_stanza_it_has_written(lean):
    wire = Wire()
    try:
        assert await _last_stanza_alive(wire) is False
        assert len(wire.written) == 1 and "offer-1" in wire.written[0]
    finally:
        await wire.close()


async def test_slixmpps_own_loop_keeps_the_last_stanza_until_the_next(own):
    # the cause: without the install the stanza's XML tree outlives its sending
    wire = Wire()
    try:
        assert await _last_stanza_alive(wire) is True
    finally:
        await wire.close()


async def _traffic(wire: Wire) -> list[str]:
    """Stanzas, raw text, and stanzas through every kind of filter: dropped, changed, async."""
    client = wire.client

    def drop_marked(stanza):
        return None if stanza["id"] == "drop-me" else stanza

    def tag_sync(stanza):
        stanza["body"] = stanza["body"] + "+sync"
        return stanza

    async def tag_async(stanza):
        await asyncio.sleep(0)
        stanza["body"] = stanza["body"] + "+async"
        return stanza

    client.add_filter("out", drop_marked)
    client.add_filter("out", tag_async)
    client.add_filter("out_sync", tag_sync)
    await wire.send(wire.message("a"))
    await wire.send("<r xmlns='urn:xmpp:sm:3'/>")
    await wire.send(wire.message("drop-me"))
    await wire.send(wire.message("unfiltered"), use_filters=False)
    await wire.send(b"<a xmlns='urn:xmpp:sm:3' h='1'/>")
    return list(wire.written)


async def test_the_lean_loop_writes_what_slixmpps_writes_in_the_same_order():
    was = uninstall_lean_send_loop()
    try:
        wire = Wire()
        theirs = await _traffic(wire)
        await wire.close()
        install_lean_send_loop()
        wire = Wire()
        ours = await _traffic(wire)
        await wire.close()
    finally:
        uninstall_lean_send_loop()
        if was:
            install_lean_send_loop()
    assert ours == theirs
    assert len(ours) == 4 and "a+async+sync" in ours[0] and "drop-me" not in "".join(ours)
    assert "unfiltered</body>" in ours[2]


async def test_a_cancelled_lean_loop_ends(lean):
    wire = Wire()
    await wire.send(wire.message("x"))
    wire.task.cancel()
    await asyncio.gather(wire.task, return_exceptions=True)
    assert wire.task.done()


def test_the_install_is_idempotent_undone_by_the_uninstall_and_only_for_known_releases(own, monkeypatch):
    assert install_lean_send_loop() is True and install_lean_send_loop() is False
    assert uninstall_lean_send_loop() is True and uninstall_lean_send_loop() is False
    monkeypatch.setattr(xmpp_tuning, "SEND_LOOP_RELEASES", frozenset({"0.0.0"}))
    assert install_lean_send_loop() is False  # another slixmpp keeps its own loop
    assert uninstall_lean_send_loop() is False


def test_a_process_tuned_for_many_agents_sends_through_the_lean_loop():
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", "from vmenergy.runtime import xmpp_tuning as t; t.tune_process(); "
                          "from slixmpp.xmlstream.xmlstream import XMLStream; "
                          "print(XMLStream.run_filters.__doc__ == t._lean_run_filters.__doc__)"],
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True"
