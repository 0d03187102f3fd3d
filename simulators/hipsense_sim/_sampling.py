"""From the motion grid to the sensor's samples, a piece of the session at a time.

A 2-hour session on the 400 Hz grid is about 3 million rows; held whole with its body
rates it took over a gigabyte. Here the grid goes through in pieces of `CHUNK_ROWS`:
body rates, the sensor filter's causal mean, interpolation to the sample instants and
the IMU error model. Every seam is handled so that each sample gets the bits it gets
when the session goes through in one piece (tests/simulators/test_chunked.py).
"""

import copy
from collections.abc import Callable

import numpy as np
from numpy.typing import NDArray

from ._motion import grid_rates
from ._spec import ImuSpec

__all__ = ["CHUNK_ROWS", "GridSampler", "Heading", "ImuErrors", "interp_columns"]

F64Array = NDArray[np.float64]
SampleSink = Callable[[int, F64Array, F64Array, F64Array | None], None]
"""Takes consecutive samples from index `k0`: body rate, specific force, orientation."""

CHUNK_ROWS = 1 << 16
"""Grid rows gathered before they go through (164 s at 400 Hz); tests make it small."""
_DRAW_ROWS = 1 << 16
"""Samples drawn at a time when a generator is moved past a block of noise."""
_G = 9.80665


def interp_columns(t_grid: F64Array, values: F64Array, t: F64Array) -> F64Array:
    """Each column of `values` on `t_grid`, linearly interpolated at `t`."""
    return np.stack([np.interp(t, t_grid, values[:, k]) for k in range(values.shape[1])], axis=1)


def _cumsum_after(last: F64Array | None, x: F64Array) -> F64Array:
    """The running sum of `x` continuing from `last`, with the bits of a single cumsum.

    `cumsum(x) + last` rounds differently; prepending `last` adds in the same order.
    """
    if last is None:
        return np.cumsum(x, axis=0)
    return np.cumsum(np.concatenate([last[None], x]), axis=0)[1:]


class _Draws:
    """A block of normal draws of `n` rows, taken later in pieces by a generator of its own.

    The generator starts where `rng` is; `rng` is moved past the block, as if it had
    drawn it whole. Normal draws use the same bits whether taken whole or in pieces.
    """

    def __init__(self, rng: np.random.Generator, sigma: float, n: int, cols: int | None):
        self.rng = copy.deepcopy(rng)
        self.sigma, self.cols = sigma, cols
        for a in range(0, n, _DRAW_ROWS):
            rng.normal(0, sigma, self._shape(min(_DRAW_ROWS, n - a)))

    def _shape(self, k: int) -> tuple[int, ...]:
        return (k,) if self.cols is None else (k, self.cols)

    def take(self, k: int) -> F64Array:
        return self.rng.normal(0, self.sigma, self._shape(k))


class ImuErrors:
    """Noise, bias, bias walk and scale errors of `n` samples, applied block by block.

    Draws from `rng` as a whole-session draw would, in the same order, so the samples and
    everything drawn after them are the same however the session is cut.
    """

    def __init__(self, imu: ImuSpec, n: int, rng: np.random.Generator) -> None:
        self.noise_free = imu.noise_free
        if imu.noise_free:
            return
        rate = imu.rate_hz
        deg = np.pi / 180
        # White noise over the filter bandwidth from the datasheet densities.
        bw = imu.noise_bandwidth_hz or rate / 2
        gyro_sigma = imu.gyro_noise_dps_sqrt_hz * deg * np.sqrt(bw)
        acc_sigma = imu.accel_noise_ug_sqrt_hz * 1e-6 * _G * np.sqrt(bw)
        self.gyro_bias = rng.normal(0, imu.gyro_bias_dps * deg, 3)
        if imu.gyro_bias_xyz_dps is not None:
            # The random one is still drawn: the noise after it stays the same draws.
            self.gyro_bias = np.array(imu.gyro_bias_xyz_dps) * deg
        self.walk_steps = _Draws(rng, imu.gyro_bias_walk_dps_sqrt_s * deg * np.sqrt(1 / rate), n, 3)
        self.walk: F64Array | None = None
        self.acc_bias = rng.normal(0, imu.accel_bias_mg * 1e-3 * _G, 3)
        self.g_scale = 1 + rng.normal(0, imu.scale_error, 3)
        self.a_scale = 1 + rng.normal(0, imu.scale_error, 3)
        self.gyro_noise = _Draws(rng, gyro_sigma, n, 3)
        self.acc_noise = _Draws(rng, acc_sigma, n, 3)

    def apply(self, w: F64Array, f: F64Array) -> tuple[F64Array, F64Array]:
        """Gyroscope and accelerometer readings of the next block of samples."""
        if self.noise_free:
            return w, f
        k = w.shape[0]
        walk = _cumsum_after(self.walk, self.walk_steps.take(k))
        if k:
            self.walk = walk[-1]
        gyr = w * self.g_scale + self.gyro_bias + walk + self.gyro_noise.take(k)
        acc = f * self.a_scale + self.acc_bias + self.acc_noise.take(k)
        return gyr, acc


class Heading:
    """The slow heading wander of on-sensor fusion without a magnetometer, in blocks."""

    def __init__(self, n: int, period_s: float, rng: np.random.Generator) -> None:
        self.steps = _Draws(rng, 0.02, n, None)
        self.scale = np.sqrt(period_s)
        self.last: F64Array | None = None

    def take(self, k: int) -> F64Array:
        """Heading (deg) of the next `k` samples."""
        walk = _cumsum_after(self.last, self.steps.take(k))
        if k:
            self.last = walk[-1]
        return np.asarray(walk * self.scale, dtype=np.float64)


class GridSampler:
    """Takes the grid as it is built and hands on samples at `true_s` as soon as it can.

    Per piece of grid: body rates (one row of look-ahead), the causal mean over `width`
    rows (its running sum carried on), then every next sample whose two neighbouring grid
    rows are in hand is interpolated and given to `sink`, in sample order. Only the grid
    rows later samples can still need are kept.
    """

    def __init__(
        self,
        n_grid: int,
        grid_hz: float,
        true_s: F64Array,
        width: int,
        quaternion: bool,
        sink: SampleSink,
    ) -> None:
        if n_grid < 2:
            raise ValueError(f"n_grid: expected a session of at least 2 grid rows, got {n_grid}")
        self.n_grid, self.grid_hz, self.true_s = n_grid, grid_hz, true_s
        self.width, self.quaternion, self.sink = width, quaternion, sink
        # The earliest instant any sample from k on asks for (jitter may reorder a few).
        self.earliest = np.minimum.accumulate(true_s[::-1])[::-1]
        self.pending: list[tuple[F64Array, F64Array]] = []
        self.pending_rows = 0
        self.r0 = 0
        """Grid row of the first row held in `q` and `p` (and in `wf`)."""
        self.q = np.empty((0, 4))
        self.p = np.empty((0, 3))
        self.wf = np.empty((0, 6))
        """Body rate and specific force (averaged) of rows [r0, done)."""
        self.done = 0
        self.sums: F64Array | None = None
        """The running sums of the last `width` rows before `done`."""
        self.next = 0

    def feed(self, q_ws: F64Array, pos_m: F64Array, _primary_deg: F64Array) -> None:
        """The next grid rows (a `GridSink`)."""
        self.pending.append((q_ws, pos_m))
        self.pending_rows += q_ws.shape[0]
        if self.pending_rows >= CHUNK_ROWS:
            self._step(final=False)

    def finish(self) -> None:
        """The grid is complete: hand on every sample left."""
        self._step(final=True)
        if self.next != self.true_s.shape[0]:
            raise RuntimeError(f"sampled {self.next} of {self.true_s.shape[0]} samples")

    def _step(self, final: bool) -> None:
        q = np.concatenate([self.q, *(a for a, _ in self.pending)])
        p = np.concatenate([self.p, *(b for _, b in self.pending)])
        self.pending, self.pending_rows = [], 0
        end = self.r0 + q.shape[0]
        if final and end != self.n_grid:
            raise RuntimeError(f"grid: expected {self.n_grid} rows, got {end}")
        lo = self.done
        hi = self.n_grid if final else end - 1  # a row's rates need the row after it
        wf = self.wf
        if hi > lo:
            s0, s1 = max(lo - 1, 0) - self.r0, min(hi + 1, self.n_grid) - self.r0
            w, f = grid_rates(q[s0:s1], p[s0:s1], lo, hi, self.n_grid, self.grid_hz)
            new = np.concatenate([w, f], axis=1)
            if self.width > 1:
                new = self._causal_mean(new, lo, hi)
            wf = np.concatenate([wf, new])
            self.done = hi
        stop = self.true_s.shape[0]
        if not final:
            # A sample is ready when the grid row after it is computed too.
            ahead = self.true_s[self.next :] >= np.float64(hi - 1) / self.grid_hz
            stop = self.next + (int(np.argmax(ahead)) if ahead.any() else ahead.shape[0])
        if stop > self.next:
            self._sample(q, wf, stop)
        keep = hi - 1
        if self.next < self.true_s.shape[0]:
            keep = min(keep, int(np.floor(self.earliest[self.next] * self.grid_hz)) - 1)
        keep = max(keep, self.r0)
        self.q, self.p = q[keep - self.r0 :].copy(), p[keep - self.r0 :].copy()
        self.wf = wf[keep - self.r0 :].copy()
        self.r0 = keep

    def _causal_mean(self, values: F64Array, lo: int, hi: int) -> F64Array:
        """Mean over the last `width` grid rows (fewer at the start) of rows [lo, hi)."""
        c = _cumsum_after(None if self.sums is None else self.sums[-1], values)
        held = c if self.sums is None else np.concatenate([self.sums, c])
        base = lo - (held.shape[0] - c.shape[0])  # grid row of held[0]
        out = c.copy()
        g = max(lo, self.width)
        if hi > g:
            out[g - lo :] = c[g - lo :] - held[g - self.width - base : hi - self.width - base]
        self.sums = held[-self.width :].copy()
        counts = np.minimum(np.arange(lo + 1, hi + 1), self.width)[:, None]
        return np.asarray(out / counts, dtype=np.float64)

    def _sample(self, q: F64Array, wf: F64Array, stop: int) -> None:
        t = self.true_s[self.next : stop]
        t_grid = np.arange(self.r0, self.done) / self.grid_hz
        if self.r0 > 0 and float(t.min()) < t_grid[0]:
            raise RuntimeError("a sample before the grid rows still held")
        w = interp_columns(t_grid, wf[:, :3], t)
        f = interp_columns(t_grid, wf[:, 3:], t)
        q_true = None
        if self.quaternion:
            q_true = interp_columns(t_grid, q[: self.done - self.r0], t)
        self.sink(self.next, w, f, q_true)
        self.next = stop
