"""CPU per stanza of an agent's client, without a server: the receive path from a parsed stanza
to the agent's message handler, slixmpp's way against the short way (vmenergy/agents/received.py),
for an ack and an offer; the answer to the server's XEP-0198 ack request and the taking of its
answer to the client's request, both ways; an idle inbox woken by a message, with and without
SPADE's receive timeout; building an outgoing protocol stanza (ack, offer) and writing it out.

The client is set up as an agent's (slixmpp's ClientXMPP with the plugins SPADE loads, XEP-0198
as vmenergy.agents.smacks enables it, received messages as agents build them); stanzas are fed
to it as its stream parser would (``_spawn_event`` with parsed XML) and what it writes goes to a
list. The garbage collector is off while timing (the agents' processes freeze their heap).

Usage: python bench/bench_stanza_path.py [--n 5000]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import sys
import time
import xml.etree.ElementTree as ET
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import slixmpp  # noqa: E402
from slixmpp.xmlstream.tostring import tostring  # noqa: E402

from vmenergy.agents import smacks  # noqa: E402
from vmenergy.agents.base import protocol_stanza  # noqa: E402
from vmenergy.agents.received import use_received_messages  # noqa: E402
from vmenergy.flexoffer import FlexOffer  # noqa: E402
from vmenergy.protocol.messages import Ack, OfferMessage  # noqa: E402
from vmenergy.runtime.xmpp_tuning import install_fast_escape  # noqa: E402
from vmenergy.wire.messages import encode, encode_element, summary  # noqa: E402

#: The plugins SPADE's XMPPClient loads besides XEP-0004 (their handlers are what a stanza is
#: matched against on slixmpp's way).
SPADE_PLUGINS = ("xep_0004", "xep_0030", "xep_0060", "xep_0199", "xep_0050", "xep_0280")


def agent_client(short: bool):
    c = slixmpp.ClientXMPP("agg@vme.localhost/r", "pw")
    for p in SPADE_PLUGINS:
        c.register_plugin(p)
    smacks.enable_stream_management(c)
    use_received_messages(c)
    if not short:
        del c._spawn_event  # slixmpp's own for every stanza
    c.plugin["xep_0198"].enabled_in = True
    sent: list = []
    c.send_raw = sent.append
    c.transport = object()  # as if connected (answers are written to `sent`)
    c.add_event_handler("message", lambda stanza: None)
    return c


def per_call_us(fn, items) -> float:
    t = time.process_time()
    for x in items:
        fn(x)
    return (time.process_time() - t) / len(items) * 1e6


def inbox_wake_us(n: int, with_timeout: bool) -> float:
    """CPU per message of an idle agent's inbox (vmenergy.agents.base.InboxBehaviour) waiting for
    its next message, being woken by it and handing it on, with SPADE's ``receive(timeout=30)``
    (as before) or a plain wait; the engine step is left out (a stub agent takes the step)."""
    from vmenergy.agents.base import InboxBehaviour, VmeMessage

    class Agent:
        def receiving(self, msg):
            return msg.payload

        async def handle_all(self, steps):
            return steps

    class OldInbox(InboxBehaviour):
        async def run(self) -> None:  # the inbox's wait as it was before round 3
            msg = await self.receive(timeout=0) or await self.receive(timeout=30.0)
            if msg is None:
                return
            await self.agent.handle_all([self.agent.receiving(msg)])

    inbox = OldInbox() if with_timeout else InboxBehaviour()
    inbox.agent = Agent()
    msg = VmeMessage(to="agg@b", sender="p@b", payload=Ack("flexoffer", "fo-1", "accepted", None, 0))

    async def go() -> float:
        inbox.queue = asyncio.Queue()
        t = time.process_time()
        for _ in range(n):
            waiting = asyncio.ensure_future(inbox.run())
            await asyncio.sleep(0)  # it waits
            inbox.queue.put_nowait(msg)
            await waiting
        return (time.process_time() - t) / n * 1e6

    import uvloop  # what agents' processes run on (SPADE switches to it)

    return uvloop.run(go())


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=5000)
    n = ap.parse_args(argv).n
    install_fast_escape()
    gc.collect()
    gc.disable()
    example = FlexOffer.from_json((ROOT / "scenarios" / "examples" / "ev-overnight.json").read_text())
    fo = replace(example, issuer="house-1@vme.localhost")
    messages = {"ack": Ack("flexoffer", fo.id, "accepted", None, 0), "offer": OfferMessage("insert", fo.id, fo)}
    out = agent_client(True)
    print("| stanza | slixmpp's way, us | short way, us |\n| --- | --- | --- |")
    for name, msg in messages.items():
        text = ET.tostring(protocol_stanza(out, "agg@vme.localhost", "house-1@vme.localhost", summary(msg), msg).xml)
        ways = [per_call_us(agent_client(short)._spawn_event, [ET.fromstring(text) for _ in range(n)])
                for short in (False, True)]
        print(f"| received {name} ({len(text)} bytes), parsed XML -> message handler | {ways[0]:.1f} | {ways[1]:.1f} |")
    ways = [per_call_us(agent_client(short)._spawn_event, [ET.fromstring('<r xmlns="urn:xmpp:sm:3"/>')
                                                            for _ in range(n)]) for short in (False, True)]
    print(f"| the server's ack request `<r/>`, answered | {ways[0]:.1f} | {ways[1]:.1f} |")

    def took_ack(short: bool):
        c = agent_client(short)
        c.plugin["xep_0198"].enabled_out = True
        return c

    async def in_a_loop(c, items) -> float:  # BurstAcks, told of each acked stanza, needs a running loop
        return per_call_us(c._spawn_event, items)

    ways = []
    for short in (False, True):
        c = took_ack(short)
        sm = c.plugin["xep_0198"]
        # each <a/> acknowledges one stanza held (as one request per stanza sent would)
        for i in range(n):
            sm.seq += 1
            sm.unacked_queue.append((sm.seq, None))
        ways.append(asyncio.run(in_a_loop(c, [ET.fromstring(f'<a xmlns="urn:xmpp:sm:3" h="{i + 1}"/>')
                                              for i in range(n)])))
    print(f"| the server's answer `<a/>` to the client's request, taken | {ways[0]:.1f} | {ways[1]:.1f} |")
    print(f"| an idle agent's inbox woken by one message (SPADE's receive with a timeout / no timeout) | "
          f"{inbox_wake_us(n, True):.1f} | {inbox_wake_us(n, False):.1f} |")
    print()
    for name, msg in messages.items():
        build = per_call_us(lambda _i: protocol_stanza(out, "agg@vme.localhost", "house-1@vme.localhost",
                                                       summary(msg), msg), range(n))
        st = protocol_stanza(out, "agg@vme.localhost", "house-1@vme.localhost", summary(msg), msg)
        write = per_call_us(lambda _i: tostring(st.xml, xmlns=out.default_ns, stream=out, top_level=True), range(n))
        by_object = per_call_us(lambda _i: encode(msg).xml, range(n))
        straight = per_call_us(lambda _i: encode_element(msg), range(n))
        print(f"outgoing {name}: build the stanza {build:.1f} us (its element through slixmpp's stanza object "
              f"{by_object:.1f} us, written straight {straight:.1f} us), write it out {write:.1f} us")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
