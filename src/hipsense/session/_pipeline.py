"""One sensor's session, pure and synchronous: stream items in, motion events out.

The async edges (a link, the publisher) wrap it; it keeps what a summary and the live
angle stream need. Stream time starts at 0 with the session's first sample.
"""

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
from numpy.typing import NDArray

from hipsense.domain import LiveFrame, Summary, SummaryLine, utc_now
from hipsense.exercises import Exercise, ExerciseKind
from hipsense.motion import (
    Flag,
    HoldEvent,
    MotionCore,
    MotionEvent,
    RepEvent,
    SetEvent,
)
from hipsense.protocol import Gap, MalformedPacket, SampleBlock

from ._tracker import PrescriptionTracker, SideDone

__all__ = ["SessionPipeline", "SessionTally", "session_against_prescription"]

F64Array = NDArray[np.float64]


@dataclass
class SessionTally:
    """Running counts of a session, for its summary."""

    reps: list[RepEvent] = field(default_factory=list)
    holds: list[HoldEvent] = field(default_factory=list)
    sets: list[SetEvent] = field(default_factory=list)
    gaps: int = 0
    lost_samples: int = 0
    malformed: int = 0
    samples: int = 0

    def add(self, ev: MotionEvent) -> None:
        """Count one event."""
        if isinstance(ev, RepEvent):
            self.reps.append(ev)
        elif isinstance(ev, HoldEvent):
            self.holds.append(ev)
        elif isinstance(ev, SetEvent):
            self.sets.append(ev)

    def flags(self) -> dict[Flag, int]:
        """How many reps and holds carry each flag."""
        out: dict[Flag, int] = {}
        events: list[RepEvent | HoldEvent] = [*self.reps, *self.holds]
        for ev in events:
            for f in ev.flags:
                out[f] = out.get(f, 0) + 1
        return dict(sorted(out.items()))


class SessionPipeline:
    """Feed a link's items; get the motion core's events; ask for live frames and summaries.

    Feeding the same items in any grouping gives the same events (the core's guarantee);
    live frames depend only on stream time, not on how often they are asked for.
    """

    def __init__(
        self,
        *,
        session_id: str,
        sensor_id: str,
        rate_hz: float,
        exercise: Exercise | None,
        variant: str | None = None,
        patient_id: str | None = None,
        live_rate_hz: float = 20.0,
        started_at: datetime | None = None,
        tracker: PrescriptionTracker | None = None,
    ) -> None:
        self.session_id = session_id
        self.sensor_id = sensor_id
        self.patient_id = patient_id
        self.exercise_id = exercise.id if exercise is not None else "auto"
        self.tracker = tracker
        """Progress against the prescription, shared by the sessions of one prescription."""
        # Reps of an exercise the prescription does not have are not scored against
        # another line of it (they would make a session done right look half done).
        self._tracked = tracker is not None and (exercise is None or tracker.select(exercise.id))
        if tracker is not None and self._tracked:
            tracker.begin(session_id)
        self.core = MotionCore(rate_hz, exercise, variant=variant)
        self.live_period_s = 1.0 / live_rate_hz
        self.started_at = started_at if started_at is not None else utc_now()
        self.tally = SessionTally()
        self.progress: str | None = None
        self._t0: float | None = None
        self.samples = 0
        """Samples fed so far."""
        self.last_t_s: F64Array = np.empty(0)
        """Session times of the last block fed (for keeping its raw samples)."""
        self._live_last_slot = -np.inf
        self._trace: list[tuple[F64Array, F64Array]] = []
        self._live_t: list[F64Array] = []
        self._live_angle: list[F64Array] = []
        self._live_off: list[F64Array] = []

    @property
    def side(self) -> str | None:
        """What this session is for or did: "left", "right", "both"; None if unknown."""
        if self.tracker is None or not self._tracked:
            return None
        return self.tracker.session_sides(self.session_id)

    @property
    def stream_s(self) -> float:
        """Stream time of the last sample fed (0 before any)."""
        t = self.core.last_angles.t_s
        return float(t[-1]) if t.shape[0] else 0.0

    def feed(self, item: SampleBlock | Gap | MalformedPacket) -> list[MotionEvent]:
        """Take one stream item; return the events it completed."""
        if isinstance(item, Gap):
            # The core sees the jump in time and flags what spans it; count it here.
            self.tally.gaps += 1
            self.tally.lost_samples += item.lost_samples
            return []
        if isinstance(item, MalformedPacket):
            self.tally.malformed += 1
            return []
        if self._t0 is None:
            self._t0 = float(item.t_host_s[0])
        t = item.t_host_s - self._t0
        self.samples += t.shape[0]
        self.last_t_s = t
        if item.acc_m_s2 is not None and item.gyr_rad_s is not None:
            events = self.core.update(t, gyr_rad_s=item.gyr_rad_s, acc_m_s2=item.acc_m_s2)
        else:
            assert item.quat is not None  # a block carries raw samples, a quaternion, or both
            events = self.core.update(t, quat=item.quat)
        self.tally.samples += item.count
        self._keep_live()
        self._count(events)
        return events

    def _count(self, events: list[MotionEvent]) -> None:
        for ev in events:
            self.tally.add(ev)
            if self._tracked and self.tracker and (line := self.tracker.add(ev)) is not None:
                self.progress = line

    def finish(self) -> list[MotionEvent]:
        """End of the stream: the events still open (a last rep, the last set)."""
        events = self.core.finish()
        self._count(events)
        return events

    def _keep_live(self) -> None:
        # Decimate on stream time (the first sample of each live period), so the frames
        # do not depend on how the stream was cut into blocks.
        a = self.core.last_angles
        if not a.t_s.shape[0]:
            return
        slots = np.floor(a.t_s / self.live_period_s)
        first = np.concatenate(([True], np.diff(slots) > 0))
        keep = np.flatnonzero(first & (slots > self._live_last_slot))
        if keep.shape[0]:
            self._live_t.append(a.t_s[keep])
            self._live_angle.append(a.primary_deg[keep])
            self._trace.append((a.t_s[keep], a.primary_deg[keep]))
            self._live_off.append(a.off_plane_deg[keep])
            self._live_last_slot = float(slots[keep[-1]])

    def take_trace(self) -> tuple[F64Array, F64Array]:
        """The decimated angle trace (times, degrees) since the last call, for the history."""
        if not self._trace:
            return np.empty(0), np.empty(0)
        t = np.concatenate([p[0] for p in self._trace])
        a = np.concatenate([p[1] for p in self._trace])
        self._trace = []
        return t, a

    def take_live(self, max_points: int = 200) -> LiveFrame | None:
        """The decimated angles since the last call (the newest `max_points`), or None."""
        if not self._live_t:
            return None
        t = np.concatenate(self._live_t)[-max_points:]
        ang = np.concatenate(self._live_angle)[-max_points:]
        off = np.concatenate(self._live_off)[-max_points:]
        self._live_t, self._live_angle, self._live_off = [], [], []
        # Built without validation: the fields are ours and already of the right types,
        # and a frame is made several times a second per sensor.
        return LiveFrame.model_construct(
            session_id=self.session_id,
            t_s=np.round(t, 3).tolist(),
            angle_deg=np.round(np.nan_to_num(ang), 2).tolist(),
            off_plane_deg=np.round(np.nan_to_num(off), 2).tolist(),
        )

    def summary(self, *, last_seq: int, ended_at: datetime | None = None) -> Summary:
        """The session's summary so far (`ended_at` once it is over)."""
        tally = self.tally
        roms = [r.rom_deg for r in tally.reps]
        holds = [*(r.hold_s for r in tally.reps), *(h.hold_s for h in tally.holds)]
        return Summary(
            session_id=self.session_id,
            patient_id=self.patient_id,
            sensor_id=self.sensor_id,
            exercise=self.exercise_id,
            started_at=self.started_at,
            ended_at=ended_at,
            rep_count=len(tally.reps),
            hold_count=len(tally.holds),
            set_count=len(tally.sets),
            reps_per_set=[s.reps for s in tally.sets],
            mean_rom_deg=round(float(np.mean(roms)), 2) if roms else None,
            mean_hold_s=round(float(np.mean(holds)), 2) if holds else None,
            flags=tally.flags(),
            last_seq=last_seq,
            **self._against_prescription(),
        )

    def _against_prescription(self) -> dict[str, Any]:
        t = self.tracker
        if t is None:
            return {}
        return {
            "progress": self.progress or t.status(),
            **(session_against_prescription(t, self.session_id) if self._tracked else {}),
            "program_adherence_pct": _pct(t.adherence()),
            "advice": t.advice(),
            "notes": list(t.notes),
        }


def session_against_prescription(tracker: PrescriptionTracker, session_id: str) -> dict[str, Any]:
    """A session's own summary fields, from the tracker it fed.

    `adherence_pct`, `quality_pct`, `lines` and `side` (the side(s) done).
    """
    done = tracker.session_lines(session_id)
    sides = {d.side for d in done if d.sets}
    return {
        "adherence_pct": _pct(tracker.session_adherence(session_id)),
        "quality_pct": _pct(tracker.session_quality(session_id)),
        "lines": [_summary_line(d) for d in done],
        "side": (sides.pop() if len(sides) == 1 else "both") if sides else None,
    }


def _pct(share: float | None) -> float | None:
    return None if share is None else round(100.0 * share, 1)


def _mean(values: list[float], digits: int = 2) -> float | None:
    return round(float(np.mean(values)), digits) if values else None


def _summary_line(d: SideDone) -> SummaryLine:
    p = d.progress
    rom = p.exercise.rom
    reps = p.exercise.kind is not ExerciseKind.HOLD
    flags: dict[Flag, int] = {}
    for s in d.sets:
        for f, n in s.flags.items():
            flags[f] = flags.get(f, 0) + n
    roms = [r for s in d.sets for r in s.rom_deg]
    out = [c for s in d.sets for c in s.concentric_s]
    back = [e for s in d.sets for e in s.eccentric_s]
    return SummaryLine(
        exercise=p.exercise.id,
        side=d.side,  # "left" or "right" (ExerciseProgress.sides); pydantic checks it
        prescribed_sets=p.line.sets,
        prescribed_reps=p.line.reps,
        prescribed_hold_s=p.hold_s,
        target_range_deg=p.line.range_deg or (rom.target_min_deg, rom.target_max_deg),
        tempo_s=p.tempo_s if reps else None,
        sets_done=len(d.sets),
        reps_done=d.reps,
        reps_per_set=[s.reps for s in d.sets],
        set_indexes=[s.core_index for s in d.sets if s.core_index is not None],
        mean_rom_deg=_mean(roms),
        max_rom_deg=round(max(roms), 2) if roms else None,
        mean_hold_s=_mean([h for s in d.sets for h in s.hold_s]),
        mean_concentric_s=_mean(out),
        mean_eccentric_s=_mean(back),
        adherence_pct=round(100.0 * d.done / d.prescribed, 1) if d.prescribed else 0.0,
        quality_pct=_pct(d.correct / d.reps if d.reps else None),
        flags=dict(sorted(flags.items())),
    )
