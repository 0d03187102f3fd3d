"""Render what a thigh-worn IMU measures during a scenario: recording plus ground truth."""

import asyncio
import json
import math
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from hipsense.exercises import Exercise, load_library
from hipsense.protocol import StreamFormat, quantize_quat, quantize_raw
from hipsense.recording import Recording, write_recording

from ._link import Delivery, transmit
from ._motion import Motion, body_rates, build_motion
from ._rotation import axis_angle_quat, quat_mul
from ._spec import ImuSpec, ScenarioSpec

__all__ = ["SimulationResult", "simulate"]

F64Array = NDArray[np.float64]
_G = 9.80665
TRUTH_VERSION = 1


@dataclass(eq=False)
class SimulationResult:
    """A simulated session: what the sensor sampled, what the host received, the truth."""

    spec: ScenarioSpec
    recording: Recording
    """What the host received: samples lost on the link are missing (time jumps)."""
    raw_counts: NDArray[np.int16]
    """(n, 6) accelerometer and gyroscope counts of every sample the sensor took."""
    sensor_time_us: NDArray[np.int64]
    """The sensor's own timestamps of each sample (its clock drifts)."""
    delivery: Delivery
    """The native-protocol packets as they arrive at the host, and what was lost."""
    truth: dict[str, Any]
    motion: Motion

    def write(self, recording_path: str | Path, truth_path: str | Path | None = None) -> None:
        """Write the recording CSV and, if asked, the truth JSON."""
        write_recording(recording_path, self.recording)
        if truth_path is not None:
            Path(truth_path).write_text(json.dumps(self.truth, indent=1) + "\n")

    async def packets(self, speed: float = 1.0) -> AsyncIterator[tuple[float, bytes]]:
        """Yield `(arrival_s, packet)` as a host would receive them.

        `speed` 1 is real time, 10 ten times faster; `math.inf` sends everything at once
        (still yielding to the event loop between packets). `arrival_s` is on the
        session's time axis, not scaled.
        """
        if not speed > 0:
            raise ValueError(f"speed: expected > 0, got {speed}")
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        for arrival, packet in zip(self.delivery.arrival_s, self.delivery.packets, strict=True):
            if math.isfinite(speed):
                delay = t0 + float(arrival) / speed - loop.time()
                await asyncio.sleep(max(0.0, delay))
            else:
                await asyncio.sleep(0)
            yield float(arrival), packet


def _interp(t_grid: F64Array, values: F64Array, t: F64Array) -> F64Array:
    return np.stack([np.interp(t, t_grid, values[:, k]) for k in range(values.shape[1])], axis=1)


def simulate(spec: ScenarioSpec, exercise: Exercise | None = None) -> SimulationResult:
    """Simulate a scenario. Deterministic: the same spec gives the same result."""
    ex = exercise if exercise is not None else load_library()[spec.exercise]
    imu = spec.imu
    rng = np.random.default_rng(spec.seed)
    grid_hz = float(max(400, 4 * imu.rate_hz))
    motion = build_motion(spec, ex, grid_hz, rng)
    w_grid, f_grid = body_rates(motion)
    t_grid = motion.t_s

    # The sensor samples on its own clock: `drift` fast, with jitter in each instant.
    drift = imu.clock_drift_ppm * 1e-6
    period = 1.0 / imu.rate_hz
    n = int(t_grid[-1] * (1 + drift) / period)
    sensor_s = np.arange(n, dtype=np.float64) * period
    true_s = sensor_s / (1 + drift)
    if imu.sample_jitter_us and not imu.noise_free:
        true_s = true_s + rng.normal(0, imu.sample_jitter_us * 1e-6, n)
    true_s = np.clip(true_s, 0, t_grid[-1])
    if not imu.noise_free:
        # The sensor's digital filter averages its internal samples over each output
        # period: motion faster than the output rate is attenuated, not aliased.
        width = max(1, round(grid_hz / imu.rate_hz))
        w_grid, f_grid = _causal_mean(w_grid, width), _causal_mean(f_grid, width)
    w = _interp(t_grid, w_grid, true_s)
    f = _interp(t_grid, f_grid, true_s)
    gyr, acc = _imu_errors(imu, w, f, rng)
    fmt = StreamFormat(imu.rate_hz, imu.accel_range_g, imu.gyro_range_dps)
    counts = quantize_raw(acc, gyr, fmt)
    if not imu.noise_free:
        acc = counts[:, :3].astype(np.float64) * fmt.accel_lsb_m_s2
        gyr = counts[:, 3:].astype(np.float64) * fmt.gyro_lsb_rad_s
    quat = None
    quat_q14 = None
    if imu.quaternion:
        q_true = _interp(t_grid, motion.q_ws, true_s)
        q_true /= np.linalg.norm(q_true, axis=1, keepdims=True)
        # On-sensor fusion without a magnetometer: heading wanders slowly.
        heading = np.cumsum(rng.normal(0, 0.02, n)) * np.sqrt(period)
        quat = quat_mul(axis_angle_quat(np.array([0.0, 0.0, 1.0]), np.deg2rad(heading)), q_true)
        quat_q14 = quantize_quat(quat)
    sensor_us = np.round(sensor_s * 1e6).astype(np.int64)
    delivery = transmit(counts, quat_q14, sensor_us, true_s, spec.link, rng)
    if not delivery.kind.has_quat:
        quat = None
    metadata = {
        "source": "hipsense simulator",
        "scenario": spec.name,
        "exercise": ex.id,
        "seed": str(spec.seed),
        "rate_hz": str(imu.rate_hz),
        "accel_range_g": str(imu.accel_range_g),
        "gyro_range_dps": str(imu.gyro_range_dps),
    }
    keep = delivery.received
    rec = Recording(
        time_s=sensor_s[keep],
        acc_m_s2=acc[keep],
        gyr_rad_s=gyr[keep],
        quat=None if quat is None else quat[keep],
        metadata=metadata,
    )
    truth = _truth(spec, ex, motion, drift)
    truth["gaps"] = [
        {
            "start_s": round(float(sensor_s[g["first_sample"]]), 6),
            "end_s": round(float(sensor_s[g["last_sample"]]), 6),
            "lost_samples": g["last_sample"] - g["first_sample"] + 1,
            "cause": g["cause"],
        }
        for g in delivery.gaps
    ]
    truth["link"] = {"packets_sent": delivery.sent, "packets_delivered": len(delivery.packets)}
    return SimulationResult(spec, rec, counts, sensor_us, delivery, truth, motion)


def _causal_mean(values: F64Array, width: int) -> F64Array:
    """Mean over the last `width` grid samples (fewer at the start)."""
    if width <= 1:
        return values
    c = np.cumsum(values, axis=0)
    out = c.copy()
    out[width:] = c[width:] - c[:-width]
    counts = np.minimum(np.arange(1, values.shape[0] + 1), width)[:, None]
    return np.asarray(out / counts, dtype=np.float64)


def _imu_errors(
    imu: ImuSpec, w: F64Array, f: F64Array, rng: np.random.Generator
) -> tuple[F64Array, F64Array]:
    if imu.noise_free:
        return w, f
    n = w.shape[0]
    rate = imu.rate_hz
    deg = np.pi / 180
    # White noise over the filter bandwidth from the datasheet densities.
    bw = imu.noise_bandwidth_hz or rate / 2
    gyro_sigma = imu.gyro_noise_dps_sqrt_hz * deg * np.sqrt(bw)
    acc_sigma = imu.accel_noise_ug_sqrt_hz * 1e-6 * _G * np.sqrt(bw)
    gyro_bias = rng.normal(0, imu.gyro_bias_dps * deg, 3)
    if imu.gyro_bias_xyz_dps is not None:
        # The random one is still drawn: the noise after it stays the same draws.
        gyro_bias = np.array(imu.gyro_bias_xyz_dps) * deg
    walk = np.cumsum(
        rng.normal(0, imu.gyro_bias_walk_dps_sqrt_s * deg * np.sqrt(1 / rate), (n, 3)), axis=0
    )
    acc_bias = rng.normal(0, imu.accel_bias_mg * 1e-3 * _G, 3)
    g_scale = 1 + rng.normal(0, imu.scale_error, 3)
    a_scale = 1 + rng.normal(0, imu.scale_error, 3)
    gyr = w * g_scale + gyro_bias + walk + rng.normal(0, gyro_sigma, (n, 3))
    acc = f * a_scale + acc_bias + rng.normal(0, acc_sigma, (n, 3))
    return gyr, acc


def _truth(spec: ScenarioSpec, ex: Exercise, motion: Motion, drift: float) -> dict[str, Any]:
    # Instants and durations are put on the recording's time axis (the sensor clock), so
    # they compare directly with what is measured from the recording.
    def on_sensor_clock(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        out = []
        for item in items:
            row = dict(item)
            for key, value in item.items():
                if key.endswith("_s"):
                    row[key] = round(value * (1 + drift), 6)
                elif isinstance(value, float):
                    row[key] = round(value, 6)
            out.append(row)
        return out

    t = motion.truth
    return {
        "truth_version": TRUTH_VERSION,
        "scenario": spec.name,
        "exercise": ex.id,
        "variant": spec.variant,
        "kind": ex.kind.value,
        "seed": spec.seed,
        "rate_hz": spec.imu.rate_hz,
        "duration_s": round(motion.t_s[-1] * (1 + drift), 6),
        "rep_count": len(t["reps"]),
        "hold_count": len(t["holds"]),
        "reps": on_sensor_clock(t["reps"]),
        "holds": on_sensor_clock(t["holds"]),
        "sets": on_sensor_clock(t["sets"]),
        "non_exercise": on_sensor_clock(t["non_exercise"]),
        "side_switches": on_sensor_clock(t["side_switches"]),
        "spec": spec.model_dump(mode="json"),
    }
