"""The history on a full or read-only disk, and the sessions a killed gateway left open."""

import logging
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from hipsense.history import History, HistoryUnavailableError
from tests.daemon.storage import fill, tmpfs

# `max_page_count` at the file's size makes SQLite fail every write that needs a new page
# with SQLITE_FULL, as a full disk does. Events are padded to need one each.


def _full(h: History, full: bool = True) -> None:
    assert h._db is not None
    h._db.execute(f"PRAGMA max_page_count = {1 if full else 1 << 30}")


def _event(index: int) -> dict[str, object]:
    return {"kind": "rep", "index": index, "pad": "." * 5000}


def _raw(h: History, sid: str, t0: float, n: int = 100) -> None:
    t = t0 + np.arange(n) / 100.0
    h.add_raw(sid, t, np.zeros((n, 3)), np.zeros((n, 3)))


def test_a_full_disk_holds_events_in_memory_and_gives_up_raw_samples_first(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    h = History(tmp_path / "h.db", retry_s=0, raw_reserve_bytes=0)
    h.start("s", sensor_id="x", exercise="clamshell", started_at="2026-01-01T10:00:00+00:00")
    h.add_event("s", 0, _event(0))
    _raw(h, "s", 0.0)
    _full(h)
    with caplog.at_level(logging.INFO, "hipsense.history"):
        h.add_event("s", 1, _event(1))
        h.add_trace("s", np.arange(0.0, 1.0, 0.05), np.zeros(20))
        _raw(h, "s", 1.0)
        _raw(h, "s", 2.0)
        assert h.degraded == "database or disk is full"
        assert h.held == 2  # the event and the trace, in order
        assert h.raw_paused == "database or disk is full"
        assert h.raw_skipped == 200  # not held: raw samples are the first to give up
        assert caplog.text.count("cannot write") == 1
        assert caplog.text.count("raw samples are not stored") == 1
        _full(h, False)
        h.add_event("s", 2, _event(2))
        _raw(h, "s", 3.0)
    assert h.degraded is None
    assert h.held == 0
    assert h.raw_paused is None
    assert "can be written again: 2 writes held in memory are on disk" in caplog.text
    assert "storing raw samples" in caplog.text
    rec = h.load("s")
    assert [e["index"] for e in rec.events] == [0, 1, 2]
    assert rec.t_s.shape == (20,)
    raw = h.load_raw("s")
    np.testing.assert_allclose(raw.time_s[[0, 99, 100, 199]], [0.0, 0.99, 3.0, 3.99])
    h.close()


def test_when_memory_is_full_traces_go_first_then_writes_are_counted_lost(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    h = History(tmp_path / "h.db", memory_limit=3, retry_s=3600)
    h.start("s", sensor_id="x", exercise="clamshell", started_at="2026-01-01T10:00:00+00:00")
    _full(h)
    trace = np.arange(0.0, 400.0, 0.05)  # more than a page
    h.add_trace("s", trace, trace)
    h.add_event("s", 0, _event(0))
    h.add_event("s", 1, _event(1))
    assert (h.held, h.lost) == (3, 0)
    h.add_event("s", 2, _event(2))  # the trace makes room
    assert (h.held, h.lost) == (3, 1)
    h.add_event("s", 3, _event(3))  # nothing left to give up: this one is lost
    h.add_trace("s", trace, trace)
    assert (h.held, h.lost) == (3, 3)
    assert "memory queue full" in caplog.text
    _full(h, False)
    h._retry(now=True)
    assert [e["index"] for e in h.load("s").events] == [0, 1, 2]
    h.close()


def test_held_writes_not_written_out_by_close_are_reported_lost(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    h = History(tmp_path / "h.db")
    h.start("s", sensor_id="x", exercise="clamshell", started_at="2026-01-01T10:00:00+00:00")
    _full(h)
    h.add_event("s", 0, _event(0))
    h.close()
    assert "1 writes held in memory could not be written" in caplog.text


def test_raw_samples_stop_before_the_disk_is_full_and_resume_when_there_is_room(
    tmp_path: Path,
) -> None:
    with tmpfs(tmp_path / "disk", "4m") as disk:
        # The reserve is at most a tenth of the disk: 0.4 MB here.
        h = History(disk / "h.db", raw_reserve_bytes=1 << 30)
        h.start("s", sensor_id="x", exercise="clamshell", started_at="2026-01-01T10:00:00+00:00")
        _raw(h, "s", 0.0)
        filler = fill(disk, leave_bytes=200_000)
        _raw(h, "s", 1.0)
        assert h.raw_paused is not None
        assert "kept for events" in h.raw_paused
        h.add_event("s", 0, _event(0))  # events still have room
        assert h.degraded is None
        filler.unlink()
        _raw(h, "s", 2.0)
        assert h.raw_paused is None
        assert h.raw_skipped == 100
        assert len(h.load_raw("s").time_s) == 200
        h.close()


def test_a_history_that_cannot_be_opened_holds_writes_and_says_so_to_readers(
    tmp_path: Path,
) -> None:
    with tmpfs(tmp_path / "disk", "1m") as disk:
        History(disk / "h.db").close()
        filler = fill(disk)
        h = History(disk / "h.db", retry_s=0)
        assert h.degraded is not None
        h.start("s", sensor_id="x", exercise="clamshell", started_at="2026-01-01T10:00:00+00:00")
        h.add_event("s", 0, {"kind": "rep", "index": 0})
        with pytest.raises(HistoryUnavailableError, match=r"history: expected to read .*h\.db"):
            h.sessions()
        filler.unlink()
        assert [s["session_id"] for s in h.sessions()] == ["s"]
        assert h.degraded is None
        h.close()


def test_open_sessions_are_listed_and_closed_as_interrupted(tmp_path: Path) -> None:
    h = History(tmp_path / "h.db")
    h.start("a", sensor_id="x", exercise="clamshell", started_at="2026-01-01T10:00:00+00:00")
    h.start("b", sensor_id="x", exercise="clamshell", started_at="2026-01-01T11:00:00+00:00")
    h.finish("a", {"ended_at": "2026-01-01T10:10:00+00:00", "rep_count": 3})
    h.add_event("b", 0, {"kind": "rep", "end_s": 4.0})
    h.add_event("b", 2, {"kind": "rep", "end_s": 9.0})
    h.add_trace("b", np.array([10.0, 12.5]), np.array([1.0, 2.0]))
    h.add_raw("b", np.array([12.0, 12.01]), np.zeros((2, 3)), np.zeros((2, 3)))
    assert h.unfinished() == ["b"]
    assert h.event_seqs("b") == {0, 2}
    assert h.last_sample_s("b") == 12.5
    assert h.last_sample_s("a") is None
    h.finish("b", {"ended_at": "2026-01-01T11:00:12+00:00", "rep_count": 2}, interrupted=True)
    assert h.unfinished() == []
    listed = {s["session_id"]: s for s in h.sessions()}
    assert (listed["b"]["rep_count"], listed["b"]["interrupted"]) == (2, True)
    assert (listed["a"]["rep_count"], listed["a"]["interrupted"]) == (3, False)
    assert h.load("b").interrupted
    assert h.load("b").ended_at == "2026-01-01T11:00:12+00:00"
    h.close()


def test_a_history_from_before_interrupted_sessions_is_upgraded(tmp_path: Path) -> None:
    old = sqlite3.connect(tmp_path / "h.db")
    old.executescript(
        "CREATE TABLE sessions (session_id TEXT PRIMARY KEY, sensor_id TEXT NOT NULL, "
        "patient_id TEXT, exercise TEXT NOT NULL, started_at TEXT NOT NULL, ended_at TEXT, "
        "summary TEXT);"
        "INSERT INTO sessions VALUES ('s', 'x', NULL, 'clamshell', '2026-01-01', NULL, NULL);"
    )
    old.commit()
    old.close()
    h = History(tmp_path / "h.db")
    assert h.sessions()[0]["interrupted"] is False
    assert h.unfinished() == ["s"]
    h.close()


# -- a held write that fails for another reason (review S3) -----------------------------


def test_a_held_write_a_bug_made_is_raised_dropped_and_does_not_stop_the_others(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    h = History(tmp_path / "h.db", retry_s=3600)
    _full(h)
    h.start("s", sensor_id="x", exercise="clamshell", started_at="2026-01-01T10:00:00+00:00")
    h.add_event("s", 0, _event(0))  # held: the file is full
    assert h.degraded is not None
    h.start("bad", sensor_id="x", exercise=None, started_at="2026-01-01")  # type: ignore[arg-type]
    h.add_event("s", 1, _event(1))
    assert h.held >= 3  # the bad one among them
    _full(h, False)
    h._retry_at = 0.0  # as if retry_s had passed
    with pytest.raises(sqlite3.IntegrityError, match="NOT NULL"):
        h.add_event("s", 2, _event(2))  # a bug surfaces, it is not taken for a full disk
    assert "failed (IntegrityError" in caplog.text
    assert h._db is not None and not h._db.in_transaction
    # The others went to disk, this call's own write too; later writes are not stopped.
    assert (h.held, h.degraded) == (0, None)
    h.add_event("s", 3, _event(3))
    assert h.event_seqs("s") == {0, 1, 2, 3}
    assert h.unfinished() == ["s"]
    h.close()


def test_an_out_of_memory_error_is_not_a_storage_fault() -> None:
    from hipsense.history._store import _storage_fault

    class NoMem(sqlite3.OperationalError):
        sqlite_errorname = "SQLITE_IOERR_NOMEM"

    class Full(sqlite3.OperationalError):
        sqlite_errorname = "SQLITE_FULL"

    assert not _storage_fault(NoMem("out of memory"))
    assert _storage_fault(Full("database or disk is full"))


def test_a_session_s_topic_root_is_kept_and_an_older_history_gets_the_column(
    tmp_path: Path,
) -> None:
    h = History(tmp_path / "h.db")
    h.start("s", sensor_id="x", exercise="clamshell", started_at="2026-01-01", topic_root="a/gw")
    h.start("t", sensor_id="x", exercise="clamshell", started_at="2026-01-01")
    assert (h.load("s").topic_root, h.load("t").topic_root) == ("a/gw", None)
    h.close()
    old = sqlite3.connect(tmp_path / "old.db")
    old.executescript(
        "CREATE TABLE sessions (session_id TEXT PRIMARY KEY, sensor_id TEXT NOT NULL, "
        "patient_id TEXT, exercise TEXT NOT NULL, started_at TEXT NOT NULL, ended_at TEXT, "
        "summary TEXT, interrupted INTEGER NOT NULL DEFAULT 0);"
        "INSERT INTO sessions VALUES ('s', 'x', NULL, 'clamshell', '2026-01-01', NULL, NULL, 0);"
    )
    old.commit()
    old.close()
    h = History(tmp_path / "old.db")
    assert h.load("s").topic_root is None
    h.close()
