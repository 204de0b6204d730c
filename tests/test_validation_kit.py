"""The validation kit's number rule: a float the domain can compute with, whatever bounds are given."""
import math

import pytest

from vmenergy.errors import VmeError
from vmenergy.validation import Checks


CHECK = Checks(VmeError)


@pytest.mark.parametrize("bounds", [{}, {"minimum": 0}, {"maximum": 10}, {"minimum": -1, "maximum": 1}])
@pytest.mark.parametrize("value", [math.inf, -math.inf])
def test_infinity_is_refused_with_or_without_bounds(bounds, value):
    # with only a minimum, the open upper side used to let +inf through (TradingSettings
    # checked each number twice to make up for it)
    with pytest.raises(VmeError) as raised:
        CHECK.number(value, "trading.flex_cost", **bounds)
    assert raised.value.path == "trading.flex_cost"
    assert "must be finite" in raised.value.reason


def test_a_bound_still_names_the_range():
    with pytest.raises(VmeError) as raised:
        CHECK.number(-0.5, "trading.margin", minimum=0)
    assert raised.value.path == "trading.margin"
    assert "-0.5" in raised.value.reason


def test_a_magnitude_limit_without_bounds_names_the_limit():
    with pytest.raises(VmeError, match="magnitude above 100"):
        CHECK.number(1e3, "x", limit=100)


def test_trading_settings_refuse_an_infinite_cost():
    from vmenergy.protocol.trading import TradingSettings

    with pytest.raises(VmeError) as raised:
        TradingSettings.from_dict({"flex_cost": math.inf})
    assert raised.value.path == "trading.flex_cost"
