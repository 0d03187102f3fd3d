"""The session history: an SQLite file of sessions, their events and angle traces.

Written as a session runs (events as they are queued for MQTT, the angle at 20 samples/s)
so a report can be made later, even after a crash mid-session.
"""

import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from hipsense._errors import HipsenseError
from hipsense.recording import Recording

__all__ = ["History", "SessionRecord", "UnknownSessionError"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (
    session_id TEXT PRIMARY KEY,
    sensor_id  TEXT NOT NULL,
    patient_id TEXT,
    exercise   TEXT NOT NULL,
    started_at TEXT NOT NULL,
    ended_at   TEXT,
    summary    TEXT
);
CREATE TABLE IF NOT EXISTS events (
    session_id TEXT NOT NULL,
    seq        INTEGER NOT NULL,
    kind       TEXT NOT NULL,
    event      TEXT NOT NULL,
    PRIMARY KEY (session_id, seq)
);
CREATE TABLE IF NOT EXISTS raw (
    session_id TEXT NOT NULL,
    t_s        BLOB NOT NULL,
    acc_m_s2   BLOB NOT NULL,
    gyr_rad_s  BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS traces (
    session_id TEXT NOT NULL,
    t_s        BLOB NOT NULL,
    angle_deg  BLOB NOT NULL
);
"""


class UnknownSessionError(HipsenseError, KeyError):
    """No session with that id in the history."""

    def __init__(self, session_id: str) -> None:
        super().__init__(f"session: expected an id of `hipsense sessions`, got {session_id!r}")
        self.session_id = session_id


@dataclass(frozen=True)
class SessionRecord:
    """One stored session, everything a report needs."""

    session_id: str
    sensor_id: str
    patient_id: str | None
    exercise: str
    started_at: str
    ended_at: str | None
    summary: dict[str, Any] | None
    events: list[dict[str, Any]]
    t_s: NDArray[np.float64]
    angle_deg: NDArray[np.float64]


class History:
    """`History(path)`; one writer per file (the gateway), any number of readers."""

    def __init__(self, path: Path | str) -> None:
        self.path = str(path)
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        """Close the file."""
        self._db.close()

    def start(
        self,
        session_id: str,
        *,
        sensor_id: str,
        exercise: str,
        started_at: str,
        patient_id: str | None = None,
    ) -> None:
        """A session begins."""
        self._db.execute(
            "INSERT OR REPLACE INTO sessions (session_id, sensor_id, patient_id, exercise, "
            "started_at) VALUES (?, ?, ?, ?, ?)",
            (session_id, sensor_id, patient_id, exercise, started_at),
        )

    def add_event(self, session_id: str, seq: int, event: dict[str, Any]) -> None:
        """One event payload (a rep, hold, set end or calibration)."""
        self._db.execute(
            "INSERT OR REPLACE INTO events VALUES (?, ?, ?, ?)",
            (session_id, seq, str(event.get("kind", "")), json.dumps(event)),
        )

    def add_trace(
        self, session_id: str, t_s: NDArray[np.float64], angle_deg: NDArray[np.float64]
    ) -> None:
        """A stretch of the angle over time."""
        if t_s.shape[0]:
            self._db.execute(
                "INSERT INTO traces VALUES (?, ?, ?)",
                (
                    session_id,
                    np.asarray(t_s, np.float32).tobytes(),
                    np.asarray(angle_deg, np.float32).tobytes(),
                ),
            )

    def add_raw(
        self,
        session_id: str,
        t_s: NDArray[np.float64],
        acc_m_s2: NDArray[np.float64],
        gyr_rad_s: NDArray[np.float64],
    ) -> None:
        """Raw samples (session time, accelerometer, gyroscope) for a later re-analysis."""
        if t_s.shape[0]:
            self._db.execute(
                "INSERT INTO raw VALUES (?, ?, ?, ?)",
                (
                    session_id,
                    np.asarray(t_s, np.float64).tobytes(),
                    np.asarray(acc_m_s2, np.float64).tobytes(),
                    np.asarray(gyr_rad_s, np.float64).tobytes(),
                ),
            )

    def load_raw(self, session_id: str) -> Recording:
        """The raw samples kept of a session, as a recording (`hipsense analyze` reads it)."""
        rows = self._db.execute(
            "SELECT t_s, acc_m_s2, gyr_rad_s FROM raw WHERE session_id = ? ORDER BY rowid",
            (session_id,),
        ).fetchall()
        if not rows:
            self.load(session_id)  # an unknown session says so
            raise HipsenseError(
                f"session {session_id}: expected raw samples, found none (keep_raw_samples "
                "was off when it ran)"
            )
        t = np.concatenate([np.frombuffer(r[0], np.float64) for r in rows])
        acc = np.concatenate([np.frombuffer(r[1], np.float64).reshape(-1, 3) for r in rows])
        gyr = np.concatenate([np.frombuffer(r[2], np.float64).reshape(-1, 3) for r in rows])
        return Recording(t, acc, gyr, metadata={"session_id": session_id})

    def finish(self, session_id: str, summary: dict[str, Any]) -> None:
        """The session is over: keep its summary."""
        self._db.execute(
            "UPDATE sessions SET ended_at = ?, summary = ? WHERE session_id = ?",
            (summary.get("ended_at"), json.dumps(summary), session_id),
        )

    def sessions(self) -> list[dict[str, Any]]:
        """Every session, newest first, with its counts."""
        rows = self._db.execute(
            "SELECT session_id, sensor_id, patient_id, exercise, started_at, ended_at, summary "
            "FROM sessions ORDER BY started_at DESC"
        ).fetchall()
        out = []
        for sid, sensor, patient, exercise, started, ended, summary in rows:
            s = json.loads(summary) if summary else {}
            out.append(
                {
                    "session_id": sid,
                    "sensor_id": sensor,
                    "patient_id": patient,
                    "exercise": exercise,
                    "started_at": started,
                    "ended_at": ended,
                    "rep_count": s.get("rep_count"),
                    "hold_count": s.get("hold_count"),
                    "adherence_pct": s.get("adherence_pct"),
                }
            )
        return out

    def load(self, session_id: str) -> SessionRecord:
        """Everything stored of one session."""
        row = self._db.execute(
            "SELECT sensor_id, patient_id, exercise, started_at, ended_at, summary FROM sessions "
            "WHERE session_id = ?",
            (session_id,),
        ).fetchone()
        if row is None:
            raise UnknownSessionError(session_id)
        sensor, patient, exercise, started, ended, summary = row
        events = [
            json.loads(e)
            for (e,) in self._db.execute(
                "SELECT event FROM events WHERE session_id = ? ORDER BY seq", (session_id,)
            )
        ]
        parts = self._db.execute(
            "SELECT t_s, angle_deg FROM traces WHERE session_id = ? ORDER BY rowid", (session_id,)
        ).fetchall()
        t = (
            np.concatenate([np.frombuffer(a, np.float32) for a, _ in parts])
            if parts
            else np.empty(0)
        )
        ang = (
            np.concatenate([np.frombuffer(b, np.float32) for _, b in parts])
            if parts
            else np.empty(0)
        )
        return SessionRecord(
            session_id=session_id,
            sensor_id=sensor,
            patient_id=patient,
            exercise=exercise,
            started_at=started,
            ended_at=ended,
            summary=json.loads(summary) if summary else None,
            events=events,
            t_s=t.astype(np.float64),
            angle_deg=ang.astype(np.float64),
        )
