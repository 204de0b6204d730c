"""A slice of plain numbers takes a quick path through its checks: whatever the numbers, it accepts
and refuses exactly what the field-by-field checks accept and refuse, with the same values."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from vmenergy.flexoffer import FlexOfferError, Slice
from vmenergy.flexoffer.errors import check
from vmenergy.flexoffer.limits import MAX_SLICE_DURATION

numbers = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.floats(-1e13, 1e13), st.just(-0.0),
                    st.integers(-10, 10), st.booleans())
durations = st.one_of(st.integers(-2, MAX_SLICE_DURATION + 2), st.booleans(), st.just(2.0))


def field_by_field(d, lo, hi):
    """The checks of Slice one field at a time: the normalised fields, or the error's reason."""
    try:
        d = check.integer(d, "duration", maximum=MAX_SLICE_DURATION)
        if d < 1:
            return "duration"
        lo, hi = check.number(lo, "min"), check.number(hi, "max")
        return "order" if lo > hi else (d, lo, hi)
    except FlexOfferError as exc:
        return exc.path


@given(durations, numbers, numbers)
def test_a_slice_accepts_and_refuses_what_its_field_checks_do(d, lo, hi):
    expected = field_by_field(d, lo, hi)
    try:
        s = Slice(d, lo, hi)
    except FlexOfferError as exc:
        assert isinstance(expected, str), (d, lo, hi, exc)
        assert exc.path == ("" if expected == "order" else expected)
        return
    assert not isinstance(expected, str), (d, lo, hi)
    assert (s.duration, s.min, s.max) == expected
    assert type(s.duration) is int and type(s.min) is float and type(s.max) is float
    assert math.copysign(1, s.min) == math.copysign(1, expected[1])
