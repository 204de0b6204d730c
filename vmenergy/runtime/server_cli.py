"""``vmenergy server start|stop|status|register``: a private XMPP server from the command line,
and what VME knows of an external one (``status``).

Kept apart from ``vmenergy/cli.py`` so the command line stays a list of thin subcommands;
``vmenergy.cli.build_parser`` calls :func:`add_server_commands`. Each handler takes the parsed
arguments and an output stream and returns the exit code (0 ok, 1 failed), like the others.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TextIO

DEFAULT_DIR = "run/xmpp"


def add_server_commands(subparsers: "argparse._SubParsersAction[argparse.ArgumentParser]") -> argparse.ArgumentParser:
    """Add ``server`` with its four subcommands to a parser's subparsers; returns its parser."""
    server = subparsers.add_parser(
        "server", help="start, stop or inspect a private XMPP server on loopback",
        description="A private XMPP server on 127.0.0.1 in a run directory: generated config, self-signed "
                    "certificate (use DIR/server.crt as CA file), in-band registration closed unless "
                    "--open-registration (make accounts with `vmenergy server register`). "
                    "DIR/server.json records host, port, domain and pid.",
    )
    server.set_defaults(func=lambda args, out: (server.print_help(out), 2)[1])
    sub = server.add_subparsers(dest="server_command", metavar="ACTION")

    p = sub.add_parser("start", help="start a server and wait until it accepts connections")
    p.add_argument("--kind", choices=("prosody", "ejabberd", "embedded"), default="prosody",
                   help="prosody (default), ejabberd, or embedded (SPADE's pyjabber; limited)")
    p.add_argument("--dir", default=DEFAULT_DIR, metavar="DIR", help=f"run directory (default {DEFAULT_DIR})")
    p.add_argument("--domain", default="localhost", help="XMPP domain of the JIDs (default localhost)")
    p.add_argument("--port", type=int, default=None, help="client port (default: a free port)")
    p.add_argument("--open-registration", action="store_true",
                   help="let anyone who reaches the port make an account in-band (development only)")
    p.add_argument("--json", action="store_true", help="print server.json instead of a summary")
    p.set_defaults(func=cmd_server_start)

    p = sub.add_parser("stop", help="stop the server of a run directory (nothing to do is fine)")
    p.add_argument("--dir", default=DEFAULT_DIR, metavar="DIR")
    p.set_defaults(func=cmd_server_stop)

    p = sub.add_parser(
        "status", help="is the server of a run directory running? (exit 1 if not)",
        description="The server recorded in DIR (a private one, or an external one a run used), or, with "
                    "--host, any XMPP server: does it answer, and does its certificate verify? Exit 0 when usable.",
    )
    p.add_argument("--dir", default=DEFAULT_DIR, metavar="DIR")
    p.add_argument("--json", action="store_true", help="print server.json as well")
    p.add_argument("--host", help="probe this external server instead of DIR's")
    p.add_argument("--port", type=int, default=5222, help="with --host: client port (default 5222)")
    p.add_argument("--domain", help="with --host: XMPP domain (default: the host)")
    p.add_argument("--ca-file", default="", metavar="FILE",
                   help="with --host: CA file clients trust (default: the system trust store)")
    p.set_defaults(func=cmd_server_status)

    p = sub.add_parser("register", help="create an account (or reset its password) with the server's tool")
    p.add_argument("--dir", default=DEFAULT_DIR, metavar="DIR")
    p.add_argument("user", metavar="USER", help="local part of the JID (USER@domain)")
    p.add_argument("password", metavar="PASSWORD")
    p.set_defaults(func=cmd_server_register)
    return server


def cmd_server_start(args: argparse.Namespace, out: TextIO) -> int:
    from vmenergy.runtime import servers

    try:
        info = servers.start_server(args.kind, Path(args.dir), domain=args.domain, port=args.port,
                                    registration=args.open_registration)
    except servers.ServerError as exc:
        print(f"ERROR: {exc}", file=out)
        return 1
    if args.json:
        print(info.to_json(), file=out)
        return 0
    print(f"{info.kind} running for domain {info.domain} on {info.host}:{info.port} (pid {info.pid})", file=out)
    print(f"  CA file for clients: {info.ca_file}", file=out)
    print(f"  log: {info.log_path}", file=out)
    print(f"  in-band registration: {'OPEN to anyone who reaches the port' if info.registration else 'closed'}",
          file=out)
    print(f"  stop with: vmenergy server stop --dir {args.dir}", file=out)
    for item in info.limitations:
        print(f"  WARNING (embedded server): {item}", file=out)
    return 0


def cmd_server_stop(args: argparse.Namespace, out: TextIO) -> int:
    from vmenergy.runtime import servers

    try:
        info = servers.read_info(args.dir)
        stopped = servers.stop_server(args.dir)
    except servers.ServerError as exc:
        print(f"ERROR: {exc}", file=out)
        return 1
    if info is not None and info.external:
        print(f"external server {info.host}:{info.port} left running (VME does not stop it)", file=out)
    elif stopped and info is not None:
        print(f"stopped {info.kind} (pid {info.pid}) in {info.run_dir}", file=out)
    else:
        print(f"no server running in {Path(args.dir).resolve()} (not running)", file=out)
    return 0


def cmd_server_status(args: argparse.Namespace, out: TextIO) -> int:
    from vmenergy.runtime import servers

    if args.host:
        reach = servers.check_reachable(args.host, args.port, args.domain or args.host, args.ca_file)
        print(f"external server: {'reachable' if reach.usable else 'NOT reachable'}: {reach.detail}", file=out)
        return 0 if reach.usable else 1
    try:
        st = servers.server_status(args.dir)
    except servers.ServerError as exc:
        print(f"ERROR: {exc}", file=out)
        return 1
    print(st.detail, file=out)
    if st.info is not None:
        print(f"  CA file: {st.info.ca_file or '(system trust store)'}", file=out)
        if st.info.log_path:
            print(f"  log: {st.info.log_path}", file=out)
        for item in st.info.limitations:
            print(f"  WARNING (embedded server): {item}", file=out)
        if args.json:
            print(json.dumps(json.loads(st.info.to_json()), indent=2), file=out)
    return 0 if st.running and st.accepting else 1


def cmd_server_register(args: argparse.Namespace, out: TextIO) -> int:
    from vmenergy.runtime import servers

    try:
        st = servers.server_status(args.dir)
        if st.info is not None and st.info.external:
            servers.register_accounts(st.info, [(args.user, args.password)])  # explains why not
        if st.info is None or not st.running:
            print(f"ERROR: {st.detail}; start it with: vmenergy server start --dir {args.dir}", file=out)
            return 1
        servers.register_accounts(st.info, [(args.user, args.password)])
    except servers.ServerError as exc:
        print(f"ERROR: {exc}", file=out)
        return 1
    print(f"registered {st.info.jid(args.user)}", file=out)
    return 0
