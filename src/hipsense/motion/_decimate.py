"""Samples averaged in groups, down to the rate the stages after orientation need.

A thigh's voluntary movement has nothing above a few hertz (the fastest phases take
0.35 s), so the reference and the segmenter see nothing more in 200 samples a second
than in 50; they only spend four times as long. Orientation runs on every sample (it
integrates the gyroscope); after it, `Decimator` replaces each group of `factor`
consecutive samples by their mean: a box filter before keeping one sample in `factor`,
so nothing above the new rate's Nyquist frequency folds back into the movement band.

A group never spans lost samples: a step longer than `GAP_STEPS` sample intervals ends
the group before it, so a gap stays a gap at the new rate. The samples of an unfinished
group wait for the next block (`flush` takes them as they are), so any split of the
stream into blocks gives the same groups, and the same means bit for bit: each group is
summed sample by sample, in order, whatever block it came in.
"""

import itertools

import numpy as np
from numpy.typing import NDArray

__all__ = ["GAP_STEPS", "Decimator"]

F64Array = NDArray[np.float64]
GAP_STEPS = 1.5
"""A step between samples this many sample intervals long lost samples (here, and where
the reference stage counts the samples lost before each one)."""


class Decimator:
    """Means of consecutive groups of `factor` rows (times in column 0)."""

    def __init__(self, factor: int, rate_hz: float) -> None:
        if factor < 1:
            raise ValueError(f"factor: expected >= 1, got {factor}")
        self.factor = factor
        self._gap_s = GAP_STEPS / rate_hz
        self.reset()

    def reset(self) -> None:
        """Forget the samples of the unfinished group."""
        self._wait: F64Array | None = None

    def update(self, rows: F64Array) -> F64Array:
        """The means of the groups these rows (n, m) finish, in order."""
        if self.factor == 1:
            return rows
        if self._wait is not None:
            rows = np.concatenate([self._wait, rows])
            self._wait = None
        if rows.shape[0] == 0:
            return rows
        # Runs of samples without lost ones between them; each cut into groups.
        t = rows[:, 0]
        cuts = np.flatnonzero(t[1:] - t[:-1] > self._gap_s) + 1
        bounds = [0, *cuts.tolist(), rows.shape[0]]
        out: list[F64Array] = []
        for a, b in itertools.pairwise(bounds):
            whole = a + (b - a) // self.factor * self.factor
            if whole > a:
                out.append(self._means(rows[a:whole]))
            if whole < b:
                if b < rows.shape[0]:
                    out.append(self._means(rows[whole:b]))  # cut short by lost samples
                else:
                    self._wait = np.array(rows[whole:b])
        if len(out) == 1:
            return out[0]
        return np.concatenate(out) if out else rows[:0]

    def flush(self) -> F64Array:
        """The mean of the unfinished group, if any, as it is."""
        wait, self._wait = self._wait, None
        if wait is None:
            return np.empty((0, 0))
        return self._means(wait)

    def _means(self, rows: F64Array) -> F64Array:
        """Means of whole groups of `factor` rows, or of all the rows as one group."""
        k = self.factor if rows.shape[0] % self.factor == 0 else rows.shape[0]
        groups = rows.reshape(-1, k, rows.shape[1])
        total = np.array(groups[:, 0])
        for j in range(1, k):
            total += groups[:, j]
        return np.asarray(total / k, np.float64)
