"""Closing the sessions a killed gateway left open: the summary from the history and outbox."""

import asyncio
import contextlib
import io
import math
import sqlite3
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from hipsense.daemon import DemoOptions, run_demo
from hipsense.daemon._session_runner import (
    INTERRUPTED_NOTE,
    close_interrupted,
    interrupted_summary,
)
from hipsense.history import History
from hipsense.mqtt import (
    CalibrationPayload,
    EventMessage,
    Outbox,
    RepPayload,
    SetPayload,
    Summary,
    Topics,
)

STARTED = "2026-03-02T09:00:00+00:00"


def _rep(index: int, set_index: int, end_s: float, rom: float, flags: list[str]) -> RepPayload:
    return RepPayload.model_validate(
        {
            "index": index,
            "set_index": set_index,
            "start_s": end_s - 3.0,
            "peak_s": end_s - 1.5,
            "end_s": end_s,
            "rom_deg": rom,
            "concentric_s": 1.0,
            "hold_s": 0.5,
            "eccentric_s": 1.5,
            "rest_before_s": None,
            "peak_velocity_dps": 60.0,
            "smoothness": 0.9,
            "max_off_plane_deg": 3.0,
            "flags": flags,
            "confidence": 0.95,
        }
    )


def test_the_summary_of_an_interrupted_session_counts_what_a_finished_one_does(
    tmp_path: Path,
) -> None:
    # A finished session's own summary against the one made from its history alone.
    options = DemoOptions(
        reps=5, sets=2, speed=math.inf, loss=0.0, state_dir=tmp_path, seed=3, session_id="x"
    )
    assert asyncio.run(run_demo(options, io.StringIO())) == 0
    history = History(tmp_path / "history.db")
    record = history.load("x")
    assert record.summary is not None
    finished = Summary.model_validate(record.summary)
    rebuilt = interrupted_summary(record, last_seq=finished.last_seq)
    history.close()
    same = {"notes", "ended_at"}
    assert rebuilt.model_dump(exclude=same) == finished.model_dump(exclude=same)
    assert rebuilt.rep_count == 10
    assert rebuilt.notes == [INTERRUPTED_NOTE]
    # Ended at its last event or sample, in stream time (here many times real time).
    last_event_s = max(e.get("end_s", 0.0) for e in record.events)
    assert rebuilt.ended_at is not None
    assert rebuilt.ended_at - rebuilt.started_at >= timedelta(seconds=last_event_s)


def test_an_open_session_is_closed_with_what_the_outbox_still_had(tmp_path: Path) -> None:
    history = History(tmp_path / "history.db")
    outbox = Outbox(tmp_path / "outbox.db")
    topics = Topics("gw-x")
    events = [
        CalibrationPayload(t_s=1.0, reason="still", axis_quality=0.9),
        _rep(0, 0, 5.0, 40.0, []),
        _rep(1, 0, 10.0, 44.0, ["too_fast"]),
        SetPayload(index=0, start_s=2.0, end_s=10.0, reps=2, holds=0),
        _rep(2, 1, 30.0, 50.0, ["too_fast", "partial"]),
        _rep(3, 1, 36.0, 42.0, []),
    ]
    history.start("s-1", sensor_id="sim-1", exercise="clamshell", started_at=STARTED)
    history.start("s-0", sensor_id="sim-1", exercise="clamshell", started_at=STARTED)
    history.finish("s-0", {"ended_at": STARTED, "rep_count": 0})
    for seq, payload in enumerate(events):

        def make(n: int, payload: Any = payload) -> tuple[str, bytes]:
            msg = EventMessage(
                id=f"s-1-{n}", session_id="s-1", seq=n, sensor_id="sim-1", event=payload
            )
            return topics.events("s-1"), msg.model_dump_json().encode()

        assert outbox.put_sequenced("events/s-1", make) == seq
        if seq < 5:  # the last one: killed after it was queued, before it was stored
            history.add_event("s-1", seq, payload.model_dump(mode="json"))
    history.add_trace("s-1", np.array([20.0, 33.0]), np.array([10.0, 20.0]))
    for m in outbox.peek()[:3]:
        outbox.ack(m.id)  # the broker had some of them already

    (summary,) = close_interrupted(history, outbox, topics)
    assert summary.session_id == "s-1"
    assert summary.rep_count == 4
    assert summary.set_count == 2  # the open set counts
    assert summary.reps_per_set == [2, 2]
    assert summary.mean_rom_deg == 44.0
    assert summary.flags == {"partial": 1, "too_fast": 2}
    assert summary.last_seq == 5
    assert summary.notes == [INTERRUPTED_NOTE]
    # Ended at its last event (36 s), which came after its last stored sample (33 s).
    assert summary.ended_at == datetime.fromisoformat(STARTED) + timedelta(seconds=36)
    # Queued after the events still waiting, retained like any summary.
    last = outbox.peek()[-1]
    assert last.topic == topics.summary("s-1")
    assert last.retain
    assert Summary.model_validate_json(last.payload) == summary
    record = history.load("s-1")
    assert record.interrupted
    assert record.ended_at is not None
    assert datetime.fromisoformat(record.ended_at) == summary.ended_at
    assert [e.get("index") for e in record.events if e["kind"] == "rep"] == [0, 1, 2, 3]
    assert history.load("s-0").interrupted is False
    assert close_interrupted(history, outbox, topics) == []  # once
    history.close()
    outbox.close()


def _left_open(tmp_path: Path, events_root: str) -> tuple[History, list[RepPayload]]:
    """A killed session s-1: two reps stored, a third queued in the outbox only."""
    history = History(tmp_path / "history.db")
    outbox = Outbox(tmp_path / "outbox.db")
    reps = [_rep(i, 0, 5.0 * (i + 1), 40.0, []) for i in range(3)]
    history.start("s-1", sensor_id="sim-1", exercise="clamshell", started_at=STARTED)
    for seq, payload in enumerate(reps):

        def make(n: int, payload: Any = payload) -> tuple[str, bytes]:
            msg = EventMessage(
                id=f"s-1-{n}", session_id="s-1", seq=n, sensor_id="sim-1", event=payload
            )
            return f"{events_root}/sessions/s-1/events", msg.model_dump_json().encode()

        outbox.put_sequenced("events/s-1", make)
        if seq < 2:
            history.add_event("s-1", seq, payload.model_dump(mode="json"))
    outbox.close()
    return history, reps


class _CannotOpen(sqlite3.OperationalError):
    sqlite_errorname = "SQLITE_CANTOPEN"


def test_sessions_are_not_closed_while_the_outbox_cannot_be_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    history, _ = _left_open(tmp_path, "hipsense/v1/gw-x")
    with monkeypatch.context() as m:

        def refuse(*args: object, **kwargs: object) -> sqlite3.Connection:
            raise _CannotOpen("unable to open database file")

        m.setattr(sqlite3, "connect", refuse)
        outbox = Outbox(tmp_path / "outbox.db", retry_s=3600)
        assert outbox.degraded is not None
        # Its queued rep would be missed: closed on a later start instead.
        assert close_interrupted(history, outbox, Topics("gw-x")) == []
    assert history.unfinished() == ["s-1"]
    outbox.close()
    outbox = Outbox(tmp_path / "outbox.db")
    (summary,) = close_interrupted(history, outbox, Topics("gw-x"))
    assert (summary.rep_count, summary.last_seq) == (3, 2)
    history.close()
    outbox.close()


def test_the_summary_goes_to_the_tree_the_session_s_events_went_to(tmp_path: Path) -> None:
    # Queued under another prefix and gateway id than today's configuration names.
    history, _ = _left_open(tmp_path, "site-a/v1/gw-old")
    outbox = Outbox(tmp_path / "outbox.db")
    (summary,) = close_interrupted(history, outbox, Topics("gw-new"))
    last = outbox.peek()[-1]
    assert last.topic == "site-a/v1/gw-old/sessions/s-1/summary"
    assert Summary.model_validate_json(last.payload) == summary
    history.close()
    outbox.close()


def test_a_demo_s_session_keeps_its_topic_root_for_its_interrupted_summary(
    tmp_path: Path,
) -> None:
    options = DemoOptions(
        reps=2,
        sets=1,
        speed=math.inf,
        loss=0.0,
        state_dir=tmp_path,
        seed=3,
        session_id="r",
        gateway_id="gw-then",
    )
    assert asyncio.run(run_demo(options, io.StringIO())) == 0
    with contextlib.closing(sqlite3.connect(tmp_path / "history.db")) as db, db:
        db.execute("UPDATE sessions SET ended_at = NULL")  # as if killed before its end
        db.execute("DELETE FROM events WHERE seq > 0")  # and its events sent, not queued
    with contextlib.closing(sqlite3.connect(tmp_path / "outbox.db")) as db, db:
        db.execute("DELETE FROM outbox")
    history = History(tmp_path / "history.db")
    assert history.load("r").topic_root == "hipsense/v1/gw-then"
    outbox = Outbox(tmp_path / "outbox.db")
    (summary,) = close_interrupted(history, outbox, Topics("gw-now", "elsewhere/{gateway_id}"))
    assert summary.session_id == "r"
    assert outbox.peek()[-1].topic == "hipsense/v1/gw-then/sessions/r/summary"
    history.close()
    outbox.close()


def test_a_bad_stored_event_skips_its_session_and_a_bug_is_raised(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    history = History(tmp_path / "history.db")
    outbox = Outbox(tmp_path / "outbox.db")
    history.start("bad", sensor_id="sim-1", exercise="clamshell", started_at=STARTED)
    history.add_event("bad", 0, {"kind": "rep", "end_s": 3.0})  # no set_index, no rom_deg
    history.start("good", sensor_id="sim-1", exercise="clamshell", started_at=STARTED)
    history.add_event("good", 0, _rep(0, 0, 5.0, 40.0, []).model_dump(mode="json"))
    (summary,) = close_interrupted(history, outbox, Topics("gw-x"))
    assert summary.session_id == "good"
    assert "session bad: left open, and could not be closed" in caplog.text
    assert history.unfinished() == ["bad"]

    def broken(*args: object, **kwargs: object) -> Summary:
        raise RuntimeError("a bug")

    history.add_event("bad", 0, _rep(0, 0, 5.0, 40.0, []).model_dump(mode="json"))
    monkeypatch.setattr("hipsense.daemon._session_runner.interrupted_summary", broken)
    with pytest.raises(RuntimeError, match="a bug"):
        close_interrupted(history, outbox, Topics("gw-x"))
    history.close()
    outbox.close()


def test_a_session_left_open_on_one_broker_is_closed_on_that_broker(tmp_path: Path) -> None:
    # Killed while publishing to A; started again on B: the queued events still count, and
    # the summary goes where the session's events went (A), not to B's subscribers.
    a, b = "mqtt://clinic.example:1883", "embedded"
    history = History(tmp_path / "history.db")
    topics = Topics("gw-x")
    history.start("s-1", sensor_id="sim-1", exercise="clamshell", started_at=STARTED)
    with contextlib.closing(Outbox(tmp_path / "outbox.db", broker=a)) as on_a:
        for seq in range(3):

            def make(n: int) -> tuple[str, bytes]:
                rep = _rep(n, 0, 5.0 * (n + 1), 40.0, [])
                msg = EventMessage(
                    id=f"s-1-{n}", session_id="s-1", seq=n, sensor_id="sim-1", event=rep
                )
                return topics.events("s-1"), msg.model_dump_json().encode()

            on_a.put_sequenced("events/s-1", make)
            if seq < 2:  # the third: queued, not yet stored
                history.add_event(
                    "s-1", seq, _rep(seq, 0, 5.0 * (seq + 1), 40.0, []).model_dump(mode="json")
                )
    with contextlib.closing(Outbox(tmp_path / "outbox.db", broker=b)) as on_b:
        (summary,) = close_interrupted(history, on_b, topics)
        assert summary.rep_count == 3
        assert len(on_b) == 0  # nothing of it for B
    with contextlib.closing(Outbox(tmp_path / "outbox.db", broker=a)) as on_a:
        waiting = on_a.peek()
        assert [m.topic for m in waiting] == [topics.events("s-1")] * 3 + [topics.summary("s-1")]
        assert Summary.model_validate_json(waiting[-1].payload) == summary
    history.close()
