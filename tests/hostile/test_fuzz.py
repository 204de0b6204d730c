"""The fuzz run of every parser (issue 16): mutated documents are refused with the documented
error naming a field, or accepted and round-tripped; never another exception. ``make test``
runs 10^4 cases, ``make drills`` 10^6 (``VME_FUZZ_CASES``); the seed is ``VME_FUZZ_SEED``
(default 0). A failure names the target, seed and case number;
``python -m tests.hostile.fuzz --case SEED N`` replays that one case with its traceback."""

from __future__ import annotations

import os

import pytest

from tests.conftest import ROOT
from tests.hostile import fuzz
from vmenergy.flexoffer import FlexOffer, FlexOfferError
from vmenergy.runtime.scenario.check import check_text
from vmenergy.wire.messages import parse_message

CASES = int(os.environ.get("VME_FUZZ_CASES", "10000"))
SEED = int(os.environ.get("VME_FUZZ_SEED", "0"))


def test_every_parser_refuses_mutated_documents_only_with_its_documented_error():
    report = fuzz.fuzz(CASES, SEED)
    assert report.cases == CASES
    assert not report.failures, f"{report.failed} of {CASES} cases failed (seed {SEED}):\n" + "\n".join(report.failures)
    # the mutations reach past the first check: every target accepted or refused something
    assert {t.name for t in fuzz.targets()} <= set(report.accepted) | set(report.refused)


def test_a_case_is_reproduced_from_its_seed_and_number_alone():
    a = fuzz.case(3, 12_345)
    b = fuzz.case(3, 12_345)
    assert a[0].name == b[0].name and a[1] == b[1]
    assert fuzz.case(3, 12_346)[1] != a[1] or fuzz.case(4, 12_345)[1] != a[1]


# -- what the fuzz run found, each pinned by the input that showed it ----------------------

def test_a_device_parameter_past_a_floats_range_is_a_problem_of_that_parameter():
    """Found: TOML integers are unbounded, and 10**30 raised TypeError in numpy's isfinite."""
    text = (ROOT / "agents" / "foa-box" / "prosumer.toml").read_text().replace("capacity = 64.0", "capacity = " + "9" * 400)
    _, problems = check_text(text, base_dir=ROOT / "scenarios")
    assert any("capacity" in str(p) for p in problems), problems


def test_an_input_file_name_too_long_for_the_file_system_is_a_file_not_found():
    """Found: a 5,000-character input file name raised OSError (ENAMETOOLONG) out of the check."""
    text = (ROOT / "scenarios" / "demo.toml").read_text().replace("inputs/piedmont-2026-11-prices.csv", "p" * 5000 + ".csv")
    _, problems = check_text(text, base_dir=ROOT / "scenarios")
    assert any("prices" in str(p) and "not found" in str(p) for p in problems), problems


def test_an_integer_past_a_floats_range_where_a_number_belongs_is_a_problem_of_that_key():
    """Found: a market's ``tick = 9...9`` (400 digits) raised OverflowError converting to float."""
    text = (ROOT / "agents" / "market" / "market.toml").read_text()
    text = text.replace("tick = 0.5", "tick = " + "9" * 400, 1)
    _, problems = check_text(text, base_dir=ROOT / "scenarios")
    assert any("tick" in str(p) and "finite number" in str(p) for p in problems), problems


def test_a_prosumer_group_of_2_64_is_refused_before_anything_is_drawn_for_it():
    """Found: ``count = 18446744073709551616`` made ``vmenergy check`` draw devices for every
    prosumer until memory ran out (several GB in a minute)."""
    text = (ROOT / "scenarios" / "demo.toml").read_text().replace("count = 6", "count = 18446744073709551616", 1)
    _, problems = check_text(text, base_dir=ROOT / "scenarios")
    assert [p.reason for p in problems if p.path == "prosumers[0].count"] == \
        ["must be <= 1000000, got 18446744073709551616"], problems


def test_a_table_among_the_device_chances_is_a_problem_of_its_key():
    """Found: ``owner = {...}`` moved under ``[prosumers.devices]`` raised TypeError (float of a
    table) while the check asked whether the group has devices."""
    text = (ROOT / "scenarios" / "demo.toml").read_text()
    owner = next(line for line in text.splitlines() if line.startswith("owner = "))
    text = text.replace(owner + "\n", "").replace("[prosumers.devices]", "[prosumers.devices]\n" + owner, 1)
    _, problems = check_text(text, base_dir=ROOT / "scenarios")
    assert any(p.path.startswith("prosumers[0].devices") and "owner" in p.path for p in problems), problems


@pytest.mark.parametrize("text", ['{"": 1, "": 2}', '{"id": "a", "id": "b"}'])
def test_a_duplicate_json_key_is_refused_naming_the_key_even_when_empty(text):
    """Found: a duplicate empty key was refused with an empty path (naming no place)."""
    with pytest.raises(FlexOfferError) as err:
        FlexOffer.from_json(text)
    assert err.value.path and err.value.reason == "duplicate key"


def test_a_long_digit_run_in_an_xml_attribute_is_refused_in_linear_work():
    """Found: the XML float pattern backtracked quadratically; a 4,400-digit ``resolution``
    followed by one letter cost 2 s of CPU per message. A million digits (a quarter of the
    largest document) is refused at once now; the alarm only turns a hang into a failure
    (the quadratic pattern would need hours)."""
    import signal

    text = ('<bid xmlns="urn:vmenergy:flexoffer:1" id="b" session="s" side="buy" volume="1" price="1" '
            'start="2026-11-22T20:00:00Z" end="2026-11-22T22:00:00Z" resolution="' + "9" * 1_000_000 + 'x"/>')

    def hung(*_: object) -> None:
        raise TimeoutError("parsing a digit run did not finish in 60 s")

    old = signal.signal(signal.SIGALRM, hung)
    signal.alarm(60)
    try:
        with pytest.raises(FlexOfferError) as err:
            parse_message(text)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    assert err.value.path == "resolution"
