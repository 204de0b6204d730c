"""The console's pages (jinja2 templates in ``templates/``), as the FlexOffer Manager offers them.

Pages are rendered from the same views as the REST interface (:mod:`.views`) between engine
steps; the chart and the live numbers are drawn in the browser from the JSON endpoints
(``/chart``, ``/kpi``) with the vendored uPlot, refreshed on the ``/events`` stream.
"""

from __future__ import annotations

from typing import Any

import aiohttp_jinja2
from aiohttp import web

from vmenergy.flexoffer import FlexOfferError, State
from vmenergy.flexoffer.timeutil import parse_utc
from vmenergy.protocol.operators import Access, check_bare_jid

from . import views
from .http import ACCESS, COOKIE, USER

__all__ = ["add_routes"]

#: How long the login cookie lasts (s); a token in the header has no such limit.
COOKIE_SECONDS = 12 * 3600


def add_routes(app: web.Application, console: Any) -> None:
    p = Pages(console)
    r = app.router
    r.add_get("/login", p.login_form)
    r.add_post("/login", p.login)
    r.add_post("/logout", p.logout)
    r.add_get("/", p.home)
    r.add_get("/console", p.home)
    if console.agent.role == "aggregator":
        r.add_get("/console/dashboard", p.dashboard)
        r.add_get("/console/prosumers", p.prosumers)
        r.add_get("/console/loads", p.loads)
        r.add_get("/console/loads/{id}", p.load)
        r.add_get("/console/trading", p.trading)
    if console.agent.role == "market":
        r.add_get("/console/market", p.market)
    if console.agent.role == "prosumer":
        r.add_get("/console/prosumer", p.prosumer)
    r.add_get("/console/settings", p.settings)


def _local(path: str) -> str:
    """A redirect target on this site only (no ``//host`` or ``http://``)."""
    return path if path.startswith("/") and not path.startswith("//") and "\\" not in path else "/"


def _form_time(value: Any, path: str) -> Any:
    """A time from the filter form: the browser's ``datetime-local`` (``2026-11-23T01:00``,
    read as UTC, as the page says) or a full UTC time; None when empty."""
    if not value:
        return None
    text = str(value).strip().removesuffix("Z")
    if len(text) == 16:  # no seconds
        text += ":00"
    return parse_utc(text + "Z", path)


class Pages:
    def __init__(self, console: Any) -> None:
        self.console = console
        self.agent = console.agent

    def _ctx(self, request: web.Request, page: str, **extra: Any) -> dict:
        agent = self.agent
        return {"role": agent.role, "jid": str(agent.jid), "user": request.get(USER),
                "controller": request.get(ACCESS) is Access.CONTROL, "page": page,
                "status": agent.status_text(), **extra}

    # -- login --------------------------------------------------------------------------------------
    async def login_form(self, request: web.Request) -> web.Response:
        return aiohttp_jinja2.render_template("login.html", request, {
            "jid": str(self.agent.jid), "next": _local(request.query.get("next", "/")), "error": None})

    async def login(self, request: web.Request) -> web.Response:
        form = await request.post()
        token = str(form.get("token", "")).strip()
        target = _local(str(form.get("next", "/")))
        jid = self.console.tokens.who(token)
        if self.console.access(jid) is Access.NONE:
            self.agent.log.warning("event=web-login-refused")
            return aiohttp_jinja2.render_template("login.html", request, {
                "jid": str(self.agent.jid), "next": target,
                "error": "unknown token, or its holder is not an operator of this agent"}, status=401)
        self.agent.log.info("event=web-login user=%s", jid)
        resp = web.HTTPSeeOther(target)
        resp.set_cookie(COOKIE, token, max_age=COOKIE_SECONDS, httponly=True, samesite="Strict", path="/")
        raise resp

    async def logout(self, request: web.Request) -> web.Response:
        resp = web.HTTPSeeOther("/login")
        resp.del_cookie(COOKIE, path="/")
        raise resp

    async def home(self, request: web.Request) -> web.Response:
        first = {"aggregator": "/console/dashboard", "market": "/console/market",
                 "prosumer": "/console/prosumer"}.get(self.agent.role, "/console/settings")
        raise web.HTTPSeeOther(first)

    # -- aggregator pages -------------------------------------------------------------------------
    async def dashboard(self, request: web.Request) -> web.Response:
        data = await self.agent.read(lambda now: views.kpi(self.agent, now), offload=True)
        return aiohttp_jinja2.render_template("dashboard.html", request, self._ctx(request, "dashboard", kpi=data))

    async def prosumers(self, request: web.Request) -> web.Response:
        data = await self.agent.read(lambda now: views.prosumers(self.agent, now))
        contract = await self.agent.read(lambda now: views.contract(self.agent))
        return aiohttp_jinja2.render_template("prosumers.html", request, self._ctx(
            request, "prosumers", prosumers=data["prosumers"], month=data["month"], contract=contract["contract"]))

    async def loads(self, request: web.Request) -> web.Response:
        q = request.query
        error = None
        flt = views.OfferFilter()
        try:
            prosumer = check_bare_jid(q["prosumer"], "prosumer") if q.get("prosumer") else None
            state = q.get("state") or None
            if state is not None and state not in [s.value for s in State]:
                raise FlexOfferError("state", f"no state {state!r}")
            start = _form_time(q.get("from"), "from")
            end = _form_time(q.get("to"), "to")
            flt = views.OfferFilter(prosumer, state, start, end)
        except FlexOfferError as exc:
            error = f"{exc.path}: {exc.reason}"
        rows = await self.agent.read(lambda now: views.offer_rows(self.agent, flt))
        owners = await self.agent.read(lambda now: sorted({r["owner"] for r in views.offer_rows(self.agent)["offers"]}))
        return aiohttp_jinja2.render_template("loads.html", request, self._ctx(
            request, "loads", rows=rows["offers"], count=rows["count"], owners=owners,
            states=[s.value for s in State], query=dict(q), error=error))

    async def load(self, request: web.Request) -> web.Response:
        offer_id = request.match_info["id"]
        rec = await self.agent.read(lambda now: views.find_offer(self.agent, offer_id))
        if rec is None:
            raise web.HTTPNotFound(reason=f"no offer {offer_id}")
        return aiohttp_jinja2.render_template("load.html", request, self._ctx(
            request, "loads", offer=views.offer_detail(rec)))

    async def trading(self, request: web.Request) -> web.Response:
        data = await self.agent.read(lambda now: views.trading(self.agent))
        kpi = await self.agent.read(lambda now: views.kpi(self.agent, now), offload=True)
        bills = await self.agent.read(lambda now: views.bills(self.agent))
        return aiohttp_jinja2.render_template("trading.html", request, self._ctx(
            request, "trading", trading=data, upstream=bills["upstream"], k=kpi["kpis"], why=kpi["why"]))

    async def market(self, request: web.Request) -> web.Response:
        data = await self.agent.read(lambda now: views.market_view(self.agent))
        return aiohttp_jinja2.render_template("market.html", request, self._ctx(request, "market", market=data))

    async def prosumer(self, request: web.Request) -> web.Response:
        data = await self.agent.read(lambda now: views.prosumer_view(self.agent))
        return aiohttp_jinja2.render_template("prosumer.html", request, self._ctx(request, "prosumer", box=data))

    async def settings(self, request: web.Request) -> web.Response:
        data = await self.agent.read(lambda now: views.settings(self.agent))
        from vmenergy.agents.operator.commands import OBJECTIVE_KINDS, SERIES

        # the kinds a form can set without a series (a series is a chat or ad-hoc command's job)
        kinds = [k for k in OBJECTIVE_KINDS if k not in SERIES]
        return aiohttp_jinja2.render_template("settings.html", request, self._ctx(
            request, "settings", s=data, objective_kinds=kinds))
