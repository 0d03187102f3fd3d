"""Candidate reps: one causal pass over the low-passed angle, never moving backwards.

States and what moves the detector between them, checked in this order at each sample:

- *idle*, at the rest level (the lowest angle of the last `baseline_window_s`, never
  reaching back past the last rep's end). It goes *out* once the angle is half the
  exercise's detection floor above it.
- *out*, rising to and holding at the top, whose highest angle is followed. It goes
  *back* once the angle falls below `half_ratio` of its excursion. A pause of `pause_s`
  on the way out, then a rise from it by `threshold` to over twice its height, starts
  the candidate again from the pause (the limb was put down there).
- *back*: the lowest angle since (the valley) is followed. If the angle rises again
  (over half way, or by `threshold` from the valley) before the limb was back near the
  start (`back_ratio` of the excursion) or within `min_phase_s` of the top, that was a
  dip at the top: *out* again, the same rep. Otherwise the rep has ended at the valley
  when the angle rises from it by `threshold` (the next rep starts there, *out*):
  without a rest between, that is `scale_ratio` of the set's typical excursion (the
  median of its last `run_reps`), not less than the start's (a bounce off the bed is no
  rep); or when the limb rests: *idle*. Resting is slow (the reference's `still`) for
  the reference's `rest_min_s` near the start, or its `pause_s` further up, while coming
  down over the last `rest_min_s` at less than `phase_speed_ratio` of the fastest it
  came down (or less than a rise that starts a candidate): the way back of a 2 deg or a
  10 s rep is slower than `still_dps` long before it is over.

A candidate that rests longer than any hold (`settled_s`) before it came back has not
been a rep: it is dropped, and the rest level is looked for from where the limb rests.
"""

from typing import Literal, NamedTuple

import numpy as np
from numpy.typing import NDArray

from ._filters import first_true, median_of, run_lengths, trailing_min_from
from ._settings import SegmenterSettings

__all__ = ["Candidate", "CandidateDetector", "SampleBuffer"]

F64Array = NDArray[np.float64]

_SCAN_N = 1024
# Columns of the sample buffer.
T, TH, OFF, LP, STILL, GAP, RECOVERED = range(7)
NCOL = 7
_ONSET_OF_FLOOR = 0.5
"""A candidate begins this share of the detection floor above rest. It must still reach
the whole floor to count (acceptance, rule 1): beginning early only keeps the onset."""


class Candidate(NamedTuple):
    """A movement out from the rest level and back, by absolute sample index."""

    begin: int
    """Where its onset may be looked for from (after the previous candidate)."""
    start: int
    """Where the angle crossed the start threshold."""
    peak: int
    end: int
    """The valley it came back to."""
    decided: int
    """The sample at which it was known to have ended."""


class SampleBuffer:
    """Recent samples as rows of a float array, addressed by absolute sample index."""

    def __init__(self) -> None:
        self.data = np.empty((1024, NCOL))
        self.base = 0
        self.start = 0
        self.n = 0

    def extend(self, k: int) -> F64Array:
        """Add k rows at the end; return them, to be filled in place."""
        if self.start + self.n + k > self.data.shape[0]:
            cap = max(self.data.shape[0], 2 * (self.n + k))
            moved = np.empty((cap, NCOL)) if cap > self.data.shape[0] else self.data
            moved[: self.n] = self.data[self.start : self.start + self.n]
            self.data, self.start = moved, 0
        stop = self.start + self.n
        self.n += k
        return self.data[stop : stop + k]

    @property
    def end(self) -> int:
        """Absolute index after the last row."""
        return self.base + self.n

    def rows(self, start: int, stop: int) -> F64Array:
        """Rows start to stop (absolute, exclusive)."""
        return self.data[self.start + start - self.base : self.start + stop - self.base]

    def col(self, c: int, start: int, stop: int) -> F64Array:
        """One column of rows start to stop."""
        return self.rows(start, stop)[:, c]

    def drop_before(self, index: int) -> None:
        """Forget the rows before `index`."""
        k = min(max(0, index - self.base), self.n)
        self.start += k
        self.n -= k
        self.base += k


class CandidateDetector:
    """The state machine of the module docstring, over a `SampleBuffer`."""

    def __init__(
        self,
        rate_hz: float,
        floor_deg: float,
        settled_s: float,
        rest_min_s: float,
        pause_s: float,
        settings: SegmenterSettings,
    ) -> None:
        self.rate_hz = float(rate_hz)
        self.settings = s = settings
        self.floor_deg = floor_deg
        self._window = max(1, round(s.baseline_window_s * self.rate_hz))
        self._settle_n = max(1, round(rest_min_s * self.rate_hz))
        self._low_n = max(1, round(pause_s * self.rate_hz))
        self._settled_n = max(2, round(settled_s * self.rate_hz))
        self.reset(0)

    def reset(self, at: int) -> None:
        """Start afresh at absolute sample `at` (a new reference): idle, no scale."""
        self.state: Literal["idle", "out", "back"] = "idle"
        self._floor = at  # no rest window reaches back before this
        self._next = at  # the next sample to scan
        self._base = 0.0
        self._begin = at
        self._start = at
        self._peak = -np.inf
        self._peak_i = at
        self._valley = np.inf
        self._valley_i = at
        self._descent = 0.0  # the most the angle fell over `rest_min_s` on the way back
        self._pause_level = np.inf  # the angle where the limb paused on its way out
        self._pause_i = at
        self._still_run = 0
        self._excursions: list[float] = []
        self._last_end_t = -np.inf

    @property
    def scanning_from(self) -> int:
        """The earliest sample a candidate not yet reported can start at."""
        return self._next if self.state == "idle" else self._start

    def threshold(self, t_s: F64Array) -> F64Array:
        """Rise from a valley, without a rest, that starts the next candidate at `t_s`."""
        s = self.settings
        floor = 0.5 * self.floor_deg
        if not self._excursions:
            return np.full(t_s.shape[0], floor)
        typical = median_of(self._excursions[-s.run_reps :])
        scaled = max(floor, s.scale_ratio * typical)
        return np.where(t_s - self._last_end_t > s.set_gap_s, floor, scaled)

    def scan(self, buf: SampleBuffer) -> list[Candidate]:
        """Scan the rows not yet seen; return the candidates that ended in them."""
        found: list[Candidate] = []
        while self._next < buf.end:
            i = self._next
            # A long stream is scanned a piece at a time: each step looks only as far as
            # it needs to (the same states whatever the pieces, the pass being causal).
            end = min(buf.end, i + _SCAN_N)
            if self.state == "idle":
                self._idle(buf, i, end)
            elif self.state == "out":
                self._out(buf, i, end)
            else:
                c = self._back(buf, i, end)
                if c is not None:
                    found.append(c)
        return found

    def _idle(self, buf: SampleBuffer, i: int, end: int) -> None:
        lo = max(self._floor, i - self._window + 1, buf.base)
        lp = buf.col(LP, lo, end)
        rest = trailing_min_from(lp, self._window, i - lo)
        rise = lp[i - lo :] - rest
        # From rest, the detection floor: a small set after a wide one starts as any set.
        k = first_true(rise >= _ONSET_OF_FLOOR * self.floor_deg)
        if k < 0:
            self._next = end
            return
        at = i + k
        self._base = float(rest[k])
        window = lp[max(0, at - lo - self._window + 1) : at - lo + 1]
        self._begin = max(self._floor, at - self._window + 1 + int(window.argmin()))
        self._begin_candidate(buf, at)

    def _begin_candidate(self, buf: SampleBuffer, at: int) -> None:
        self.state = "out"
        self._start = at
        self._peak = float(buf.data[buf.start + at - buf.base, LP])
        self._peak_i = at
        self._still_run = 0
        self._pause_level = np.inf  # no pause on the way out yet
        self._pause_i = at
        self._next = at + 1

    def _out(self, buf: SampleBuffer, i: int, end: int) -> None:
        s = self.settings
        lp = buf.col(LP, i, end)
        top = np.maximum.accumulate(np.concatenate([[self._peak], lp]))[1:]
        half = self._base + s.half_ratio * (top - self._base)
        runs = run_lengths(buf.col(STILL, i, end) != 0, self._still_run)
        falling = lp < half
        rested = runs >= self._settled_n
        # A pause on the way out, then a rise from it that goes on past twice its height:
        # the limb was put down there (shifted, settled after the last rep), and the rep
        # starts from that rest. A hold at the top, or a sagging hold lifted again, is
        # over half way already.
        paused = runs == self._low_n
        lifted = (lp - self._pause_level >= self.threshold(buf.col(T, i, end))) & (
            self._pause_level - self._base < s.half_ratio * (lp - self._base)
        )
        k = first_true(falling | rested | paused | lifted)
        stop = end if k < 0 else i + k
        upto = lp[: stop - i + 1] if k >= 0 else lp
        if upto.shape[0]:
            j = int(upto.argmax())
            if upto[j] > self._peak:
                self._peak, self._peak_i = float(upto[j]), i + j
        if k < 0:
            self._still_run = int(runs[-1])
            self._next = end
            return
        if rested[k] and not falling[k]:
            self._drop(stop)
            return
        if not falling[k] and lifted[k]:
            self._base = self._pause_level
            self._begin = self._pause_i
            self._pause_level = np.inf
            self._still_run = int(runs[k])
            self._begin_candidate(buf, stop)
            return
        if not falling[k] and paused[k]:
            self._pause_level, self._pause_i = float(lp[k]), stop
            self._still_run = int(runs[k])
            self._next = stop + 1
            return
        self.state = "back"
        self._descent = 0.0
        self._valley, self._valley_i = float(lp[k]), stop
        self._still_run = int(runs[k])
        self._next = stop + 1

    def _back(self, buf: SampleBuffer, i: int, end: int) -> Candidate | None:
        s = self.settings
        lp = buf.col(LP, i, end)
        t = buf.col(T, i, end)
        exc = self._peak - self._base
        half = self._base + s.half_ratio * exc
        near = self._base + s.back_ratio * exc
        low = np.minimum.accumulate(np.concatenate([[self._valley], lp]))[1:]
        runs = run_lengths(buf.col(STILL, i, end) != 0, self._still_run)
        up_again = lp > half
        rise = lp - low >= self.threshold(t)
        back = low <= near
        # Resting: slow, and coming down over the last `rest_min_s` at less than
        # `phase_speed_ratio` of the fastest the way back came down (a small or slow
        # rep's way back is slower than `still_dps` before it is over; a rest may drift).
        before = buf.col(LP, max(buf.base, i - self._settle_n), end)
        lag = np.concatenate([np.full(self._settle_n, before[0]), before])
        lag = lag[lag.shape[0] - self._settle_n - lp.shape[0] : lag.shape[0] - self._settle_n]
        descent = lag - lp
        fastest = np.maximum.accumulate(np.concatenate([[self._descent], descent]))[1:]
        # Less than a rise that would start a candidate is rest too: the jitter at rest.
        calm = np.maximum(s.phase_speed_ratio * fastest, _ONSET_OF_FLOOR * self.floor_deg)
        resting = descent < calm
        settled = resting & (((runs >= self._settle_n) & back) | (runs >= self._low_n))
        k = first_true(up_again | (rise & back) | settled)
        if k < 0:
            self._follow_valley(lp, i)
            self._still_run = int(runs[-1])
            self._descent = float(fastest[-1])
            self._next = end
            return None
        self._follow_valley(lp[: k + 1], i)
        self._descent = float(fastest[k])
        at = i + k
        quick = (
            self._t(buf, self._valley_i) - self._t(buf, self._peak_i) < self.settings.min_phase_s
        )
        if not settled[k] and (quick or not back[k]):
            # A dip at the top (or a pause on the way down): the same rep goes on.
            self.state = "out"
            self._still_run = int(runs[k])
            self._next = at
            return None
        cand = Candidate(self._begin, self._start, self._peak_i, self._valley_i, at)
        if self._t(buf, self._start) - self._last_end_t > s.set_gap_s:
            self._excursions = []  # a new set: its scale is its own
        self._excursions.append(exc)
        self._last_end_t = self._t(buf, self._valley_i)
        self._floor = self._valley_i
        if not settled[k]:
            # Straight into the next rep, which starts from this one's valley.
            self._base = self._valley
            self._begin = self._valley_i
            self._begin_candidate(buf, at)
        else:
            self.state = "idle"
            self._next = at + 1
        return cand

    def flush(self, buf: SampleBuffer) -> list[Candidate]:
        """End of the stream: a candidate on its way back ends at its valley."""
        found: list[Candidate] = []
        if self.state == "back" and buf.end > self._valley_i:
            exc = self._peak - self._base
            if self._valley <= self._base + self.settings.back_ratio * exc:
                found.append(
                    Candidate(self._begin, self._start, self._peak_i, self._valley_i, buf.end - 1)
                )
        self.state = "idle"
        self._next = buf.end
        return found

    def _follow_valley(self, lp: F64Array, i: int) -> None:
        j = int(lp.argmin())
        if lp[j] < self._valley:
            self._valley, self._valley_i = float(lp[j]), i + j

    def _drop(self, at: int) -> None:
        """The candidate came to rest somewhere that is not its start: no rep."""
        self.state = "idle"
        self._floor = at
        self._next = at + 1

    @staticmethod
    def _t(buf: SampleBuffer, index: int) -> float:
        return float(buf.data[buf.start + index - buf.base, T])
