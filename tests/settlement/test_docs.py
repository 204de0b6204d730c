"""The contract examples in docs/settlement.md parse and mean what the page says."""

from __future__ import annotations

import re
from pathlib import Path

from vmenergy.settlement import parse_contracts

DOC = Path(__file__).resolve().parents[2] / "docs" / "settlement.md"


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", DOC.read_text(), flags=re.S)


def test_toml_example_parses():
    (toml,) = _blocks("toml")
    (c,) = parse_contracts(toml)
    assert c.mode == "delegated" and c.baseline.method == "x_of_y" and c.baseline.adjustment.cap_kwh == 0.5
    assert c.reward.revenue_share == 0.5


def test_json_example_parses():
    (text,) = _blocks("json")
    a, b = parse_contracts(text)
    assert (a.mode, a.pricing.source, a.pricing.fee_fraction) == ("direct", "market", 0.2)
    assert (b.pricing.source, b.baseline.method, b.baseline.day, b.baseline.history_days) == (
        "offer", "comparative_day", -7, 7)
