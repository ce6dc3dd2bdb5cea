"""Isotonic calibration and its metrics."""

from __future__ import annotations

import numpy as np

from stratarouter_core.calibration import (
    IsotonicCalibrator,
    brier_score,
    expected_calibration_error,
)


def test_isotonic_output_is_monotone_in_unit_interval_and_calibrated() -> None:
    rng = np.random.default_rng(0)
    scores = rng.uniform(-3, 3, size=4000)
    truth = 1 / (1 + np.exp(-2 * scores))  # the real P(correct)
    correct = (rng.uniform(size=4000) < truth).astype(float)
    calibrator = IsotonicCalibrator().fit(scores[:2000], correct[:2000])
    grid = np.linspace(-5, 5, 500)
    out = calibrator.transform(grid)
    assert (np.diff(out) >= 0).all() and out.min() >= 0 and out.max() <= 1
    held_out = calibrator.transform(scores[2000:])
    raw = np.clip(scores[2000:] / 6 + 0.5, 0, 1)  # a monotone but uncalibrated map
    assert expected_calibration_error(held_out, correct[2000:]) < 0.03
    assert expected_calibration_error(held_out, correct[2000:]) < expected_calibration_error(
        raw, correct[2000:]
    )


def test_round_trip_keeps_the_map() -> None:
    calibrator = IsotonicCalibrator().fit([0.1, 0.2, 0.6, 0.9], [0, 1, 0, 1])
    again = IsotonicCalibrator.from_dict(calibrator.to_dict())
    np.testing.assert_array_equal(
        again.transform([0.15, 0.5, 2.0]), calibrator.transform([0.15, 0.5, 2.0])
    )


def test_ece_and_brier_on_known_values() -> None:
    assert expected_calibration_error([0.9] * 10, [1] * 9 + [0]) == 0.0
    assert abs(expected_calibration_error([0.9] * 10, [1] * 5 + [0] * 5) - 0.4) < 1e-12
    assert brier_score([1.0, 0.0], [1, 1]) == 0.5
