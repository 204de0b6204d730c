"""The ``vmenergy`` command line. Subcommands grow with the project; each is a thin shell over
the core (reads files, prints, sets the exit code)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Optional, Sequence, TextIO

from vmenergy import __version__
from vmenergy.flexoffer import FlexOffer, FlexOfferError, Schedule
from vmenergy.flexoffer.measures import summary
from vmenergy.flexoffer.timeutil import format_utc
from vmenergy.runtime.documents import read_document
from vmenergy.wire.documents import Item


def _window(fo: FlexOffer) -> str:
    res = fo.resolution
    if fo.start_after is None and fo.start_before is None:
        dur = fo.start_before_duration or 0
        return f"start within {dur} intervals of acceptance (implicit)"
    lo = "acceptance" if fo.start_after is None else format_utc(fo.start_after * res)
    hi = fo.latest_start()
    hi_s = "?" if hi is None else format_utc(hi * res)
    if fo.start_before is None and fo.start_after is not None and not fo.start_before_duration:
        return f"start at {lo}"
    return f"start {lo} .. {hi_s}"


def one_line(item: Item) -> str:
    if isinstance(item, Schedule):
        return (
            f"schedule {item.schedule_id or '-'} for {item.offer_id}: start {format_utc(item.start * item.resolution)}, "
            f"profile {item.profile}, {len(item.energy)} slices, {item.total:g} kWh"
        )
    m = summary(item)
    tf = "?" if m["time_flexibility"] is None else f"{m['time_flexibility']} intervals"
    return (
        f"offer {item.id}: {len(item.profiles)} profile(s), {sum(p.n_slices for p in item.profiles)} slices, "
        f"{_window(item)}; time flexibility {tf}, energy flexibility {m['energy_flexibility']:g} kWh, "
        f"total {m['min_total_energy']:g}..{m['max_total_energy']:g} kWh ({m['direction']})"
    )


def cmd_validate(args: argparse.Namespace, out: TextIO) -> int:
    bad = 0
    loaded: list[tuple[str, Item]] = []
    for name in args.files:
        try:
            items = read_document(name)
        except FlexOfferError as exc:
            print(f"INVALID {name}: {exc}", file=out)
            bad += 1
            continue
        for item in items:
            loaded.append((name, item))
    offers = {item.id: item for _, item in loaded if isinstance(item, FlexOffer)}
    for name, item in loaded:
        if isinstance(item, Schedule) and item.offer_id in offers:
            violations = offers[item.offer_id].check(item, now=args.now)
            if violations:
                bad += 1
                print(f"INFEASIBLE {name}: {one_line(item)}", file=out)
                for v in violations:
                    print(f"    {v}", file=out)
                continue
            print(f"OK {name}: {one_line(item)} (feasible for {item.offer_id})", file=out)
            continue
        print(f"OK {name}: {one_line(item)}", file=out)
    print(f"{bad} problem(s) found" if bad else f"all {len(loaded)} item(s) in {len(args.files)} file(s) valid", file=out)
    return 1 if bad else 0


def describe(fo: FlexOffer) -> str:
    """Multi-line readable summary of an offer (what ``vmenergy show`` prints)."""
    res = fo.resolution
    m = summary(fo)
    lines = [f"flex-offer {fo.id}" + (f" ({fo.label})" if fo.label else "")]
    if fo.issuer:
        lines.append(f"  {'issuer':<19}{fo.issuer}")
    lines.append(f"  {'state':<19}{fo.state.value}, version {fo.version}")
    lines.append(f"  {'resolution':<19}{res} s")
    for key in ("creation_time", "acceptance_before", "assignment_before"):
        value = getattr(fo, key)
        if value is not None:
            lines.append(f"  {key:<19}{format_utc(value)}")
    lines.append(f"  {'window':<19}{_window(fo)}")
    tf = m["time_flexibility"]
    if tf is not None:
        lines.append(f"  {'time flexibility':<19}{tf} intervals ({tf * res / 3600:g} h)")
    lines.append(f"  {'energy flexibility':<19}{m['energy_flexibility']:g} kWh")
    if m["product_flexibility"] is not None:
        lines.append(f"  {'product flex.':<19}{m['product_flexibility']:g} interval·kWh")
    lines.append(f"  {'total energy':<19}{m['min_total_energy']:g} .. {m['max_total_energy']:g} kWh ({m['direction']})")
    for j, p in enumerate(fo.profiles):
        head = f"  profile {j}" + (" (exclusive-OR alternative)" if len(fo.profiles) > 1 else "")
        if p.start_after is not None or p.start_before is not None:
            lo = "-" if p.start_after is None else format_utc(p.start_after * res)
            hi = "-" if p.start_before is None else format_utc(p.start_before * res)
            head += f", starts {lo} .. {hi}"
        lines.append(head + f": {p.n_slices} slices over {p.duration} intervals ({p.duration * res / 3600:g} h)")
        lines.append("      #  offset  dur        min kWh     max kWh  values")
        offset = 0
        for k, s in enumerate(p.slices):
            values = "" if s.values is None else " ".join(f"{v:g}" for v in s.values)
            lines.append(f"    {k:>3}  {offset:>6}  {s.duration:>3}  {s.min:>12.4f}{s.max:>12.4f}  {values}")
            offset += s.duration
        if p.total is not None:
            lo = "-" if p.total.min is None else f"{p.total.min:g}"
            hi = "-" if p.total.max is None else f"{p.total.max:g}"
            lines.append(f"    total energy in [{lo}, {hi}] kWh")
        if p.polytope is not None:
            lines.append(f"    polytope: {len(p.polytope.A)} linear constraints A·x <= b")
    if fo.baseline is not None:
        b = fo.baseline
        start = "earliest start" if b.start is None else format_utc(b.start * res)
        lines.append(f"  {'baseline':<19}profile {b.profile} at {start}: " + " ".join(f"{e:g}" for e in b.energy) + " kWh")
    if fo.prices is not None:
        prices = ", ".join(f"{p.up:g}/{p.down:g}" for p in fo.prices.slices)
        lines.append(f"  {'prices':<19}{fo.prices.currency} per kWh up/down: {prices}")
    return "\n".join(lines)


def cmd_feeder(args: argparse.Namespace, out: TextIO) -> int:
    from datetime import date

    from vmenergy.runtime.feeder import feeder_limits

    try:
        day = date.fromisoformat(args.day)
    except ValueError:
        print(f"--day: not a date YYYY-MM-DD: {args.day!r}", file=out)
        return 1
    try:
        limits = feeder_limits(args.code, day, bus=args.bus, max_loading=args.max_loading)
    except FlexOfferError as exc:
        print(f"{exc.path}: {exc.reason}", file=out)
        return 1
    print(f"# headroom of SimBench {args.code} on {day} (kWh per 15 min, UTC), "
          f"{min(limits):g}..{max(limits):g}: a [[dso]] point's limit", file=out)
    print("limit = [" + ", ".join(f"{v:g}" for v in limits) + "]", file=out)
    return 0


def cmd_show(args: argparse.Namespace, out: TextIO) -> int:
    try:
        items = read_document(args.file)
    except FlexOfferError as exc:
        print(f"INVALID {args.file}: {exc}", file=out)
        return 1
    for item in items:
        if args.json:
            data = item.to_dict()
            if isinstance(item, FlexOffer):
                data = {"offer": data, "measures": summary(item)}
            print(json.dumps(data, indent=2), file=out)
        elif isinstance(item, FlexOffer):
            print(describe(item), file=out)
        else:
            print(one_line(item), file=out)
    return 0


def cmd_demo(args: argparse.Namespace, out: TextIO) -> int:
    """The main job: the demo scenario swarm on a private XMPP server, then its report."""
    from vmenergy.runtime.demo import run_demo
    from vmenergy.runtime.scenario import ScenarioError
    from vmenergy.runtime.servers import ServerError

    try:
        return run_demo(Path(args.out) if args.out else None, out, scenario=Path(args.scenario))
    except ScenarioError as exc:
        print_check(args.scenario, exc.problems, out)
        print("demo not run", file=out)
        return 1
    except ServerError as exc:
        print(f"demo not run: {exc}", file=out)
        return 1


def print_check(name: str, problems: Sequence, out: TextIO) -> bool:
    """Print a file's problems in the order of their lines (``FILE:LINE: path: reason``), then
    ``OK FILE`` or ``INVALID FILE (N errors)``; whether the file is valid."""
    for p in sorted(problems, key=lambda p: (p.line is None, p.line or 0)):
        print(p.format(name), file=out)
    errors = sum(1 for p in problems if not p.warning)
    warnings = len(problems) - errors
    if errors:
        print(f"INVALID {name} ({errors} error{'s' * (errors != 1)})", file=out)
    else:
        print(f"OK {name}" + (f" ({warnings} warning{'s' * (warnings != 1)})" if warnings else ""), file=out)
    return not errors


def cmd_check(args: argparse.Namespace, out: TextIO) -> int:
    """Validate scenario files (and agent node configs) without starting anything."""
    from vmenergy.runtime.scenario import check_file

    valid = [print_check(name, check_file(name)[1], out) for name in args.files]
    return 0 if all(valid) else 1


#: Exit codes of ``vmenergy run`` besides 0 (every offer final) and 1 (invalid scenario, no server).
EXIT_UNFINISHED, EXIT_TIMEOUT, EXIT_INTERRUPTED = 3, 4, 130


def cmd_run(args: argparse.Namespace, out: TextIO) -> int:
    from vmenergy.runtime.orchestrator import run_scenario
    from vmenergy.runtime.progress import view_for
    from vmenergy.runtime.scenario import ScenarioError
    from vmenergy.runtime.servers import ServerError

    def say(line: str) -> None:
        print(line, file=out, flush=True)

    try:
        shard, shards = _shard(args.shard)
        listen = _address(args.listen) if args.listen else ("127.0.0.1", 0)
    except ValueError as exc:
        print(f"vmenergy run: {exc}", file=out)
        return 1
    if shard > 1:
        from vmenergy.runtime.orchestrator import join_run
        from vmenergy.runtime.scenario import load_scenario

        if not args.join:
            print(f"vmenergy run: --shard {args.shard} needs --join FILE (the join.json that shard 1 wrote)", file=out)
            return 1
        try:  # this machine's copy: where it reaches the cluster's nodes
            scenario = load_scenario(args.scenario)
        except ScenarioError as exc:
            print_check(args.scenario, exc.problems, out)
            return 1
        run_dir = Path(args.out) if args.out else Path("run") / f"shard{shard}-{time.strftime('%Y%m%d-%H%M%S')}"
        return join_run(args.join, run_dir, shard=shard, out=say, scenario=scenario)
    try:
        result = run_scenario(args.scenario, args.out, timeout=args.timeout, out=say, view=view_for(say, out),
                              shards=shards, listen=listen)
    except ScenarioError as exc:
        print_check(args.scenario, exc.problems, out)
        return 1
    except ServerError as exc:
        print(f"no XMPP server: {exc}", file=out)
        return 1
    return run_outcome(result, say)


def _shard(text: str) -> tuple[int, int]:
    k, _, n = text.partition("/")
    if not (k.isdigit() and n.isdigit()) or not 1 <= int(k) <= int(n):
        raise ValueError(f"--shard must be K/N with 1 <= K <= N (got {text!r})")
    return int(k), int(n)


def _address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ValueError(f"--listen must be HOST:PORT (got {text!r})")
    return host, int(port)


def run_outcome(result, say) -> int:
    """Say how a run ended and turn it into the exit code."""
    prog = result.progress
    if result.outcome == "until":
        say(f"the scenario reached its end time with work unfinished: {prog.unfinished} offers not final, "
            f"{prog.unanswered} messages unanswered")
    elif result.outcome == "timeout":
        say("stopped: the real-time limit (--timeout) came before the scenario's end")
    elif result.outcome == "interrupted":
        say("interrupted: the report shows what happened until then")
    from vmenergy.runtime.report import format_summary, read_summary

    say("")
    say(format_summary(read_summary(result.report.parent), result.report.resolve()).rstrip("\n"))
    return {"done": 0, "until": EXIT_UNFINISHED, "timeout": EXIT_TIMEOUT}.get(result.outcome, EXIT_INTERRUPTED)


def cmd_drill(args: argparse.Namespace, out: TextIO) -> int:
    """Fault drills on a scenario: first the undisturbed run, then each kind once, one line of
    figures each; exit code 1 if any drill lost an item, logged an exception from outside VME,
    did not finish or decided otherwise than the undisturbed run."""
    from dataclasses import replace

    from vmenergy.runtime.drill import KINDS
    from vmenergy.runtime.drill.run import UNDISTURBED, run_drill
    from vmenergy.runtime.scenario import ScenarioError

    kinds = args.kind or list(KINDS)
    base = Path(args.out) if args.out else Path("run") / f"drill-{time.strftime('%Y%m%d-%H%M%S')}"
    results = []
    reference = None
    for kind in ([] if args.no_reference else [UNDISTURBED]) + kinds:
        try:
            result = run_drill(args.scenario, kind, base / kind, seed=args.seed, timeout=args.timeout)
        except ScenarioError as exc:
            print_check(args.scenario, exc.problems, out)
            return 1
        if kind == UNDISTURBED:
            reference = result.result
        elif reference and result.result and not result.skipped:
            result = replace(result, same_as_undisturbed=result.result == reference)
        results.append(result)
        print(result.line(), file=out, flush=True)
        for note in result.notes:
            print(f"  note: {note}", file=out)
        for exc in result.foreign_exceptions:
            print(f"  non-project exception in {exc.log}: {exc.exception} (at {exc.where})", file=out)
    failed = [r.kind for r in results if not r.ok]
    lost = sum(r.items.lost for r in results if r.items is not None)
    print(f"drills: {len(results)} run ({sum(1 for r in results if r.skipped)} skipped), items lost {lost}, "
          f"failed: {', '.join(failed) or 'none'}; run folders in {base}", file=out)
    return 1 if failed else 0


def cmd_swarm(args: argparse.Namespace, out: TextIO) -> int:
    from vmenergy.runtime.lean import skip_embedded_server

    skip_embedded_server()  # before anything imports SPADE: ~40 MiB less per swarm process
    from vmenergy.runtime.logs import setup_logging
    from vmenergy.runtime.swarm import main as swarm_main

    setup_logging(args.log_level)
    return swarm_main(args.plan, args.part)


def cmd_agent(args: argparse.Namespace, out: TextIO) -> int:
    from vmenergy.agents.config import ConfigError, run_agent
    from vmenergy.runtime.logs import setup_logging
    from vmenergy.store import StoreError

    setup_logging(args.log_level)
    try:
        return run_agent(args.role, Path(args.config))
    except ConfigError as exc:
        print(f"INVALID {args.config}: {exc}", file=out)
        return 1
    except StoreError as exc:
        print(f"CANNOT RESTORE the agent's store: {exc}", file=out)
        return 1


def cmd_device(args: argparse.Namespace, out: TextIO) -> int:
    if args.device_command == "emulate":
        from vmenergy.devices.adapters.emulate import emulate_file

        return emulate_file(Path(args.config), out)
    from vmenergy.devices.adapters.probe import probe_file

    return probe_file(Path(args.config), out, device=args.device, timeout=args.timeout)


def cmd_web_token(args: argparse.Namespace, out: TextIO) -> int:
    from vmenergy.agents.web import issue_token
    from vmenergy.flexoffer import FlexOfferError

    try:
        token = issue_token(Path(args.file), args.jid)
    except FlexOfferError as exc:
        print(f"INVALID: {exc}", file=out)
        return 1
    print(token, file=out)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vmenergy",
        description="VME, the Virtual Market of Energy: flex-offers, aggregation, markets and agents.",
    )
    parser.add_argument("--version", action="version", version=f"vmenergy {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("validate", help="check flex-offer and schedule files (JSON, JSON Lines or XML)",
                       description="Check each file; schedules are also checked for feasibility against offers "
                                   "given in the same call. Exit code 1 if anything is invalid.")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--now", type=int, default=None, metavar="INTERVAL",
                   help="interval number taken as 'now' for offers with implicit time flexibility")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("show", help="print a readable summary of a flex-offer or schedule file")
    p.add_argument("file", metavar="FILE")
    p.add_argument("--json", action="store_true", help="print the offer and its measures as JSON")
    p.set_defaults(func=cmd_show)

    p = sub.add_parser("feeder", help="a congestion point's limits from a SimBench feeder (pandapower; optional)",
                       description="Print a day's profile of the headroom at a SimBench feeder's transformer (or "
                                   "--bus), in kWh per 15 minutes, as the limit of a [[dso]] congestion point. "
                                   "Needs pip install 'vmenergy[grid]'.")
    p.add_argument("code", help="SimBench network code, e.g. 1-LV-rural1--0-no_sw")
    p.add_argument("--day", required=True, help="the day (YYYY-MM-DD) whose load profiles set the headroom")
    p.add_argument("--bus", type=int, default=None, help="the congestion point's bus (default: the transformer's LV side)")
    p.add_argument("--max-loading", type=float, default=100.0, help="loading in percent no element may pass")
    p.set_defaults(func=cmd_feeder)

    p = sub.add_parser("demo", help="run the demo swarm on a private XMPP server and print where its report is")
    p.add_argument("--scenario", default=str(Path(__file__).resolve().parents[1] / "scenarios" / "demo.toml"))
    p.add_argument("--out", default=None, metavar="DIR", help="run directory (default run/demo-TIMESTAMP)")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("check", help="check scenario files (or agent node configs) without starting anything",
                       description="Check each scenario file: every table against its schema, the market, "
                                   "aggregator and contract tables with the agents' own code, the rules "
                                   "between tables, the offer templates. No server, no run folder, no "
                                   "network. Prints FILE:LINE: key: reason for each problem; exit code 1 if "
                                   "any file is invalid.")
    p.add_argument("files", nargs="+", metavar="SCENARIO.toml")
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("run", help="run a scenario swarm (agents in processes on a private XMPP server)")
    p.add_argument("scenario", metavar="SCENARIO.toml")
    p.add_argument("--out", default=None, metavar="DIR", help="run directory (default run/NAME-TIMESTAMP)")
    p.add_argument("--timeout", type=float, default=None, help="real seconds before giving up (default: until the scenario's end)")
    p.add_argument("--shard", default="1/1", metavar="K/N",
                   help="run part K of N of the agents on this machine; shard 1 coordinates time and writes "
                        "RUN/join.json, which shards 2..N need (--join)")
    p.add_argument("--join", default=None, metavar="FILE", help="shards 2..N: the join file written by shard 1")
    p.add_argument("--listen", default=None, metavar="HOST:PORT",
                   help="shard 1: where the coordinator listens for the other shards (default 127.0.0.1, any port)")
    p.set_defaults(func=cmd_run)

    from vmenergy.runtime.drill import KINDS

    p = sub.add_parser("drill", help="fault drills on a scenario: kill -9 parts and the server, a bad network, a full disk",
                       description="Run the scenario once per drill on a private server, disturbed at a seeded "
                                   "random scenario time; print items offered/assigned/measured/billed, items "
                                   "lost, exceptions, time to recover and whether the run decided what the "
                                   "undisturbed run decided. Exit code 1 if anything was lost.")
    p.add_argument("scenario", metavar="SCENARIO.toml")
    p.add_argument("--kind", action="append", choices=KINDS, help="a drill to run (repeatable; default: all)")
    p.add_argument("--seed", type=int, default=0, help="draws the fault times, the process killed, the delays")
    p.add_argument("--out", default=None, metavar="DIR", help="folder of the drills' run folders (default run/drill-TIMESTAMP)")
    p.add_argument("--timeout", type=float, default=900, help="real seconds each drill may take")
    p.add_argument("--no-reference", action="store_true",
                   help="skip the undisturbed run the drills' results are compared with")
    p.set_defaults(func=cmd_drill)

    p = sub.add_parser("agent", help="run one agent in the foreground (a box, a server, a systemd unit)")
    p.add_argument("role", choices=("prosumer", "aggregator", "market", "dso"))
    p.add_argument("--config", required=True, metavar="FILE", help="TOML config (examples in agents/<role>/)")
    p.add_argument("--log-level", default="INFO")
    p.set_defaults(func=cmd_agent)

    p = sub.add_parser("device", help="a box's hardware: `vmenergy device probe CONFIG` reads every mapped point once")
    dsub = p.add_subparsers(dest="device_command", metavar="ACTION", required=True)
    q = dsub.add_parser("probe", help="read every mapped register of the box's devices once; print name, value, unit",
                        description="Reads every point of each [[prosumer.hardware]] entry (or [[hardware]] entry) "
                                    "of CONFIG once and prints a table; names the device, its link and what to check "
                                    "when it cannot be read. Exit code 1 if any point could not be read.")
    q.add_argument("config", metavar="CONFIG")
    q.add_argument("--device", default=None, metavar="ID", help="probe only this entry")
    q.add_argument("--timeout", type=float, default=None, metavar="S",
                   help="seconds per request (default: the entry's)")
    q.set_defaults(func=cmd_device)
    q = dsub.add_parser("emulate",
                        help="serve emulated devices for CONFIG's hardware entries (try a box before wiring)",
                        description="Starts emulated devices for each hardware entry of CONFIG: Modbus TCP on "
                                    "127.0.0.1 at the entry's port, Modbus RTU and serial boards on pseudo-terminals "
                                    "linked at the entries' serial_port paths. Runs until interrupted.")
    q.add_argument("config", metavar="CONFIG")
    q.set_defaults(func=cmd_device)
    p = sub.add_parser("web-token", help="add a token for JID to an agent's web token file and print it",
                       description="The token opens the agent's console and REST interface to JID, as the "
                                   "agent's [operators] allow (viewer or controller). The file keeps only a "
                                   "digest of the token (mode 0600); the token is printed once.")
    p.add_argument("file", metavar="TOKENS.json")
    p.add_argument("jid", metavar="JID")
    p.set_defaults(func=cmd_web_token)

    # one process of a run (started by `run`); given no help, argparse leaves it out of the command
    # list (help=SUPPRESS would print "==SUPPRESS==" there)
    p = sub.add_parser("swarm")
    p.add_argument("--plan", required=True)
    p.add_argument("--part", required=True)
    p.add_argument("--log-level", default="INFO")
    p.set_defaults(func=cmd_swarm)

    from vmenergy.runtime.server_cli import add_server_commands

    add_server_commands(sub)
    return parser


def main(argv: Optional[Sequence[str]] = None, out: TextIO = sys.stdout) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help(out)
        return 2
    return int(args.func(args, out))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
