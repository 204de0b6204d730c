"""The example node configs in agents/ load and build the agents they describe (no server)."""

from __future__ import annotations

import pytest

from tests.conftest import ROOT
from vmenergy.agents.config import ConfigError, build, load_config

CONFIGS = {
    "prosumer": ROOT / "agents" / "foa-box" / "prosumer.toml",
    "aggregator": ROOT / "agents" / "aggregator" / "aggregator.toml",
    "market": ROOT / "agents" / "market" / "market.toml",
}


@pytest.mark.parametrize("role", sorted(CONFIGS))
def test_example_config_builds_its_agent(role, tmp_path):
    data = load_config(CONFIGS[role])
    data["agent"].pop("password_file")
    data["agent"]["password"] = "example"
    data["agent"]["store"] = str(tmp_path / "store.sqlite")
    if role == "prosumer":
        data["prosumer"]["offers"] = [str(ROOT / "scenarios" / "examples" / "ev-overnight.json")]
        inputs = data["prosumer"]["inputs"]  # the box's forecast files, here the shipped ones
        inputs["weather"] = str(ROOT / "scenarios" / "inputs" / "piedmont-2026-11-weather.csv")
        inputs["prices"] = str(ROOT / "scenarios" / "inputs" / "piedmont-2026-11-prices.csv")
    agent = build(role, data)
    assert agent.role == role and str(agent.jid) == data["agent"]["jid"]
    assert agent.server.port == 5222
    assert agent.spade_metadata is False  # no SPADE metadata form on the wire unless asked for
    if role == "prosumer":
        assert [fo.id for _, fo in agent.initial_offers] == ["fo-ev-17"]
        # its devices make offers too, with ids the box's name makes unique at the aggregator
        assert [d.id for d in agent.source.devices] == ["house17-hp", "house17-car", "house17-house"]
        # its hardware carries out the schedules, telling the models what it was asked to do
        from vmenergy.devices.adapters.executor import HardwareExecutor

        assert isinstance(agent.executor, HardwareExecutor) and agent.executor.fleet is agent.source
        assert sorted(agent.executor.devices) == ["heatpump", "wallbox"]
        assert agent.executor.on_fault is not None  # faults go to the aggregator
        # a box without hardware: its models carry out the schedules themselves
        del data["prosumer"]["hardware"]
        assert build(role, data).executor.__class__.__name__ == "DeviceFleet"


def test_a_box_whose_forecast_files_are_missing_says_which(tmp_path):
    data = load_config(CONFIGS["prosumer"])
    data["agent"]["password"] = "example"
    data["agent"]["store"] = str(tmp_path / "store.sqlite")
    with pytest.raises(ConfigError) as err:
        build("prosumer", data)
    assert err.value.path == "prosumer.inputs.weather" and "cannot read" in err.value.reason


def test_a_box_device_with_a_bad_parameter_is_refused_naming_it(tmp_path):
    text = CONFIGS["prosumer"].read_text().replace("power = 3.0", "power = -3.0")
    f = tmp_path / "p.toml"
    f.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_config(f)
    assert err.value.path == "prosumer.devices[0].power"


@pytest.mark.parametrize(
    "mutate, path",
    [
        (lambda d: d["aggregator"].update(upstream="sideways"), "aggregator.upstream"),
        (lambda d: d["aggregator"].update(colour="red"), "aggregator"),
        (lambda d: d.pop("aggregator"), "aggregator"),
        (lambda d: d["agent"].pop("password"), "agent.password"),
        (lambda d: d["agent"].update(spade_metadata="yes"), "agent.spade_metadata"),
    ],
)
def test_bad_configs_name_the_key(tmp_path, mutate, path):
    import tomllib

    data = tomllib.loads(CONFIGS["aggregator"].read_text())
    data["_dir"] = str(tmp_path)
    data["agent"].pop("password_file")
    data["agent"]["password"] = "x"
    mutate(data)
    with pytest.raises(ConfigError) as info:
        build("aggregator", data)
    assert info.value.path == path


def test_unknown_section_in_a_file(tmp_path):
    f = tmp_path / "x.toml"
    f.write_text("[agent]\njid='a@b'\n[bogus]\n")
    with pytest.raises(ConfigError) as info:
        load_config(f)
    assert info.value.path == "bogus"
    f.write_text("not = [toml")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(f)


@pytest.mark.parametrize("start", ['"2026-11-22T18:00:00Z"', "2026-11-22T18:00:00Z"])
def test_an_accelerated_node_clock_starts_where_its_config_says(tmp_path, start):
    """A quoted ISO 8601 string or a TOML date-time: both mean the same instant."""
    f = tmp_path / "node.toml"
    f.write_text(f'[agent]\njid = "n@localhost"\npassword = "pw"\n[clock]\nkind = "accelerated"\nstart = {start}\n'
                 'speed = 60\n[aggregator]\nupstream = "plan"\nenrolment = "open"\n')
    f.chmod(0o600)  # it holds a password
    agent = build("aggregator", load_config(f))
    assert agent.clock.mode == "accelerated" and agent.clock.start == 1795370400


def test_a_node_clock_without_a_time_zone_is_refused(tmp_path):
    f = tmp_path / "node.toml"
    f.write_text('[agent]\njid = "n@localhost"\npassword = "pw"\n[clock]\nkind = "accelerated"\n'
                 'start = 2026-11-22T18:00:00\n[aggregator]\nupstream = "plan"\nenrolment = "open"\n')
    f.chmod(0o600)
    with pytest.raises(ConfigError) as info:
        build("aggregator", load_config(f))
    assert info.value.path.startswith("clock")


def test_a_password_others_can_read_is_refused(tmp_path):
    """Finding 4 of issue 16: no secret in a file others can read."""
    f = tmp_path / "node.toml"
    f.write_text('[agent]\njid = "n@localhost"\npassword = "pw"\n[aggregator]\nupstream = "plan"\nenrolment = "open"\n')
    f.chmod(0o644)
    with pytest.raises(ConfigError, match="chmod 600") as info:
        load_config(f)
    assert info.value.path == "agent.password"
    f.chmod(0o600)
    secret = tmp_path / "pw.txt"
    secret.write_text("pw\n")
    secret.chmod(0o640)
    f.write_text('[agent]\njid = "n@localhost"\npassword_file = "pw.txt"\n[aggregator]\nupstream = "plan"\nenrolment = "open"\n')
    with pytest.raises(ConfigError, match="chmod 600") as info:
        build("aggregator", load_config(f))
    assert info.value.path == "agent.password_file"
    secret.chmod(0o600)
    assert build("aggregator", load_config(f)).password == "pw"


@pytest.mark.parametrize("role, key", [("aggregator", "enrolment"), ("market", "registration")])
def test_who_may_take_part_must_be_written_down(tmp_path, role, key):
    """Deny by default (issue 16, finding 5): a node config that does not say who may send it
    offers (or register) is refused, naming the key; "open" is accepted when written."""
    f = tmp_path / "node.toml"
    table = {"aggregator": 'upstream = "plan"\n', "market": 'mechanism = "many-to-many"\n'}[role]
    f.write_text(f'[agent]\njid = "n@localhost"\npassword_file = "pw"\n[{role}]\n{table}')
    with pytest.raises(ConfigError) as info:
        load_config(f)
    assert info.value.path == f"{role}.{key}"
    f.write_text(f'[agent]\njid = "n@localhost"\npassword_file = "pw"\n[{role}]\n{table}{key} = "open"\n')
    assert load_config(f)[role][key] == "open"


def test_a_node_set_to_send_spade_metadata_sends_it_and_the_check_refuses_a_non_boolean(tmp_path):
    text = CONFIGS["aggregator"].read_text().replace("# spade_metadata = true", "spade_metadata = true")
    f = tmp_path / "agg.toml"
    f.write_text(text.replace('password_file = "/etc/vmenergy/aggregator.password"', 'password = "pw"')
                 .replace('store = "/var/lib/vmenergy/aggregator.sqlite"', f'store = "{tmp_path / "a.sqlite"}"'))
    f.chmod(0o600)
    assert build("aggregator", load_config(f)).spade_metadata is True
    f.write_text(f.read_text().replace("spade_metadata = true", 'spade_metadata = "true"'))
    with pytest.raises(ConfigError) as info:
        load_config(f)
    assert info.value.path == "agent.spade_metadata" and "true or false" in info.value.reason
