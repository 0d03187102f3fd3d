"""Small streaming building blocks with explicit state: low-pass filters and run lengths."""

import numpy as np
from numpy.typing import NDArray
from scipy import signal

__all__ = ["Lowpass", "run_lengths", "true_runs"]

F64Array = NDArray[np.float64]


class Lowpass:
    """Second-order Butterworth low-pass along the first axis of (n,) or (n, k) blocks.

    Keeps the filter state between blocks, so blocks of any size give the output of one
    call on the whole stream. The first sample sets the initial state (a step from zero
    would look like motion). One second-order section runs as `scipy.signal.lfilter`:
    numerically the same as `sosfilt` at this order, and a fraction of its per-call cost,
    which dominates for the small blocks a live sensor delivers.
    """

    def __init__(self, cutoff_hz: float, rate_hz: float, channels: int = 1) -> None:
        cutoff = min(cutoff_hz, 0.45 * rate_hz)
        self.sos = signal.butter(2, cutoff, fs=rate_hz, output="sos")
        self._b = self.sos[0, :3].copy()
        self._a = self.sos[0, 3:].copy()
        self.channels = channels
        self.reset()

    def reset(self) -> None:
        """Forget the filter state."""
        self._zi: F64Array | None = None

    def __call__(self, x: F64Array) -> F64Array:
        """Filter a block along its first axis."""
        x = np.asarray(x, dtype=np.float64)
        if x.shape[0] == 0:
            return x.copy()
        if self._zi is None:
            zi = signal.lfilter_zi(self._b, self._a)  # for a unit step
            self._zi = zi[:, None] * x[0] if x.ndim == 2 else zi * x[0]
        y, self._zi = signal.lfilter(self._b, self._a, x, axis=0, zi=self._zi)
        return np.asarray(y, dtype=np.float64)


def run_lengths(mask: NDArray[np.bool_], carry: int) -> NDArray[np.int64]:
    """Length of the run of True ending at each sample, continuing a run of `carry`."""
    n = mask.shape[0]
    idx = np.arange(1, n + 1, dtype=np.int64)
    # Index of the last False at or before each sample (0 = before the block).
    last_false = np.maximum.accumulate(np.where(mask, 0, idx))
    runs = idx - last_false
    # Samples with no False before them in this block continue the previous run.
    runs = np.where(last_false == 0, runs + carry, runs)
    return np.asarray(np.where(mask, runs, 0), dtype=np.int64)


def true_runs(mask: NDArray[np.bool_]) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Start and stop (exclusive) indices of each run of True."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], mask.astype(np.int8), [0]])))
    return edges[::2].astype(np.int64), edges[1::2].astype(np.int64)
