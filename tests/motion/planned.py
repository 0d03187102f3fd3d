"""Planned thigh streams for the motion core's tests: an angle about an axis, exactly.

A rep is a minimum-jerk movement out, a hold, a minimum-jerk movement back and a rest.
The sensor is turned on the thigh by a fixed rotation; its accelerometer reads gravity
(no linear acceleration), its gyroscope the body rate plus a bias, both with noise.
"""

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from hipsense._quat import axis_angle_quat, quat_conj, quat_mul, rotate

F64 = NDArray[np.float64]
G = 9.80665


def min_jerk(x: F64) -> F64:
    x = np.clip(x, 0.0, 1.0)
    return np.asarray(x**3 * (10.0 - 15.0 * x + 6.0 * x**2))


@dataclass(frozen=True)
class Rep:
    rom_deg: float
    out_s: float = 1.5
    hold_s: float = 1.0
    back_s: float = 1.5
    rest_s: float = 1.5
    base_deg: float = 0.0
    """The level it starts from and returns to."""


def angle(
    reps: list[Rep], rate_hz: float, *, lead_s: float = 2.0, tail_s: float = 2.0
) -> tuple[F64, F64, list[dict[str, float]]]:
    """Times, the planned angle (deg), and each rep's planned start, top, leave, end."""
    total = lead_s + sum(r.out_s + r.hold_s + r.back_s + r.rest_s for r in reps) + tail_s
    t = np.arange(0.0, total, 1.0 / rate_hz)
    theta = np.zeros_like(t)
    plan = []
    start = lead_s
    level = reps[0].base_deg if reps else 0.0
    theta[:] = level
    for r in reps:
        top, leave, end = (
            start + r.out_s,
            start + r.out_s + r.hold_s,
            start + r.out_s + r.hold_s + r.back_s,
        )
        up = (r.base_deg + r.rom_deg - level) * min_jerk((t - start) / r.out_s)
        down = -r.rom_deg * min_jerk((t - leave) / r.back_s)
        theta += np.where(t >= start, up, 0.0) + np.where(t >= leave, down, 0.0)
        plan.append(
            {"start_s": start, "top_s": top, "leave_s": leave, "end_s": end, "rom_deg": r.rom_deg}
        )
        level = r.base_deg
        start = end + r.rest_s
    return t, theta, plan


def stream(
    t: F64,
    theta_deg: F64,
    *,
    axis_world: tuple[float, float, float] = (1.0, 0.0, 0.0),
    seed: int = 0,
    gyro_bias_dps: tuple[float, float, float] = (0.0, 0.0, 0.0),
    gyro_walk_dps_sqrt_s: float = 0.0,
    gyro_noise_dps: float = 0.05,
    acc_noise_m_s2: float = 0.01,
    start_pose: F64 | None = None,
) -> tuple[F64, F64]:
    """Raw gyroscope (rad/s) and accelerometer (m/s^2) of the sensor turning by theta
    about a world axis, mounted at a random rotation (seeded)."""
    rng = np.random.default_rng(seed)
    axis = np.asarray(axis_world, dtype=np.float64)
    axis /= np.linalg.norm(axis)
    m = rng.normal(size=4)
    mount = m / np.linalg.norm(m)
    pose0 = np.array([1.0, 0.0, 0.0, 0.0]) if start_pose is None else start_pose
    q = quat_mul(axis_angle_quat(axis, np.radians(theta_deg)), quat_mul(pose0, mount))
    acc = rotate(quat_conj(q), np.broadcast_to([0.0, 0.0, G], (t.shape[0], 3)))
    rate_deg = np.gradient(theta_deg, t)
    w_world = np.radians(rate_deg)[:, None] * axis
    gyr = rotate(quat_conj(q), w_world)
    dt = float(np.median(np.diff(t)))
    walk = np.cumsum(rng.normal(0.0, gyro_walk_dps_sqrt_s * np.sqrt(dt), (t.shape[0], 3)), axis=0)
    gyr = gyr + np.radians(np.asarray(gyro_bias_dps) + walk)
    gyr = gyr + np.radians(rng.normal(0.0, gyro_noise_dps, gyr.shape))
    acc = acc + rng.normal(0.0, acc_noise_m_s2, acc.shape)
    return np.asarray(gyr), np.asarray(acc)
