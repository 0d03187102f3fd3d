"""Reps, holds and sets from angles: detection, measurement, acceptance, set grouping.

`Segmenter.update(block)` takes `AngleBlock`s in stream order. The detector
(`_detect.py`) finds candidates causally; each is measured (`_measure.py`, a pure
function of its samples); acceptance, a fold over the measured candidates in order,
decides what each is:

1. *not a rep*, dropped: smaller than the detection floor; out and back quicker than the
   detector's shortest phase (`min_phase_s`); swinging off the plane more
   than about the axis (fidgeting turns every way); starting far from neutral or well
   below the rest it started from (walking swings both ways); for a known exercise,
   going far past its range; under way
   when the stream began (moving out faster than a limb at rest at its first sample);
2. a *rebound*, dropped: begun within `rebound_s` of the end of the rep just before,
   and smaller than `half_ratio` of it or over in less than twice `min_phase_s` (a
   heel bouncing off the bed, the limb recoiling from the landing);
3. *small for its set*, held back: under `scale_ratio` of the set's typical range (the
   median of its last `run_reps`) and not flagged. It counts in a run of `run_reps` such
   reps, each within `lone_rep_s` of the last (the set's scale has changed: a
   low-amplitude block); a rep of the set's size drops it (the leg settling, shifting);
4. *doubtful*, held back: flagged partial, off the plane or with its hold cut short, with
   no rep just before it. It counts once a rep that is
   not doubtful is detected within `lone_rep_s` of its end, or `run_reps` doubtful ones
   come in a row (off the plane, only when all held are alike: ranges and durations
   within `half_ratio` of each other); if neither comes, it is dropped. One such
   movement on its own is more likely shifting or reaching than a rep. Held reps short
   of the prescription (partial, hold cut short) count with the rep after them only when
   alike it or, in the plane, done from its start (where each started, and came back
   to, within `noise_deg`): the set's movement done short, not fidgeting before the set;
5. a *rep*, counted at once.

Sets end after `set_gap_s` without a rep, or at a new reference.
"""

from dataclasses import dataclass, field, replace
from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray

from ._detect import (
    GAP,
    LP,
    OFF,
    RECOVERED,
    STILL,
    TH,
    Candidate,
    CandidateDetector,
    SampleBuffer,
    T,
)
from ._events import Flag, HoldEvent, RepEvent, SetEvent
from ._filters import median_of
from ._measure import Measured, measure, smoother
from ._reference import AngleBlock
from ._settings import SegmenterSettings
from ._targets import Targets

__all__ = ["Segmenter"]

F64Array = NDArray[np.float64]
Event = RepEvent | HoldEvent | SetEvent
_TRIM_N = 4096
"""Samples dropped at a time from the front of the buffer: copies stay rare."""
_DOUBTFUL = frozenset({Flag.PARTIAL, Flag.OFF_PLANE, Flag.HOLD_SHORT})
_WAYS = 2
"""A rep's phases: out and back."""
_SHORT = frozenset({Flag.PARTIAL, Flag.HOLD_SHORT})
"""Short of the prescription: the range or the hold the set's reps are prescribed."""


class _Held(NamedTuple):
    """A doubtful rep held back, with where it started and ended (deg from neutral)."""

    rep: RepEvent
    onset_deg: float
    end_deg: float


@dataclass
class _OpenSet:
    start_s: float
    end_s: float
    reps: list[int] = field(default_factory=list)
    holds: list[int] = field(default_factory=list)


class Segmenter:
    """Streams `AngleBlock`s in; reps, holds and sets out (see the module docstring)."""

    def __init__(
        self,
        rate_hz: float,
        targets: Targets,
        settings: SegmenterSettings | None = None,
        *,
        rest_max_deg: float = 12.0,
        settled_s: float = 20.0,
        rest_min_s: float = 0.4,
        pause_s: float = 2.0,
        still_dps: float = 4.0,
    ) -> None:
        self.rate_hz = float(rate_hz)
        self.targets = targets
        self.settings = settings if settings is not None else SegmenterSettings()
        self.rest_max_deg = rest_max_deg
        self._settled_s = settled_s
        self._rest_min_s = rest_min_s
        self._pause_s = pause_s
        self._still_dps = still_dps
        self._smoother = smoother(self.rate_hz, self.settings)
        self._pre_n = round((2.0 * max(targets.outward_s, targets.return_s) + 1.0) * self.rate_hz)
        self.reset()

    def reset(self) -> None:
        """Forget all samples and events."""
        self._buf = SampleBuffer()
        self._det = CandidateDetector(
            self.rate_hz,
            self.targets.detect_deg,
            self._settled_s,
            self._rest_min_s,
            self._pause_s,
            self.settings,
        )
        self._ref = -1
        self._reps = 0
        self._holds = 0
        self._sets = 0
        self._set: _OpenSet | None = None
        self._last_end_s: float | None = None
        self._pending: list[_Held] = []
        self._small_run: list[RepEvent] = []  # reps small for their set, held (rule 3)
        self._last_rep: Measured | None = None  # the last rep measured (rule 2)
        self._typical: list[float] = []  # ranges of the set's last reps
        self.trace: list[tuple[float, str]] | None = None
        """Set to a list to record each decision: (time, which rule and what it decided)."""

    def _note(self, t_s: float, what: str) -> None:
        if self.trace is not None:
            self.trace.append((t_s, what))

    # -- streaming -----------------------------------------------------------------

    def update(self, block: AngleBlock) -> list[Event]:
        """Take a block of angles (one reference); return the events it completed."""
        n = len(block)
        if n == 0:
            return []
        events: list[Event] = []
        if block.reference != self._ref:
            events += self.close_reference()
            self._ref = block.reference
            self._det.reset(self._buf.end)
        rows = self._buf.extend(n)
        rows[:, T] = block.t_s
        rows[:, TH] = block.primary_deg
        rows[:, OFF] = block.off_plane_deg
        rows[:, LP] = block.lowpass_deg
        rows[:, STILL] = block.still
        rows[:, GAP] = block.gap
        rows[:, RECOVERED] = block.recovered
        for cand in self._det.scan(self._buf):
            events += self._take(cand)
        events += self._expire(self._det.scanning_from)
        self._trim()
        return events

    def finish(self) -> list[Event]:
        """End of stream: a rep on its way back ends, held reps are dropped, the set closes."""
        events: list[Event] = []
        if self._buf.n:
            for cand in self._det.flush(self._buf):
                events += self._take(cand)
        return events + self.close_reference()

    def close_reference(self) -> list[Event]:
        """The reference ends: what belongs to it ends now."""
        self._pending = []
        self._small_run = []
        self._det.reset(self._buf.end)
        return self._close_set()

    def _trim(self) -> None:
        keep = min(self._det.scanning_from - self._pre_n, self._buf.end - self._pre_n)
        if keep > self._buf.base + _TRIM_N:
            self._buf.drop_before(keep)

    # -- one candidate ---------------------------------------------------------------

    def _take(self, c: Candidate) -> list[Event]:
        buf = self._buf
        begin = max(c.begin, c.start - self._pre_n, buf.base)
        stop = min(c.decided + 1, buf.end)
        w = buf.rows(begin, stop)
        m = measure(
            w[:, T],
            w[:, TH],
            w[:, OFF],
            w[:, GAP] != 0,
            c.peak - begin,
            c.end - begin,
            self.targets,
            self.settings,
            self.rate_hz,
            self._smoother,
        )
        t_start = float(buf.rows(c.start, c.start + 1)[0, T])
        if m is None:
            self._note(t_start, "candidate: not measurable")
            return []
        why = self._implausible(m, w[:, LP], c.start - begin)
        if not why and begin == 0 and m.under_way_dps >= self._still_dps:
            # Moving faster than a limb at rest where the stream began: its start was
            # not seen (slower, it was setting off, and its onset is where it began).
            why = f"under way when the stream began ({m.under_way_dps:.0f} deg/s)"
        if why:
            self._note(t_start, f"not a rep: {why}")
            return []
        recovered = bool(buf.rows(c.decided, c.decided + 1)[0, RECOVERED] != 0)
        ev = replace(m.event, recovered=recovered)
        middle_s = ev.peak_s if isinstance(ev, RepEvent) else 0.5 * (ev.start_s + ev.end_s)
        if self._last_end_s is not None and middle_s <= self._last_end_s:
            # Measured again from a new reference: it was counted (or its time was).
            self._note(t_start, "already counted")
            return []
        if isinstance(ev, HoldEvent):
            return self._add(ev)
        last, self._last_rep = self._last_rep, m
        if self._rebound(m, last):
            self._note(t_start, f"rebound: {ev.rom_deg:.1f} deg")
            return []
        # The scale of the set it joins (a rep after a set's gap begins a new one, whether
        # or not the old set was closed yet).
        joins = self._set is not None and ev.start_s - self._set.end_s <= self.settings.set_gap_s
        small = (
            joins
            and bool(self._typical)
            and ev.rom_deg < self.settings.scale_ratio * median_of(self._typical)
        )
        return self._offer(_Held(ev, m.onset_deg, m.end_deg), t_start, small=small)

    def _implausible(self, m: Measured, lp: F64Array, start: int) -> str:
        """Why the movement is no rep of the exercise at all (rule 1), or ""."""
        s = self.settings
        tg = self.targets
        ev = m.event
        rom = ev.rom_deg if isinstance(ev, RepEvent) else ev.angle_deg
        if rom < tg.detect_deg:
            return f"range {rom:.1f} deg under the floor"
        if m.moving_s < self.settings.min_phase_s:
            return f"out and back in {m.moving_s:.2f} s: quicker than any voluntary rep"
        if m.swept_off_deg > s.off_plane_max_ratio * rom + s.noise_deg:
            return f"off the plane {m.swept_off_deg:.1f} deg for {rom:.1f} deg"
        if abs(m.onset_deg) > self.rest_max_deg:
            return f"starts {m.onset_deg:.1f} deg from neutral"
        rest = float(lp[: start + 1].min())
        below = rest - (s.back_ratio * rom + s.noise_deg)
        if m.onset_deg < below or m.end_deg < below:
            return f"swings below the rest level {rest:.1f} deg"
        if (
            isinstance(ev, HoldEvent)
            and ev.hold_s < tg.hold_min_s
            and Flag.DATA_GAP not in ev.flags
        ):
            return f"held {ev.hold_s:.1f} s: passing through, not holding"
        if rom > tg.top_max_deg:
            return f"range {rom:.1f} deg beyond the exercise's"
        return ""

    def _rebound(self, m: Measured, last: Measured | None) -> bool:
        """Begun as the rep just before ended, and small beside it or brief (rule 2)."""
        if last is None:
            return False
        s = self.settings
        ev, prev = m.event, last.event
        assert isinstance(ev, RepEvent)
        assert isinstance(prev, RepEvent)
        # After it: measured from a new reference, an earlier rep may come later.
        after = prev.peak_s < ev.start_s < prev.end_s + s.rebound_s
        small = ev.rom_deg < s.half_ratio * prev.rom_deg
        # A voluntary rep takes at least `min_phase_s` each way; a bounce off the
        # landing is out and back sooner, whatever its range, and does not stay out.
        brief = ev.end_s - ev.start_s < _WAYS * s.min_phase_s
        return after and (small or brief)

    def _offer(self, cand: _Held, detected_s: float, *, small: bool) -> list[Event]:
        """Count a rep, or hold a doubtful one back until it is confirmed (rules 3, 4)."""
        s = self.settings
        rep = cand.rep
        pending = self._pending
        if pending and detected_s - pending[-1].rep.end_s > s.lone_rep_s:
            self._note(detected_s, f"dropped {len(pending)} held: none confirmed them")
            pending.clear()
        gap = Flag.DATA_GAP in rep.flags
        flagged = not gap and not _DOUBTFUL.isdisjoint(rep.flags)
        if small and not flagged and not gap:
            # Rule 3: in a run of small reps only; a rep of the set's size drops them.
            if self._small_run and detected_s - self._small_run[-1].end_s > s.lone_rep_s:
                self._small_run.clear()
            self._small_run.append(rep)
            if len(self._small_run) < s.run_reps:
                self._note(rep.start_s, f"held: {rep.rom_deg:.1f} deg is small for its set")
                return []
            out = [ev for held in self._small_run for ev in self._add(held)]
            self._small_run.clear()
            return out
        if self._small_run:
            self._note(rep.start_s, f"dropped {len(self._small_run)} small for the set")
            self._small_run.clear()
        recent = (
            not pending
            and self._last_end_s is not None
            and rep.start_s - self._last_end_s <= s.lone_rep_s
        )
        why = ""
        if flagged and not recent:
            why = "doubtful, " + ",".join(map(str, rep.flags))
        # Off the plane, doubtful reps confirm each other only when all are alike:
        # fidgeting turns every way, by any amount, for any time, rep after rep, while a
        # patient who compensates does every rep the same way.
        run = [*(h.rep for h in pending), rep]
        fidgety = any(Flag.OFF_PLANE in r.flags for r in run) and not _alike(run, s.half_ratio)
        if why and (fidgety or len(pending) + 1 < s.run_reps):
            self._note(rep.start_s, "held: " + why)
            pending.append(cand)
            return []
        if pending and not why and not self._of_the_set([*pending, cand]):
            self._note(rep.start_s, f"dropped {len(pending)} held: not of the set of the rep after")
            pending.clear()
        released: list[Event] = []
        for held in pending:
            released += self._add(held.rep)
        pending.clear()
        return released + self._add(rep)

    def _of_the_set(self, run: list[_Held]) -> bool:
        """Whether the rep ending `run` may confirm the doubtful ones held before it.

        A rep short of its prescription (partial, its hold cut short) is the set's own
        movement done short: it is alike the set's reps (ranges and durations within
        `half_ratio`), or it was done from their start position, on the same support
        (where each rep started, and each held one came back to, within `noise_deg`).
        Fidgeting before a set turns by any amount, from wherever the limb happens to be,
        and is short of any prescription. A held rep off the plane is of the set only when
        alike it: where it started along the axis says nothing of where it went across.
        Reps held only for being off the plane are judged by their likeness in a run
        (rule 4) instead.
        """
        held = run[:-1]
        if all(_SHORT.isdisjoint(h.rep.flags) for h in held):
            return True
        if _alike([h.rep for h in run], self.settings.half_ratio):
            return True
        if any(Flag.OFF_PLANE in h.rep.flags for h in held):
            # The levels are along the axis: they say nothing of a turn across it.
            return False
        levels = [h.onset_deg for h in run] + [h.end_deg for h in held]
        return max(levels) - min(levels) <= self.settings.noise_deg

    def _expire(self, scanning_from: int) -> list[Event]:
        """Drop held reps that nothing can confirm any more; close a set after its gap."""
        if scanning_from >= self._buf.end:
            scanning_from = self._buf.end - 1
        now = float(self._buf.rows(scanning_from, scanning_from + 1)[0, T])
        lone = self.settings.lone_rep_s
        if self._pending and now - self._pending[-1].rep.end_s > lone:
            self._note(now, f"dropped {len(self._pending)} held: none confirmed them")
            self._pending.clear()
        if self._small_run and now - self._small_run[-1].end_s > lone:
            self._note(now, f"dropped {len(self._small_run)} small for the set")
            self._small_run.clear()
        # A rep not yet found starts at most `_pre_n` samples before its detection.
        earliest = now - self._pre_n / self.rate_hz
        if (
            self._set is not None
            and not self._pending
            and not self._small_run
            and earliest - self._set.end_s > self.settings.set_gap_s
        ):
            return self._close_set()
        return []

    # -- sets ------------------------------------------------------------------------

    def _add(self, ev: RepEvent | HoldEvent) -> list[Event]:
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
            self._typical = [*self._typical, ev.rom_deg][-self.settings.run_reps :]
        else:
            ev = replace(ev, index=self._holds, set_index=self._sets)
            cur.holds.append(ev.index)
            self._holds += 1
        self._last_end_s = finish
        out.append(ev)
        return out

    def _close_set(self) -> list[Event]:
        cur = self._set
        if cur is None:
            return []
        self._set = None
        self._typical = []
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
        return [ev]


def _alike(reps: list[RepEvent], ratio: float) -> bool:
    """Reps of one pattern: ranges and durations within `ratio` of each other."""
    roms = [r.rom_deg for r in reps]
    durs = [r.end_s - r.start_s for r in reps]
    return min(roms) >= ratio * max(roms) and min(durs) >= ratio * max(durs)
