"""Orientation of the sensor: VQF for raw 6-axis input, pass-through for fused quaternions."""

import itertools
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

    VQF takes 1.5 s as rest when the gyroscope strays from its own 0.5 s low-pass by less
    than `rest_gyro_dps` and the low-passed rate, bias included, stays under
    `bias_clip_dps`, and then takes that rate as the bias. Both are above VQF's defaults
    (2 deg/s) because a cheap gyro's turn-on bias reaches 2-3 deg/s; lower ones measured
    worse on the simulator suite. The price: a steady rotation slower than the clip (the
    last of a slow eccentric lowering) can pass for rest and leak into the bias, which
    tilts the orientation by a few degrees over a long set of slow reps.
    """

    tau_acc_s: float = 3.0
    rest_bias: bool = True
    motion_bias: bool = True
    rest_gyro_dps: float = 3.0
    rest_acc_m_s2: float = 0.5
    bias_clip_dps: float = 5.0
    bridge_gap_s: float = 0.5
    """Samples lost over up to this long are bridged: VQF integrates through them
    (gyroscope and accelerometer interpolated between the samples either side). After
    a longer gap the inclination is taken afresh from the accelerometer."""


@dataclass(frozen=True, eq=False)
class OrientationBlock:
    """Orientation and angular velocity of a block of samples."""

    quat: F64Array
    """(n, 4) sensor-to-world quaternions (w x y z); heading is arbitrary without a
    magnetometer."""
    gyr_rad_s: F64Array
    """(n, 3) angular velocity in the sensor frame, bias removed where it is known."""
    bias_sigma_rad_s: F64Array | None = None
    """(n,) uncertainty (1 sigma) of the gyro bias estimate taken off, for raw input;
    None for fused quaternions (their fusion handled the bias). Until the bias is known
    the heading drifts at the bias, which the accelerometer cannot see."""


class OrientationEstimator:
    """Turns raw gyroscope + accelerometer blocks, or fused quaternions, into orientation.

    Raw input goes through VQF (`updateBatch`, one compiled loop per block) with its rest
    and motion gyro-bias estimation on; the bias estimate is taken off the gyroscope.
    Quaternion input is used as given; its angular velocity comes from consecutive
    quaternions. Both are sample-sequential, so any split of the stream into blocks
    gives the same output.

    Given the samples' times, lost samples are accounted for. A raw stream's orientation
    is integrated from the gyroscope, so rotation while samples were missing would be
    lost: short gaps are bridged, and after a long one the accelerometer's low-pass is
    restarted so the inclination is right at once instead of ~3 tau later (the heading
    cannot be recovered without a magnetometer). Rates from fused quaternions are taken
    over the real interval between them.
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
        self._last_t: float | None = None
        self._last_raw: F64Array | None = None  # the last raw sample, gyr and acc (6,)

    def _missing(self, t_s: F64Array | None, n: int) -> NDArray[np.int64] | None:
        """Samples lost before each of the block's n samples (None: none, or no times)."""
        if t_s is None:
            return None
        t = np.asarray(t_s, dtype=np.float64)
        if t.shape != (n,):
            raise ValueError(f"t_s: expected {n} times, got shape {t.shape}")
        first = float(t[0]) if self._last_t is None else self._last_t
        self._last_t = float(t[-1])
        longest = float(t[0]) - first
        if n > 1:
            longest = max(longest, float((t[1:] - t[:-1]).max()))
        if longest * self.rate_hz < 1.5:
            # No interval is long enough to hold a lost sample (the usual case, told
            # without per-sample rounding).
            return None
        prev = np.concatenate([[first], t[:-1]])
        steps = np.rint((t - prev) * self.rate_hz).astype(np.int64)
        return np.asarray(np.maximum(steps - 1, 0), dtype=np.int64)

    def update_raw(
        self, gyr_rad_s: F64Array, acc_m_s2: F64Array, t_s: F64Array | None = None
    ) -> OrientationBlock:
        """Fuse a block of raw samples, (n, 3) each, taken at `t_s` (n,) if given."""
        gyr = np.ascontiguousarray(gyr_rad_s, dtype=np.float64)
        acc = np.ascontiguousarray(acc_m_s2, dtype=np.float64)
        if gyr.shape != acc.shape or gyr.ndim != 2 or gyr.shape[1] != 3:
            raise ValueError(
                f"gyr_rad_s, acc_m_s2: expected two (n, 3) arrays, got {gyr.shape}, {acc.shape}"
            )
        n = gyr.shape[0]
        if n == 0:
            return OrientationBlock(np.empty((0, 4)), np.empty((0, 3)), np.empty(0))
        missing = self._missing(t_s, n)
        before = self._last_raw
        self._last_raw = np.concatenate([gyr[-1], acc[-1]])
        if missing is None:
            out = self._vqf.updateBatch(gyr, acc)
            quat = np.asarray(out["quat6D"], dtype=np.float64)
            return OrientationBlock(
                quat,
                gyr - np.asarray(out["bias"], dtype=np.float64),
                np.asarray(out["biasSigma"], dtype=np.float64),
            )
        raw = np.concatenate([gyr, acc], axis=1)
        last = raw[0] if before is None else before
        quat = np.empty((n, 4))
        bias = np.empty((n, 3))
        sigma = np.empty(n)
        long_gap = missing > round(self.settings.bridge_gap_s * self.rate_hz)
        cuts = [0, *np.flatnonzero(long_gap).tolist(), n]
        for a, b in itertools.pairwise(cuts):
            if a == b:
                continue
            if long_gap[a]:
                self._restart_inclination()
            prev = last if a == 0 else raw[a - 1]
            q, bb, sb = self._bridged(raw[a:b], prev, np.where(long_gap[a:b], 0, missing[a:b]))
            quat[a:b], bias[a:b], sigma[a:b] = q, bb, sb
        return OrientationBlock(quat, gyr - bias, sigma)

    def _bridged(
        self, raw: F64Array, prev: F64Array, missing: NDArray[np.int64]
    ) -> tuple[F64Array, F64Array, F64Array]:
        """VQF over `raw` (m, 6) with `missing[i]` samples interpolated before row i.

        Returns the real rows' orientation, bias and bias uncertainty (rad/s).
        """
        counts = missing + 1
        total = int(counts.sum())
        # Row i is preceded by missing[i] rows on the straight line from the row before it.
        owner = np.repeat(np.arange(raw.shape[0]), counts)
        pos = np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts) + 1
        frac = (pos / np.repeat(counts, counts))[:, None]
        before = np.concatenate([prev[None, :], raw[:-1]])
        # Measured from the real row back: at frac 1 that is the real row to the bit
        # (before + 1 * (raw - before) may not be), as a block without gaps feeds it.
        after = raw[owner]
        filled = after - (1.0 - frac) * (after - before[owner])
        out = self._vqf.updateBatch(
            np.ascontiguousarray(filled[:, :3]), np.ascontiguousarray(filled[:, 3:])
        )
        real = np.cumsum(counts) - 1
        quat = np.asarray(out["quat6D"], dtype=np.float64)[real]
        return (
            quat,
            np.asarray(out["bias"], dtype=np.float64)[real],
            np.asarray(out["biasSigma"], dtype=np.float64)[real],
        )

    def _restart_inclination(self) -> None:
        # VQF corrects the inclination toward its low-passed accelerometer (time constant
        # tau_acc); restarting that filter makes the next sample's gravity the reference.
        state = self._vqf.state
        state["accLpState"] = [float("nan")] * len(state["accLpState"])
        self._vqf.state = state

    def update_quat(self, quat: F64Array, t_s: F64Array | None = None) -> OrientationBlock:
        """Take a block of fused quaternions, (n, 4) w x y z, taken at `t_s` if given."""
        q = np.asarray(quat, dtype=np.float64)
        if q.ndim != 2 or q.shape[1] != 4:
            raise ValueError(f"quat: expected an (n, 4) array, got {q.shape}")
        if q.shape[0] == 0:
            return OrientationBlock(np.empty((0, 4)), np.empty((0, 3)))
        missing = self._missing(t_s, q.shape[0])
        q = q / np.linalg.norm(q, axis=1, keepdims=True)
        prev = self._last_quat if self._last_quat is not None else q[:1]
        both = np.concatenate([prev, q])
        # The rate over the interval ending at each sample, however long it was.
        dt = 1.0 / self.rate_hz if missing is None else (missing + 1) / self.rate_hz
        rates = interval_rates(both, dt)
        self._last_quat = q[-1:].copy()
        return OrientationBlock(q, rates)
