"""The vmenergy command line: validate and show, in-process and as the installed console script."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import EXAMPLES, ROOT
from vmenergy import __version__
from vmenergy.cli import main

EXAMPLE_FILES = sorted(p for p in EXAMPLES.iterdir() if p.suffix in (".json", ".xml"))


def run(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    rc = main(list(argv), out=out)
    return rc, out.getvalue()


def test_examples_cover_the_device_kinds_the_project_promises():
    names = {p.stem for p in EXAMPLE_FILES}
    for kind in ("ev-overnight", "heatpump-polytope", "pv-producer", "dishwasher-xor", "battery-dependency"):
        assert kind in names


def test_validate_accepts_every_example():
    rc, out = run("validate", *map(str, EXAMPLE_FILES))
    assert rc == 0, out
    assert out.count("\nOK ") + out.startswith("OK ") == len(EXAMPLE_FILES)
    assert "feasible for fo-ev-17" in out
    assert out.rstrip().endswith("valid")


@pytest.mark.parametrize(
    "content, expected",
    [
        ('{"id": "x", "profiles": [{"slices": [{"duration": 1, "min": 2, "max": 1}]}]}', "profiles[0].slices[0]: min > max"),
        ('{"id": "x", "profiles": []}', "profiles: at least one profile"),
        ('{"id": "x", "resolution": 900, "start_after": "yesterday", "profiles": [{"slices": [{"duration": 1, "min": 0, "max": 1}]}]}',
         "start_after: not an ISO 8601 UTC time"),
        ("{not json", "(document): malformed JSON"),
        ('<flexoffer xmlns="urn:vmenergy:flexoffer:1" id="x"><profile><slice duration="1" min="0" max="one"/></profile></flexoffer>',
         "profiles[0].slices[0].max: not a number"),
    ],
)
def test_validate_rejects_bad_files_naming_the_field(tmp_path, content, expected):
    f = tmp_path / ("bad.xml" if content.startswith("<") else "bad.json")
    f.write_text(content)
    good = EXAMPLES / "pv-producer.json"
    rc, out = run("validate", str(good), str(f))
    assert rc == 1
    assert f"INVALID {f}: {expected}" in out
    assert f"OK {good}" in out


def test_validate_reports_infeasible_schedule_against_its_offer(tmp_path):
    s = json.loads((EXAMPLES / "ev-overnight-schedule.json").read_text())
    s["energy"][1] = 12.0
    f = tmp_path / "s.json"
    f.write_text(json.dumps(s))
    rc, out = run("validate", str(EXAMPLES / "ev-overnight.json"), str(f))
    assert rc == 1 and "INFEASIBLE" in out and "energy[1]: 12 kWh is above the slice max 11 kWh" in out


def test_validate_reads_json_lines_one_document_per_line_and_names_a_bad_line(tmp_path):
    offer = json.loads((EXAMPLES / "ev-overnight.json").read_text())
    schedule = json.loads((EXAMPLES / "ev-overnight-schedule.json").read_text())
    f = tmp_path / "run.jsonl"
    f.write_text(json.dumps(offer) + "\n\n" + json.dumps(schedule) + "\n")
    rc, out = run("validate", str(f))
    assert rc == 0 and f"(feasible for {offer['id']})" in out and "all 2 item(s)" in out
    f.write_text(json.dumps(offer) + "\n" + json.dumps({**schedule, "energy": "lots"}) + "\n")
    rc, out = run("validate", str(f))
    assert rc == 1 and f"INVALID {f}: line 2" in out


def test_validate_missing_file(tmp_path):
    rc, out = run("validate", str(tmp_path / "nope.json"))
    assert rc == 1 and "cannot read" in out


def test_show_prints_window_slices_and_flexibility():
    rc, out = run("show", str(EXAMPLES / "ev-overnight.json"))
    assert rc == 0
    assert "window             start 2026-11-22T22:00:00Z .. 2026-11-23T03:00:00Z" in out
    assert "time flexibility   20 intervals (5 h)" in out
    assert "energy flexibility 44 kWh" in out
    assert "total energy in [30, 40] kWh" in out
    rc, out = run("show", "--json", str(EXAMPLES / "dishwasher-xor.json"))
    data = json.loads(out)
    assert data["measures"]["time_flexibility"] == 36 and len(data["offer"]["profiles"]) == 2


def test_help_and_version():
    rc, out = run()
    assert rc == 2 and "validate" in out and "show" in out
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0


def test_console_script_end_to_end():
    exe = shutil.which("vmenergy", path=str(Path(sys.executable).parent))
    cmd = [exe] if exe else [sys.executable, "-m", "vmenergy"]
    p = subprocess.run([*cmd, "--version"], capture_output=True, text=True, cwd=ROOT)
    assert p.returncode == 0 and p.stdout.strip() == f"vmenergy {__version__}"
    p = subprocess.run([*cmd, "validate", *map(str, EXAMPLE_FILES)], capture_output=True, text=True, cwd=ROOT)
    assert p.returncode == 0, p.stdout + p.stderr
    p = subprocess.run([*cmd, "validate", str(ROOT / "tests/vectors/invalid/zero-duration.json")],
                       capture_output=True, text=True, cwd=ROOT)
    assert p.returncode == 1 and "profiles[0].slices[2].duration" in p.stdout


def test_run_reports_a_bad_scenario_naming_the_field(tmp_path):
    f = tmp_path / "bad.toml"
    f.write_text('[scenario]\nname = "x"\nstart = "2026-11-22T18:00:00Z"\nuntil = "2026-11-22T17:00:00Z"\n'
                 '[[aggregator]]\nname = "a"\n[[prosumers]]\ncount = 1\naggregator = "a"\noffers = []\n')
    rc, out = run("run", str(f), "--out", str(tmp_path / "run"))
    assert rc == 1 and "scenario.until: must be after scenario.start" in out
    f.write_text('[scenario]\nstart = "2026-11-22T18:00:00Z"\nuntil = "2026-11-23T17:00:00Z"\n[[aggregator]]\n'
                 'name = "a"\n[[prosumers]]\ncount = 1\naggregator = "b"\noffers = []\n')
    rc, out = run("run", str(f), "--out", str(tmp_path / "run2"))
    assert rc == 1 and 'prosumers[0].aggregator: no aggregator named "b"' in out


def test_help_lists_the_user_commands_and_hides_the_internal_one(capsys):
    """`swarm` is one process of a run, started by `run`: a newcomer's command list must not show
    it, nor argparse's "==SUPPRESS==" marker that `help=SUPPRESS` prints for a sub-command."""
    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    assert "SUPPRESS" not in text
    listed = {line.split()[0] for line in text.splitlines() if line.startswith("    ") and line.split()}
    assert {"validate", "show", "demo", "check", "run", "drill", "agent", "device", "server"} <= listed
    assert "swarm" not in listed
