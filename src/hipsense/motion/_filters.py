"""Streaming building blocks: low-pass filters, running minima and run lengths.

The filters are written with numpy alone: scipy.signal would serve, but importing it
costs a live gateway about 75 MB of memory (it pulls in stats, optimize, ndimage and
sparse), more than the rest of the service together.
"""

import math

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "Biquad",
    "Lowpass",
    "any_true",
    "butter2_lowpass",
    "counts_since",
    "first_true",
    "gradient",
    "largest",
    "median",
    "median_of",
    "percentiles",
    "run_lengths",
    "trailing_min",
    "trailing_min_from",
    "true_runs",
]

F64Array = NDArray[np.float64]

# Largest growth allowed for the within-block weights p**-j (see Biquad): far from
# float64's limit (1e308) even for signals of 1e100, while keeping blocks long.
_MAX_GROWTH_LOG10 = 150.0
_MAX_BLOCK = 1024


def butter2_lowpass(cutoff_hz: float, rate_hz: float) -> tuple[F64Array, F64Array]:
    """Second-order Butterworth low-pass `(b, a)`, as `scipy.signal.butter(2, ...)`.

    Bilinear transform with the cutoff pre-warped, so the -3 dB point is at `cutoff_hz`.
    """
    if not 0.0 < cutoff_hz < rate_hz / 2:
        raise ValueError(f"cutoff must be in (0, {rate_hz / 2}) Hz, got {cutoff_hz}")
    k = math.tan(math.pi * cutoff_hz / rate_hz)
    kk = k * k
    q = math.sqrt(2.0) * k
    norm = 1.0 / (1.0 + q + kk)
    b = np.array([kk, 2.0 * kk, kk]) * norm
    a = np.array([1.0, 2.0 * (kk - 1.0) * norm, (1.0 - q + kk) * norm])
    return b, a


class Biquad:
    """A biquad with complex-conjugate poles, run in modal form in vectorized blocks.

    `y[n] = d x[n] + 2 Re w[n]` with `w[n] = p w[n-1] + r x[n]`. Over an aligned block
    of B samples starting at s, `w[s+j] = p**j (p w[s-1] + sum_{k<=j} r p**-k x[s+k])`:
    one cumulative sum instead of a per-sample loop. The rounding error stays near
    `eps |x| / (1 - |p|)` because every term is scaled back by p**j. Blocks are aligned
    to the stream's first sample and the arithmetic is the same whether a block arrives
    whole or in pieces (cumulative sums are sequential, and only real multiplies and adds
    are used, so no fused or vectorized complex path can round differently): chunks of
    any size give bit-identical output.
    """

    def __init__(self, b: F64Array, a: F64Array) -> None:
        b0, b1, b2 = (float(v) / float(a[0]) for v in b)
        a1, a2 = float(a[1]) / float(a[0]), float(a[2]) / float(a[0])
        disc = a1 * a1 - 4.0 * a2
        if disc >= 0.0 or a2 >= 1.0:
            raise ValueError("expected a stable biquad with complex poles")
        p = complex(-a1 / 2.0, math.sqrt(-disc) / 2.0)
        self.d = b2 / a2
        e0, e1 = b0 - self.d, b1 - self.d * a1
        r = (e0 + e1 / p) / (1.0 - p.conjugate() / p)
        self._p = p
        self._r = r
        self.block = int(min(_MAX_BLOCK, max(8, _MAX_GROWTH_LOG10 / -math.log10(abs(p)))))
        j = np.arange(self.block)
        weights = r * p ** (-j.astype(np.float64))
        # Real and imaginary parts stacked (2, block): one array operation does both.
        self._t = np.stack([weights.real, weights.imag])
        powers = 2.0 * p ** j.astype(np.float64)
        # Re(o u) = o_re u_re + (-o_im) u_im: the sign is stored, the sum is then a plain
        # add (negation is exact, so the bits are those of o_re u_re - o_im u_im).
        self._o = np.stack([powers.real, -powers.imag])
        p_block = p**self.block
        self._pb_re, self._pb_im = p_block.real, p_block.imag

    def steady(self, x0: F64Array) -> F64Array:
        """The block-start accumulator (2, ...) for a signal that has been `x0` for ever."""
        u = self._p * self._r / (1.0 - self._p)
        x0 = np.asarray(x0, dtype=np.float64)
        return np.stack([u.real * x0, u.imag * x0])

    def run(self, x: F64Array, pos: int, acc: F64Array) -> tuple[F64Array, int, F64Array]:
        """Filter x (first axis is time) from block position `pos` with accumulator `acc`.

        `acc` (2, ...) holds the real and imaginary parts of the block-start accumulator.
        """
        n = x.shape[0]
        end = pos + n
        if end < self.block and x.ndim == 1:
            # One channel within one aligned block (the streaming case): the loop below
            # with its bookkeeping left out, the same operations in the same order.
            t = self._t[:, pos:end] * x
            t[:, 0] += acc
            u = np.add.accumulate(t, axis=1)
            prod = self._o[:, pos:end] * u
            y = self.d * x
            y += prod[0]
            y += prod[1]
            return y, end, u[:, -1]
        pieces: list[F64Array] = []
        # Tables (2, m) broadcast against channels (2, m, k...).
        shape = (2, -1) + (1,) * (x.ndim - 1)
        flat = x.ndim == 1  # no reshaping of the tables for one channel
        accumulate = np.add.accumulate  # the ufunc method: no dispatch cost per call
        i = 0
        while i < n:
            m = min(n - i, self.block - pos)
            xs = x[i : i + m]
            end = pos + m
            t = (self._t[:, pos:end] if flat else self._t[:, pos:end].reshape(shape)) * xs
            t[:, 0] += acc
            u = accumulate(t, axis=1)
            o = self._o[:, pos:end] if flat else self._o[:, pos:end].reshape(shape)
            prod = o * u
            y = self.d * xs
            y += prod[0]
            y += prod[1]
            pieces.append(y)
            pos = end
            i += m
            last = u[:, -1]
            if pos == self.block:
                # Next block starts from p * w[end] = p**B * u[end].
                acc = np.stack(
                    [
                        self._pb_re * last[0] - self._pb_im * last[1],
                        self._pb_re * last[1] + self._pb_im * last[0],
                    ]
                )
                pos = 0
            else:
                acc = last
        y = pieces[0] if len(pieces) == 1 else np.concatenate(pieces)
        return y, pos, acc

    def filtfilt(self, x: F64Array) -> F64Array:
        """Zero-phase forward-backward filtering of a 1-D signal.

        As `scipy.signal.sosfiltfilt` with its defaults: odd extension by 9 samples at
        each end, and each pass started in the steady state of its first sample.
        """
        x = np.asarray(x, dtype=np.float64)
        edge = 9
        if x.shape[0] <= edge:
            raise ValueError(f"expected more than {edge} samples, got {x.shape[0]}")
        ext = np.concatenate([2 * x[0] - x[edge:0:-1], x, 2 * x[-1] - x[-2 : -edge - 2 : -1]])
        y, *_ = self.run(ext, 0, self.steady(ext[0]))
        y, *_ = self.run(y[::-1].copy(), 0, self.steady(y[-1]))
        return np.asarray(y[::-1][edge:-edge], dtype=np.float64)


class Lowpass:
    """Second-order Butterworth low-pass along the first axis of (n,) or (n, k) blocks.

    Keeps the filter state between blocks, so blocks of any size give exactly the output
    of one call on the whole stream. The first sample sets the initial state (a step
    from zero would look like motion), as `scipy.signal.lfilter` with
    `lfilter_zi * x[0]` would.
    """

    def __init__(self, cutoff_hz: float, rate_hz: float, channels: int = 1) -> None:
        cutoff = min(cutoff_hz, 0.45 * rate_hz)
        self.b, self.a = butter2_lowpass(cutoff, rate_hz)
        self._modal = Biquad(self.b, self.a)
        self.channels = channels
        self.reset()

    def reset(self) -> None:
        """Forget the filter state."""
        self._started = False
        self._pos = 0
        self._acc: F64Array = np.zeros(0)

    def state(self) -> tuple[bool, int, F64Array]:
        """The filter's state, for `restore`."""
        return self._started, self._pos, self._acc

    def restore(self, state: tuple[bool, int, F64Array]) -> None:
        """Go back to a state taken by `state()` (the accumulator is never changed in place)."""
        self._started, self._pos, self._acc = state

    def __call__(self, x: F64Array) -> F64Array:
        """Filter a block along its first axis."""
        x = np.asarray(x, dtype=np.float64)
        if x.shape[0] == 0:
            return x.copy()
        if not self._started:
            self._acc = self._modal.steady(x[0])
            self._started = True
        y, self._pos, self._acc = self._modal.run(x, self._pos, self._acc)
        return y


def trailing_min(x: F64Array, w: int) -> F64Array:
    """Minimum of the last `w` samples (fewer at the start) at each sample of x.

    Van Herk / Gil-Werman: prefix minima of w-sample blocks and suffix minima of the
    same blocks cover any window of w, so the cost does not grow with w.
    """
    x = np.asarray(x, dtype=np.float64)
    n = x.shape[0]
    if n == 0 or w <= 1:
        return x.copy()
    padded = np.concatenate([np.full(w - 1, x[0]), x])
    blocks = -(-padded.shape[0] // w)
    grid = np.full(blocks * w, np.inf)
    grid[: padded.shape[0]] = padded
    grid = grid.reshape(blocks, w)
    prefix = np.minimum.accumulate(grid, axis=1).ravel()
    suffix = np.minimum.accumulate(grid[:, ::-1], axis=1)[:, ::-1].ravel()
    return np.minimum(suffix[:n], prefix[w - 1 : w - 1 + n])


def trailing_min_from(x: F64Array, w: int, start: int) -> F64Array:
    """`trailing_min(x, w)[start:]`, at a cost that grows with `len(x) - start` only.

    A streaming caller asks for the minima of a few new samples whose windows reach far
    back. Those windows share the samples from the last window's start to the first
    sample asked for; each adds a suffix of the few samples before that (a suffix
    minimum) and a prefix of the new ones (a running minimum).
    """
    x = np.asarray(x, dtype=np.float64)
    n = x.shape[0]
    m = n - start
    if m <= 0:
        return np.empty(0)
    if w <= 1 or 2 * m > w:
        return np.asarray(trailing_min(x, w)[start:], dtype=np.float64)
    if n <= w:
        # Every window reaches back to x[0] (the streaming case soon after a rep, whose
        # end bounds the windows): a running minimum, from the minimum before start.
        out = np.minimum.accumulate(x[start:n])
        if start:
            np.minimum(out, x[:start].min(), out=out)
        return out
    if start >= w - 1:
        # Every window lies within x (the streaming case): window j (of sample start + j)
        # is head[j:] (the m - 1 samples before the shared part), the shared part, and
        # x[start + 1 : start + j + 1]. Minima are exact, so this is the general path's
        # result to the bit, in fewer array operations.
        out = np.empty(m)
        head = x[start - w + 1 : n - w]
        out[:-1] = np.minimum.accumulate(head[::-1])[::-1]
        out[-1] = np.inf
        # x[start] lies in every window (m <= w / 2), so the running minimum may start there.
        np.minimum(out, np.minimum.accumulate(x[start:n]), out=out)
        np.minimum(out, x[n - w : start + 1].min(), out=out)
        return out
    lo_first = max(0, start - w + 1)
    lo_last = max(0, n - w)
    shared = x[lo_last : start + 1].min()
    head = x[lo_first:lo_last]
    # Suffix minima of the head, then +inf for windows that start past it.
    suffix = np.concatenate([np.minimum.accumulate(head[::-1])[::-1], [np.inf]])
    k = np.arange(start, n)
    from_head = suffix[np.maximum(k - w + 1, 0).clip(lo_first, lo_last) - lo_first]
    running = np.concatenate([[np.inf], np.minimum.accumulate(x[start + 1 : n])])
    return np.asarray(np.minimum(np.minimum(from_head, running), shared), dtype=np.float64)


# Reductions for short streaming blocks. A ufunc reduction (`x.max()`, `mask.any()`,
# `np.flatnonzero`) costs about 0.7 us of dispatch whatever the length, the array
# methods argmax / argmin / nonzero about 0.1 us; at 20 samples a block, a few dozen such
# calls are a large share of the core's time. The results are the same (argmax stops at
# the first NaN, as max returns it).


def largest(x: NDArray[np.float64] | NDArray[np.int64]) -> float:
    """`float(x.max())` of a non-empty 1-D array."""
    return float(x[x.argmax()])


def median(x: F64Array) -> F64Array:
    """`np.median(x, axis=0)`, bit for bit, without its checks (about 30 us a call)."""
    n = x.shape[0]
    half = n // 2
    if n % 2:
        return np.asarray(np.partition(x, half, axis=0)[half], np.float64)
    part = np.partition(x, (half - 1, half), axis=0)
    return np.asarray((part[half - 1] + part[half]) / 2.0, np.float64)


def percentiles(x: F64Array, pct: tuple[float, float]) -> tuple[float, float]:
    """`np.percentile(x, pct)` of a non-empty 1-D array, bit for bit, in one partition.

    numpy's default (linear) method, its interpolation included, without its checks
    (a third of the time).
    """
    n = x.shape[0]
    at = np.array(pct) / 100.0 * (n - 1)
    lo = np.floor(at).astype(np.intp)
    hi = np.minimum(lo + 1, n - 1)
    part = np.partition(x, np.unique(np.concatenate([lo, hi])))
    a, b = part[lo], part[hi]
    frac = at - lo
    d = b - a
    # numpy's lerp: from the nearer end, so that a weight of one gives that end exactly.
    v = np.where(frac >= 0.5, b - d * (1.0 - frac), a + d * frac)
    return float(v[0]), float(v[1])


def gradient(f: F64Array, t: F64Array) -> F64Array:
    """`np.gradient(f, t)` of 1-D arrays of at least two samples, bit for bit.

    Central differences inside (second order for uneven steps), one-sided at the ends;
    without numpy's generality (half the time on a rep's samples).
    """
    dx = t[1:] - t[:-1]
    out = np.empty(f.shape[0])
    if (dx == dx[0]).all():
        out[1:-1] = (f[2:] - f[:-2]) / (2.0 * dx[0])
        out[0] = (f[1] - f[0]) / dx[0]
        out[-1] = (f[-1] - f[-2]) / dx[0]
        return out
    dx1, dx2 = dx[:-1], dx[1:]
    a = -dx2 / (dx1 * (dx1 + dx2))
    b = (dx2 - dx1) / (dx1 * dx2)
    c = dx1 / (dx2 * (dx1 + dx2))
    out[1:-1] = a * f[:-2] + b * f[1:-1] + c * f[2:]
    out[0] = (f[1] - f[0]) / dx[0]
    out[-1] = (f[-1] - f[-2]) / dx[-1]
    return out


def median_of(values: list[float]) -> float:
    """`float(np.median(values))` of a short non-empty list, bit for bit, in pure Python."""
    v = sorted(values)
    half = len(v) // 2
    return v[half] if len(v) % 2 else (v[half - 1] + v[half]) / 2.0


def any_true(mask: NDArray[np.bool_]) -> bool:
    """`bool(mask.any())` of a non-empty 1-D mask."""
    return bool(mask[mask.argmax()])


def first_true(mask: NDArray[np.bool_]) -> int:
    """Index of the first True of a 1-D mask, or -1 if there is none."""
    if mask.shape[0] == 0:
        return -1
    k = int(mask.argmax())
    return k if mask[k] else -1


def run_lengths(mask: NDArray[np.bool_], carry: int) -> NDArray[np.int64]:
    """Length of the run of True ending at each sample, continuing a run of `carry`."""
    n = mask.shape[0]
    idx = np.arange(1, n + 1, dtype=np.int64)
    if n == 0:
        return idx
    # A whole block of rest, or of motion, is the common case.
    first_false = int(mask.argmin())
    if mask[first_false]:
        return idx + carry
    if not mask[mask.argmax()]:
        return np.zeros(n, dtype=np.int64)
    # Index of the last False at or before each sample (0 = before the block): at a
    # False sample that is the sample itself, so its run is 0.
    runs = idx - np.maximum.accumulate(np.where(mask, 0, idx))
    # The samples before the first False continue the previous run.
    if first_false and carry:
        runs[:first_false] += carry
    return runs


def counts_since(
    mask: NDArray[np.bool_], reset: NDArray[np.bool_], carry: int
) -> NDArray[np.int64]:
    """How many samples of `mask` since the last `reset` one, at each, continuing `carry`.

    A reset sample starts the count again (from itself, if it is in `mask`).
    """
    if not mask.any():
        # Nothing to count (the limb moving, or resting near neutral): the carry, until
        # the first reset.
        if not reset.any():
            return np.full(mask.shape[0], carry, dtype=np.int64)
        return np.where(np.logical_or.accumulate(reset), 0, carry).astype(np.int64)
    c = np.cumsum(mask, dtype=np.int64)
    if not reset.any():
        return c + carry
    # The count at the last reset, less its own sample: c is non-decreasing.
    base = np.maximum.accumulate(np.where(reset, c - mask, -1))
    return np.where(base < 0, c + carry, c - base)


def true_runs(mask: NDArray[np.bool_]) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Start and stop (exclusive) indices of each run of True."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], mask.astype(np.int8), [0]])))
    return edges[::2].astype(np.int64), edges[1::2].astype(np.int64)
