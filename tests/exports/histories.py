"""A small history made as the gateway makes it: pipelines, a tracker, the History API.

The motion core's events are made up (a test of exports, not of measuring), fed through
the session pipeline and its prescription tracker, stored as `run_session` stores them:
`start` with the side and prescription, each event, `finish` with the summary.
"""

from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path

import numpy as np

from hipsense.domain import PrescribedExercise, Prescription, event_payload
from hipsense.exercises import ExerciseLibrary, load_library
from hipsense.history import History
from hipsense.motion import Flag, HoldEvent, MotionEvent, RepEvent, SetEvent
from hipsense.session import PrescriptionTracker, SessionPipeline

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
"""When the first session starts."""

PROGRAM = Prescription(
    patient_id="p-1",
    exercises=[
        PrescribedExercise(exercise="clamshell", side="both", sets=1, reps=4, hold_s=1),
        PrescribedExercise(exercise="deep-hip-lateral-rotator-level-1", side="both", sets=1,
                           reps=2, hold_s=10),
    ],
)  # fmt: skip


@cache
def library() -> ExerciseLibrary:
    """The exercise library, loaded once."""
    return load_library()


def _rep(i: int, set_index: int, rom: float, flags: tuple[Flag, ...] = ()) -> RepEvent:
    return RepEvent(
        index=i, set_index=set_index, start_s=5.0 * i, peak_s=5.0 * i + 1.5,
        end_s=5.0 * i + 4, rom_deg=rom, concentric_s=1.5, hold_s=1.0, eccentric_s=1.5,
        rest_before_s=None if i == 0 else 1.0, peak_velocity_dps=40.0, smoothness=-6.0,
        max_off_plane_deg=2.0, flags=flags, confidence=0.9,
    )  # fmt: skip


def _hold(i: int, set_index: int, hold_s: float) -> HoldEvent:
    return HoldEvent(
        index=i, set_index=set_index, start_s=15.0 * i, end_s=15.0 * i + hold_s,
        hold_s=hold_s, angle_deg=5.0, on_target_pct=95.0, stability_deg=0.4, broken=0,
        flags=(), confidence=0.9,
    )  # fmt: skip


def _session(
    h: History,
    tracker: PrescriptionTracker,
    sid: str,
    exercise: str,
    started: datetime,
    sets: list[list[MotionEvent]],
) -> None:
    p = SessionPipeline(
        session_id=sid,
        sensor_id="sim-1",
        rate_hz=100.0,
        exercise=library()[exercise],
        patient_id=tracker.prescription.patient_id,
        started_at=started,
        tracker=tracker,
    )
    h.start(
        sid,
        sensor_id="sim-1",
        exercise=p.exercise_id,
        started_at=started.isoformat(),
        patient_id=p.patient_id,
        side=p.side,
        prescription=tracker.prescription.model_dump(mode="json"),
    )
    seq = 0
    for k, events in enumerate(sets):
        reps = sum(isinstance(e, RepEvent) for e in events)
        holds = len(events) - reps
        end = SetEvent(index=k, start_s=0.0, end_s=60.0, reps=reps, holds=holds)
        for ev in [*events, end]:
            # Fed as the core emits them (the pipeline's own counting, no samples needed).
            p._count([ev])
            h.add_event(sid, seq, event_payload(ev).model_dump(mode="json"))
            seq += 1
    summary = p.summary(last_seq=seq - 1, ended_at=started + timedelta(minutes=6))
    h.finish(sid, summary.model_dump(mode="json"))


def program_history(path: Path) -> History:
    """Two days of patient p-1's program (day 2: the left side of the hold cut short) and a
    session of patient p-2."""
    h = History(path)
    for day in range(2):
        tracker = PrescriptionTracker(PROGRAM.model_copy(), library())
        start = T0 + timedelta(days=day)
        right = [_rep(i, 0, 30.0 + 2 * day + i) for i in range(4)]
        left = [
            _rep(4 + i, 1, 26.0 + 2 * day, (Flag.TOO_FAST,) if i == 0 else ()) for i in range(4)
        ]
        _session(h, tracker, f"p1-d{day}-clam", "clamshell", start, [right, left])
        held = [[_hold(0, 0, 10.2), _hold(1, 0, 10.4)], [_hold(2, 1, 10.1)]]
        if day == 0:
            held[1].append(_hold(3, 1, 10.3))
        _session(h, tracker, f"p1-d{day}-hold", "deep-hip-lateral-rotator-level-1",
                 start + timedelta(minutes=10), held)  # fmt: skip
    other = PrescriptionTracker(
        Prescription(patient_id="p-2", exercises=[PROGRAM.exercises[0]]), library()
    )
    _session(h, other, "p2-d0-clam", "clamshell", T0 + timedelta(hours=2),
             [[_rep(i, 0, 40.0) for i in range(4)]])  # fmt: skip
    return h


REPORT_PROGRAM = Prescription(
    patient_id="p-7",
    exercises=[
        PrescribedExercise(exercise="clamshell", side="both", sets=1, reps=5, hold_s=1),
        PrescribedExercise(exercise="deep-hip-lateral-rotator-level-1", side="both", sets=1,
                           reps=6, hold_s=10),
    ],
)  # fmt: skip
"""Patient p-7's program in `report_history`."""


def _trace(h: History, sid: str, reps: list[RepEvent]) -> None:
    """An angle trace through the reps (a bump to each rep's range), 20 samples/s."""
    t = np.arange(0.0, max(r.end_s for r in reps) + 3.0, 0.05)
    angle = np.zeros_like(t)
    for r in reps:
        inside = (t >= r.start_s) & (t <= r.end_s)
        angle[inside] = r.rom_deg * np.sin(np.pi * (t[inside] - r.start_s) / (r.end_s - r.start_s))
    h.add_trace(sid, t, angle)


def report_history(path: Path) -> History:
    """Three days of patient p-7's program, both sides of both exercises each day.

    The range of motion grows day by day, the left side behind the right; a few reps and
    holds carry flags (every `Flag` once over the three days); day 3's right holds fall
    short. Clamshell sessions have an angle trace. By day 1, 10 correct holds of level 1
    give the progression advice.
    """
    h = History(path)
    every = list(Flag)
    for day in range(3):
        tracker = PrescriptionTracker(REPORT_PROGRAM.model_copy(), library())
        start = T0 + timedelta(days=day, hours=day)
        right = [_rep(i, 0, 36.0 + 3 * day + i) for i in range(5)]
        left = [
            _rep(
                5 + i, 1, 28.0 + 4 * day + i, (every[(2 * day + i) % len(every)],) if i < 2 else ()
            )
            for i in range(5)
        ]
        _session(h, tracker, f"p7-d{day}-clam", "clamshell", start, [right, left])
        _trace(h, f"p7-d{day}-clam", [*right, *left])
        held = [
            [_hold(i, 0, 10.5 if day < 2 else 7.5) for i in range(6)],
            [_hold(6 + i, 1, 10.2 + 0.2 * day) for i in range(6 if day else 4)],
        ]
        _session(h, tracker, f"p7-d{day}-hold", "deep-hip-lateral-rotator-level-1",
                 start + timedelta(minutes=10), held)  # fmt: skip
    return h
