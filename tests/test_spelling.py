"""One spelling per value everywhere: market mechanisms and pricing are hyphenated words in the
config, the wire, the report, the docs and the examples, and the other spelling is refused."""

from __future__ import annotations

import re

import pytest

from tests.conftest import ROOT
from vmenergy.flexoffer import FlexOfferError
from vmenergy.market import (ImplicitCapacity, ManyToMany, MarketError, MarketSession, OneSidedPool, Pricing,
                             TwoSidedPool)
from vmenergy.protocol.market import MECHANISMS, MarketConfig

VALUES = ("one-sided", "two-sided", "many-to-many", "implicit-capacity", "pay-as-bid", "uniform")
UNDERSCORED = re.compile(r"\b(one_sided|two_sided|many_to_many|implicit_capacity|pay_as_bid)\b")


def test_the_market_names_its_mechanisms_and_pricing_with_hyphens():
    names = {OneSidedPool("b", 1.0, 0.1).name, TwoSidedPool().name, ManyToMany().name, ImplicitCapacity(["z"]).name}
    assert names == {"one-sided", "two-sided", "many-to-many", "implicit-capacity"}
    assert {p.value for p in Pricing} == {"uniform", "pay-as-bid"}
    assert set(MECHANISMS) <= set(VALUES)


def test_the_session_notice_carries_the_configured_spelling():
    from vmenergy.protocol.market import MarketEngine

    engine = MarketEngine("market@x", MarketConfig(liquidity={"sell": {"volume": 1.0, "prices": [0.1] * 24}}))
    engine.on_tick(3600)
    (rec,) = engine.ledger.values("sessions")
    assert rec.notice.mechanism == "many-to-many"


@pytest.mark.parametrize("kwargs, path", [({"pricing": "pay_as_bid"}, "pricing"),
                                          ({"mechanism": "many_to_many"}, "mechanism")])
def test_the_underscored_spelling_is_refused(kwargs, path):
    with pytest.raises(FlexOfferError) as info:
        MarketConfig(**kwargs)
    assert info.value.path == path
    with pytest.raises(MarketError):
        MarketSession("s", TwoSidedPool(), delivery_start=0, delivery_end=4, pricing="pay_as_bid")


def test_no_file_of_the_tree_writes_a_value_with_underscores():
    """Python names (``pay_as_bid=True``, ``def many_to_many``) are not values; strings,
    configs and docs are."""
    offenders = []
    for path in ROOT.rglob("*"):
        if path.suffix not in (".md", ".toml", ".py", ".json", ".html", ".txt") or any(
                part in (".venv", ".git", "build", "run", ".hypothesis") for part in path.relative_to(ROOT).parts):
            continue
        if path.relative_to(ROOT).parts[0] == "tests" or not path.is_file():
            continue  # tests write the other spelling on purpose, to see it refused
        for n, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            if "did you mean" in line:  # an example of the refusal
                continue
            for m in UNDERSCORED.finditer(line):
                quoted = line[max(0, m.start() - 1):m.start()] in ("'", '"', "`")
                if path.suffix != ".py" or quoted:
                    offenders.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()}")
    assert offenders == []
