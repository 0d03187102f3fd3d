"""Orientation of the sensor: VQF for raw 6-axis input, pass-through for fused quaternions."""

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from vqf import VQF

from hipsense._quat import interval_rates

__all__ = ["OrientationBlock", "OrientationEstimator", "OrientationSettings"]

F64Array = NDArray[np.float64]


@dataclass(frozen=True)
class OrientationSettings:
    """VQF settings; the defaults suit a thigh strap at 25-200 Hz.

    `rest_gyro_dps` is above VQF's default (2 deg/s) because rest is detected on the raw
    gyroscope, bias included, and a cheap gyro's turn-on bias reaches 2-3 deg/s.
    """

    tau_acc_s: float = 3.0
    rest_bias: bool = True
    motion_bias: bool = True
    rest_gyro_dps: float = 3.0
    rest_acc_m_s2: float = 0.5
    bias_clip_dps: float = 5.0


@dataclass(frozen=True, eq=False)
class OrientationBlock:
    """Orientation and angular velocity of a block of samples."""

    quat: F64Array
    """(n, 4) sensor-to-world quaternions (w x y z); heading is arbitrary without a
    magnetometer."""
    gyr_rad_s: F64Array
    """(n, 3) angular velocity in the sensor frame, bias removed where it is known."""


class OrientationEstimator:
    """Turns raw gyroscope + accelerometer blocks, or fused quaternions, into orientation.

    Raw input goes through VQF (`updateBatch`, one compiled loop per block) with its rest
    and motion gyro-bias estimation on; the bias estimate is taken off the gyroscope.
    Quaternion input is used as given; its angular velocity comes from consecutive
    quaternions. Both are sample-sequential, so any split of the stream into blocks
    gives the same output.
    """

    def __init__(self, rate_hz: float, settings: OrientationSettings | None = None) -> None:
        if not rate_hz > 0:
            raise ValueError(f"rate_hz: expected > 0, got {rate_hz}")
        self.rate_hz = float(rate_hz)
        self.settings = settings if settings is not None else OrientationSettings()
        self.reset()

    def reset(self) -> None:
        """Forget the orientation and bias estimates."""
        s = self.settings
        self._vqf = VQF(
            1.0 / self.rate_hz,
            tauAcc=s.tau_acc_s,
            restBiasEstEnabled=s.rest_bias,
            motionBiasEstEnabled=s.motion_bias,
            restThGyr=s.rest_gyro_dps,
            restThAcc=s.rest_acc_m_s2,
            biasClip=s.bias_clip_dps,
        )
        self._last_quat: F64Array | None = None

    def update_raw(self, gyr_rad_s: F64Array, acc_m_s2: F64Array) -> OrientationBlock:
        """Fuse a block of raw samples, (n, 3) each."""
        gyr = np.ascontiguousarray(gyr_rad_s, dtype=np.float64)
        acc = np.ascontiguousarray(acc_m_s2, dtype=np.float64)
        if gyr.shape != acc.shape or gyr.ndim != 2 or gyr.shape[1] != 3:
            raise ValueError(
                f"gyr_rad_s, acc_m_s2: expected two (n, 3) arrays, got {gyr.shape}, {acc.shape}"
            )
        if gyr.shape[0] == 0:
            return OrientationBlock(np.empty((0, 4)), np.empty((0, 3)))
        out = self._vqf.updateBatch(gyr, acc)
        quat = np.asarray(out["quat6D"], dtype=np.float64)
        return OrientationBlock(quat, gyr - np.asarray(out["bias"], dtype=np.float64))

    def update_quat(self, quat: F64Array) -> OrientationBlock:
        """Take a block of fused quaternions, (n, 4) w x y z."""
        q = np.asarray(quat, dtype=np.float64)
        if q.ndim != 2 or q.shape[1] != 4:
            raise ValueError(f"quat: expected an (n, 4) array, got {q.shape}")
        if q.shape[0] == 0:
            return OrientationBlock(np.empty((0, 4)), np.empty((0, 3)))
        q = q / np.linalg.norm(q, axis=1, keepdims=True)
        prev = self._last_quat if self._last_quat is not None else q[:1]
        both = np.concatenate([prev, q])
        rates = interval_rates(both, 1.0 / self.rate_hz)  # rate over the interval ending at each
        self._last_quat = q[-1:].copy()
        return OrientationBlock(q, rates)
