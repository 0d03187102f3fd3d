"""Render what a thigh-worn IMU measures during a scenario: recording plus ground truth."""

import asyncio
import copy
import functools
import json
import math
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from hipsense.exercises import Exercise, load_library
from hipsense.protocol import StreamFormat, quantize_quat, quantize_raw
from hipsense.recording import Recording, write_recording

from ._link import Delivery, transmit
from ._motion import Motion, build_motion, stream_motion
from ._rotation import axis_angle_quat, quat_mul
from ._sampling import GridSampler, Heading, ImuErrors
from ._spec import ScenarioSpec

__all__ = ["SimulationResult", "simulate"]

F64Array = NDArray[np.float64]
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
    exercise: Exercise = field(repr=False)
    """The exercise simulated (the motion is built again from it)."""
    grid_hz: float
    """The rate of the motion grid the sensor sampled."""

    @functools.cached_property
    def motion(self) -> Motion:
        """The thigh's motion on the grid, with its truth.

        Not kept by `simulate` (a 2-hour session is about 180 MB of grid): built again on
        first use from the spec's seed, the very rows the sensor sampled.
        """
        rng = np.random.default_rng(self.spec.seed)
        return build_motion(self.spec, self.exercise, self.grid_hz, rng)

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


def simulate(spec: ScenarioSpec, exercise: Exercise | None = None) -> SimulationResult:
    """Simulate a scenario. Deterministic: the same spec gives the same result.

    The motion grid goes through in pieces and is not kept (a 2-hour session at 100 Hz
    stays under 200 MB); `SimulationResult.motion` builds it again when asked for.
    """
    ex = exercise if exercise is not None else load_library()[spec.exercise]
    imu = spec.imu
    rng = np.random.default_rng(spec.seed)
    grid_hz = float(max(400, 4 * imu.rate_hz))
    # The motion is laid out twice: once for its length, its truth and the generator's
    # state after it (what the sensor model draws next), once to feed the sampler. Each
    # pass draws the same, so the second one gets the grid of the first.
    rng_motion = copy.deepcopy(rng)
    n_grid, motion_truth = stream_motion(spec, ex, grid_hz, rng, _drop)
    t_end_s = np.float64(n_grid - 1) / grid_hz  # the grid's last instant

    # The sensor samples on its own clock: `drift` fast, with jitter in each instant.
    drift = imu.clock_drift_ppm * 1e-6
    period = 1.0 / imu.rate_hz
    n = int(t_end_s * (1 + drift) / period)
    sensor_s = np.arange(n, dtype=np.float64) * period
    true_s = sensor_s / (1 + drift)
    if imu.sample_jitter_us and not imu.noise_free:
        true_s = true_s + rng.normal(0, imu.sample_jitter_us * 1e-6, n)
    true_s = np.clip(true_s, 0, t_end_s)
    # The sensor's digital filter averages its internal samples over each output period:
    # motion faster than the output rate is attenuated, not aliased.
    width = 1 if imu.noise_free else max(1, round(grid_hz / imu.rate_hz))
    errors = ImuErrors(imu, n, rng)
    heading = Heading(n, period, rng) if imu.quaternion else None
    fmt = StreamFormat(imu.rate_hz, imu.accel_range_g, imu.gyro_range_dps)
    counts = np.empty((n, 6), dtype=np.int16)
    # Without noise the readings are not quantized: the floats are the recording.
    exact = np.empty((n, 6)) if imu.noise_free else None
    quat = np.empty((n, 4)) if imu.quaternion else None
    quat_q14 = np.empty((n, 4), dtype=np.int16) if imu.quaternion else None

    def take(k0: int, w: F64Array, f: F64Array, q_true: F64Array | None) -> None:
        k1 = k0 + w.shape[0]
        gyr, acc = errors.apply(w, f)
        counts[k0:k1] = quantize_raw(acc, gyr, fmt)
        if exact is not None:
            exact[k0:k1, :3], exact[k0:k1, 3:] = acc, gyr
        if q_true is not None and heading is not None and quat is not None:
            q_true /= np.linalg.norm(q_true, axis=1, keepdims=True)
            # On-sensor fusion without a magnetometer: heading wanders slowly.
            z = np.array([0.0, 0.0, 1.0])
            q = quat_mul(axis_angle_quat(z, np.deg2rad(heading.take(k1 - k0))), q_true)
            quat[k0:k1] = q
            if quat_q14 is not None:
                quat_q14[k0:k1] = quantize_quat(q)

    sampler = GridSampler(n_grid, grid_hz, true_s, width, imu.quaternion, take)
    stream_motion(spec, ex, grid_hz, rng_motion, sampler.feed)
    sampler.finish()
    del sampler
    sensor_us = np.round(sensor_s * 1e6).astype(np.int64)
    delivery = transmit(counts, quat_q14, sensor_us, true_s, spec.link, rng)
    metadata = {
        "source": "hipsense simulator",
        "scenario": spec.name,
        "exercise": ex.id,
        "seed": str(spec.seed),
        "rate_hz": str(imu.rate_hz),
        "accel_range_g": str(imu.accel_range_g),
        "gyro_range_dps": str(imu.gyro_range_dps),
    }
    keep: slice | NDArray[np.bool_] = delivery.received
    if delivery.received.all():
        keep = slice(None)  # every sample arrived: the arrays themselves, not copies
    if exact is not None:
        acc, gyr = exact[keep, :3].copy(), exact[keep, 3:].copy()
    else:
        acc = counts[keep, :3].astype(np.float64)
        acc *= fmt.accel_lsb_m_s2
        gyr = counts[keep, 3:].astype(np.float64)
        gyr *= fmt.gyro_lsb_rad_s
    rec = Recording(
        time_s=sensor_s[keep],
        acc_m_s2=acc,
        gyr_rad_s=gyr,
        quat=None if quat is None or not delivery.kind.has_quat else quat[keep],
        metadata=metadata,
    )
    truth = _truth(spec, ex, motion_truth, t_end_s, drift)
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
    return SimulationResult(spec, rec, counts, sensor_us, delivery, truth, ex, grid_hz)


def _drop(_q_ws: F64Array, _pos_m: F64Array, _primary_deg: F64Array) -> None:
    """A grid sink that keeps nothing."""


def _truth(
    spec: ScenarioSpec, ex: Exercise, t: dict[str, Any], t_end_s: np.float64, drift: float
) -> dict[str, Any]:
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

    return {
        "truth_version": TRUTH_VERSION,
        "scenario": spec.name,
        "exercise": ex.id,
        "variant": spec.variant,
        "kind": ex.kind.value,
        "seed": spec.seed,
        "rate_hz": spec.imu.rate_hz,
        "duration_s": round(t_end_s * (1 + drift), 6),
        "rep_count": len(t["reps"]),
        "hold_count": len(t["holds"]),
        "reps": on_sensor_clock(t["reps"]),
        "holds": on_sensor_clock(t["holds"]),
        "sets": on_sensor_clock(t["sets"]),
        "non_exercise": on_sensor_clock(t["non_exercise"]),
        "side_switches": on_sensor_clock(t["side_switches"]),
        "spec": spec.model_dump(mode="json"),
    }
