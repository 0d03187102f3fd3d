"""Host times for samples that carry none, and the rate a sensor really delivers.

A WitMotion record has no timestamp and no counter. Its sample index is the only clock
it has: the n-th record is n nominal periods in. That clock runs slow whenever the
sensor delivers less than its configured rate (users see 80-95 % of it), which to the
project's `ClockMapper` is a skew: its lower envelope of arrival minus "sensor" time
measures it, and the samples are put on that line. The mapper is set up for skews of
up to 150 % and fits within seconds, not the minute a crystal's ppm need.
"""

import math
from collections import deque
from typing import Final

import numpy as np
from numpy.typing import NDArray

from hipsense.protocol import ClockMapper

__all__ = ["ArrivalTimer"]

_MIN_STEP_S: Final = 1e-6


class ArrivalTimer:
    """Stamp blocks of samples by arrival; measure the delivered rate.

    `stamp(n, arrival_s)` gives the n samples of a notification their (virtual) sensor
    times in microseconds and their host times: on the clock mapping, never after their
    arrival, always increasing. `skip(seconds)` advances the virtual clock over a time
    without a link, by the delivered rate, and returns the samples that fitted there.
    """

    def __init__(self, rate_hz: int, *, window_s: float = 4.0) -> None:
        self.rate_hz = rate_hz
        self.period_us = 1_000_000 // rate_hz
        self.window_s = window_s
        self._mapper = ClockMapper(
            segment_s=0.5, window_segments=24, max_skew_ppm=1_500_000, min_span_s=3.0
        )
        self._k = 0
        self._last_host_s = -math.inf
        self._arrivals: deque[tuple[float, int]] = deque()

    @property
    def samples(self) -> int:
        """Samples stamped (and skipped) so far: the virtual clock in periods."""
        return self._k

    @property
    def last_host_s(self) -> float:
        """Host time of the last sample stamped."""
        return self._last_host_s

    @property
    def delivered_rate_hz(self) -> float | None:
        """Samples per second that arrived over the last `window_s` (None before 2 notes)."""
        if len(self._arrivals) < 2:
            return None
        span = self._arrivals[-1][0] - self._arrivals[0][0]
        if span <= 0:
            return None
        return sum(n for _, n in list(self._arrivals)[1:]) / span

    def stamp(self, n: int, arrival_s: float) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
        """Sensor (µs) and host (s) times of the next `n` samples, arrived at `arrival_s`."""
        k = np.arange(self._k, self._k + n, dtype=np.int64)
        self._k += n
        t_us = k * self.period_us
        est = self._mapper.observe(int(t_us[-1]), arrival_s)
        host = np.minimum(est.to_host(t_us), arrival_s)
        # Increasing, by at least a microsecond: the motion core needs time to move on.
        floor = self._last_host_s + _MIN_STEP_S * np.arange(1, n + 1)
        host = np.maximum(np.maximum.accumulate(host), floor)
        self._last_host_s = float(host[-1])
        self._arrivals.append((arrival_s, n))
        while self._arrivals and self._arrivals[0][0] < arrival_s - self.window_s:
            self._arrivals.popleft()
        return t_us, host

    def skip(self, seconds: float) -> int:
        """Samples that the sensor took in `seconds` without a link (estimated)."""
        rate = self.delivered_rate_hz or float(self.rate_hz)
        lost = max(0, round(seconds * rate) - 1)
        self._k += lost
        self._arrivals.clear()
        return lost
