"""Mapping sensor time to host time, with the sensor clock's drift estimated on the fly.

A packet leaves the sensor right after its last sample and arrives after a latency that
is never below some floor (the connection interval) but often above it (retries, a busy
host). So `host_arrival - sensor_time` has a lower envelope that is a straight line: its
intercept is the clock offset plus the latency floor, its slope the skew between the two
crystals (tens of ppm for a typical sensor). We keep the minimum of that difference per
segment of sensor time and fit a line through the minima of the last few segments.
"""

import math
from collections import deque
from dataclasses import dataclass
from typing import Final

import numpy as np
from numpy.typing import NDArray

__all__ = ["ClockEstimate", "ClockMapper"]

_US: Final = 1e-6


@dataclass(frozen=True, slots=True)
class ClockEstimate:
    """host_s = offset_s + (1 + skew) * sensor_s, with sensor_s = sensor_us * 1e-6."""

    offset_s: float
    skew: float

    @property
    def skew_ppm(self) -> float:
        """The sensor clock's drift against the host clock, in parts per million."""
        return self.skew * 1e6

    def to_host(self, sensor_us: NDArray[np.int64] | int) -> NDArray[np.float64]:
        """Host time in seconds of sensor times in (unwrapped) microseconds."""
        s = np.asarray(sensor_us, dtype=np.float64) * _US
        return np.asarray(self.offset_s + (1.0 + self.skew) * s, dtype=np.float64)


class ClockMapper:
    """Streaming estimate of the sensor-to-host clock mapping.

    Feed it `observe(sensor_us, host_s)` for each packet (the sensor time of its last
    sample and the host time it arrived); read `estimate` at any point. Settings are the
    constructor's arguments; `reset()` clears what was learned.
    """

    def __init__(
        self,
        *,
        segment_s: float = 5.0,
        window_segments: int = 24,
        max_skew_ppm: float = 500.0,
        late_s: float = 0.25,
        min_span_s: float = 60.0,
        forget_after_s: float = 1200.0,
    ) -> None:
        if segment_s <= 0 or window_segments < 2:
            raise ValueError(
                f"segment_s > 0 and window_segments >= 2 expected, got {segment_s}, "
                f"{window_segments}"
            )
        self.segment_s = segment_s
        self.window_segments = window_segments
        self.max_skew_ppm = max_skew_ppm
        self.late_s = late_s
        """A segment whose minimum lies this far above the lowest one is left out of the fit."""
        self.min_span_s = min_span_s
        """Sensor time the fitted minima must span before their slope is taken as the skew:
        over seconds, the jitter of the minima says more than the crystals' drift, and a
        skew that wrong, extrapolated over a pause of minutes, misplaces what follows."""
        self.forget_after_s = forget_after_s
        """Sensor time without observations after which what was learned is forgotten: the
        drift over it is not known to better than `late_s`, so the old envelope would take
        the sensor's drift for latency. (A sensor replays a backlog kept 10 minutes at
        most, so no late replay comes after such a silence.)"""
        self._last_x: float | None
        self._segments: deque[tuple[float, float]] = deque(maxlen=window_segments)
        self._seg_start: float | None
        self._seg_min: tuple[float, float] | None
        self._skew: float
        self._closed_intercept: float
        self._estimate: ClockEstimate | None
        self.reset()

    def reset(self) -> None:
        """Forget every observation, as after a sensor restart."""
        self._segments.clear()
        self._seg_start = None
        self._seg_min = None
        self._skew = 0.0
        self._closed_intercept = math.inf
        self._estimate = None
        self._last_x = None

    @property
    def estimate(self) -> ClockEstimate | None:
        """The current mapping, or None before the first observation."""
        return self._estimate

    def observe(self, sensor_us: int, host_s: float) -> ClockEstimate:
        """Take one (sensor time, host arrival time) pair; return the updated mapping.

        Constant time: the slope is refitted only when a segment closes.
        """
        s = sensor_us * _US
        d = host_s - s
        if self._last_x is not None and s - self._last_x > self.forget_after_s:
            self.reset()
        self._last_x = s
        if self._seg_start is None:
            self._seg_start = s
        if s - self._seg_start >= self.segment_s and self._seg_min is not None:
            self._segments.append(self._seg_min)
            self._refit()
            self._seg_start = s
            self._seg_min = None
        if self._seg_min is None or d < self._seg_min[1]:
            self._seg_min = (s, d)
        open_x, open_d = self._seg_min
        intercept = min(self._closed_intercept, open_d - self._skew * open_x)
        est = self._estimate
        if est is None or est.offset_s != intercept or est.skew != self._skew:
            self._estimate = est = ClockEstimate(intercept, self._skew)
        return est

    def _refit(self) -> None:
        lowest = min(d for _, d in self._segments)
        # Packets a sensor kept through a disconnection (a 1.1 resume) arrive seconds late,
        # so a segment made only of them sits far above the envelope and would tilt the
        # line. Drift moves the envelope by far less than `late_s` over the window.
        points = [(x, d) for x, d in self._segments if d <= lowest + self.late_s]
        span = max(x for x, _ in points) - min(x for x, _ in points)
        if len(points) < 2 or span < self.min_span_s:
            self._skew = 0.0
        else:
            xs = np.fromiter((p[0] for p in points), dtype=np.float64, count=len(points))
            ds = np.fromiter((p[1] for p in points), dtype=np.float64, count=len(points))
            dx = xs - xs.mean()
            limit = self.max_skew_ppm * 1e-6
            skew = float(np.dot(dx, ds - ds.mean()) / np.dot(dx, dx))
            self._skew = min(max(skew, -limit), limit)
        # Least squares runs through the minima's centre; a lower envelope must touch
        # the lowest of them, so the line is shifted down to it.
        self._closed_intercept = min(d - self._skew * x for x, d in points)
