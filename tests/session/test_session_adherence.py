"""Adherence and quality per session, the program's running total apart (issue 29)."""

from functools import cache

import pytest

from hipsense.domain import PrescribedExercise, Prescription, Summary
from hipsense.exercises import ExerciseLibrary, load_library
from hipsense.motion import Flag, RepEvent, SetEvent
from hipsense.session import PrescriptionTracker, SessionPipeline


@cache
def _library() -> ExerciseLibrary:
    return load_library()


def _rep(i: int, set_index: int, *, rom: float = 30.0, flags: tuple[Flag, ...] = ()) -> RepEvent:
    return RepEvent(
        index=i, set_index=set_index, start_s=5.0 * i, peak_s=5.0 * i + 1, end_s=5.0 * i + 4,
        rom_deg=rom, concentric_s=1.5, hold_s=1.0, eccentric_s=1.5, rest_before_s=None,
        peak_velocity_dps=40.0, smoothness=-6.0, max_off_plane_deg=2.0, flags=flags,
        confidence=1.0,
    )  # fmt: skip


_EXERCISES = ("clamshell", "fire-hydrant", "prone-hip-external-rotation", "seated-90-90-foot-lift")
"""Four exercises whose dosage holds at most 1 s (the reps below hold 1 s)."""


def _program() -> Prescription:
    # Four exercises, 1 x 10 on each side: a session each.
    return Prescription(
        patient_id="p-1",
        exercises=[
            PrescribedExercise(exercise=ex, side="both", sets=1, reps=10) for ex in _EXERCISES
        ],
    )


def _session(
    tracker: PrescriptionTracker, sid: str, exercise: str, reps: tuple[int, ...]
) -> Summary:
    """A session of `exercise` feeding the tracker one set per entry of `reps`."""
    p = SessionPipeline(
        session_id=sid,
        sensor_id="s",
        rate_hz=100.0,
        exercise=_library()[exercise],
        patient_id="p-1",
        tracker=tracker,
    )
    n = 0
    for k, count in enumerate(reps):
        events = [_rep(n + i, k, flags=(Flag.TOO_FAST,) if i == 0 else ()) for i in range(count)]
        n += count
        p._count([*events, SetEvent(index=k, start_s=0.0, end_s=1.0, reps=count, holds=0)])
    return p.summary(last_seq=n)


def test_a_fully_done_session_is_100_percent_and_the_program_total_is_apart() -> None:
    library = _library()
    tracker = PrescriptionTracker(_program(), library)
    exercises = [line.exercise for line in _program().exercises]
    summaries = [_session(tracker, f"s-{i}", ex, (10, 10)) for i, ex in enumerate(exercises)]
    # Today's reading: 25, 50, 75, 100 % were each session's "adherence"; now named so.
    assert [s.program_adherence_pct for s in summaries] == [25.0, 50.0, 75.0, 100.0]
    assert [s.adherence_pct for s in summaries] == [100.0] * 4
    # One rep in ten carries a form flag in each set.
    assert [s.quality_pct for s in summaries] == [90.0] * 4
    first = summaries[0]
    assert first.side == "both"
    assert [(ln.exercise, ln.side) for ln in first.lines] == [
        ("clamshell", "right"),
        ("clamshell", "left"),
    ]
    right = first.lines[0]
    assert (right.prescribed_sets, right.prescribed_reps, right.sets_done) == (1, 10, 1)
    assert (right.reps_done, right.reps_per_set, right.adherence_pct) == (10, [10], 100.0)
    assert (right.set_indexes, first.lines[1].set_indexes) == ([0], [1])
    assert right.mean_rom_deg == 30.0 and right.max_rom_deg == 30.0
    assert right.mean_concentric_s == 1.5 and right.mean_eccentric_s == 1.5
    assert right.flags == {Flag.TOO_FAST: 1}
    assert right.quality_pct == 90.0
    lib_rom = library["clamshell"].rom
    assert right.target_range_deg == (lib_rom.target_min_deg, lib_rom.target_max_deg)


def test_one_side_only_is_half_the_session_and_the_next_session_is_for_the_rest() -> None:
    rx = Prescription(
        patient_id="p-1",
        exercises=[PrescribedExercise(exercise="clamshell", side="both", sets=2, reps=10)],
    )
    tracker = PrescriptionTracker(rx, _library())
    first = _session(tracker, "s-1", "clamshell", (10, 7))  # the right side; one set short
    assert first.side == "right"
    assert [(ln.side, ln.reps_done, ln.adherence_pct) for ln in first.lines] == [
        ("right", 17, 85.0),
        ("left", 0, 0.0),  # it was for both sides: the left is still to do
    ]
    assert first.adherence_pct == pytest.approx(100 * 17 / 40, abs=0.05)
    assert first.lines[1].quality_pct is None and first.lines[1].mean_rom_deg is None
    # The patient turns over and starts a new session: it is for the left side only.
    second = _session(tracker, "s-2", "clamshell", (10, 10))
    assert second.side == "left"
    assert [(ln.side, ln.adherence_pct) for ln in second.lines] == [("left", 100.0)]
    assert second.adherence_pct == 100.0
    assert second.program_adherence_pct == pytest.approx(100 * 37 / 40, abs=0.05)


def test_an_exercise_not_prescribed_is_not_scored_against_another_line() -> None:
    tracker = PrescriptionTracker(_program(), _library())
    s = _session(tracker, "s-1", "figure-4-stretch-supine", (5,))
    assert s.adherence_pct is None and s.lines == [] and s.side is None
    assert s.program_adherence_pct == 0.0  # nothing of the program done
    assert "figure-4-stretch-supine was done but is not in the prescription" in s.notes


def test_without_a_prescription_the_summary_has_no_lines() -> None:
    p = SessionPipeline(
        session_id="s", sensor_id="s", rate_hz=100.0, exercise=_library()["clamshell"]
    )
    p._count([_rep(0, 0)])
    s = p.summary(last_seq=0)
    assert (s.adherence_pct, s.program_adherence_pct, s.lines, s.side) == (None, None, [], None)


def test_an_old_summary_still_parses() -> None:
    old = {
        "session_id": "s", "sensor_id": "x", "exercise": "clamshell",
        "started_at": "2026-01-01T10:00:00+00:00", "rep_count": 1, "hold_count": 0,
        "set_count": 1, "reps_per_set": [1], "mean_rom_deg": 30.0, "mean_hold_s": 1.0,
        "flags": {}, "last_seq": 3, "adherence_pct": 29.0,
    }  # fmt: skip
    s = Summary.model_validate(old)
    assert s.lines == [] and s.program_adherence_pct is None and s.side is None


def test_a_line_done_again_is_a_new_round_not_a_half_done_session() -> None:
    # A gateway with a program configured keeps one tracker: the next day's session of
    # the same exercise is for both sides again, right first, its sets numbered from 1.
    rx = Prescription(
        patient_id="p-1",
        exercises=[PrescribedExercise(exercise="clamshell", side="both", sets=2, reps=5)],
    )
    tracker = PrescriptionTracker(rx, _library())
    day1 = _session(tracker, "d-1", "clamshell", (5, 5, 5, 5))
    day2 = _session(tracker, "d-2", "clamshell", (5, 5, 5, 5))
    for s in (day1, day2):
        assert s.adherence_pct == 100.0 and s.side == "both"
        assert [(ln.side, ln.reps_per_set) for ln in s.lines] == [
            ("right", [5, 5]),
            ("left", [5, 5]),
        ]
    assert day2.program_adherence_pct == 100.0  # each set counted up to the prescription
    assert tracker.notes == []  # no "set 3 done where 2 were prescribed"
    assert tracker.completed[-1].startswith("clamshell, left side, set 2 of 2: 5/5 reps")
