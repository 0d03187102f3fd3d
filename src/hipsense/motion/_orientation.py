"""Orientation of the sensor: VQF for raw 6-axis input, pass-through for fused quaternions."""

import itertools
import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from vqf import VQF

from hipsense._quat import interval_rates

from ._decimate import GAP_STEPS
from ._filters import any_true, largest, run_lengths

__all__ = ["OrientationBlock", "OrientationEstimator", "OrientationSettings"]

F64Array = NDArray[np.float64]
# Until the bias is known, a long block goes to VQF in pieces of this many samples: the
# lock runs VQF again over the piece it falls in, not over the rest of the block.
_UNKNOWN_PIECE_N = 4096


@dataclass(frozen=True)
class OrientationSettings:
    """VQF settings; the defaults suit a thigh strap at 25-200 Hz.

    VQF takes 1.5 s as rest when the gyroscope strays from its own 0.5 s low-pass by less
    than `rest_gyro_dps` and the low-passed rate, bias included, stays under
    `bias_clip_dps`, and then takes that rate as the bias. Both are above VQF's defaults
    (2 deg/s) because a cheap gyro's turn-on bias reaches 2-3 deg/s; lower ones measured
    worse on the simulator suite. The price: a steady rotation slower than the clip (the
    last of a slow eccentric lowering, the way back from a reach) can pass for rest and
    leak into the bias. Once the bias is known that clip is narrowed to the residual
    around it (`residual_bias_clip_dps`), which bounds the leak.
    """

    tau_acc_s: float = 3.0
    rest_bias: bool = True
    motion_bias: bool = True
    rest_gyro_dps: float = 3.0
    rest_acc_m_s2: float = 0.5
    bias_clip_dps: float = 5.0
    residual_bias_clip_dps: float | None = 1.0
    """Once the bias is known (`bias_known_rest_s`), it is taken off before VQF and
    VQF goes on with this clip: rest is then a rate within this of the known bias, and
    the bias may wander this far (warm-up drift). Without it, a slow turn about the
    vertical (the way back from a reach) whose rate nearly cancels the bias passes for
    rest, and VQF takes it for a bias jump of 2-3 deg/s: a heading drift the
    accelerometer cannot correct. None keeps `bias_clip_dps` throughout."""
    bias_known_rest_s: float = 2.0
    """The bias is known once VQF has seen rest this long, its estimate has moved less
    than `bias_known_sigma_dps` over the last half of it, and its uncertainty is under
    that too. Not at the first rest VQF sees: a slow moment while fidgeting, or a slow
    partial rep, passes its test for a second or more, with a bias off by up to 1 deg/s
    (and moving while it lasts)."""
    bias_known_sigma_dps: float = 0.1
    bridge_gap_s: float = 1.0
    """Samples lost over up to this long are bridged: VQF integrates through them
    (gyroscope and accelerometer interpolated between the samples either side). After
    a longer gap the inclination is taken afresh from the accelerometer. A rep's phase
    at a home-exercise tempo lasts 1-3 s, so over up to 1 s the angular rate stays
    close to the straight line between its ends; a restart instead loses for good the
    rotation about the vertical made in the gap (five packets lost in a row at 100 Hz
    and MTU 247 is 0.95 s)."""


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
        self._known_rest_n = max(2, round(self.settings.bias_known_rest_s * self.rate_hz))
        self.reset()

    def reset(self) -> None:
        """Forget the orientation and bias estimates."""
        self._vqf = self._new_vqf(self.settings.bias_clip_dps)
        # The bias taken off before VQF once it is known (rad/s); VQF then estimates
        # what is left of it.
        self._known_bias: F64Array | None = None
        self._rest_run = 0  # samples VQF has seen rest for, until the bias is known
        # The last bias estimates (half of bias_known_rest_s) during VQF's rest, until
        # the bias is known (None: not resting).
        self._bias_hist: F64Array | None = None
        self._last_quat: F64Array | None = None
        self._last_t: float | None = None
        self._last_raw: F64Array | None = None  # the last raw sample, gyr and acc (6,)

    def _new_vqf(self, bias_clip_dps: float) -> VQF:
        s = self.settings
        return VQF(
            1.0 / self.rate_hz,
            tauAcc=s.tau_acc_s,
            restBiasEstEnabled=s.rest_bias,
            motionBiasEstEnabled=s.motion_bias,
            restThGyr=s.rest_gyro_dps,
            restThAcc=s.rest_acc_m_s2,
            biasClip=bias_clip_dps,
        )

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
            longest = max(longest, largest(t[1:] - t[:-1]))
        if longest * self.rate_hz < GAP_STEPS:
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
            quat, bias, sigma = self._fuse(gyr, acc)
            return OrientationBlock(quat, gyr - bias, sigma)
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
        quat, bias, sigma = self._fuse(
            np.ascontiguousarray(filled[:, :3]), np.ascontiguousarray(filled[:, 3:])
        )
        real = np.cumsum(counts) - 1
        return quat[real], bias[real], sigma[real]

    def _fuse(self, gyr: F64Array, acc: F64Array) -> tuple[F64Array, F64Array, F64Array]:
        """VQF over raw rows: orientation, whole bias (rad/s) and its uncertainty."""
        if self._known_bias is not None:
            out = self._vqf.updateBatch(gyr - self._known_bias, acc)
            return (
                np.asarray(out["quat6D"], dtype=np.float64),
                np.asarray(out["bias"], dtype=np.float64) + self._known_bias,
                np.asarray(out["biasSigma"], dtype=np.float64),
            )
        s = self.settings
        n = gyr.shape[0]
        if n > _UNKNOWN_PIECE_N and s.residual_bias_clip_dps is not None:
            # VQF is sample by sample: pieces give the same rows as one call.
            parts = []
            a = 0
            while a < n and self._known_bias is None:
                b = a + _UNKNOWN_PIECE_N
                parts.append(self._fuse(gyr[a:b], acc[a:b]))
                a = b
            if a < n:
                parts.append(self._fuse(gyr[a:], acc[a:]))
            return _join(parts)
        # VQF's state at the block's start, to go back to if the bias becomes known in
        # it: only when VQF's rest could reach `bias_known_rest_s` within the block.
        could = s.residual_bias_clip_dps is not None and self._rest_run + n >= self._known_rest_n
        before = self._vqf.state if could else None
        out = self._vqf.updateBatch(gyr, acc)
        quat = np.asarray(out["quat6D"], dtype=np.float64)
        bias = np.asarray(out["bias"], dtype=np.float64)
        sigma = np.asarray(out["biasSigma"], dtype=np.float64)
        if s.residual_bias_clip_dps is None:
            return quat, bias, sigma
        resting = np.asarray(out["restDetected"], dtype=bool)
        m = self._known_rest_n // 2
        if not any_true(resting):
            # Moving (the usual case): any later rest starts after this block, so the
            # estimates so far are of no use to it.
            self._rest_run = 0
            self._bias_hist = None
            return quat, bias, sigma
        rest = run_lengths(resting, self._rest_run)
        if self._bias_hist is None:
            self._bias_hist = np.full((m, 3), np.nan)
        # The estimate half the rest time before each row (NaN: before this rest).
        past = np.concatenate([self._bias_hist, bias])
        self._rest_run = int(rest[-1])
        self._bias_hist = past[-m:]
        if before is None:
            return quat, bias, sigma
        moved = np.abs(bias - past[-m - n : -m]).max(axis=1)
        lim = math.radians(s.bias_known_sigma_dps)
        known = (rest >= self._known_rest_n) & (sigma <= lim) & (moved <= lim)
        if not known.any():
            return quat, bias, sigma
        # The bias became known at row k: VQF again from the block's start to k, then on
        # with the bias taken off (VQF is sample by sample: the same rows as before).
        k = int(np.flatnonzero(known)[0]) + 1
        self._vqf.state = before
        self._vqf.updateBatch(np.ascontiguousarray(gyr[:k]), np.ascontiguousarray(acc[:k]))
        self._lock_bias()
        if k == gyr.shape[0]:
            return quat, bias, sigma
        rest_of_block = self._fuse(np.ascontiguousarray(gyr[k:]), np.ascontiguousarray(acc[k:]))
        return _join([(quat[:k], bias[:k], sigma[:k]), rest_of_block])

    def _lock_bias(self) -> None:
        """Take VQF's bias estimate off its input from now on.

        VQF goes on with the residual clip, estimating what is left of the bias.
        """
        s = self.settings
        assert s.residual_bias_clip_dps is not None
        state = self._vqf.state
        known = np.asarray(state["bias"], dtype=np.float64)
        state["bias"] = [0.0, 0.0, 0.0]
        state["restLastGyrLp"] = list(np.asarray(state["restLastGyrLp"]) - known)
        # The rest low-pass goes on as the low-pass of the rate without the known bias:
        # the filter is linear, so its state moves by the steady state of that constant
        # (restarting it would feed VQF a few noisy rest rates, a bias kick of a tenth
        # of a degree per second that can cut a 2 deg hold short).
        coeffs = self._vqf.coeffs
        b = np.asarray(coeffs["restGyrLpB"], dtype=np.float64)
        a = np.asarray(coeffs["restGyrLpA"], dtype=np.float64)
        lp = np.asarray(state["restGyrLpState"], dtype=np.float64).reshape(3, 2)
        lp -= np.array([VQF.filterInitialState(float(x), b, a) for x in known])
        state["restGyrLpState"] = lp.ravel().tolist()
        # The low-pass of the bias in the world frame starts again from the next sample
        # (VQF's own start-up), with the bias left to estimate about zero.
        nan = float("nan")
        state["motionBiasEstBiasLpState"] = [nan] * len(state["motionBiasEstBiasLpState"])
        self._vqf = self._new_vqf(s.residual_bias_clip_dps)
        self._vqf.state = state
        self._known_bias = known

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


def _join(
    parts: list[tuple[F64Array, F64Array, F64Array]],
) -> tuple[F64Array, F64Array, F64Array]:
    """Orientation, bias and bias uncertainty of consecutive pieces, as one block's."""
    quat, bias, sigma = zip(*parts, strict=True)
    return np.concatenate(quat), np.concatenate(bias), np.concatenate(sigma)
