"""``vmenergy agent ROLE --config FILE``: one agent in the foreground, configured by TOML.

The way a prosumer box, an aggregator server or a market operator runs a node (by hand, or as a
systemd unit: see agents/<role>/). Example configs live in agents/<role>/*.toml; every key is
described there. Errors name the key.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
import time
from datetime import datetime, timezone
import tomllib
from pathlib import Path
from typing import Any

from vmenergy.errors import VmeError
from vmenergy.flexoffer import FlexOffer, FlexOfferError
from vmenergy.flexoffer.timeutil import parse_utc
from vmenergy.runtime.private import PrivateFileError, read_private

__all__ = ["ConfigError", "load_config", "build", "run_agent"]

log = logging.getLogger("vmenergy.agent")

#: Exit code of ``vmenergy agent`` when it cannot reach or log in to its server.
EXIT_NO_SERVER = 2

SECTIONS = {"agent", "server", "clock", "operators", "prosumer", "aggregator", "market", "dso", "web"}


class ConfigError(VmeError):
    """Invalid agent config: ``path`` names the field, ``reason`` says why."""


def _need(d: dict, key: str, path: str, kind: type | tuple) -> Any:
    if key not in d:
        raise ConfigError(f"{path}.{key}", "required")
    if not isinstance(d[key], kind):
        raise ConfigError(f"{path}.{key}", f"must be {getattr(kind, '__name__', kind)}")
    return d[key]


def load_config(path: Path) -> dict:
    try:
        data = tomllib.loads(Path(path).read_text())
    except OSError as exc:
        raise ConfigError(str(path), f"cannot read: {exc.strerror or exc}") from None
    except (ValueError, RecursionError) as exc:  # TOMLDecodeError; also an integer of 5,000 digits
        raise ConfigError(str(path), f"not valid TOML: {str(exc)[:300]}") from None
    for key in data:
        if key not in SECTIONS:
            raise ConfigError(key, f"unknown section (known: {', '.join(sorted(SECTIONS))})")
    # the tables' schemas are those `vmenergy check` uses: a misspelt key stops the node here
    from vmenergy.runtime.scenario.node import check_node

    errors = [p for p in check_node(data, Path(path).read_text()) if not p.warning]
    if errors:
        where = f" (line {errors[0].line})" if errors[0].line else ""
        raise ConfigError(errors[0].path, errors[0].reason + where + (f"; did you mean {errors[0].hint}?"
                                                                      if errors[0].hint else ""))
    agent = data.get("agent")
    if isinstance(agent, dict) and "password" in agent:
        try:  # the password is only its owner's to read
            read_private(path, "agent config (it has agent.password)")
        except PrivateFileError as exc:
            raise ConfigError("agent.password", str(exc)) from None
    data["_dir"] = str(Path(path).resolve().parent)
    return data


def _path(base: str, value: str) -> Path:
    p = Path(value)
    return p if p.is_absolute() else Path(base) / p


def build(role: str, data: dict):
    """The agent a config describes (not started)."""
    from vmenergy.agents import AggregatorAgent, MarketAgent, ProsumerAgent, ServerAddress
    from vmenergy.devices.executor import SimulatedExecutor
    from vmenergy.protocol.aggregator import AggregatorConfig
    from vmenergy.runtime.clock import AcceleratedClock, RealClock

    base = data["_dir"]
    agent = _need(data, "agent", "", dict)
    jid = _need(agent, "jid", "agent", str)
    password = agent.get("password")
    if password is None and "password_file" in agent:
        try:  # a password only its owner can read (load_config checks a config that holds one)
            password = read_private(_path(base, agent["password_file"]), "password file").decode().strip()
        except PrivateFileError as exc:
            raise ConfigError("agent.password_file", str(exc)) from None
    if not isinstance(password, str) or not password:
        raise ConfigError("agent.password", "required (or password_file)")
    server = data.get("server", {})
    ca = server.get("ca_file")
    address = ServerAddress(server.get("host", jid.split("@", 1)[1]), int(server.get("port", 5222)),
                            str(_path(base, ca)) if ca else None)
    clock_cfg = data.get("clock", {"kind": "real"})
    kind = clock_cfg.get("kind", "real")
    if kind == "real":
        clock = RealClock()
    elif kind == "accelerated":  # a node on its own: its scenario time starts when it starts
        start = _need(clock_cfg, "start", "clock", (str, datetime))
        if isinstance(start, datetime):  # a TOML date-time without quotes (the check accepts it)
            if start.tzinfo is None:
                raise ConfigError("clock.start", "needs a time zone (UTC: end it with Z)")
            start = start.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        clock = AcceleratedClock(parse_utc(start, "clock.start"), float(clock_cfg.get("speed", 60)),
                                 wall_anchor=time.time())
    else:
        raise ConfigError("clock.kind", f"real or accelerated (got {kind!r}); a virtual clock needs a "
                                        "scenario run's coordinator (vmenergy run)")
    if agent.get("check_seconds") is not None:  # the process's solver budget per polytope check
        from vmenergy.flexoffer.limits import set_check_seconds

        set_check_seconds(float(agent["check_seconds"]))
    store = _path(base, agent.get("store", f"{jid.split('@')[0]}.sqlite"))
    from vmenergy.agents.base import MAX_PAYLOAD_BYTES

    from vmenergy.protocol.operators import Operators

    try:
        operators = Operators.from_dict(data.get("operators", {}))
    except FlexOfferError as exc:
        raise ConfigError(f"operators.{exc.path}", exc.reason) from None
    web = None
    if "web" in data:  # the console and REST interface; the token file is found beside the config
        from vmenergy.agents.web import WebConfig

        table = dict(data["web"])
        for name in ("tokens", "certificate", "key", "client_ca"):  # files beside the config
            if isinstance(table.get(name), str):
                table[name] = str(_path(base, table[name]))
        try:
            web = WebConfig.from_dict(table)
        except FlexOfferError as exc:
            raise ConfigError(f"web.{exc.path}", exc.reason) from None
    common = dict(server=address, clock=clock, store_path=store, tick=float(agent.get("tick", 1.0)),
                  max_payload_bytes=int(agent.get("max_payload_bytes", MAX_PAYLOAD_BYTES)), operators=operators,
                  web=web,
                  spade_metadata=_need(agent, "spade_metadata", "agent", bool) if "spade_metadata" in agent else False)
    section = data.get(role)
    if not isinstance(section, dict):
        raise ConfigError(role, f"a [{role}] section is required for a {role}")
    try:
        if role == "prosumer":
            from vmenergy.runtime.documents import read_document

            offers: list[tuple[int, FlexOffer]] = []
            for i, name in enumerate(section.get("offers", [])):
                for item in read_document(_path(base, name)):
                    if isinstance(item, FlexOffer):
                        offers.append((item.creation_time or 0, item))
            executor = SimulatedExecutor(deviation=float(section.get("deviation", 0.0)))
            aggregator = _need(section, "aggregator", "prosumer", str)
            fleet = _fleet(section, base, jid, int(clock.now())) if section.get("devices") else None
            if section.get("hardware"):  # real devices carry out the schedules; models (if any) offer
                return ProsumerAgent(jid, password, aggregator=aggregator, offers=offers,
                                     executor=_hardware(section, base, fleet), source=fleet, **common)
            if fleet is not None:  # its device models make offers and follow schedules
                return ProsumerAgent(jid, password, aggregator=aggregator, offers=offers, executor=fleet,
                                     source=fleet, **common)
            return ProsumerAgent(jid, password, aggregator=aggregator, offers=offers, executor=executor, **common)
        if role == "aggregator":
            cfg = dict(section)
            if isinstance(cfg.get("enrolment"), list):
                cfg["enrolment"] = tuple(cfg["enrolment"])
            return AggregatorAgent(jid, password, config=AggregatorConfig(**cfg), **common)
        if role == "market":
            from vmenergy.protocol.market import MarketConfig

            return MarketAgent(jid, password, config=MarketConfig.from_dict(section), **common)
        if role == "dso":
            from vmenergy.agents import DsoAgent
            from vmenergy.protocol.dso import DsoConfig

            return DsoAgent(jid, password, config=DsoConfig(**section), **common)
    except FlexOfferError as exc:
        raise ConfigError(f"{role}.{exc.path}", exc.reason) from None
    except TypeError as exc:  # unknown keyword in a section
        raise ConfigError(role, str(exc)) from None
    raise ConfigError("role", f"unknown role {role!r}")


def _fleet(section: dict, base: str, jid: str, now: int):
    """A box's device fleet from its ``[prosumer]`` section: input files relative to the config
    (a cron job may rewrite them), device ids prefixed with the box's name so offer ids stay
    unique at the aggregator, randomness seeded by the JID."""
    from vmenergy.devices.inputs import Inputs
    from vmenergy.devices.models import DeviceError
    from vmenergy.devices.population import build_fleet

    table = dict(section.get("inputs", {}))
    for key in ("weather", "prices"):
        if key in table:
            table[key] = str(_path(base, table[key]))
    node = jid.split("@")[0]
    devices = [{"kind": d["kind"], "id": f"{node}-{d['id']}",
                "params": {k: v for k, v in d.items() if k not in ("kind", "id")}} for d in section["devices"]]
    foa = {"offer_time": section.get("offer_time", 12.0), "offer_lead": section.get("offer_lead", 3600),
           "slice_minutes": section.get("slice_minutes", 60), "deviation": section.get("deviation", 0.0)}
    try:
        inputs = Inputs(**table)
    except DeviceError as exc:
        raise ConfigError(f"prosumer.inputs.{exc.path}", exc.reason) from None
    try:
        return build_fleet({"devices": devices, "owner": section.get("owner", {}), "foa": foa}, inputs,
                           jid=jid, seed=jid, start=now, until=None)
    except DeviceError as exc:
        raise ConfigError(f"prosumer.{exc.path}", exc.reason) from None


def _hardware(section: dict, base: str, fleet):
    """The box's hardware executor from ``[[prosumer.hardware]]`` (map files relative to the config)."""
    from vmenergy.devices.adapters.config import read_hardware
    from vmenergy.devices.adapters.executor import HardwareDevice, HardwareExecutor
    from vmenergy.devices.adapters.registers import MapError

    try:
        configs = read_hardware(section["hardware"], Path(base), at="prosumer.hardware")
        return HardwareExecutor([HardwareDevice.build(c, Path(base)) for c in configs], fleet=fleet)
    except MapError as exc:
        raise ConfigError(exc.path, exc.reason) from None


#: Real seconds ``vmenergy agent`` waits for its first session before it gives up, naming the
#: server: a wrong host, port or password must not look like a node that runs.
CONNECT_SECONDS = 15.0


async def _run(agent, register: bool, result: list) -> None:
    from spade.agent import AuthenticationFailure, DisconnectedException

    from vmenergy.runtime.xmpp_tuning import freeze_heap, tune_process

    tune_process(agent.server.ca_file)
    agent.connect_deadline = CONNECT_SECONDS
    try:
        await agent.start(auto_register=register)
    except (AuthenticationFailure, DisconnectedException, OSError) as exc:
        log.error("event=cannot-start error=%s", exc)
        print(f"vmenergy agent: {exc}", file=sys.stderr, flush=True)
        result.append(EXIT_NO_SERVER)
        await agent.stop()
        return
    freeze_heap()  # the agent and its ledger as loaded: full collections skip them
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("event=stopping")
    await agent.stop()


def run_agent(role: str, path: Path) -> int:
    import spade

    data = load_config(path)
    agent = build(role, data)
    web = agent.web_config
    if web is not None and web.tokens is not None:  # refused now, not as a traceback at start-up
        from vmenergy.agents.web import Tokens

        try:
            Tokens.load(web.tokens)
        except FlexOfferError as exc:
            raise ConfigError("web.tokens", exc.reason) from None
    if web is not None and web.key is not None:
        try:  # the web server's TLS key, like the password, is only its owner's to read
            read_private(web.key, "web TLS key")
        except PrivateFileError as exc:
            raise ConfigError("web.key", str(exc)) from None
    register = bool(data.get("agent", {}).get("register", True))
    result: list[int] = []
    spade.run(_run(agent, register, result))
    return result[0] if result else 0
