"""Quaternion helpers (w x y z, Hamilton convention, numpy), shared by core and simulator."""

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "axis_angle_quat",
    "dot3",
    "interval_rates",
    "lmul_apply",
    "lmul_matrix",
    "plane_frame",
    "quat_conj",
    "quat_from_columns",
    "quat_lmul",
    "quat_mul",
    "rotate",
    "rotation_vector",
    "twist_swing_plane",
]

F64Array = NDArray[np.float64]

# Up to this many rows `lmul_apply` builds all 16 products at once (fewer calls); for
# more, four passes over the rows touch less memory.
_FEW_ROWS = 32


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


def quat_lmul(p: F64Array, q: F64Array) -> F64Array:
    """Hamilton product p * q of one quaternion p (4,) with each row of q (n, 4).

    As `quat_mul`, as a 4x4 matrix applied row by row: seven array operations instead
    of thirty, with a fixed order of additions whatever the number of rows.
    """
    return lmul_apply(lmul_matrix(p), q)


def lmul_matrix(p: F64Array) -> F64Array:
    """The 4x4 matrix of left multiplication by p, for `lmul_apply`."""
    pw, px, py, pz = (float(v) for v in p)
    return np.array(
        [
            [pw, -px, -py, -pz],
            [px, pw, -pz, py],
            [py, pz, pw, -px],
            [pz, -py, px, pw],
        ]
    )


def lmul_apply(m: F64Array, q: F64Array) -> F64Array:
    """The product p * q for each row of q (n, 4), with m = `lmul_matrix(p)`."""
    q = np.asarray(q, dtype=np.float64)
    # Both ways add the four products of each element in order, c = 0 to 3, whatever the
    # number of rows: the same bits (a matmul may group them differently by block size,
    # which streaming output must not see).
    if q.shape[0] <= _FEW_ROWS:
        # Two array operations instead of seven: for a short block the calls cost more
        # than the arithmetic. Summed over an outer axis, numpy adds term by term.
        return np.asarray((q[:, :, None] * m.T).sum(axis=1), dtype=np.float64)
    out = q[:, 0:1] * m[:, 0]
    out += q[:, 1:2] * m[:, 1]
    out += q[:, 2:3] * m[:, 2]
    out += q[:, 3:4] * m[:, 3]
    return np.asarray(out, dtype=np.float64)


def plane_frame(basis: F64Array, p: F64Array | None = None) -> F64Array:
    """The (4, 4) map of `twist_swing_plane`: pose q to (w, v . axis, v . e1, v . e2).

    `basis` (3, 3) has rows axis, e1, e2 = axis x e1: a unit axis and the plane at right
    angles to it. With `p`, the map is of p * q (p * q measured in one linear step, e.g.
    a pose relative to a reference, p the reference's conjugate).
    """
    m = np.zeros((4, 4))
    m[0, 0] = 1.0
    m[1:, 1:] = basis
    return m if p is None else np.asarray(m @ lmul_matrix(p), dtype=np.float64)


def twist_swing_plane(
    q: F64Array, frame: F64Array, unit: float = 1.0
) -> tuple[F64Array, F64Array, F64Array]:
    """Twist angle (n,), swing angle (n,) and swing rotation vector (n, 2).

    In radians times `unit` (180 / pi gives degrees at no extra cost).

    `frame` is `plane_frame(basis)` or `plane_frame(basis, p)` (then of p * q): the
    axis, and the plane at right angles to it. The swing-twist decomposition
    q = swing * twist, twist about the axis:
    the twist angle (in [-pi, pi]) is 2 atan2(q_v . axis, q_w), whatever the swing; the
    swing is what is left, given with which way it goes: its rotation vector in e1, e2.
    Two poses tilted the same amount to opposite sides are twice that apart. The vector
    part of swing = q * conj(twist) is (w v_perp - proj (v x axis)) / |(w, proj)|, whose
    components are w (v.e1) - proj (v.e2) and w (v.e2) + proj (v.e1); the same for q
    and -q.
    """
    # The four components at once, element-wise (the same bits however many rows).
    p = lmul_apply(frame, q)
    w, proj, p1, p2 = p[:, 0], p[:, 1], p[:, 2], p[:, 3]
    # q and -q are the same rotation: the one with w >= 0 gives a twist in [-pi, pi].
    sign = np.copysign(1.0, w)
    twist = np.arctan2(proj * sign, w * sign)
    twist *= 2.0 * unit
    x = w * p1 - proj * p2
    y = w * p2 + proj * p1
    norm = np.hypot(x, y)
    # norm / (w^2 + proj^2) is tan(swing / 2): exact at any size, unlike an arccos.
    swing = np.arctan2(norm, w * w + proj * proj)
    swing *= 2.0 * unit
    scale = swing / np.maximum(norm, 1e-15)
    xy = np.empty((q.shape[0], 2))
    np.multiply(x, scale, out=xy[:, 0])
    np.multiply(y, scale, out=xy[:, 1])
    return twist, swing, xy


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


def rotation_vector(q: F64Array) -> F64Array:
    """Axis times angle (rad) of each unit quaternion in `q` (n, 4), angle in [0, pi]."""
    sign = np.where(q[:, :1] < 0, -1.0, 1.0)
    vec = q[:, 1:] * sign
    norm = np.sqrt(vec[:, 0] ** 2 + vec[:, 1] ** 2 + vec[:, 2] ** 2)
    angle = 2.0 * np.arctan2(norm, q[:, 0] * sign[:, 0])
    return np.asarray(vec * (angle / np.maximum(norm, 1e-15))[:, None], np.float64)
