"""A standing server that someone else runs (kind "external"): VME records where it is, probes
it and connects to it, and never starts, stops or configures it."""

from __future__ import annotations

from pathlib import Path

from .info import EXTERNAL, ServerInfo, write_info


def external_server(host: str, port: int, domain: str, ca_file: str = "", run_dir: Path | str = "") -> ServerInfo:
    """The ServerInfo of an external server. ``ca_file`` "" means the system trust store;
    ``run_dir`` is where the run records it (see :func:`record_external`), "" for none."""
    return ServerInfo(
        kind=EXTERNAL, domain=domain, host=host, port=int(port), pid=0, ca_file=str(ca_file), log_path="",
        run_dir=str(Path(run_dir).resolve()) if run_dir else "",
    )


def record_external(info: ServerInfo, run_dir: Path | str) -> ServerInfo:
    """Write ``run_dir/server.json`` for an external server, so the run folder says which server
    it used and ``vmenergy server status|stop --dir`` work as for a private one (stop leaves it
    alone)."""
    run_dir = Path(run_dir).resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    info.run_dir = str(run_dir)
    write_info(info, run_dir)
    return info
