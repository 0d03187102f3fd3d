"""Quaternion helpers for the simulators (w x y z, Hamilton convention, numpy)."""

import numpy as np
from numpy.typing import NDArray

__all__ = ["axis_angle_quat", "interval_rates", "min_jerk", "quat_conj", "quat_mul", "rotate"]

F64Array = NDArray[np.float64]


def axis_angle_quat(axis: NDArray[np.float64], angle_rad: F64Array) -> F64Array:
    """Quaternions (n, 4) of rotations by `angle_rad` (n,) about one unit `axis` (3,)."""
    a = np.asarray(axis, dtype=np.float64)
    a = a / np.linalg.norm(a)
    half = 0.5 * np.asarray(angle_rad, dtype=np.float64)
    s = np.sin(half)
    return np.asarray(np.stack([np.cos(half), s * a[0], s * a[1], s * a[2]], axis=-1), np.float64)


def quat_conj(q: F64Array) -> F64Array:
    """Conjugate (the inverse of a unit quaternion)."""
    return np.asarray(q * np.array([1.0, -1.0, -1.0, -1.0]), dtype=np.float64)


def quat_mul(p: F64Array, q: F64Array) -> F64Array:
    """Hamilton product p * q, broadcasting over leading axes."""
    pw, px, py, pz = np.moveaxis(np.asarray(p), -1, 0)
    qw, qx, qy, qz = np.moveaxis(np.asarray(q), -1, 0)
    prod = np.stack(
        [
            pw * qw - px * qx - py * qy - pz * qz,
            pw * qx + px * qw + py * qz - pz * qy,
            pw * qy - px * qz + py * qw + pz * qx,
            pw * qz + px * qy - py * qx + pz * qw,
        ],
        axis=-1,
    )
    return np.asarray(prod, dtype=np.float64)


def rotate(q: F64Array, v: F64Array) -> F64Array:
    """Rotate vectors `v` (..., 3) by unit quaternions `q` (..., 4)."""
    q = np.asarray(q)
    u = q[..., 1:]
    w = q[..., :1]
    t = 2.0 * np.cross(u, v)
    return np.asarray(v + w * t + np.cross(u, t), dtype=np.float64)


def interval_rates(q: F64Array, dt: float) -> F64Array:
    """Body angular rates (n-1, 3), rad/s, over each interval of sensor-to-world `q` (n, 4).

    Exact for a constant rate within the interval (axis times angle over time), in the
    frame of the first quaternion of the interval: what a gyroscope on it measures.
    """
    dq = quat_mul(quat_conj(q[:-1]), q[1:])
    dq *= np.where(dq[:, :1] < 0, -1.0, 1.0)
    vec = np.linalg.norm(dq[:, 1:], axis=1)
    half = np.arctan2(vec, dq[:, 0])
    axis = dq[:, 1:] / np.maximum(vec, 1e-15)[:, None]
    return np.asarray(axis * (2 * half / dt)[:, None], dtype=np.float64)


def min_jerk(x: F64Array) -> F64Array:
    """Minimum-jerk position profile from 0 to 1 over x in [0, 1] (clipped outside)."""
    x = np.clip(x, 0.0, 1.0)
    return np.asarray(x**3 * (10.0 - 15.0 * x + 6.0 * x**2), dtype=np.float64)
