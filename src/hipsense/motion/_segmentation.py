"""Reps, holds and sets from the primary angle.

Detection is causal and cheap: the low-passed primary angle leaves its baseline (the
lowest angle since the last rep), reaches at least `detect_deg`, and comes back to a
third of its excursion; once it has settled (still, rising again, or `settle_s` later)
the rep is measured on the samples around it. Measurement is offline on that window:
zero-phase smoothing, then phase boundaries where the angular velocity crosses 5 % of
the phase's peak velocity. The window is fixed by sample indices found causally, so the
events do not depend on how the stream was split into blocks.
"""

import itertools
import math
from dataclasses import dataclass, field, replace
from typing import Literal, NamedTuple

import numpy as np
from numpy.typing import NDArray

from ._calibration import AngleBlock
from ._events import Flag, HoldEvent, RepEvent, SetEvent
from ._filters import (
    Biquad,
    Lowpass,
    butter2_lowpass,
    first_true,
    largest,
    run_lengths,
    trailing_min_from,
    true_runs,
)
from ._targets import Targets

__all__ = ["Segmenter", "SegmenterSettings"]

F64Array = NDArray[np.float64]
Event = RepEvent | HoldEvent | SetEvent

# Columns of the sample buffer.
_T, _TH, _LP, _PH, _STILL, _REF, _GAP, _PX, _PY = range(9)
_NCOL = 9
_SCAN_N = 512
# Flags that make a rep on its own doubtful: the marks of a movement that was no rep.
_DOUBTFUL = frozenset({Flag.PARTIAL, Flag.OFF_PLANE, Flag.HOLD_SHORT})


@dataclass(frozen=True)
class SegmenterSettings:
    """Detection and measurement settings (angles in degrees, times in seconds)."""

    lowpass_hz: float = 3.0
    measure_lowpass_hz: float = 4.0
    start_ratio: float = 0.5
    """A candidate starts this share of `detect_deg` above the baseline."""
    return_ratio: float = 0.35
    """A rep is coming back once below this share of its excursion."""
    rebound_ratio: float = 0.5
    """A candidate that came back below this share of its excursion and rises again
    (by the start threshold) from there was a rep, and the next starts from its bottom."""
    settle_s: float = 1.0
    pre_s: float = 3.0
    """Look-back before the start crossing for the movement onset."""
    phase_velocity_ratio: float = 0.03
    plateau_velocity_ratio: float = 0.25
    """Below this share of the rep's peak velocity the limb is at the top: the samples
    whose median velocity is the hold's drift (a slow sag)."""
    onset_max_deg: float = 12.0
    """A movement starting further than this (or half the target range) from neutral is
    not an exercise rep (walking, getting up)."""
    rest_min_s: float = 0.5
    below_rest_deg: float = 5.0
    below_rest_ratio: float = 0.3
    """Reps start and end no further than this (or this share of their range) below
    the rest level: the angle of the latest still spell of `rest_min_s` near neutral."""
    onset_chain_deg: float = 3.0
    """A rep may also start within this of where the last rep started (less than
    `set_gap_s` after it ended), however far from neutral: the rest level moves rep by
    rep when the heading drifts about a vertical movement axis or a gap loses some of a
    rep's rotation, and a set is a chain of reps from one start position."""
    onset_max_off_plane_deg: float = 20.0
    """A rep starts from the start position: not tilted this far out of the plane."""
    off_plane_max_ratio: float = 1.0
    """A movement that swings off the plane further than this share of its range about
    the axis (plus 2 deg of noise) is not a rep of the exercise, even a badly done one."""
    max_range_ratio: float = 1.75
    """Further than this times the top of the exercise's range is not a rep (getting up)."""
    max_tempo_ratio: float = 3.0
    """Slower than this times the prescribed tempo both ways is not a rep (turning over)."""
    set_gap_s: float = 25.0
    lone_rep_s: float = 10.0
    """A doubtful rep with no rep ending within this long before it is held back: one
    such movement on its own is more likely shifting or reaching than an exercise. A rep
    is doubtful if flagged partial, off the plane or with its hold cut short, or if it
    comes after its set has all its prescribed reps (the patient settling after a set,
    see `Targets.reps_per_set`). It counts once a rep that is not flagged is detected
    within this long of its end, or `doubtful_run` flagged ones in a row are; if none
    is, it is dropped."""
    doubtful_run: int = 3
    """Doubtful reps in a row, each within `lone_rep_s` of the last, that confirm each
    other: a patient doing every rep short of the prescription still does a set, but
    two turns of a fidget are no set."""
    baseline_window_s: float = 3.0
    """The rest level a rep starts from is the lowest angle of this trailing window:
    it follows a slow drift or a shifted rest pose instead of remembering the lowest
    angle ever seen (one dip while getting settled would hide every later rep)."""
    hold_min_ratio: float = 0.2
    """A hold exercise's movement with less than this share of the prescribed hold at
    its top is the limb passing through the position (fidgeting, settling in), not a
    hold cut short. Holds are measured with their drift, so a fidget that creeps on
    for a second or two at its top measures as long: a tenth of a 10 s hold is too
    little to tell them apart."""
    hold_band_deg: float = 2.0
    hold_band_ratio: float = 0.15
    settled_low_s: float = 2.0
    """A candidate still for longer than this (and than the prescribed hold) more than
    half way back from its top has settled there: no hold is below the top, and a pause
    on the way back is shorter. It is dropped, and the rest level found from there."""
    max_candidate_s: float = 150.0
    still_candidate_s: float = 10.0
    """A candidate rep still for longer than the prescribed hold plus this (or twice the
    hold) has come to rest somewhere that is not its start: it is dropped and the rest
    level found again from where it came to rest."""


class _Buffer:
    """Recent samples as rows of a float array, addressed by absolute sample index.

    Dropping old rows only moves a start offset; the live rows are moved down when the
    array is full, so each sample is copied a bounded number of times however small the
    blocks are.
    """

    def __init__(self) -> None:
        self.data = np.empty((1024, _NCOL))
        self.base = 0  # absolute index of the first live row
        self.start = 0  # where that row is in `data`
        self.n = 0

    def extend(self, k: int) -> F64Array:
        """Add k rows at the end; return them, to be filled in place."""
        if self.start + self.n + k > self.data.shape[0]:
            cap = max(self.data.shape[0], 2 * (self.n + k))
            moved = np.empty((cap, _NCOL)) if cap > self.data.shape[0] else self.data
            moved[: self.n] = self.data[self.start : self.start + self.n]
            self.data, self.start = moved, 0
        stop = self.start + self.n
        self.n += k
        return self.data[stop : stop + k]

    @property
    def end(self) -> int:
        return self.base + self.n

    def rows(self, start: int, stop: int) -> F64Array:
        return self.data[self.start + start - self.base : self.start + stop - self.base]

    def at(self, c: int, index: int) -> float:
        return float(self.data[self.start + index - self.base, c])

    def col(self, c: int, start: int, stop: int | None = None) -> F64Array:
        return self.rows(start, self.end if stop is None else stop)[:, c]

    def drop_before(self, index: int) -> None:
        k = min(max(0, index - self.base), self.n)
        self.start += k
        self.n -= k
        self.base += k


class Segmenter:
    """Streams `AngleBlock`s in, reps / holds / sets out."""

    def __init__(
        self, rate_hz: float, targets: Targets, settings: SegmenterSettings | None = None
    ) -> None:
        self.rate_hz = float(rate_hz)
        self.targets = targets
        self.settings = settings if settings is not None else SegmenterSettings()
        self._lp = Lowpass(self.settings.lowpass_hz, self.rate_hz)
        cutoff = min(self.settings.measure_lowpass_hz, 0.4 * self.rate_hz)
        self._measure = Biquad(*butter2_lowpass(cutoff, self.rate_hz))
        self._window = 2 * round(self.settings.baseline_window_s * self.rate_hz / 2) + 1
        self._rest_n = max(1, round(self.settings.rest_min_s * self.rate_hz))
        self._still_limit = round(targets.settled_s(self.settings.still_candidate_s) * self.rate_hz)
        self._settled_low_n = round(max(targets.hold_s, self.settings.settled_low_s) * self.rate_hz)
        self._pre_n = round(self.settings.pre_s * self.rate_hz)
        self.reset()

    @property
    def onset_max_deg(self) -> float:
        """Furthest from neutral a rep may start."""
        return max(self.settings.onset_max_deg, 0.5 * self.targets.target_max_deg)

    def reset(self) -> None:
        """Forget all samples and events."""
        self._lp.reset()
        self._lp_ref = -1
        self._buf = _Buffer()
        self._state: Literal["idle", "active", "returning"] = "idle"
        self._baseline = np.inf
        self._peak = -np.inf
        self._cand = 0
        self._still_run = 0
        self._low_run = 0  # still and more than half way back, while a candidate
        self._trough = np.inf  # lowest since the candidate came half way back (or inf)
        self._trough_i = 0
        self._rebounded = False  # the candidate ended where the next rose: see `_offer`
        self._rest_run = 0
        self._rest_level = 0.0
        self._cand_rest = 0.0
        self._rest_levels = np.empty(0)
        # Where the last rep started (deg) and when it ended (s): see `onset_chain_deg`.
        self._chain: tuple[float, float] | None = None
        self._rest_runs = np.empty(0, np.int64)
        self._ret = 0
        self._low = np.inf
        self._low_i = 0
        self._floor = 0  # no window reaches back before this index (the last rep's end)
        self._last_t: float | None = None
        self._ref = -1
        self._counted_ref = -1  # the reference of the last rep or hold counted
        self._reps = 0
        self._holds = 0
        self._last_end_s: float | None = None
        self._pending: list[RepEvent] = []
        self._wait_s = self.settings.lone_rep_s  # how long the held reps wait: see `_offer`
        self._keys: list[float] = []  # see `settled_s`
        self.settled_s: tuple[float, ...] = ()
        """When each of the events last returned was settled, for merging them in time
        order with other events: a rep's or hold's end (for a rep held back, the end of
        the rep that confirmed it), a set's end."""
        self._set: _OpenSet | None = None
        self._sets = 0

    # -- streaming -----------------------------------------------------------------

    def update(self, block: AngleBlock) -> list[Event]:
        """Take calibrated samples; return the events completed by them."""
        n = block.t_s.shape[0]
        if n == 0:
            return self._settled([])
        period = 1.0 / self.rate_hz
        first = float(block.t_s[0]) if self._last_t is None else self._last_t
        self._last_t = float(block.t_s[-1])
        start = self._buf.end
        rows = self._buf.extend(n)
        longest = float(block.t_s[0]) - first
        if n > 1:
            longest = max(longest, largest(block.t_s[1:] - block.t_s[:-1]))
        if longest <= 1.5 * period:
            rows[:, _GAP] = 0.0  # the usual case, without a per-sample comparison
        else:
            prev = np.concatenate([[first], block.t_s[:-1]])
            rows[:, _GAP] = (block.t_s - prev) > 1.5 * period
        rows[:, _T] = block.t_s
        rows[:, _TH] = block.primary_deg
        # A new reference restarts the low-pass: the angle jumps to ~0 at a calibration
        # and the filter's transient must not look like motion.
        refs = block.reference
        if refs[0] == self._lp_ref and refs[-1] == self._lp_ref:
            # References only count up: the whole block is measured from one neutral.
            rows[:, _LP] = self._lp(block.primary_deg)
        else:
            cuts = np.flatnonzero(np.diff(np.concatenate([[self._lp_ref], refs])) != 0)
            bounds = [*cuts.tolist(), n]
            if not cuts.size or cuts[0] != 0:
                bounds = [0, *bounds]
            for a, b in itertools.pairwise(bounds):
                if a in cuts:
                    self._lp.reset()
                rows[a:b, _LP] = self._lp(block.primary_deg[a:b])
            self._lp_ref = int(refs[-1])
        rows[:, _PH] = block.off_plane_deg
        rows[:, _STILL] = block.still
        rows[:, _REF] = block.reference
        rows[:, _PX : _PY + 1] = block.off_plane_xy_deg
        events = self._scan(start)
        now = self._detecting_from()
        if now is not None:
            self._expire_pending(now)
        self._trim()
        return self._settled(events)

    def finish(self) -> list[Event]:
        """End of stream: measure a rep in progress, close the open set."""
        events: list[Event] = []
        if self._state == "returning":
            events += self._finalize(self._buf.end - 1)
        self._state = "idle"
        self._pending = []  # no rep came to confirm them
        events += self._close_set()
        return self._settled(events)

    def close_reference(self, reference: int) -> list[Event]:
        """A new neutral was taken: end what belongs to the old one now.

        Samples of the new reference may come much later (after its axis is found); the
        rep in progress and the open set must not wait for them.
        """
        if reference <= self._ref:
            return self._settled([])
        events: list[Event] = []
        if self._state == "returning":
            events += self._finalize(self._buf.end - 1)
        self._state = "idle"
        return self._settled(events + self._close_set())

    def _settled(self, events: list[Event]) -> list[Event]:
        keys, self._keys = self._keys, []
        assert len(keys) == len(events), "every event has its time"
        self.settled_s = tuple(keys)
        return events

    def _track_rest(self, i: int, stop: int, lp: F64Array) -> None:
        """Rest levels while idle: the angle of the latest still spell of `rest_min_s`.

        `_rest_at(k)` is then the rest level at idle sample i + k. Only idle samples
        count: the hold at the top of a rep is still too, but it is not where reps start.
        """
        still = self._buf.col(_STILL, i, stop) > 0.5
        runs = run_lengths(still, self._rest_run)
        self._rest_runs = runs
        resting = runs >= self._rest_n
        # At rest throughout, or moving throughout, are the usual cases.
        if resting[resting.argmin()]:
            self._rest_levels = lp
        elif not resting[resting.argmax()]:
            self._rest_levels = np.full(lp.shape[0], self._rest_level)
        else:
            last = np.maximum.accumulate(np.where(resting, np.arange(lp.shape[0]), -1))
            self._rest_levels = np.where(last >= 0, lp[np.maximum(last, 0)], self._rest_level)

    def _chained(self, start_deg: F64Array, t_s: F64Array) -> NDArray[np.bool_]:
        """Whether a rep starting at `start_deg` at `t_s` starts where the last one did.

        Within `onset_chain_deg` of the last rep's start, and no more than `set_gap_s`
        after it ended (see `onset_chain_deg`).
        """
        s = self.settings
        if self._chain is None:
            return np.zeros(np.shape(start_deg), dtype=bool)
        level, end_s = self._chain
        return np.asarray(
            (np.abs(start_deg - level) <= s.onset_chain_deg) & (t_s - end_s <= s.set_gap_s)
        )

    def _rest_at(self, k: int) -> float:
        return float(self._rest_levels[k])

    def _leave_idle(self, k: int) -> None:
        """Carry the rest tracking up to idle sample k (exclusive) into the state."""
        if k > 0:
            self._rest_level = float(self._rest_levels[k - 1])
            self._rest_run = int(self._rest_runs[k - 1])

    def _trailing_min(self, i: int, stop: int) -> F64Array:
        """Lowest low-passed angle of the trailing window at each sample i to stop.

        The window never reaches back before `_floor` (the last rep's end or the
        current reference's first sample).
        """
        w = self._window
        a = max(self._floor, self._buf.base, i - w + 1)
        return trailing_min_from(self._buf.col(_LP, a, stop), w, i - a)

    def _trim(self) -> None:
        pre = max(self._pre_n, self._window)
        keep = self._buf.end - pre - 1
        if self._state != "idle":
            keep = min(keep, self._cand - pre)
        if keep > self._buf.base:
            self._buf.drop_before(keep)
        self._floor = max(self._floor, self._buf.base)

    def _scan(self, i: int) -> list[Event]:
        t = self.targets
        s = self.settings
        buf = self._buf
        start_thr = s.start_ratio * t.detect_deg
        onset_max = self.onset_max_deg
        events: list[Event] = []
        end = buf.end
        while i < end:
            # Bounded look-ahead: each state step costs its window, not the rest of a
            # whole file (the state carries over exactly, as between blocks).
            stop = min(end, i + _SCAN_N)
            lp = buf.col(_LP, i, stop)
            ref = buf.col(_REF, i, stop)
            if self._state == "idle":
                if ref[0] != self._ref:
                    # A new reference (calibration): the baseline starts again, and no
                    # window reaches back into the old one. Reps held back as the first
                    # against the old neutral were never confirmed by another: the patient
                    # has since settled somewhere else, so they were not reps of a set.
                    if self._counted_ref != self._ref:
                        self._pending.clear()
                    self._ref = int(ref[0])
                    self._baseline = np.inf
                    self._rest_level, self._rest_run = 0.0, 0
                    self._chain = None  # angles from another neutral
                    self._floor = max(self._floor, i)
                    events += self._close_set()
                self._track_rest(i, stop, lp)
                low = self._trailing_min(i, stop)
                # A rep starts from near neutral; rising out of a dip far below it
                # (getting up, turning over) would freeze a baseline that no later rep
                # returns to.
                near = np.abs(low) <= onset_max
                chain = self._chain
                if chain is not None and abs(chain[0]) > onset_max - s.onset_chain_deg:
                    # (Nearer neutral than that, a chained start is near anyway.)
                    near |= self._chained(low, buf.col(_T, i, stop))
                k = first_true(((lp - low > start_thr) & near) | (ref != self._ref))
                if k < 0:
                    self._baseline = float(low[-1])
                    self._leave_idle(lp.shape[0])
                    i = stop
                    continue
                self._leave_idle(k)
                if ref[k] != self._ref:
                    i += k
                    continue
                self._baseline = float(low[k])
                self._cand_rest = self._rest_at(k)
                self._cand = i + k
                self._peak = float(lp[k])
                self._still_run = 0
                self._low_run = 0
                self._trough = np.inf
                self._rebounded = False
                self._rest_run = 0
                self._state = "active"
                i += k + 1
            elif self._state == "active":
                b = self._baseline
                peak = np.maximum(np.maximum.accumulate(lp), self._peak)
                exc = peak - b
                up = lp - b
                big = exc >= t.detect_deg
                back = big & (up < s.return_ratio * exc)
                fizzle = ~big & (up < 0.5 * start_thr)
                # Half way back and out again: the limb came back to rest short of where
                # it started (the rest level creeps up rep by rep) and the next rep began
                # from there. This rep ends at the bottom between them.
                half = big & (up < s.rebound_ratio * exc)
                halfway = self._trough < np.inf or bool(half.any())
                if halfway:
                    since = np.logical_or.accumulate(half) | (self._trough < np.inf)
                    trough = np.minimum.accumulate(np.where(since, lp, np.inf))
                    trough = np.minimum(trough, self._trough)
                    rebound = lp - trough > start_thr
                    # Where the trough is: the latest sample at its level.
                    lower = np.flatnonzero(since & (lp <= trough))
                tt = buf.col(_T, i, stop)
                calm = buf.col(_STILL, i, stop) > 0.5
                runs = run_lengths(calm, self._still_run)
                low_runs = run_lengths(calm & (up < 0.5 * exc), self._low_run)
                stale = (
                    (tt - buf.at(_T, self._cand) > s.max_candidate_s)
                    | (runs > self._still_limit)
                    | (ref != self._ref)
                )
                # Settled somewhere the candidate did not start from: dropped, and the
                # rest level is looked for from there, not in the dip before it. First,
                # still well short of the top for longer than any hold or pause: back
                # most of the way, after fidgeting.
                settled_anew = low_runs >= self._settled_low_n
                below = s.below_rest_deg
                if b < self._cand_rest - below:
                    # Risen out of a dip well below the rest level (a pillow being
                    # adjusted) and settled back at that rest level: that was no rep,
                    # and reps from the rest level would never come back to the dip.
                    settled_anew |= (runs >= self._rest_n) & (np.abs(lp - self._cand_rest) <= below)
                if b < min(self._cand_rest - 0.5 * below, -below):
                    # Or settled at neutral, the start position, out of a dip below it
                    # and below the rest level: the rest level was taken while getting
                    # settled, a dip or two before the start position was back.
                    settled_anew |= (runs >= self._rest_n) & (np.abs(lp) <= below)
                stale |= settled_anew
                ended = back | fizzle | stale
                k = first_true(ended | rebound if halfway else ended)
                if k < 0:
                    self._peak = float(peak[-1])
                    self._still_run = int(runs[-1])
                    self._low_run = int(low_runs[-1])
                    if halfway:
                        self._trough = float(trough[-1])
                        if lower.size:
                            self._trough_i = i + int(lower[-1])
                    i = stop
                    continue
                if halfway and rebound[k] and not ended[k]:
                    # Coming back from the trough: the returning state ends the rep there
                    # and looks for the next from it.
                    before_k = lower[lower < k]
                    if before_k.size:
                        self._trough_i = i + int(before_k[-1])
                    self._peak = float(peak[k])
                    self._ret = self._trough_i
                    self._low = float(trough[k])
                    self._low_i = self._trough_i
                    self._rebounded = True
                    self._state = "returning"
                    i = self._trough_i + 1
                    continue
                if back[k] and not stale[k]:
                    self._peak = float(peak[k])
                    self._ret = i + k
                    self._low = float(lp[k])
                    self._low_i = i + k
                    self._state = "returning"
                    i += k + 1
                else:
                    self._state = "idle"
                    self._baseline = float(lp[k]) if stale[k] else b
                    if settled_anew[k]:
                        self._floor = max(self._floor, i + k)
                    if runs[k] > self._still_limit and not settled_anew[k] and ref[k] == self._ref:
                        # Come to rest somewhere it did not start from: the rest level is
                        # looked for from where it came to rest, since what followed (a
                        # slow rise into a small hold, still to the detector) may be a rep.
                        rest = max(i + k - int(runs[k]) + 1, self._cand + 1)
                        self._floor = max(self._floor, rest)
                        self._baseline = buf.at(_LP, rest)
                        i = rest
                    else:
                        i += k if stale[k] else k + 1
            else:
                low = np.minimum(np.minimum.accumulate(lp), self._low)
                # Where the lowest point so far is: a new rep may rise from it.
                before = np.empty_like(low)
                before[0] = self._low
                before[1:] = low[:-1]
                newer = lp < before
                low_i = np.maximum(
                    np.maximum.accumulate(np.where(newer, i + np.arange(lp.shape[0]), -1)),
                    self._low_i,
                )
                tt = buf.col(_T, i, stop)
                t_ret = buf.at(_T, self._ret)
                # A slow way back (a prescribed eccentric lowering) is still under way
                # well after it passed a third of the excursion.
                settle = max(s.settle_s, 0.75 * t.return_s)
                rising = lp - low > start_thr
                # Still, near the bottom: the last of a slow lowering turns slower than
                # the stillness threshold while it is still on its way.
                near_bottom = lp - self._baseline <= 0.1 * (self._peak - self._baseline)
                settled = (
                    ((buf.col(_STILL, i, stop) > 0.5) & near_bottom)
                    | (tt - t_ret > settle)
                    | (ref != self._ref)
                )
                k = first_true(settled | rising)
                if k < 0:
                    self._low = float(low[-1])
                    self._low_i = int(low_i[-1])
                    i = stop
                    continue
                self._state = "idle"
                self._baseline = float(low[k])
                bottom = int(low_i[k])
                # Straight into the next rep, this one ends at the bottom between them.
                events += self._finalize(bottom if rising[k] and not settled[k] else i + k)
                # The next rep is looked for from that bottom: it may already be on its
                # way up (a short pause between reps), and a rest level taken part way
                # up would hide it.
                self._floor = min(self._floor, bottom)
                i = bottom
        return events

    # -- measuring -----------------------------------------------------------------

    def _finalize(self, stop: int) -> list[Event]:
        buf = self._buf
        start = max(self._floor, self._cand - self._pre_n, buf.base)
        stop = min(stop + 1, buf.end)
        self._floor = stop - 1
        if stop - start < 4:
            return []
        w = buf.rows(start, stop)
        if self.targets.kind == "hold":
            hold = self._measure_hold(w)
            return [] if hold is None else self._add(hold)
        rep = self._measure_rep(w)
        if rep is None:
            return []
        return self._offer(rep, buf.at(_T, self._cand), doubtful=self._rebounded)

    def _offer(self, rep: RepEvent, detected_s: float, *, doubtful: bool = False) -> list[Event]:
        """Count a rep, or hold lone doubtful ones back until a rep confirms them.

        A rep confirms the held ones if it was detected (crossed the start threshold)
        within `lone_rep_s` of the last held one's end: detection times only grow as the
        stream is scanned, so whether one can still come is known without waiting for
        its end. A flagged doubtful rep joins the held ones instead, until there are
        `doubtful_run` of them. A rep past its set's prescription, on its own, is held
        back too, and any rep that is not flagged confirms it (see `Targets.reps_per_set`).

        The first rep against a neutral is held back as well, until another rep is
        detected within a set gap of it: the movement the axis was learned from may be a
        fidget that turned out and back in one plane, which nothing else tells from one
        rep (`set_gap_s`, as a set has more than one rep). If the patient settles at a
        new neutral first, it is dropped.

        A rep that ended half way back because the limb went out again from there
        (`doubtful`) is doubtful like a flagged one: on its own, that was one movement
        with two humps (a pillow adjusted), which the next rep, if it is one, confirms.
        """
        s = self.settings
        pending = self._pending
        self._expire_pending(detected_s)
        recent = (
            not pending
            and self._last_end_s is not None
            and rep.start_s - self._last_end_s <= s.lone_rep_s
        )
        # Samples lost around a rep may have held the reps that would confirm it.
        gap = Flag.DATA_GAP in rep.flags
        flagged = (doubtful or not _DOUBTFUL.isdisjoint(rep.flags)) and not gap
        self._wait_s = s.lone_rep_s
        if flagged and not recent and len(pending) + 1 < s.doubtful_run:
            pending.append(rep)
            return []
        if not flagged and not gap and not recent and not pending:
            if self._counted_ref != self._ref:
                self._wait_s = s.set_gap_s
                pending.append(rep)
                return []
            if self._set_done(rep):
                pending.append(rep)
                return []
        out: list[Event] = []
        for held in pending:
            out += self._add(held, settled_s=rep.end_s)
        pending.clear()
        return out + self._add(rep)

    def _set_done(self, rep: RepEvent) -> bool:
        """Whether `rep` would join a set that already has all its prescribed reps."""
        cap = self.targets.reps_per_set
        cur = self._set
        return (
            cap is not None
            and cur is not None
            and rep.start_s - cur.end_s <= self.settings.set_gap_s
            and len(cur.reps) >= cap
        )

    def _expire_pending(self, now_s: float) -> None:
        """Drop the held-back reps if a rep detected at `now_s` is too late to confirm them."""
        pending = self._pending
        if pending and now_s - pending[-1].end_s > self._wait_s:
            pending.clear()

    def _detecting_from(self) -> float | None:
        """The earliest time a rep not yet detected can be detected at.

        That is the sample being scanned (idle) or the candidate being followed,
        whatever the block boundaries; None before any sample.
        """
        if self._last_t is None or self._state == "idle":
            return self._last_t
        return self._buf.at(_T, self._cand)

    def _smooth(self, th: F64Array) -> F64Array:
        if th.shape[0] > 15:
            return self._measure.filtfilt(th)
        return th

    def _phases(self, t: F64Array, th: F64Array) -> "_Phases | None":
        """Onset, arrival, peak, departure, end indices; peak out and back velocities."""
        f = self.settings.phase_velocity_ratio
        v = np.gradient(th, t)
        ip = int(np.argmax(th))
        if ip == 0 or ip == th.shape[0] - 1:
            return None
        iv_out = int(np.argmax(v[: ip + 1]))
        v_out = float(v[iv_out])
        iv_ret = ip + int(np.argmin(v[ip:]))
        v_ret = float(-v[iv_ret])
        if v_out <= 0 or v_ret <= 0:
            return None
        # Onset and end are near the bottom: a pause part way up (a hesitation) is
        # neither the start of the rep nor its end range.
        # "Bottom" is looked for within about two prescribed phase durations of the
        # fastest point, not in whatever came before the rep.
        tg = self.targets
        reach_out = round((2.0 * tg.outward_s + 1.0) * self.rate_hz)
        reach_back = round((2.0 * tg.return_s + 1.0) * self.rate_hz)
        low_out = float(th[max(0, iv_out - reach_out) : ip + 1].min())
        near_bottom = th[: iv_out + 1] <= low_out + 0.2 * (th[ip] - low_out)
        slow = np.flatnonzero((v[: iv_out + 1] < f * v_out) & near_bottom)
        onset = int(slow[-1]) if slow.size else max(0, iv_out - reach_out)
        base = th[onset]
        # End range: the top 20 % of the excursion; for a held position, widened to the
        # hold's tolerance band up to half the excursion (a small isometric hold sways by
        # as much as 20 % of it).
        exc = th[ip] - base
        high = base + 0.8 * exc
        if self.targets.kind == "hold":
            band = max(self.settings.hold_band_deg, self.settings.hold_band_ratio * exc)
            high = min(high, th[ip] - min(band, 0.5 * exc))
        else:
            # The top 20 % of a rep of a few degrees is narrower than the tremor at end
            # range: at least 1 deg (up to half the excursion) counts as being there.
            high = min(high, th[ip] - min(1.0, 0.5 * exc))
        seg = slice(iv_out, iv_ret + 1)
        # A real hold is rarely flat: the limb sags (or creeps on) slowly. Arrival and
        # departure are judged against the hold's own drift, both its speed and its
        # level, so a steady sag is part of the hold and not the start of the way back
        # (a leg held up 5 s may sink by a quarter of its range).
        drift = 0.0
        calm = np.flatnonzero(
            np.abs(v[seg]) < self.settings.plateau_velocity_ratio * min(v_out, v_ret)
        )
        # Only where a hold may be: at the top of a rep without one, the calm samples are
        # the tails of its two movements, whose median speed is no sag.
        may_hold = self.targets.check_hold or self.targets.auto
        if may_hold and calm.size and calm[-1] - calm[0] >= round(0.5 * self.rate_hz):
            drift = _median(v[iv_out + int(calm[0]) : iv_out + int(calm[-1]) + 1])
        at_top = th[seg] - drift * (t[seg] - t[ip]) >= high
        arrive = np.flatnonzero((v[seg] - drift < f * v_out) & at_top)
        arrival = iv_out + int(arrive[0]) if arrive.size else ip
        leave = np.flatnonzero((v[seg] - drift > -f * v_ret) & at_top)
        departure = iv_out + int(leave[-1]) if leave.size else ip
        departure = max(departure, arrival)
        low_back = float(th[ip : iv_ret + reach_back].min())
        settled = np.flatnonzero(
            (v[iv_ret:] > -f * v_ret) & (th[iv_ret:] <= low_back + 0.2 * (th[ip] - low_back))
        )
        end = iv_ret + int(settled[0]) if settled.size else th.shape[0] - 1
        # The speed thresholds cut the feet off each phase's bell: give them back, as
        # the share of a minimum-jerk movement below the threshold at each end.
        tail = _min_jerk_tau(f)
        b_out = _bell(t, v, iv_out)
        b_ret = _bell(t, -v, iv_ret)
        return _Phases(
            onset,
            arrival,
            ip,
            departure,
            end,
            v_out,
            v_ret,
            tail * b_out[1] if b_out is not None else 0.0,
            tail * b_ret[1] if b_ret is not None else 0.0,
            b_out[0] - b_out[1] / 2 if b_out is not None and b_out[2] else math.inf,
            b_ret[0] + b_ret[1] / 2 if b_ret is not None and b_ret[2] else -math.inf,
            b_out[0] + b_out[1] / 2 if b_out is not None and b_out[2] else math.nan,
            b_ret[0] - b_ret[1] / 2 if b_ret is not None and b_ret[2] else math.nan,
        )

    def _common(self, w: F64Array) -> tuple[F64Array, F64Array, "_Phases", float, float] | None:
        t = w[:, _T]
        th = self._smooth(w[:, _TH])
        ph = w[:, _PH]
        phases = self._phases(t, th)
        if phases is None:
            return None
        onset, arrival, ip, departure, end = (
            phases.onset,
            phases.arrival,
            phases.peak,
            phases.departure,
            phases.end,
        )
        plateau = th[arrival : departure + 1]
        # The level held: the top of the plateau (a wide tolerance band must not pull a
        # small hold's level down towards its ramps).
        plateau = plateau[plateau >= th[onset] + 0.8 * (th[ip] - th[onset])]
        level = _median(plateau) if plateau.shape[0] >= 3 else float(th[ip])
        rom = level - float(th[onset])
        off = float(ph[onset : end + 1].max() - ph[onset])
        xy = w[onset : end + 1, _PX : _PY + 1]
        swept = float(np.sqrt(((xy - xy[0]) ** 2).sum(axis=1)).max())
        tg = self.targets
        if rom < tg.detect_deg:
            return None
        # Exercise reps start from the start position and stay in their plane; walking,
        # getting up and fidgeting do not.
        if abs(th[onset]) > self.onset_max_deg and not self._chained(th[onset], t[onset]):
            return None
        if ph[onset] > self.settings.onset_max_off_plane_deg:
            return None
        # ... and move to one side of the rest position: a swing that starts or ends
        # well below it (walking, rocking) is not a rep.
        s = self.settings
        below = self._cand_rest - max(s.below_rest_deg, s.below_rest_ratio * rom)
        if th[onset] < below or th[end] < below:
            return None
        # ... and turn about the exercise's axis more than they swing off it: fidgeting
        # turns the thigh every way at once (measured as the way the off-plane tilt moved,
        # not only how much further off the plane the limb ended up).
        if off > 1.2 * rom + 3.0 or swept > s.off_plane_max_ratio * rom + 2.0:
            return None
        self._chain = (float(th[onset]), float(t[end]))
        return t, th, phases, rom, off

    def _measure_rep(self, w: F64Array) -> RepEvent | None:
        common = self._common(w)
        if common is None:
            return None
        t, th, ph, rom, off = common
        onset, arrival, departure, end = ph.onset, ph.arrival, ph.departure, ph.end
        v_out, v_ret = ph.v_out, ph.v_ret
        tg = self.targets
        t_on, t_top, t_off, t_end = ph.times(t)
        outward = float(t_top - t_on)
        back = float(t_end - t_off)
        hold = float(t_off - t_top)
        gap = bool(w[onset : end + 1, _GAP].any())
        if not tg.auto and not self._plausible(rom, outward, back, gap):
            return None
        conc, ecc = (outward, back) if tg.outward_phase == "concentric" else (back, outward)
        v_peak = max(v_out, v_ret)
        flags: list[Flag] = []
        # Too fast is about the lift (swinging up); a rushed lowering is eccentric_fast
        # where the exercise checks it, else also too fast.
        if tg.outward_phase == "concentric":
            conc_limit, ecc_limit = tg.outward_s, tg.return_s
        else:
            conc_limit, ecc_limit = tg.return_s, tg.outward_s
        conc_limit *= tg.too_fast_ratio
        ecc_limit *= tg.too_fast_ratio
        # A phase with lost samples in it is not known to be fast: the angle jumps across
        # the gap (data_gap says so instead). Nor is one next to a gap at the top: the
        # samples lost there may hold the end of the way out or the start of the way back.
        # Lost samples from half way out count for the top and the way back: smoothing
        # across a gap moves the angle's jump before it, which looks like leaving the top.
        out_seen = not w[onset : departure + 2, _GAP].any()
        top_seen = not w[(onset + arrival) // 2 : end + 2, _GAP].any()
        ret_seen = top_seen
        conc_seen, ecc_seen = (
            (out_seen, ret_seen) if tg.outward_phase == "concentric" else (ret_seen, out_seen)
        )
        v_conc, v_ecc = (v_out, v_ret) if tg.outward_phase == "concentric" else (v_ret, v_out)

        def rushed(seen: bool, duration: float, limit: float, v: float) -> bool:
            # Short, and as fast as a smooth movement over the limit would be at its peak
            # (1.5 x the mean speed: between a constant speed and a minimum-jerk 1.875):
            # tremor blurs where a rep of a few degrees starts and ends, not its speed.
            return seen and duration < limit and v >= 1.5 * rom / limit

        fast = rushed(conc_seen, conc, conc_limit, v_conc) or (
            not tg.check_eccentric and rushed(ecc_seen, ecc, ecc_limit, v_ecc)
        )
        if tg.too_fast_dps is not None and v_peak > 1.5 * tg.too_fast_dps and not gap:
            fast = True
        if fast and not tg.auto:
            flags.append(Flag.TOO_FAST)
        if rom > tg.target_max_deg:
            flags.append(Flag.TOO_MUCH_RANGE)
        if rom < tg.partial_ratio * tg.target_min_deg:
            flags.append(Flag.PARTIAL)
        if off > tg.off_plane_deg or (off > 3.0 and off > 0.35 * rom):
            flags.append(Flag.OFF_PLANE)
        # A hold cut by lost samples is not known to be short: data_gap says so instead.
        if tg.check_hold and hold < tg.hold_short_ratio * tg.hold_s and top_seen:
            flags.append(Flag.HOLD_SHORT)
        if tg.check_eccentric:
            if tg.eccentric_fast_s is not None:
                ecc_limit = max(ecc_limit, tg.eccentric_fast_s)
            if rushed(ecc_seen, ecc, ecc_limit, v_ecc):
                flags.append(Flag.ECCENTRIC_FAST)
        if gap:
            flags.append(Flag.DATA_GAP)
        return RepEvent(
            index=0,
            set_index=0,
            start_s=float(t_on),
            peak_s=float((t_top + t_off) / 2),
            end_s=float(t_end),
            rom_deg=rom,
            concentric_s=conc,
            hold_s=hold,
            eccentric_s=ecc,
            rest_before_s=None,
            peak_velocity_dps=v_peak,
            smoothness=_ldlj(t[onset : end + 1], th[onset : end + 1]),
            max_off_plane_deg=off,
            flags=tuple(flags),
            confidence=_confidence(rom, off, gap, tg.detect_deg),
            top_s=float(t_top),
            hold_end_s=float(t_off),
        )

    def _plausible(self, rom: float, outward: float, back: float, gap: bool) -> bool:
        """Whether a movement could be a rep of the exercise, however badly done.

        Everyday motion in the exercise's plane is told apart by what no rep of a known
        exercise does: going far past the top of its range (standing up from the chair
        the seated exercises are done in), or taking several times the prescribed tempo
        both ways (rolling over to reach for the phone). Lost samples can stretch a rep's
        phases, so a rep across a gap is not judged on its tempo.

        How far a rep swings off the plane is not used beyond `_common`'s test: real
        legs wobble off the plane by 40-85 % of a rep's range in a quarter of real reps,
        out of step with it, so a small real rep looks like fidgeting by that measure.
        """
        tg = self.targets
        s = self.settings
        if rom > s.max_range_ratio * tg.target_max_deg:
            return False
        slow = s.max_tempo_ratio
        return gap or not (outward > slow * tg.outward_s and back > slow * tg.return_s)

    def _measure_hold(self, w: F64Array) -> HoldEvent | None:
        common = self._common(w)
        if common is None:
            return None
        t, th, ph, rom, off = common
        onset, arrival, departure, end = ph.onset, ph.arrival, ph.departure, ph.end
        t_on, t_top, t_off, t_end = ph.times(t)
        tg = self.targets
        s = self.settings
        hold = float(t_off - t_top)
        gap = bool(w[onset : end + 1, _GAP].any())
        if hold < s.hold_min_ratio * tg.hold_s and not gap:
            return None
        seg = th[arrival : departure + 1]
        level = _median(seg)
        band = max(s.hold_band_deg, s.hold_band_ratio * rom)
        inside = np.abs(seg - level) <= band
        broken = _runs_longer(~inside, round(0.5 * self.rate_hz))
        flags: list[Flag] = []
        if tg.check_hold and hold < 0.85 * tg.hold_s:
            flags.append(Flag.HOLD_SHORT)
        if rom > tg.target_max_deg:
            flags.append(Flag.TOO_MUCH_RANGE)
        if off > tg.off_plane_deg:
            flags.append(Flag.OFF_PLANE)
        if gap:
            flags.append(Flag.DATA_GAP)
        return HoldEvent(
            index=self._holds,
            set_index=0,
            start_s=float(t_top),
            end_s=float(t_off),
            hold_s=hold,
            angle_deg=rom,
            on_target_pct=float(100.0 * inside.mean()) if seg.size else 0.0,
            stability_deg=float(seg.std()) if seg.size else 0.0,
            broken=broken,
            flags=tuple(flags),
            confidence=_confidence(rom, off, gap, tg.detect_deg),
            enter_s=float(t_on),
            exit_s=float(t_end),
        )

    # -- sets ------------------------------------------------------------------------

    def _add(self, ev: RepEvent | HoldEvent, settled_s: float | None = None) -> list[Event]:
        out: list[Event] = []
        begin = ev.start_s if isinstance(ev, RepEvent) else ev.enter_s
        finish = ev.end_s if isinstance(ev, RepEvent) else ev.exit_s
        if self._set is not None and begin - self._set.end_s > self.settings.set_gap_s:
            out += self._close_set()
        if self._set is None:
            self._set = _OpenSet(start_s=begin, end_s=finish)
        cur = self._set
        cur.end_s = finish
        if isinstance(ev, RepEvent):
            rest = None if self._last_end_s is None else ev.start_s - self._last_end_s
            ev = replace(ev, index=self._reps, set_index=self._sets, rest_before_s=rest)
            cur.reps.append(ev.index)
            self._reps += 1
        else:
            ev = replace(ev, set_index=self._sets)
            cur.holds.append(ev.index)
            self._holds += 1
        self._last_end_s = finish
        self._counted_ref = self._ref
        out.append(ev)
        self._keys.append(finish if settled_s is None else settled_s)
        return out

    def _close_set(self) -> list[Event]:
        cur = self._set
        if cur is None:
            return []
        self._set = None
        ev = SetEvent(
            index=self._sets,
            start_s=cur.start_s,
            end_s=cur.end_s,
            reps=len(cur.reps),
            holds=len(cur.holds),
            rep_indices=tuple(cur.reps),
            hold_indices=tuple(cur.holds),
        )
        self._sets += 1
        self._keys.append(cur.end_s)
        return [ev]


@dataclass
class _OpenSet:
    """The set reps are being added to."""

    start_s: float
    end_s: float
    reps: list[int] = field(default_factory=list)
    holds: list[int] = field(default_factory=list)


class _Phases(NamedTuple):
    """A rep's phase boundaries (sample indices), peak speeds and threshold tails.

    The tails are the time each movement spends below the speed threshold at each end.
    """

    onset: int
    arrival: int
    peak: int
    departure: int
    end: int
    v_out: float
    v_ret: float
    tail_out_s: float
    tail_ret_s: float
    bell_start_s: float
    """Where the outward movement's bell-shaped speed starts (inf when not a bell)."""
    bell_end_s: float
    """Where the return movement's bell-shaped speed ends (-inf when not a bell)."""
    bell_top_s: float
    """Where the outward movement's bell-shaped speed ends (nan when not a bell)."""
    bell_off_s: float
    """Where the return movement's bell-shaped speed starts (nan when not a bell)."""

    def times(self, t: F64Array) -> tuple[float, float, float, float]:
        """Start, top, leaving the top, end (s), the bells' feet given back.

        A bell-shaped movement also bounds the start and end: at rest, speed noise
        crosses a threshold of a few percent of a slow movement's peak well before the
        movement has ended.
        """
        t_on = min(float(t[self.onset]) - self.tail_out_s, self.bell_start_s)
        t_top = float(t[self.arrival]) + self.tail_out_s
        t_off = float(t[self.departure]) - self.tail_ret_s
        t_end = max(float(t[self.end]) + self.tail_ret_s, self.bell_end_s)
        if t_off < t_top:  # no hold: the two movements meet at the top
            t_top = t_off = (t_top + t_off) / 2
            # Where two bells meet, if both are bells: the top of a small rep is flat
            # for a while, and tremor puts its highest sample anywhere on it.
            meet = (self.bell_top_s + self.bell_off_s) / 2
            if math.isfinite(meet) and t_on < meet < t_end:
                t_top = t_off = meet
        return t_on, t_top, t_off, t_end


def _min_jerk_tau(level: float) -> float:
    """Share of a minimum-jerk movement before its speed first reaches `level` x peak."""
    return (1.0 - math.sqrt(1.0 - math.sqrt(level))) / 2.0


def _crossings(
    t: F64Array, speed: F64Array, i_peak: int, level: float
) -> tuple[float, float] | None:
    """When the speed last rises through and first falls through `level` x its peak."""
    cut = level * speed[i_peak]
    below_l = np.flatnonzero(speed[:i_peak] < cut)
    below_r = np.flatnonzero(speed[i_peak:] < cut)
    if below_l.size == 0 or below_r.size == 0:
        return None
    a = int(below_l[-1])
    b = i_peak + int(below_r[0])
    # Linear interpolation of each crossing between its two samples.
    t_l = t[a] + (cut - speed[a]) / (speed[a + 1] - speed[a]) * (t[a + 1] - t[a])
    t_r = t[b - 1] + (speed[b - 1] - cut) / (speed[b - 1] - speed[b]) * (t[b] - t[b - 1])
    return float(t_l), float(t_r)


def _width(level: float) -> float:
    """Share of a minimum-jerk movement's duration spent above `level` x its peak speed."""
    return 1.0 - 2.0 * _min_jerk_tau(level)


def _bell(t: F64Array, speed: F64Array, i_peak: int) -> tuple[float, float, bool] | None:
    """Middle, duration and bell shape of the movement whose speed peaks at `i_peak`.

    A minimum-jerk speed profile is above half its peak for 54 % of its duration. Noise
    barely moves the half-peak crossings, unlike the feet of the bell. The bell is
    recognised by its shape: 1.31 times wider at a quarter of the peak than at half.
    """
    half = _crossings(t, speed, i_peak, 0.5)
    if half is None:
        return None
    middle, duration = (half[0] + half[1]) / 2, (half[1] - half[0]) / _width(0.5)
    quarter = _crossings(t, speed, i_peak, 0.25)
    ratio = (quarter[1] - quarter[0]) / (half[1] - half[0]) if quarter is not None else 0.0
    expected = _width(0.25) / _width(0.5)
    return middle, duration, abs(ratio - expected) <= 0.15 * expected


def _median(x: F64Array) -> float:
    """Median of a non-empty 1-D array (np.median's general machinery costs more)."""
    n = x.shape[0]
    k = n // 2
    if n % 2:
        return float(np.partition(x, k)[k])
    part = np.partition(x, (k - 1, k))
    return float(0.5 * (part[k - 1] + part[k]))


def _runs_longer(mask: NDArray[np.bool_], min_len: int) -> int:
    """Number of runs of True at least `min_len` long."""
    starts, stops = true_runs(mask)
    return int(np.count_nonzero(stops - starts >= min_len))


def _ldlj(t: F64Array, th: F64Array) -> float:
    """Log dimensionless jerk of an angle trajectory (closer to 0 is smoother)."""
    if t.shape[0] < 5:
        return 0.0
    # Successive differences (velocity, acceleration and jerk at interval midpoints):
    # three array operations each, where np.gradient's edge handling costs far more.
    dt = np.diff(t)
    if not (dt > 0).all():
        return 0.0
    v = np.diff(th) / dt
    acc = np.diff(v) / (0.5 * (dt[1:] + dt[:-1]))
    jerk = np.diff(acc) / dt[1:-1]
    duration = float(t[-1] - t[0])
    v_peak = float(np.abs(v).max())
    if v_peak <= 0:
        return 0.0
    integral = float(np.sum(jerk**2 * dt[1:-1]))
    return -math.log(max(integral * duration**3 / v_peak**2, 1e-12))


def _confidence(rom: float, off: float, gap: bool, detect: float) -> float:
    """0-1: how sure the event is a well-measured rep of this exercise."""
    c = min(1.0, rom / (2.0 * detect))
    c *= 1.0 - 0.5 * min(1.0, off / max(rom, 1e-9))
    if gap:
        c *= 0.5
    return round(float(c), 3)
