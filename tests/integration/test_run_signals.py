"""``vmenergy run`` stopped by a signal (Ctrl-C in its terminal, ``kill``, systemd or docker
stop, a closed terminal) stops every process and its private XMPP server and still writes the
report of what happened so far. Before, SIGTERM killed the orchestrator outright and left its
private Prosody running."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is gone for our purpose (its parent has not reaped it yet)
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split(")")[-1].split()[0] != "Z"


def _as_in_a_terminal() -> None:
    # A test suite started in the background (`cmd &` in a script, nohup) inherits SIGINT and
    # SIGQUIT ignored, and so would the run: a program must keep an inherited "ignore" (Python
    # then installs no KeyboardInterrupt), so Ctrl-C could not reach it. The run here is started
    # as from a terminal, whatever started the suite.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGQUIT, signal.SIG_DFL)


def _scenario(tmp_path: Path) -> Path:
    # accelerated time, so the run is still going when the signal comes (nothing here waits on
    # a duration: the test signals after the run said it started, and waits for the exit)
    text = (ROOT / "scenarios" / "demo.toml").read_text()
    text = text.replace('seed = 7', 'seed = 7\nclock = "accelerated"\nspeed = 10', 1)
    text = text.replace('name = "demo"', 'name = "signalled"', 1)
    path = tmp_path / "signalled.toml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP], ids=lambda s: s.name)
def test_a_signalled_run_stops_its_server_and_writes_its_report(tmp_path, sig):
    run_dir = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "vmenergy", "run", str(_scenario(tmp_path)), "--out",
                             str(run_dir)], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"}, preexec_fn=_as_in_a_terminal)
    seen: list[str] = []
    try:
        for line in proc.stdout:  # the run says when its agents are started; then it is running
            seen.append(line)
            if line.startswith("["):
                break
        else:
            pytest.fail("the run ended before it started: " + "".join(seen)[-3000:])
        server = json.loads((run_dir / "xmpp" / "server.json").read_text())
        assert _alive(server["pid"])
        proc.send_signal(sig)
        rest, _ = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    output = "".join(seen) + rest
    assert proc.returncode == 130, output[-3000:]
    assert "interrupted: stopping every process" in output
    assert (run_dir / "report.html").is_file(), output[-3000:]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["outcome"]["stopped_by"] == "interrupted"
    assert not _alive(server["pid"]), "the private XMPP server outlived the run"
