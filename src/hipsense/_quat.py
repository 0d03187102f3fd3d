"""Quaternion helpers (w x y z, Hamilton convention, numpy), shared by core and simulator."""

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "axis_angle_quat",
    "dot3",
    "fixed_matmul3",
    "interval_rates",
    "quat_conj",
    "quat_from_columns",
    "quat_mul",
    "rotate",
]

F64Array = NDArray[np.float64]


def axis_angle_quat(axis: NDArray[np.float64], angle_rad: F64Array) -> F64Array:
    """Quaternions (n, 4) of rotations by `angle_rad` (n,) about one unit `axis` (3,)."""
    a = np.asarray(axis, dtype=np.float64)
    a = a / np.linalg.norm(a)
    half = 0.5 * np.asarray(angle_rad, dtype=np.float64)
    s = np.sin(half)
    return np.asarray(np.stack([np.cos(half), s * a[0], s * a[1], s * a[2]], axis=-1), np.float64)


def quat_from_columns(x: F64Array, y: F64Array, z: F64Array) -> F64Array:
    """Quaternion of the rotation whose matrix columns are x, y, z."""
    m = np.stack([x, y, z], axis=1)
    w = np.sqrt(max(0.0, 1.0 + m[0, 0] + m[1, 1] + m[2, 2])) / 2.0
    if w > 1e-6:
        return np.array(
            [
                w,
                (m[2, 1] - m[1, 2]) / (4 * w),
                (m[0, 2] - m[2, 0]) / (4 * w),
                (m[1, 0] - m[0, 1]) / (4 * w),
            ]
        )
    # 180 degree turn: take the axis from the largest diagonal element.
    i = int(np.argmax(np.diag(m)))
    j, k = (i + 1) % 3, (i + 2) % 3
    v = np.zeros(3)
    v[i] = np.sqrt(max(0.0, 1.0 + m[i, i] - m[j, j] - m[k, k])) / 2.0
    v[j] = (m[j, i] + m[i, j]) / (4 * v[i])
    v[k] = (m[k, i] + m[i, k]) / (4 * v[i])
    return np.array([(m[k, j] - m[j, k]) / (4 * v[i]), *v])


def quat_conj(q: F64Array) -> F64Array:
    """Conjugate (the inverse of a unit quaternion)."""
    return np.asarray(q * np.array([1.0, -1.0, -1.0, -1.0]), dtype=np.float64)


def quat_mul(p: F64Array, q: F64Array) -> F64Array:
    """Hamilton product p * q, broadcasting over leading axes."""
    p = np.asarray(p, dtype=np.float64)
    q = np.asarray(q, dtype=np.float64)
    pw, px, py, pz = p[..., 0], p[..., 1], p[..., 2], p[..., 3]
    qw, qx, qy, qz = q[..., 0], q[..., 1], q[..., 2], q[..., 3]
    out = np.empty(np.broadcast_shapes(p.shape, q.shape), dtype=np.float64)
    out[..., 0] = pw * qw - px * qx - py * qy - pz * qz
    out[..., 1] = pw * qx + px * qw + py * qz - pz * qy
    out[..., 2] = pw * qy - px * qz + py * qw + pz * qx
    out[..., 3] = pw * qz + px * qy - py * qx + pz * qw
    return out


def rotate(q: F64Array, v: F64Array) -> F64Array:
    """Rotate vectors `v` (..., 3) by unit quaternions `q` (..., 4)."""
    q = np.asarray(q)
    u = q[..., 1:]
    w = q[..., :1]
    t = 2.0 * np.cross(u, v)
    return np.asarray(v + w * t + np.cross(u, t), dtype=np.float64)


def interval_rates(q: F64Array, dt: float | F64Array) -> F64Array:
    """Body angular rates (n-1, 3), rad/s, over each interval of sensor-to-world `q` (n, 4).

    `dt` is the intervals' duration: one for all, or one each (n-1,).

    Exact for a constant rate within the interval (axis times angle over time), in the
    frame of the first quaternion of the interval: what a gyroscope on it measures.
    """
    dq = quat_mul(quat_conj(q[:-1]), q[1:])
    dq *= np.where(dq[:, :1] < 0, -1.0, 1.0)
    vec = np.linalg.norm(dq[:, 1:], axis=1)
    half = np.arctan2(vec, dq[:, 0])
    axis = dq[:, 1:] / np.maximum(vec, 1e-15)[:, None]
    return np.asarray(axis * (2 * half / dt)[:, None], dtype=np.float64)


def dot3(v: F64Array, axis: F64Array) -> F64Array:
    """Row-wise dot product with a fixed 3-vector, in a fixed order.

    `v @ axis` goes through BLAS, whose summation order may depend on the number of
    rows; streaming code needs the same bits whatever the block size.
    """
    return np.asarray(v[:, 0] * axis[0] + v[:, 1] * axis[1] + v[:, 2] * axis[2], np.float64)


def fixed_matmul3(v: F64Array, m: F64Array) -> F64Array:
    """Rows (n, 3) times a 3x3 matrix, each element summed in a fixed order.

    `v @ m` takes another path for a single row than for many (numpy 2.4 with OpenBLAS
    0.3.31 differs in the last bit), so a stream cut into one-sample blocks would not
    match the whole.
    """
    return np.asarray(v[:, 0:1] * m[0] + v[:, 1:2] * m[1] + v[:, 2:3] * m[2], np.float64)
