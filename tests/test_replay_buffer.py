"""ReplayBuffer: compact storage of ended trajectories."""

import warnings

import numpy as np

from sona_web.trajectory import ReplayBuffer


def _add(buffer: ReplayBuffer, target) -> None:
    buffer.add(np.ones(4, dtype=np.float32), 1.0, 0, -1, 0.0, target, False)


def test_step_target_round_trips_within_int8_precision():
    buffer = ReplayBuffer(4, 4)
    target = np.array([0.5, -1.0, 0.25, 0.0], dtype=np.float32)
    _add(buffer, target)
    restored = buffer.target_rows(np.array([0]))[0]
    assert np.allclose(restored, target, atol=1.0 / 127)


def test_tiny_step_target_stored_as_zeros():
    # max |target| / 127 is below the smallest float32, so the scale rounds
    # to 0; storing must neither divide by zero nor warn.
    buffer = ReplayBuffer(4, 4)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _add(buffer, np.full(4, 1e-45, dtype=np.float32))
    assert np.array_equal(buffer.target_rows(np.array([0]))[0], np.zeros(4))
