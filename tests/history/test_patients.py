"""The history by patient: side and prescription kept, filters, old files, progress."""

import json
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from hipsense.history import History, patient_progress

_RX = {"patient_id": "p-1", "exercises": [{"exercise": "clamshell", "sets": 1, "reps": 10}]}


def _line(side: str, reps: list[int], rom: float, hold: float, **kw: Any) -> dict[str, Any]:
    done = sum(min(r, 10) for r in sorted(reps, reverse=True)[:1])
    return {
        "exercise": "clamshell", "side": side, "prescribed_sets": 1, "prescribed_reps": 10,
        "prescribed_hold_s": 1.0, "target_range_deg": [20.0, 45.0], "tempo_s": [1.5, 1.5],
        "sets_done": len(reps), "reps_done": sum(reps), "reps_per_set": reps,
        "mean_rom_deg": rom, "max_rom_deg": rom + 2, "mean_hold_s": hold,
        "mean_concentric_s": 1.4, "mean_eccentric_s": 1.6,
        "adherence_pct": 100.0 * done / 10, "quality_pct": 90.0, "flags": {},
    } | kw  # fmt: skip


def _add(
    h: History,
    sid: str,
    started: datetime,
    lines: list[dict[str, Any]],
    patient: str = "p-1",
    advice: list[str] | None = None,
) -> None:
    h.start(
        sid,
        sensor_id="x",
        exercise="clamshell",
        started_at=started.isoformat(),
        patient_id=patient,
        side="both",
        prescription=_RX,
    )
    prescribed = 10 * len(lines)
    done = sum(min(ln["reps_per_set"] or [0]) for ln in lines)
    sides = {ln["side"] for ln in lines if ln["reps_done"]}
    h.finish(
        sid,
        {
            "ended_at": (started + timedelta(minutes=5)).isoformat(),
            "rep_count": sum(ln["reps_done"] for ln in lines),
            "hold_count": 0,
            "adherence_pct": 100.0 * done / prescribed,
            "program_adherence_pct": 50.0,
            "quality_pct": 90.0,
            "lines": lines,
            "side": (sides.pop() if len(sides) == 1 else "both") if sides else None,
            "advice": advice or [],
        },
    )


_T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@pytest.fixture
def history(tmp_path: Path) -> Iterator[History]:
    h = History(tmp_path / "h.db")
    _add(h, "a-1", _T0, [_line("right", [10], 30.0, 1.0), _line("left", [10], 26.0, 0.8)])
    _add(h, "a-2", _T0 + timedelta(days=1), [_line("right", [10], 34.0, 1.1)])
    _add(
        h,
        "a-3",
        _T0 + timedelta(days=2),
        [_line("right", [10], 36.0, 1.2), _line("left", [5], 30.0, 1.0)],
        advice=["clamshell: 20 correct, at least 20 needed: ready to move on to clamshell-band"],
    )
    _add(h, "b-1", _T0 + timedelta(hours=1), [_line("right", [10], 40.0, 1.0)], patient="p-2")
    yield h
    h.close()


def test_side_and_prescription_are_kept(history: History) -> None:
    rec = history.load("a-2")
    assert rec.side == "right"  # it was started for both; the right was done
    assert rec.prescription == _RX
    assert history.load("a-1").side == "both"
    row = next(r for r in history.sessions() if r["session_id"] == "a-2")
    assert (row["side"], row["adherence_pct"], row["program_adherence_pct"]) == (
        "right",
        100.0,
        50.0,
    )
    assert row["quality_pct"] == 90.0


def test_sessions_by_patient_and_since(history: History) -> None:
    assert [r["session_id"] for r in history.sessions()] == ["a-3", "a-2", "b-1", "a-1"]
    assert [r["session_id"] for r in history.sessions(patient_id="p-1")] == ["a-3", "a-2", "a-1"]
    assert [r["session_id"] for r in history.sessions(patient_id="nobody")] == []
    day2 = (_T0 + timedelta(days=1)).astimezone().date()
    assert [r["session_id"] for r in history.sessions("p-1", since=day2)] == ["a-3", "a-2"]
    after = _T0 + timedelta(days=1, minutes=1)
    assert [r["session_id"] for r in history.sessions(since=after)] == ["a-3"]
    naive_local = after.astimezone().replace(tzinfo=None)
    assert [r["session_id"] for r in history.sessions(since=naive_local)] == ["a-3"]
    recs = history.records("p-1", since=day2)
    assert [r.session_id for r in recs] == ["a-2", "a-3"]  # oldest first
    assert recs[0].t_s.shape == (0,)


def test_records_with_traces(history: History) -> None:
    import numpy as np

    history.add_trace("a-1", np.arange(5.0), np.arange(5.0))
    assert history.records("p-1")[0].t_s.shape == (0,)
    assert history.records("p-1", traces=True)[0].t_s.shape == (5,)


def test_an_old_history_file_is_migrated(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    db = sqlite3.connect(path)
    # The sessions table as hipsense 0.x wrote it: no side, no prescription, and its
    # summaries' adherence_pct the program's running total.
    db.executescript(
        """
        CREATE TABLE sessions (
            session_id TEXT PRIMARY KEY, sensor_id TEXT NOT NULL, patient_id TEXT,
            exercise TEXT NOT NULL, started_at TEXT NOT NULL, ended_at TEXT, summary TEXT,
            interrupted INTEGER NOT NULL DEFAULT 0, topic_root TEXT
        );
        """
    )
    old = {"rep_count": 20, "hold_count": 0, "adherence_pct": 28.6, "mean_rom_deg": 30.0}
    db.execute(
        "INSERT INTO sessions VALUES ('old-1', 'x', 'p-1', 'clamshell', "
        "'2026-01-05T10:00:00.123456', '2026-01-05T10:05:00', ?, 0, NULL)",
        (json.dumps(old),),
    )
    db.commit()
    db.close()
    h = History(path)
    (row,) = h.sessions(patient_id="p-1")
    assert row["side"] is None
    assert (row["adherence_pct"], row["program_adherence_pct"]) == (None, 28.6)
    rec = h.load("old-1")
    assert (rec.side, rec.prescription) == (None, None)
    assert rec.summary is not None and rec.summary["program_adherence_pct"] == 28.6
    assert rec.started == datetime(2026, 1, 5, 10, 0, 0, 123456, tzinfo=UTC)
    # New sessions go into the migrated file with their side and prescription.
    h.start("new-1", sensor_id="x", exercise="clamshell", started_at=_T0.isoformat(),
            patient_id="p-1", side="left", prescription=_RX)  # fmt: skip
    assert h.load("new-1").side == "left"
    columns = {r[1] for r in sqlite3.connect(path).execute("PRAGMA table_info(sessions)")}
    assert {"side", "prescription"} <= columns
    # ... and an old session still gives a progress point (on no known side).
    progress = patient_progress(h.records("p-1"))
    s = progress.series_for("clamshell", None)
    assert s is not None and [p.mean_rom_deg for p in s.points] == [30.0]
    h.close()


def test_progress_figures(history: History) -> None:
    p = patient_progress(history.records("p-1"))
    assert (p.patient_id, p.sessions) == ("p-1", 3)
    right = p.series_for("clamshell", "right")
    left = p.series_for("clamshell", "left")
    assert right is not None and left is not None
    assert [pt.session_id for pt in right.points] == ["a-1", "a-2", "a-3"]
    assert [pt.mean_rom_deg for pt in right.points] == [30.0, 34.0, 36.0]
    assert [pt.adherence_pct for pt in left.points] == [100.0, 50.0]
    assert right.points[0].target_range_deg == (20.0, 45.0)
    assert right.points[0].started_at == _T0
    # One day per session; a-3 had 10 of 10 right and 5 of 10 left: 75 %.
    assert [d.adherence_pct for d in p.calendar] == [100.0, 100.0, 75.0]
    assert [d.sessions for d in p.calendar] == [["a-1"], ["a-2"], ["a-3"]]
    assert [d.date for d in p.calendar] == [
        (_T0 + timedelta(days=k)).astimezone().date() for k in range(3)
    ]
    (cmp,) = p.sides
    assert cmp.exercise == "clamshell"
    assert (cmp.right.sessions, cmp.left.sessions) == (3, 2)
    assert (cmp.right.latest_rom_deg, cmp.left.latest_rom_deg) == (36.0, 30.0)
    assert cmp.right.mean_rom_deg == pytest.approx(33.33, abs=0.01)
    assert cmp.rom_difference_deg == pytest.approx(28.0 - 33.33, abs=0.01)
    assert cmp.hold_difference_s == pytest.approx(0.9 - 1.1, abs=0.01)
    (advice,) = p.advice
    assert (advice.exercise, advice.session_id) == ("clamshell", "a-3")
    assert advice.reasons == "20 correct, at least 20 needed"
    assert advice.advice == "ready to move on to clamshell-band"
    d = json.loads(json.dumps(p.to_dict()))
    assert d["series"][0]["points"][0]["started_at"] == _T0.isoformat()
    assert d["calendar"][2] == {
        "date": p.calendar[2].date.isoformat(),
        "sessions": ["a-3"],
        "adherence_pct": 75.0,
    }


def test_progress_of_no_sessions() -> None:
    p = patient_progress([])
    assert (p.sessions, p.series, p.calendar, p.first) == (0, [], [], None)
    assert isinstance(p.to_dict(), dict)
