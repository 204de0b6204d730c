"""agents/foa-box/README.md works as written: its commands (password, account, config, check,
emulated devices, probe, run) are taken from the guide and run, with only the machine-specific
names replaced, against a private Prosody; the box logs in and the aggregator that enrols it sees
it online. The agent's early failures the guide promises (wrong password, unreachable
server, missing password file) are checked too."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT
from vmenergy.agents import AggregatorAgent, ServerAddress
from vmenergy.protocol.aggregator import AggregatorConfig
from vmenergy.runtime.clock import RealClock

pytestmark = pytest.mark.integration

GUIDE = (ROOT / "agents" / "foa-box" / "README.md").read_text()


def guide_blocks() -> dict[str, str]:
    """The guide's commands by step: fenced blocks right after ``<!-- box-guide: NAME -->``."""
    return dict(re.findall(r"<!-- box-guide: (\w+) -->\n```sh\n(.*?)```", GUIDE, flags=re.S))


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Machine:
    """What the test's machine differs in from the guide's: folders, server, device ports."""

    def __init__(self, tmp: Path, server) -> None:
        self.etc, self.var = tmp / "etc", tmp / "var"
        for d in (self.etc, self.var):
            d.mkdir(mode=0o700)
        self.server = server
        self.modbus_port = free_port()
        self.rtu, self.board = tmp / "rtu0", tmp / "board0"
        shutil.copy(server.ca_file, self.etc / "ca.crt")
        self.env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}

    def adapt(self, text: str) -> str:
        s = self.server
        for old, new in (("/etc/vmenergy", str(self.etc)), ("/var/lib/vmenergy", str(self.var)),
                         ("/tmp/vme-rtu0", str(self.rtu)), ("/tmp/vme-board0", str(self.board)),
                         ("xmpp.vme.example.org", s.host), ("vme.example.org", s.domain),
                         ("port = 5222", f"port = {s.port}"), ("port = 5502", f"port = {self.modbus_port}"),
                         ("# ca_file = ", "ca_file = "),
                         ("prosodyctl register", f"prosodyctl --config {s.config_path} register")):
            text = text.replace(old, new)
        return text

    def run(self, block: str, timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run(["bash", "-e", "-c", self.adapt(block)], env=self.env, capture_output=True,
                              text=True, timeout=timeout)

    def start(self, block: str) -> subprocess.Popen:
        command = self.adapt(block).strip().removesuffix("&").strip()
        return subprocess.Popen(["bash", "-c", "exec " + command], env=self.env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)


async def wait_for_line(proc: subprocess.Popen, pattern: str, timeout: float) -> str:
    """The first output line of ``proc`` matching ``pattern`` (read in a thread)."""
    seen: list[str] = []

    def read() -> str:
        for line in proc.stdout:  # type: ignore[union-attr]
            seen.append(line)
            if re.search(pattern, line):
                return line
        raise AssertionError(f"{pattern!r} never came; output:\n{''.join(seen)[-3000:]}")

    return await asyncio.wait_for(asyncio.to_thread(read), timeout)


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(2)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def test_the_box_guide_works_as_written(fresh_xmpp_server, tmp_path):
    steps = guide_blocks()
    assert list(steps) == ["password", "register", "config", "emulate", "probe", "run"]
    server = fresh_xmpp_server("prosody")
    m = Machine(tmp_path, server)
    for step in ("password", "register", "config"):
        done = m.run(steps[step])
        assert done.returncode == 0, f"step {step}:\n{done.stdout}\n{done.stderr}"
    assert (m.etc / "house17.password").stat().st_mode & 0o077 == 0
    assert f"OK {m.etc}/prosumer.toml" in m.run(steps["config"]).stdout  # the check at the end of the step

    jid = server.jid("house17")
    agg = AggregatorAgent(server.jid("aggregator"), "pw-agg", config=AggregatorConfig(enrolment=(jid,)),
                          server=ServerAddress(server.host, server.port, server.ca_file), clock=RealClock(),
                          tick=0.2, store_path=tmp_path / "agg.sqlite")
    await agg.start(auto_register=True)
    emulate = m.start(steps["emulate"])
    box = None
    try:
        await wait_for_line(emulate, r"^ready", 60)
        probe = m.run(steps["probe"])
        assert probe.returncode == 0, probe.stdout + probe.stderr
        assert re.search(r"current_limit\s+32\s+A", probe.stdout)
        assert "heatpump: modbus rtu" in probe.stdout and "heater: serial" in probe.stdout
        box = m.start(steps["run"])
        await wait_for_line(box, r"event=started role=prosumer", 60)
        # the box is on the server, logged in, and its aggregator sees it (its first offers come at
        # the next quarter hour: the device models work on whole intervals)
        deadline = time.monotonic() + 60
        while agg.engine.ledger.get("presence", jid) is not True:
            assert time.monotonic() < deadline, "the aggregator never saw the box online"
            assert box.poll() is None, "the agent stopped"
            await asyncio.sleep(0.2)
    except AssertionError:
        if box is not None:
            stop(box)
            raise AssertionError(box.stdout.read()[-4000:])
        raise
    finally:
        if box is not None:
            stop(box)
        stop(emulate)
        await agg.stop()
    assert box.returncode in (0, -2)

    # the failures the guide promises: within seconds, naming what is wrong
    config = m.etc / "prosumer.toml"
    (m.etc / "house17.password").write_text("not-the-password\n")
    wrong = subprocess.run(["vmenergy", "agent", "prosumer", "--config", str(config)], env=m.env,
                           capture_output=True, text=True, timeout=300)  # a guard against a hang, not a measure
    assert wrong.returncode == 2
    assert f"authentication failed at {server.host}:{server.port}" in wrong.stderr
    (m.etc / "house17.password").unlink()
    missing = subprocess.run(["vmenergy", "agent", "prosumer", "--config", str(config)], env=m.env,
                             capture_output=True, text=True, timeout=60)
    assert missing.returncode == 1 and f"{m.etc}/house17.password" in missing.stdout
    config.write_text(config.read_text().replace(f"port = {server.port}", f"port = {free_port()}"))
    (m.etc / "house17.password").write_text("x\n")
    (m.etc / "house17.password").chmod(0o600)
    gone = subprocess.run(["vmenergy", "agent", "prosumer", "--config", str(config)], env=m.env,
                          capture_output=True, text=True, timeout=60)
    assert gone.returncode == 2 and re.search(rf"cannot connect to {server.host}:\d+: .*refused", gone.stderr)
