"""PrescriptionTracker: progress in the prescription's words, adherence, advice, mismatch."""

from dataclasses import replace
from functools import cache
from pathlib import Path

import pytest

from hipsense.exercises import ExerciseError, ExerciseLibrary, load_library
from hipsense.motion import Flag, HoldEvent, MotionEvent, RepEvent, SetEvent
from hipsense.mqtt import PrescribedExercise, Prescription
from hipsense.session import PrescriptionTracker, SessionPipeline, load_programs
from hipsense_sim import ScenarioSpec, SetSpec, simulate


@cache
def _library() -> ExerciseLibrary:
    return load_library()


def _rep(
    i: int,
    *,
    rom: float = 30.0,
    hold: float = 3.0,
    flags: tuple[Flag, ...] = (),
    set_index: int = 0,
) -> RepEvent:
    return RepEvent(
        index=i, set_index=set_index, start_s=5.0 * i, peak_s=5.0 * i + 1, end_s=5.0 * i + 4,
        rom_deg=rom, concentric_s=1.0, hold_s=hold, eccentric_s=1.0, rest_before_s=None,
        peak_velocity_dps=40.0, smoothness=-6.0, max_off_plane_deg=2.0, flags=flags,
        confidence=1.0,
    )  # fmt: skip


def _hold(i: int, hold_s: float) -> HoldEvent:
    return HoldEvent(
        index=i, set_index=0, start_s=15.0 * i, end_s=15.0 * i + hold_s, hold_s=hold_s,
        angle_deg=4.0, on_target_pct=95.0, stability_deg=0.5, broken=0, flags=(),
        confidence=1.0,
    )  # fmt: skip


def _set(i: int, reps: int) -> SetEvent:
    return SetEvent(index=i, start_s=0.0, end_s=100.0, reps=reps, holds=0)


def test_progress_lines_and_adherence_in_the_prescriptions_words() -> None:
    rx = Prescription(
        patient_id="p-1",
        exercises=[PrescribedExercise(exercise="clamshell", sets=3, reps=20, hold_s=3)],
    )
    t = PrescriptionTracker(rx, _library())
    lines = [t.add(_rep(i, hold=3.2 if i % 4 else 1.0)) for i in range(14)]
    tempo = ", 1.5/1.5 s tempo kept on 14"  # the library's clamshell tempo; reps take 1 s
    assert lines[-1] == (
        "clamshell, right side, set 1 of 3: 14/20 reps, 3 s holds reached on 10" + tempo
    )
    assert t.add(_set(0, 14)) == lines[-1]
    for i in range(20):
        t.add(_rep(i, flags=(Flag.TOO_FAST,) if i < 5 else (), set_index=1))
    assert t.status() == (
        "clamshell, right side, set 2 of 3: 20/20 reps, 3 s holds reached on 20, "
        "1.5/1.5 s tempo kept on 20"
    )
    t.add(_set(1, 20))
    # "both" sides: 3 x 20 on the right, then 3 x 20 on the left.
    assert t.adherence() == pytest.approx((14 + 20) / 120)
    assert t.quality() == pytest.approx((10 + 15) / 34)
    assert t.notes == []


def test_sides_follow_the_prescription_order() -> None:
    rx = Prescription(
        patient_id="p-1",
        exercises=[PrescribedExercise(exercise="fire-hydrant", sets=2, reps=3, side="both")],
    )
    t = PrescriptionTracker(rx, _library())
    for k in range(4):  # two sets on the right, two on the left
        for i in range(3):
            t.add(_rep(i, set_index=k))
        assert t.add(_set(k, 3)) is not None
        if k == 1:
            assert t.status().startswith("fire-hydrant, left side, set 1 of 2: 0/3 reps")
    assert [(s.side, s.reps) for s in t.line.sets if s.reps] == [
        ("right", 3), ("right", 3), ("left", 3), ("left", 3),
    ]  # fmt: skip
    assert t.adherence() == 1.0
    t.add(_rep(0, set_index=4))
    t.add(_set(4, 1))
    assert "fire-hydrant left side: set 3 done where 2 were prescribed" in t.notes


def test_a_set_closed_late_by_the_core_is_closed_by_the_next_sets_first_rep() -> None:
    rx = Prescription(
        patient_id="p-1",
        exercises=[PrescribedExercise(exercise="fire-hydrant", sets=2, reps=2, side="right")],
    )
    t = PrescriptionTracker(rx, _library())
    t.add(_rep(0, set_index=0))
    t.add(_rep(1, set_index=0))
    t.add(_rep(2, set_index=1))  # the core has not said yet that set 0 ended
    assert t.add(_set(0, 2)) is None  # ... and now says it: already closed
    assert t.completed == [
        "fire-hydrant, set 1 of 2: 2/2 reps, 1 s holds reached on 2, 1.5/1.5 s tempo kept on 2"
    ]
    assert [s.reps for s in t.line.sets] == [2, 1]


def test_tempo_is_judged_against_the_prescription() -> None:
    rx = Prescription(
        patient_id="p-1",
        exercises=[PrescribedExercise(exercise="fire-hydrant", sets=1, reps=10, tempo_s=(2, 3))],
    )
    t = PrescriptionTracker(rx, _library())
    t.add(replace(_rep(0), concentric_s=2.2, eccentric_s=2.7))
    t.add(replace(_rep(1), concentric_s=0.6, eccentric_s=0.5))
    t.add(replace(_rep(2), concentric_s=2.0, eccentric_s=1.2))
    assert t.status().endswith("2/3 s tempo kept on 1")


def test_progression_advice_follows_the_library() -> None:
    ex = "deep-hip-lateral-rotator-level-1"  # level I: after 10 correct holds, level II
    rx = Prescription(
        patient_id="p-1", exercises=[PrescribedExercise(exercise=ex, sets=1, reps=10)]
    )
    t = PrescriptionTracker(rx, _library())
    for i in range(9):
        t.add(_hold(i, 10.2))
    t.add(_hold(9, 6.0))  # cut short: not correct
    assert t.advice() == []
    t.add(_hold(10, 10.0))
    assert t.advice() == [
        f"{ex}: 10 correct, at least 10 needed: ready to move on to "
        "deep-hip-lateral-rotator-level-2"
    ]


def test_says_so_when_the_patient_does_something_else() -> None:
    rx = Prescription(
        patient_id="p-1",
        exercises=[PrescribedExercise(exercise="clamshell", sets=1, reps=10)],
    )
    t = PrescriptionTracker(rx, _library())
    for i in range(25):
        t.add(_rep(i, rom=95.0))  # far more range than a clamshell has
    t.add(_set(0, 25))
    assert t.select("fire-hydrant") is False
    assert "clamshell right side set 1: 25 reps where 10 were prescribed" in t.notes
    assert any("range of motion 95 deg" in n for n in t.notes)
    assert "fire-hydrant was done but is not in the prescription" in t.notes


def _clamshell_2x6() -> Prescription:
    return Prescription(
        patient_id="p-1",
        exercises=[PrescribedExercise(exercise="clamshell", sets=2, reps=6, side="right")],
    )


def _simulated_clamshell_events(
    sets: list[SetSpec], tracker: PrescriptionTracker | None = None
) -> list[MotionEvent]:
    """The core events of a simulated clamshell session, through a session pipeline."""
    ex = _library()["clamshell"]
    rec = simulate(ScenarioSpec(name="rx", exercise="clamshell", seed=5, sets=sets), ex).recording
    p = SessionPipeline(session_id="s", sensor_id="x", rate_hz=100, exercise=ex, tracker=tracker)
    events = p.core.update(rec.time_s, gyr_rad_s=rec.gyr_rad_s, acc_m_s2=rec.acc_m_s2)
    return [*events, *p.core.finish()]


def test_a_simulated_session_meets_its_prescription() -> None:
    # Reference: the simulated patient did exactly the prescription.
    t = PrescriptionTracker(_clamshell_2x6(), _library())
    for ev in _simulated_clamshell_events([SetSpec(reps=6, rest_after_s=50.0), SetSpec(reps=6)]):
        t.add(ev)
    assert [s.reps for s in t.line.sets if s.reps] == [6, 6]
    assert t.adherence() == 1.0
    assert t.notes == []


def test_programs_load_and_name_library_exercises() -> None:
    programs = load_programs()
    assert {"hip-core-level-1", "external-rotation", "internal-rotation"} <= set(programs)
    core = programs["hip-core-level-1"].prescription("p-9")
    assert core.patient_id == "p-9"
    assert "deep-hip-lateral-rotator-level-1" in [e.exercise for e in core.exercises]
    internal = programs["internal-rotation"]
    holds = {e.exercise: e.hold_s for e in internal.exercises}
    assert holds["seated-hip-internal-rotation"] == 3


def test_a_program_naming_an_unknown_exercise_is_refused(tmp_path: Path) -> None:
    (tmp_path / "bad.toml").write_text(
        'id = "bad"\nname = "x"\nsource = "x"\n[[exercises]]\nexercise = "moonwalk"\n'
        "sets = 1\nreps = 1\n"
    )
    with pytest.raises(ExerciseError, match=r"exercises\.0\.exercise: .* got 'moonwalk'"):
        load_programs(tmp_path)


def test_the_core_counts_what_was_done_whatever_the_prescription() -> None:
    # The prescription's 6 reps a set, not the library's 20-30: a seventh rep, 15 s after
    # the sixth, is counted with or without it. The motion core measures what the patient
    # did; the tally compares it with the prescription.
    sets = [SetSpec(reps=6, rest_after_s=15.0), SetSpec(reps=1)]
    counts = [
        sum(isinstance(e, RepEvent) for e in _simulated_clamshell_events(sets, tracker))
        for tracker in (PrescriptionTracker(_clamshell_2x6(), _library()), None)
    ]
    assert counts == [7, 7]
