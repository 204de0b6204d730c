"""The REST interface (the GOFLEX flex-offer resources) of an aggregator or market agent.

Bodies are the wire contract's JSON (docs/protocol.md): an offer is the offer's JSON, checked by
the same code as over XMPP (``FlexOffer.from_json``, then ``OfferMessage``), so a mistake gets
the same field path and reason. An accepted body becomes the same protocol message an XMPP peer
sends and goes through the engine as an engine step (``agent.handle``) under the token holder's
JID: the same authorisation (enrolment), the same checks, the same ledger; the engine's ack is
the HTTP answer (201 accepted, 422 rejected with its reason). Messages the engine sends that peer
later (assignments, rejections, bills) are read from ``GET /flexoffer/stream`` (:mod:`.channel`).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, Optional

from aiohttp import web

from vmenergy.flexoffer import FlexOffer, FlexOfferError, State
from vmenergy.flexoffer import jsontext as jt
from vmenergy.flexoffer.jsontext import MAX_DOCUMENT_BYTES
from vmenergy.flexoffer.timeutil import parse_utc
from vmenergy.protocol.engine import Note, Send
from vmenergy.protocol.messages import Ack, AssignmentMessage, BillMessage, Measurement, Message, OfferMessage, \
    OfferRejection
from vmenergy.protocol.steering import SteeringError
from vmenergy.protocol.operators import check_bare_jid

from . import views
from .channel import ack_for
from .openapi import openapi_document
from .http import USER, error_response

__all__ = ["add_routes", "parse_measurement", "STREAM_KEEPALIVE"]

#: A comment line on an idle event stream this often (s), so proxies keep it open and a closed
#: client is noticed.
STREAM_KEEPALIVE = 15.0
#: Bodies bigger than this are decoded in a worker thread (as the XMPP path does).
DECODE_INLINE_BYTES = 16 * 1024
STATES = tuple(s.value for s in State)
SERIES = {"measurement": "measured", "baseline": "baseline", "schedule": "scheduled"}


def add_routes(app: web.Application, console: Any) -> None:
    api = Api(console)
    r = app.router
    r.add_get("/openapi.json", api.openapi)
    r.add_get("/kpi", api.kpi)
    r.add_get("/settings", api.get_settings)
    r.add_post("/settings", api.post_settings)
    r.add_get("/events", api.events)
    if console.agent.role == "aggregator":
        r.add_get("/flexoffer", api.list_offers)
        r.add_post("/flexoffer", api.create_offer)
        r.add_get("/flexoffer/stream", api.stream)
        r.add_post("/flexoffer/measurement", api.post_measurement)
        r.add_get("/flexoffer/{id}", api.get_offer)
        r.add_put("/flexoffer/{id}", api.update_offer)
        r.add_delete("/flexoffer/{id}", api.delete_offer)
        r.add_get("/contract", api.contract)
        r.add_put("/contract", api.put_contract)
        r.add_get("/bill", api.bills)
        r.add_get("/prosumers", api.prosumers)
        r.add_get("/trading", api.trading)
        r.add_get("/chart", api.chart)
        r.add_get("/timeseries/{kind}/{start}/{end}", api.timeseries)
    if console.agent.role == "market":
        r.add_get("/market", api.market)
        r.add_get("/market/clearing", api.clearing)
    if console.agent.role == "prosumer":
        r.add_get("/prosumer", api.prosumer)


async def _body(request: web.Request) -> bytes:
    if request.content_length is not None and request.content_length > MAX_DOCUMENT_BYTES:
        raise _Bad(413, "(document)", f"larger than {MAX_DOCUMENT_BYTES} bytes")
    data = await request.content.read(MAX_DOCUMENT_BYTES + 1)
    if len(data) > MAX_DOCUMENT_BYTES:
        raise _Bad(413, "(document)", f"larger than {MAX_DOCUMENT_BYTES} bytes")
    return data


class _Bad(Exception):
    def __init__(self, status: int, path: str, reason: str) -> None:
        super().__init__(reason)
        self.status, self.path, self.reason = status, path, reason


def parse_measurement(data: bytes | str) -> Measurement:
    """A measurement from the REST interface's JSON: ``{"id", "offer_id", "start" (UTC),
    "energy" (kWh per interval), "resolution" (s, default 900)}``, the XML attributes' names."""

    def run() -> Measurement:
        d = jt.obj(jt.loads(data), "", ("id", "offer_id", "start", "energy", "resolution"),
                   ("id", "offer_id", "start", "energy"))
        res = jt.resolution_field(d)
        start = jt.time_field(d, "start", "", res)
        energy = jt.array(d["energy"], "energy")
        return Measurement(d["id"], d["offer_id"], start, tuple(energy), res)  # type: ignore[arg-type]

    return jt.guard(run)


def _iso_param(request: web.Request, name: str) -> Optional[int]:
    v = request.query.get(name)
    if v is None:
        return None
    try:
        return parse_utc(v, name)
    except FlexOfferError as exc:
        raise _Bad(400, exc.path, exc.reason) from None


class Api:
    """The handlers; each returns JSON (errors in :func:`~.server.error_response`'s shape)."""

    def __init__(self, console: Any) -> None:
        self.console = console
        self.agent = console.agent

    # -- plumbing ----------------------------------------------------------------------------------
    async def _read(self, view, *, offload: bool = False) -> Any:
        return await self.agent.read(view, offload=offload)

    async def _send(self, user: str, msg: Message) -> Optional[Ack]:
        """``msg`` from ``user`` through the engine, as an engine step: the engine's answer."""
        effects = await self.agent.handle(lambda now: self.agent.engine.receive(user, msg, now))
        return next((e.msg for e in effects if isinstance(e, Send) and isinstance(e.msg, Ack)), None)

    @staticmethod
    def _answer(ack: Optional[Ack], ok_status: int, **extra: Any) -> web.Response:
        if ack is None:
            return error_response(500, "the engine gave no answer (the agent's log says why)")
        if not ack.accepted:
            return error_response(422, ack.reason or "rejected", None, status="rejected", ref=ack.ref)
        return web.json_response({"status": "accepted", "ref": ack.ref, "version": ack.version, **extra},
                                 status=ok_status)

    async def _decode(self, body: bytes, parse) -> Any:
        try:
            if len(body) > DECODE_INLINE_BYTES:  # a big polytope's check may take the solver budget
                return await asyncio.to_thread(parse, body)
            return parse(body)
        except FlexOfferError as exc:
            raise _Bad(400, exc.path, exc.reason) from None

    @staticmethod
    def _bad(exc: _Bad) -> web.Response:
        return error_response(exc.status, exc.reason, exc.path)

    # -- documents -----------------------------------------------------------------------------
    async def openapi(self, request: web.Request) -> web.Response:
        return web.json_response(openapi_document(self.agent.role, str(self.agent.jid)))

    # -- flex-offers ---------------------------------------------------------------------------
    async def list_offers(self, request: web.Request) -> web.Response:
        q = request.query
        try:
            prosumer = q.get("prosumer") or None
            if prosumer is not None:
                prosumer = check_bare_jid(prosumer, "prosumer")
            state = q.get("state")
            if state is not None and state not in STATES:
                raise _Bad(400, "state", f"one of {', '.join(STATES)} (got {state!r})")
            flt = views.OfferFilter(prosumer, state, _iso_param(request, "from"), _iso_param(request, "to"))
        except FlexOfferError as exc:
            return error_response(400, exc.reason, exc.path)
        except _Bad as exc:
            return self._bad(exc)
        return web.json_response(await self._read(lambda now: views.offer_rows(self.agent, flt)))

    async def create_offer(self, request: web.Request) -> web.Response:
        return await self._offer(request, "insert", None)

    async def update_offer(self, request: web.Request) -> web.Response:
        return await self._offer(request, "update", request.match_info["id"])

    async def _offer(self, request: web.Request, op: str, offer_id: Optional[str]) -> web.Response:
        user = request[USER]
        try:
            fo: FlexOffer = await self._decode(await _body(request), FlexOffer.from_json)
            if offer_id is not None and fo.id != offer_id:
                raise _Bad(400, "id", f"the offer's id {fo.id!r} differs from the URL's {offer_id!r}")
            msg = OfferMessage(op, fo.id, fo)
        except _Bad as exc:
            return self._bad(exc)
        except FlexOfferError as exc:
            return error_response(400, exc.reason, exc.path)
        return self._answer(await self._send(user, msg), 201 if op == "insert" else 200, id=fo.id)

    async def delete_offer(self, request: web.Request) -> web.Response:
        user = request[USER]
        offer_id = request.match_info["id"]
        rec = await self._read(lambda now: views.find_offer(self.agent, offer_id, user))
        try:
            msg = OfferMessage("delete", offer_id, version=rec.offer.version if rec is not None else 0)
        except FlexOfferError as exc:
            return error_response(400, exc.reason, exc.path)
        return self._answer(await self._send(user, msg), 200, id=offer_id)

    async def get_offer(self, request: web.Request) -> web.Response:
        offer_id = request.match_info["id"]
        rec = await self._read(lambda now: views.find_offer(self.agent, offer_id))
        if rec is None:
            return error_response(404, f"no offer {offer_id}", "id")
        return web.json_response(views.offer_detail(rec))

    async def post_measurement(self, request: web.Request) -> web.Response:
        try:
            m = await self._decode(await _body(request), parse_measurement)
        except _Bad as exc:
            return self._bad(exc)
        return self._answer(await self._send(request[USER], m), 201, id=m.measurement_id)

    async def stream(self, request: web.Request) -> web.StreamResponse:
        """Server-sent events: every protocol message the engine sends the token holder
        (``assignment``, ``rejection``, ``bill``), each acknowledged once written."""
        user = request[USER]
        peers = self.agent.web_peers
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await resp.prepare(request)
        while True:
            msg = await peers.next(user, STREAM_KEEPALIVE)
            try:
                if msg is None:
                    await resp.write(b": keep-alive\n\n")
                    continue
                await resp.write(_event(msg))
            except (ConnectionResetError, asyncio.CancelledError):
                # the client went away: what it did not get waits for its next stream
                if msg is not None:
                    peers.put_back(user, msg)
                return resp
            ack = ack_for(msg)
            if ack is not None:
                await self.agent.handle(lambda now, ack=ack: self.agent.engine.receive(user, ack, now))

    # -- resources read by viewers ------------------------------------------------------------
    async def contract(self, request: web.Request) -> web.Response:
        return web.json_response(await self._read(lambda now: views.contract(self.agent)))

    async def put_contract(self, request: web.Request) -> web.Response:
        """A controller replaces the prosumers' contract (the ``[aggregator.contract]`` table as
        JSON): the engine's ``contract`` steering action, audited; it applies from the next
        settlement on."""
        try:
            body = await _body(request)
            table = jt.guard(lambda: jt.loads(body))
        except _Bad as exc:
            return self._bad(exc)
        except FlexOfferError as exc:
            return error_response(400, exc.reason, exc.path)
        if not isinstance(table, dict):
            return error_response(400, "a JSON object: the contract table", "(document)")
        ok, text = await self._steer(request[USER], "contract", {"contract": table})
        if not ok:
            path, _, reason = text.partition(": ")
            return error_response(400, reason or text, path if reason else "contract")
        return web.json_response({"status": "done", "outcomes": [text],
                                  **await self._read(lambda now: views.contract(self.agent))})

    async def bills(self, request: web.Request) -> web.Response:
        prosumer = request.query.get("prosumer") or None
        if prosumer is not None:
            try:
                prosumer = check_bare_jid(prosumer, "prosumer")
            except FlexOfferError as exc:
                return error_response(400, exc.reason, exc.path)
        return web.json_response(await self._read(lambda now: views.bills(self.agent, prosumer)))

    async def prosumers(self, request: web.Request) -> web.Response:
        return web.json_response(await self._read(lambda now: views.prosumers(self.agent, now)))

    async def trading(self, request: web.Request) -> web.Response:
        return web.json_response(await self._read(lambda now: views.trading(self.agent)))

    async def kpi(self, request: web.Request) -> web.Response:
        if self.agent.role == "market":
            return web.json_response(await self._read(lambda now: views.market_view(self.agent)["summary"]))
        if self.agent.role == "prosumer":
            def counts(now: int) -> dict:
                v = views.prosumer_view(self.agent)
                states: dict[str, int] = {}
                for o in v["offers"]:
                    states[o["state"]] = states.get(o["state"], 0) + 1
                return {"offers": states, "bills": len(v["bills"]), "received": v["received"]}

            return web.json_response(await self._read(counts))
        return web.json_response(await self._read(lambda now: views.kpi(self.agent, now), offload=True))

    async def clearing(self, request: web.Request) -> web.Response:
        return web.json_response(await self._read(lambda now: views.market_clearing(self.agent)))

    async def prosumer(self, request: web.Request) -> web.Response:
        return web.json_response(await self._read(lambda now: views.prosumer_view(self.agent)))

    async def market(self, request: web.Request) -> web.Response:
        return web.json_response(await self._read(lambda now: views.market_view(self.agent)))

    async def chart(self, request: web.Request) -> web.Response:
        try:
            start, end = _iso_param(request, "from"), _iso_param(request, "to")
            prosumer = request.query.get("prosumer") or None
            if prosumer is not None:
                prosumer = check_bare_jid(prosumer, "prosumer")
            offer = request.query.get("offer") or None
        except _Bad as exc:
            return self._bad(exc)
        except FlexOfferError as exc:
            return error_response(400, exc.reason, exc.path)
        if start is not None and end is not None and end <= start:
            return error_response(400, "must be after from", "to")
        return web.json_response(await self._read(lambda now: views.series(self.agent, now, start, end, prosumer, offer)))

    async def timeseries(self, request: web.Request) -> web.Response:
        kind = request.match_info["kind"]
        if kind not in SERIES:
            return error_response(404, f"one of {', '.join(SERIES)} (got {kind!r})", "kind")
        try:
            start = parse_utc(request.match_info["start"], "from")
            end = parse_utc(request.match_info["end"], "to")
        except FlexOfferError as exc:
            return error_response(400, exc.reason, exc.path)
        if end <= start:
            return error_response(400, "must be after from", "to")
        s = await self._read(lambda now: views.series(self.agent, now, start, end))
        return web.json_response({"kind": kind, "start": s["start"], "resolution": s["resolution"],
                                  "values": s[SERIES[kind]]})

    # -- settings (controllers change them; each change is an engine step, audited) -------------
    async def get_settings(self, request: web.Request) -> web.Response:
        return web.json_response(await self._read(lambda now: views.settings(self.agent)))

    async def post_settings(self, request: web.Request) -> web.Response:
        """``{"aggregation": true|false}`` (resume or pause), ``{"objective": {...}}``,
        ``{"trading": true|false}`` (an aggregator with an upstream): each is the engine's
        steering action, recorded with the controller who asked (the audit table)."""
        try:
            body = await _body(request)
        except _Bad as exc:
            return self._bad(exc)
        try:
            d = jt.guard(lambda: jt.obj(jt.loads(body), "", ("aggregation", "objective", "trading")))
        except FlexOfferError as exc:
            return error_response(400, exc.reason, exc.path)
        actions: list[tuple[str, str, dict]] = []
        if "aggregation" in d:
            if not isinstance(d["aggregation"], bool):
                return error_response(400, "true (running) or false (paused)", "aggregation")
            if d["aggregation"] == self.agent.engine.paused:
                actions.append(("aggregation", "resume" if d["aggregation"] else "pause", {}))
        if "objective" in d:
            if not isinstance(d["objective"], dict):
                return error_response(400, "a table such as {\"kind\": \"peak\"}", "objective")
            actions.append(("objective", "objective", {"objective": d["objective"]}))
        if "trading" in d:
            if not isinstance(d["trading"], bool):
                return error_response(400, "true (on: bid upstream) or false (off: plan here)", "trading")
            if d["trading"] != getattr(self.agent.engine, "trading_on", d["trading"]):
                actions.append(("trading", "trading", {"on": d["trading"]}))
        if not d:
            return error_response(400, "nothing to change (aggregation, objective, trading)", "(document)")
        outcomes = []
        for field, action, params in actions:
            ok, text = await self._steer(request[USER], action, params)
            if not ok:
                return error_response(422, text, field, status="refused", done=outcomes)
            outcomes.append(text)
        return web.json_response({"status": "done", "outcomes": outcomes})

    async def _steer(self, who: str, action: str, params: dict) -> tuple[bool, str]:
        box: dict[str, Any] = {}

        def step(now: int) -> list:
            try:
                effects, outcome = self.agent.engine.steer(who, action, params, now=now)
            except SteeringError as exc:
                box["refused"] = f"{exc.path}: {exc.reason}" if exc.path not in ("action", action) else exc.reason
                return [Note("steer-refused", {"by": who, "action": action, "why": exc.reason})]
            box["outcome"] = outcome
            return effects

        await self.agent.handle(step)
        if "outcome" in box:
            return True, box["outcome"]
        return False, box.get("refused", f"{action}: failed (the agent's log says why)")

    # -- live updates for the console ---------------------------------------------------------------
    async def events(self, request: web.Request) -> web.StreamResponse:
        """Server-sent ``changed`` events (at most one a second) while the agent's ledger changes,
        so an open page refreshes its numbers and chart."""
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await resp.prepare(request)
        changed = asyncio.Event()
        watch = changed.set
        self.agent.step_watchers.append(watch)
        try:
            await resp.write(b"event: hello\ndata: {}\n\n")
            while True:
                try:
                    await asyncio.wait_for(changed.wait(), STREAM_KEEPALIVE)
                except asyncio.TimeoutError:
                    await resp.write(b": keep-alive\n\n")
                    continue
                changed.clear()
                await resp.write(b"event: changed\ndata: {}\n\n")
                await asyncio.sleep(1.0)  # a burst of steps is one refresh, not hundreds
        except ConnectionResetError:  # the page was closed or left
            return resp
        finally:
            self.agent.step_watchers.remove(watch)


def _event(msg: Message) -> bytes:
    """One server-sent event of a protocol message, in the REST interface's JSON."""
    if isinstance(msg, AssignmentMessage):
        name, data = "assignment", msg.schedule.to_dict()
    elif isinstance(msg, BillMessage):
        name, data = "bill", views.bill_dict(msg, None)
    elif isinstance(msg, OfferRejection):
        name, data = "rejection", {"offer_id": msg.offer_id, "version": msg.version, "reason": msg.reason}
    else:
        name, data = type(msg).element, {"summary": msg.summary()}
    return f"event: {name}\ndata: {json.dumps(data, sort_keys=True)}\n\n".encode()
