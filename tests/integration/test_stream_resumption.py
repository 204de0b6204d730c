"""A stream cut while an agent is behind and resumed (XEP-0198): everything sent to it arrives and
is handled once, and its answers reach their sender without a resend.

At 1,000 prosumers on ejabberd an aggregator reading a subscription burst answered the server's
ack requests late; ejabberd cut its stream (``ack_timeout``), the stream was resumed, and the run
stood still (bench/RESULTS.md, "A city on a cluster"). The loss was in the client: answers the
aggregator made from the burst it had just read were queued in slixmpp when the connection
dropped, and slixmpp's send loop dropped them (vmenergy/agents/unsent.py; docs/scaling.md,
"Stream resumption"). Here an aggregator stops reading its socket (as a busy one does), its
prosumer sends offers, the link is cut (by ejabberd's ack time-out, or by a proxy on both
servers), more offers are sent while it is away, then it reads on, reconnects and resumes.

The prosumer's resend timer is turned off: the reliable layer would otherwise hide a lost
acknowledgement by resending the offer (a duplicate at the aggregator, which these tests count).
"""

from __future__ import annotations

import termios
from pathlib import Path

import pytest

from tests.integration.test_presence import eventually, future_offer
from vmenergy.agents import AggregatorAgent, ProsumerAgent, ServerAddress
from vmenergy.protocol.aggregator import AggregatorConfig
from vmenergy.runtime.clock import RealClock
from vmenergy.runtime.drill.proxy import LossyProxy

pytestmark = pytest.mark.integration

#: Offers sent while the aggregator does not read, and again while its stream is cut.
BATCH = 30
#: Offers sent while the stream is away in the test of a stream far behind (Prosody's default
#: limit on what a session keeps for resumption is 500 stanzas).
FAR_BEHIND = 520
#: How an offer starts on the wire (docs/protocol.md).
OFFER_ON_WIRE = b"<flexoffer "


def _pair(info, tmp_path: Path, agg_port: int, name: str = "sm"):
    agg_jid, home_jid = info.jid(f"{name}-agg"), info.jid(f"{name}-home")
    agg = AggregatorAgent(agg_jid, "pw-agg", config=AggregatorConfig(cycle=10_000, lead=60),
                          server=ServerAddress(info.host, agg_port, info.ca_file), clock=RealClock(), tick=0.2,
                          store_path=tmp_path / "agg.sqlite")
    home = ProsumerAgent(home_jid, "pw-home", aggregator=agg_jid, offers=[(0, future_offer("sm-0", home_jid))],
                         server=ServerAddress(info.host, info.port, info.ca_file), tick=0.2,
                         store_path=tmp_path / "home.sqlite")
    # no resends by timer: only the stream may deliver (see the module docstring)
    home.engine.resend_after = home.engine.max_backoff = 3600
    return agg, home


class _Late:
    """The agent's client reads late, as one whose event loop is busy: what its connection
    delivers (data, the end of the stream, the connection's loss) is held, then handed to it in
    one go, in order (:meth:`catch_up`). Meanwhile it answers no ack request."""

    CALLS = ("data_received", "eof_received", "connection_lost")

    def __init__(self, client) -> None:
        self.client = client
        self.calls: list[tuple[str, tuple]] = []
        for name in self.CALLS:  # the transport looks these up on the protocol at each call
            setattr(client, name, lambda *args, name=name: self.calls.append((name, args)))

    def held(self, needle: bytes) -> int:
        return b"".join(args[0] for name, args in self.calls if name == "data_received").count(needle)

    def lost(self) -> bool:
        return any(name == "connection_lost" for name, _ in self.calls)

    def catch_up(self, answers_first_from=None) -> None:
        """Hand over what was held. ``answers_first_from``: an agent; the end of the connection
        is handed over only once that agent has taken in the first offers and queued its answers
        in slixmpp (its first engine step after the data; they are not written yet)."""
        for name in self.CALLS:
            delattr(self.client, name)
        calls, self.calls = self.calls, []
        data = [c for c in calls if c[0] == "data_received"] if answers_first_from is not None else calls
        for name, args in data:
            getattr(self.client, name)(*args)
        if answers_first_from is None:
            return
        rest = [c for c in calls if c not in data]
        agent = answers_first_from

        def after_answers() -> None:
            if agent.engine.counts().get("accepted", 0) > 1:  # the offers' step, answers queued
                agent.step_watchers.remove(after_answers)
                for name, args in rest:
                    getattr(self.client, name)(*args)

        agent.step_watchers.append(after_answers)


async def _offer(home, first: int, count: int) -> None:
    jid = str(home.jid)
    for i in range(first, first + count):
        await home.handle(lambda now, i=i: home.engine.add_offer(future_offer(f"sm-{i}", jid), now, now))


class Sessions:
    """An agent's sessions as slixmpp reports them: started afresh, or resumed; and the streams
    the server closed with an error."""

    def __init__(self, agent) -> None:
        self.started = self.resumed = self.stream_errors = 0
        agent.client.add_event_handler("session_start", lambda _: self._count("started"))
        agent.client.add_event_handler("session_resumed", lambda _: self._count("resumed"))
        agent.client.add_event_handler("stream_error", lambda _: self._count("stream_errors"))

    def _count(self, name: str) -> None:
        setattr(self, name, getattr(self, name) + 1)


async def _cut_and_resumed(agg, home, cut, answers_first: bool = False, away: int = BATCH) -> None:
    """Offers while the aggregator reads late, ``cut()`` its link, ``away`` offers while it is
    away, then it catches up: every offer is held once and every acknowledgement arrives, once.
    ``answers_first``: the aggregator learns of the cut just after it queued its answers to the
    offers it read (otherwise before it makes them)."""
    await eventually(lambda: agg.engine.counts().get("accepted") == 1, what="the first offer accepted")
    sessions = Sessions(agg)
    late = _Late(agg.client)
    await _offer(home, 1, BATCH)
    await eventually(lambda: late.held(OFFER_ON_WIRE) == BATCH, what="the offers at the aggregator, unread")
    await cut(late)
    await _offer(home, 1 + BATCH, away)  # to a stream the server keeps for resumption
    late.catch_up(agg if answers_first else None)  # the offers, then the end of the connection
    total = 1 + BATCH + away
    await eventually(lambda: agg.engine.counts().get("accepted") == total, timeout=60, what="every offer held")
    await eventually(lambda: home.engine.counts().get("accepted") == total, timeout=30,
                     what="every acknowledgement back at the prosumer")
    assert sessions.resumed >= 1 and sessions.started == 0, "the stream was resumed, not started afresh"
    assert [n for n in agg.events if n.event == "duplicate"] == [], "an offer reached the aggregator twice"
    assert [n for n in home.events if n.event == "resend"] == [], "the prosumer had to resend"


async def test_a_stream_more_than_prosodys_default_500_stanzas_behind_is_resumed(prosody_server, tmp_path):
    # mod_smacks keeps smacks_max_queue_size unacknowledged stanzas per session (default 500,
    # the oldest overwritten beyond) and refuses to resume a stream that lost some: VME's
    # private config raises it (xmpp-server/prosody/prosody.cfg.lua.in)
    proxy = LossyProxy((prosody_server.host, prosody_server.port), seed=2)
    agg, home = _pair(prosody_server, tmp_path, proxy.start(), "sm-big")
    try:
        await agg.start(auto_register=True)
        await home.start(auto_register=True)

        async def network_cuts(late: _Late) -> None:
            assert proxy.cut() == 2
            await eventually(late.lost, what="the aggregator's connection lost")

        await _cut_and_resumed(agg, home, network_cuts, away=FAR_BEHIND)
    finally:
        await home.stop()
        await agg.stop()
        proxy.stop()


async def test_answers_made_as_ejabberd_cut_a_late_acking_stream_arrive_once_after_resumption(
        fresh_xmpp_server, tmp_path):
    # ejabberd cuts a stream whose client leaves an ack request unanswered for ack_timeout
    # (60 s by default; VME's private config says infinity; here 3 s, long enough for the
    # offers to reach the socket of the client that has stopped reading)
    info = fresh_xmpp_server("ejabberd", registration=True, options={"ack_timeout": "3"})
    agg, home = _pair(info, tmp_path, info.port)
    await agg.start(auto_register=True)
    await home.start(auto_register=True)

    async def server_cuts(late: _Late) -> None:
        await eventually(late.lost, timeout=30, what="ejabberd closing the stream of the client that does not answer")

    try:
        await _cut_and_resumed(agg, home, server_cuts)
    finally:
        await home.stop()
        await agg.stop()


@pytest.mark.parametrize("answers_first", [False, True], ids=["cut-before-answers", "cut-after-answers-queued"])
async def test_answers_made_as_the_network_cut_a_stream_arrive_once_after_resumption(real_xmpp_server, tmp_path,
                                                                                      answers_first):
    info = real_xmpp_server
    proxy = LossyProxy((info.host, info.port), seed=1)  # the aggregator's link only
    agg, home = _pair(info, tmp_path, proxy.start())
    try:
        await agg.start(auto_register=True)
        await home.start(auto_register=True)

        async def network_cuts(late: _Late) -> None:
            assert proxy.cut() == 2  # both sides of the aggregator's one connection
            await eventually(late.lost, what="the aggregator's connection lost")

        await _cut_and_resumed(agg, home, network_cuts, answers_first)
    finally:
        await home.stop()
        await agg.stop()
        proxy.stop()
