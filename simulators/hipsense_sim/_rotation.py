"""Quaternion helpers for the simulators: the core's, plus the minimum-jerk profile."""

import numpy as np
from numpy.typing import NDArray

from hipsense._quat import axis_angle_quat, interval_rates, quat_conj, quat_mul, rotate

__all__ = ["axis_angle_quat", "interval_rates", "min_jerk", "quat_conj", "quat_mul", "rotate"]

F64Array = NDArray[np.float64]


def min_jerk(x: F64Array) -> F64Array:
    """Minimum-jerk position profile from 0 to 1 over x in [0, 1] (clipped outside)."""
    x = np.clip(x, 0.0, 1.0)
    return np.asarray(x**3 * (10.0 - 15.0 * x + 6.0 * x**2), dtype=np.float64)
