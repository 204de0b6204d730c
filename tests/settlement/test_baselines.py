"""Baselines on hand-made series."""

from __future__ import annotations

import math

import numpy as np

from vmenergy.settlement.baselines import additive_adjustment, comparative_day, x_of_y

NAN = math.nan


def test_x_of_y_high_picks_the_highest_eligible_days():
    days = [[1, 1, 1], [4, 0, 2], [2, 2, NAN], [3, 3, 3], [0, 1, 1]]  # oldest first; totals 3, 6, -, 9, 2
    h = np.array([days], dtype=np.float64)
    np.testing.assert_allclose(x_of_y(h, 2, 5, "high")[0], [3.5, 1.5, 2.5])  # days totalling 9 and 6
    np.testing.assert_allclose(x_of_y(h, 2, 5, "low")[0], [0.5, 1.0, 1.0])  # totals 2 and 3
    # only the last y days count: of [2,2,NaN], [3,3,3], [0,1,1] the best one is [3,3,3]
    np.testing.assert_allclose(x_of_y(h, 1, 3, "high")[0], [3, 3, 3])


def test_x_of_y_with_too_few_eligible_days_uses_what_there_is_or_nothing():
    h = np.array([[[NAN, 1.0], [2.0, 4.0]], [[NAN, 1.0], [1.0, NAN]]])
    out = x_of_y(h, 2, 2, "high")
    np.testing.assert_allclose(out[0], [2.0, 4.0])  # one eligible day
    assert np.isnan(out[1]).all()  # none: no baseline


def test_x_of_y_ties_go_to_the_more_recent_day():
    h = np.array([[[3.0, 0.0], [0.0, 3.0], [1.0, 1.0]]])  # the first two both total 3
    np.testing.assert_allclose(x_of_y(h, 1, 3, "high")[0], [0.0, 3.0])


def test_x_of_y_reads_float32_history():
    h = np.array([[[0.1] * 4, [0.2] * 4]], dtype=np.float32)
    out = x_of_y(h, 1, 2)
    assert out.dtype == np.float64
    np.testing.assert_allclose(out[0], np.float32(0.2))


def test_comparative_day():
    h = np.array([[[1.0, 2.0], [3.0, NAN]]])
    np.testing.assert_array_equal(comparative_day(h, -1)[0], [3.0, NAN])
    np.testing.assert_array_equal(comparative_day(h, 0)[0], [1.0, 2.0])


def test_additive_adjustment_hand_case():
    base = np.array([[1.0] * 6, [1.0] * 6, [1.0] * 6])
    metered = np.array([[1.5, 2.0, 9.0, 1.0, 1.0, 1.0],
                        [1.5, NAN, 9.0, 1.0, 1.0, 1.0],
                        [1.5, 2.0, 9.0, 1.0, 1.0, 1.0]])
    requested = np.array([[0, 0, 0, -1.0, 0, 0],  # first activation at t3: window t0, t1 (gap 1 skips t2)
                          [0, 0, 0, -1.0, 0, 0],  # t1 missing: window is t0 only
                          [0, 0, 0, 0, 0, 0]])  # never activated: no adjustment
    adjusted, shift = additive_adjustment(base, metered, requested, window=2, gap=1)
    np.testing.assert_allclose(shift, [0.75, 0.5, 0.0])  # mean(0.5, 1.0); 0.5; 0
    np.testing.assert_allclose(adjusted[0], 1.75)
    _, capped = additive_adjustment(base, metered, requested, window=2, gap=1, cap_kwh=0.6)
    np.testing.assert_allclose(capped, [0.6, 0.5, 0.0])
    # a window reaching before the period uses the part inside it; a window fully outside: none
    _, early = additive_adjustment(base, metered, np.array([[0, -1.0, 0, 0, 0, 0]] * 3), window=3, gap=0)
    np.testing.assert_allclose(early, [0.5, 0.5, 0.5])
    _, none = additive_adjustment(base, metered, np.array([[-1.0, 0, 0, 0, 0, 0]] * 3), window=2, gap=0)
    np.testing.assert_allclose(none, 0.0)
