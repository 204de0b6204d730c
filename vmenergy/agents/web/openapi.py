"""The OpenAPI 3.0 document an agent serves at ``/openapi.json`` (what a client or a test such
as schemathesis reads). It describes the routes of the agent's role only; the bodies are the
wire contract's JSON (docs/protocol.md), whose full rules the agent checks (the document gives
their shape)."""

from __future__ import annotations

from typing import Any

from vmenergy import __version__
from vmenergy.flexoffer import State

__all__ = ["openapi_document"]

_REF = "#/components/schemas/"
_ISO = {"type": "string", "format": "date-time", "example": "2026-11-23T01:00:00Z"}


def _ref(name: str) -> dict:
    return {"$ref": _REF + name}


def _json(schema: dict, description: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*codes: int) -> dict:
    words = {400: "bad input: the field path and the reason", 401: "no token, or an unknown one",
             403: "a viewer asked to change something, or a change came from another site",
             404: "no such thing", 405: "method not allowed", 413: "the body is too large",
             422: "the engine refused it: the reason, as an XMPP ack gives it"}
    return {str(c): _json(_ref("Error"), words[c]) for c in (401, 403, 405, *codes)}


def _op(summary: str, ok: dict, *errors: int, params: tuple = (), body: Any = None) -> dict:
    out: dict[str, Any] = {"summary": summary, "responses": {**ok, **_errors(*errors)}}
    if params:
        out["parameters"] = list(params)
    if body is not None:
        out["requestBody"] = {"required": True, "content": {"application/json": {"schema": body}}}
    return out


def _q(name: str, schema: dict, description: str) -> dict:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}


def _p(name: str, schema: dict, description: str) -> dict:
    return {"name": name, "in": "path", "required": True, "schema": schema, "description": description}


SCHEMAS: dict[str, Any] = {
    "Error": {"type": "object", "required": ["error"], "properties": {"error": {
        "type": "object", "required": ["reason"],
        "properties": {"reason": {"type": "string"}, "path": {"type": "string"}, "status": {"type": "string"},
                       "ref": {"type": "string"}, "done": {"type": "array", "items": {"type": "string"}}}}}},
    "Id": {"type": "string", "minLength": 1, "maxLength": 128, "pattern": "^[^/\\s]+$"},
    "Answer": {"type": "object", "required": ["status", "ref"],
               "properties": {"status": {"type": "string", "enum": ["accepted"]}, "ref": {"type": "string"},
                              "version": {"type": "integer", "nullable": True}, "id": {"type": "string"}}},
    "FlexOffer": {"type": "object", "description": "a flex-offer in the wire contract's JSON (docs/protocol.md)",
                  "required": ["id", "profiles"],
                  "properties": {"id": _ref("Id"), "issuer": {"type": "string"},
                                 "version": {"type": "integer", "minimum": 0},
                                 "resolution": {"type": "integer", "minimum": 1},
                                 "start_after": _ISO, "start_before": _ISO,
                                 "profiles": {"type": "array", "items": {"type": "object"}}}},
    "Measurement": {"type": "object", "required": ["id", "offer_id", "start", "energy"],
                    "properties": {"id": _ref("Id"), "offer_id": _ref("Id"), "start": _ISO,
                                   "resolution": {"type": "integer", "minimum": 1},
                                   "energy": {"type": "array", "items": {"type": "number"}}}},
    "OfferRow": {"type": "object", "required": ["id", "owner", "state"],
                 "properties": {"id": {"type": "string"}, "owner": {"type": "string"},
                                "state": {"type": "string", "enum": [s.value for s in State]}}},
    "OfferList": {"type": "object", "required": ["count", "offers"],
                  "properties": {"count": {"type": "integer"}, "offers": {"type": "array", "items": _ref("OfferRow")}}},
    "OfferDetail": {"allOf": [_ref("OfferRow"), {"type": "object", "properties": {
        "offer": _ref("FlexOffer"), "schedule": {"type": "object", "nullable": True},
        "measurement": {"type": "object", "nullable": True}}}]},
    "Series": {"type": "object", "required": ["kind", "start", "resolution", "values"],
               "properties": {"kind": {"type": "string"}, "start": _ISO, "resolution": {"type": "integer"},
                              "values": {"type": "array", "items": {"type": "number"}}}},
    "Settings": {"type": "object", "properties": {"aggregation": {"type": "boolean"},
                                                   "objective": {"type": "object"},
                                                   "trading": {"type": "boolean"}}},
    "Object": {"type": "object"},
}


def openapi_document(role: str, jid: str) -> dict:
    """The document for an agent of ``role``."""
    obj = _ref("Object")
    paths: dict[str, Any] = {
        "/openapi.json": {"get": _op("this document", {"200": _json(obj, "the OpenAPI document")})},
        "/kpi": {"get": _op("the portfolio's KPIs (an aggregator), the market's summary or the box's counts",
                            {"200": _json(obj, "KPIs")})},
        "/events": {"get": {
            "summary": "server-sent 'changed' events while the agent's ledger changes (the console's live updates)",
            "responses": {"200": {"description": "an event stream",
                                  "content": {"text/event-stream": {"schema": {"type": "string"}}}}, **_errors()}}},
        "/settings": {
            "get": _op("what a controller may change, and the audit log of changes", {"200": _json(obj, "settings")}),
            "post": _op("change settings (controllers): aggregation on/off, planning objective, trading on/off",
                        {"200": _json(obj, "what was done")}, 400, 413, 422, body=_ref("Settings"))},
    }
    if role == "aggregator":
        state = _q("state", {"type": "string", "enum": [s.value for s in State]}, "only offers in this state")
        paths.update({
            "/flexoffer": {
                "get": _op("the offers, filtered", {"200": _json(_ref("OfferList"), "offers")}, 400, params=(
                    _q("prosumer", {"type": "string"}, "only this prosumer's (bare JID)"), state,
                    _q("from", _ISO, "only offers whose window ends after this time"),
                    _q("to", _ISO, "only offers whose window starts before this time"))),
                "post": _op("offer a flex-offer (controllers; sent as the token holder)",
                            {"201": {**_json(_ref("Answer"), "accepted"), "links": {
                                "GetOffer": {"operationId": "getOffer", "parameters": {"id": "$response.body#/id"}}}}},
                            400, 413, 422, body=_ref("FlexOffer"))},
            "/flexoffer/{id}": {
                "get": {**_op("one offer with its schedule and measurement",
                                  {"200": _json(_ref("OfferDetail"), "offer")}, 404,
                                  params=(_p("id", {"type": "string"}, "offer id"),)), "operationId": "getOffer"},
                "put": _op("update an offer (a higher version)", {"200": _json(_ref("Answer"), "accepted")},
                           400, 413, 422, params=(_p("id", {"type": "string"}, "offer id"),), body=_ref("FlexOffer")),
                "delete": _op("withdraw an offer not yet aggregated", {"200": _json(_ref("Answer"), "withdrawn")},
                              400, 422, params=(_p("id", {"type": "string"}, "offer id"),))},
            "/flexoffer/stream": {"get": {
                "summary": "server-sent events of the assignments, rejections and bills for the token holder",
                "responses": {"200": {"description": "an event stream",
                                      "content": {"text/event-stream": {"schema": {"type": "string"}}}},
                              **_errors()}}},
            "/flexoffer/measurement": {"post": _op("metered energy of an assigned offer",
                                                   {"201": _json(_ref("Answer"), "accepted")}, 400, 413, 422,
                                                   body=_ref("Measurement"))},
            "/timeseries/{kind}/{start}/{end}": {"get": _op(
                "the portfolio's energy per interval", {"200": _json(_ref("Series"), "kWh per interval")}, 400, 404,
                params=(_p("kind", {"type": "string", "enum": ["measurement", "baseline", "schedule"]}, "series"),
                        _p("start", _ISO, "from (UTC)"), _p("end", _ISO, "to (UTC)")))},
            "/chart": {"get": _op("every series of the dashboard chart", {"200": _json(obj, "series")}, 400,
                                  params=(_q("from", _ISO, "from (UTC)"), _q("to", _ISO, "to (UTC)"),
                                          _q("prosumer", {"type": "string"}, "only this prosumer's offers"),
                                          _q("offer", {"type": "string"}, "only this offer")))},
            "/contract": {"get": _op("the prosumers' contract", {"200": _json(obj, "contract")}),
                          "put": _op("replace the prosumers' contract (controllers; from the next settlement on)",
                                     {"200": _json(obj, "the contract now")}, 400, 413, body=obj)},
            "/bill": {"get": _op("bills sent to prosumers and received from upstream", {"200": _json(obj, "bills")},
                                 400, params=(_q("prosumer", {"type": "string"}, "only this prosumer's"),))},
            "/prosumers": {"get": _op("the prosumers with their offers and bills", {"200": _json(obj, "prosumers")})},
            "/trading": {"get": _op("aggregates, bids and market results", {"200": _json(obj, "trading")})},
        })
    if role == "prosumer":
        paths["/prosumer"] = {"get": _op("the box: devices, offers, schedules, bills", {"200": _json(obj, "prosumer")})}
    if role == "market":
        paths["/market"] = {"get": _op("sessions and the order book", {"200": _json(obj, "market")})}
        paths["/market/clearing"] = {"get": _op("volume awarded and price per interval",
                                                {"200": _json(obj, "per interval")})}
    return {
        "openapi": "3.0.3",
        "info": {"title": f"VME {role} {jid}", "version": __version__,
                 "description": "The REST interface of a VME agent (docs/web.md). Every request needs a token."},
        "paths": paths,
        "components": {"schemas": SCHEMAS,
                       "securitySchemes": {"token": {"type": "http", "scheme": "bearer"}}},
        "security": [{"token": []}],
    }
