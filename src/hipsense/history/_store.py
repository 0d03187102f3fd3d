"""The session history: an SQLite file of sessions, their events and angle traces.

Written as a session runs (events as they are queued for MQTT, the angle at 20 samples/s)
so a report can be made later, even after a crash mid-session. A session a crash left
open is closed on the next start (`unfinished`, then `finish(..., interrupted=True)`).

Storage faults degrade, they do not raise. Raw samples are the first thing to give up:
they are not stored while the file cannot be written or its disk has less than
`raw_reserve_bytes` free (at most a tenth of the disk), so the disk's last space goes to
events. Other writes that fail (disk full, read-only, I/O error, or a file that cannot be
opened) are held in memory in order, at most `memory_limit` of them, and written out on a
later call once the file can be written (tried at most every `retry_s`); when memory is
full, angle traces go first, then new writes are dropped and counted in `lost`. Each
change of state is logged once. A held write that fails for another reason when it is
written out (a bug, not the disk) is rolled back, logged and dropped, and the error
raised: the writes held with it are written out all the same.
"""

import contextlib
import json
import logging
import os
import sqlite3
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime
from datetime import time as dt_time
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from hipsense._errors import HipsenseError
from hipsense._sqlite import open_state_db
from hipsense._sqlite import storage_fault as _storage_fault
from hipsense.recording import Recording

__all__ = [
    "MEMORY_LIMIT",
    "RAW_RESERVE_BYTES",
    "RETRY_S",
    "History",
    "HistoryUnavailableError",
    "SessionRecord",
    "UnknownSessionError",
]

log = logging.getLogger("hipsense.history")

RAW_RESERVE_BYTES = 64 * 1024 * 1024
"""Free space below which raw samples are no longer stored (capped at a tenth of the disk)."""

MEMORY_LIMIT = 10_000
"""Writes held in memory at most by default: at one write per event and one trace every
5 s, over an hour of sessions; a few MB (a trace write is under a kB)."""

RETRY_S = 1.0
"""How often at most a degraded history tries the file again by default: a freed disk is
used within a second, and a failing try (a few syscalls) costs nothing noticeable."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (
    session_id  TEXT PRIMARY KEY,
    sensor_id   TEXT NOT NULL,
    patient_id  TEXT,
    exercise    TEXT NOT NULL,
    started_at  TEXT NOT NULL,
    ended_at    TEXT,
    summary     TEXT,
    interrupted INTEGER NOT NULL DEFAULT 0,
    topic_root  TEXT,
    side        TEXT,
    prescription TEXT
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


def _setup(db: sqlite3.Connection) -> None:
    db.executescript(_SCHEMA)
    columns = {row[1] for row in db.execute("PRAGMA table_info(sessions)")}
    if "interrupted" not in columns:  # a history from before interrupted sessions
        db.execute("ALTER TABLE sessions ADD COLUMN interrupted INTEGER NOT NULL DEFAULT 0")
    if "topic_root" not in columns:  # from before the topic root was kept
        db.execute("ALTER TABLE sessions ADD COLUMN topic_root TEXT")
    if "side" not in columns:  # from before the side and prescription were kept
        db.execute("ALTER TABLE sessions ADD COLUMN side TEXT")
    if "prescription" not in columns:
        db.execute("ALTER TABLE sessions ADD COLUMN prescription TEXT")


class HistoryUnavailableError(HipsenseError):
    """The history file cannot be read now (e.g. it could not be opened: disk full)."""

    def __init__(self, path: str, reason: str | None) -> None:
        super().__init__(f"history: expected to read {path}, got {reason}")
        self.path = path


class UnknownSessionError(HipsenseError, KeyError):
    """No session with that id in the history."""

    def __init__(self, session_id: str) -> None:
        super().__init__(f"session: expected an id of `hipsense sessions`, got {session_id!r}")
        self.session_id = session_id

    def __str__(self) -> str:
        # KeyError's own would quote the message.
        return str(self.args[0])


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
    interrupted: bool = False
    """Closed on a later start: the gateway stopped (killed, crashed, power cut) first."""
    topic_root: str | None = None
    """The MQTT topic root its messages went under (e.g. `hipsense/v1/gw-1`), if known."""
    side: str | None = None
    """"left", "right" or "both": the side(s) done (while it runs: the side(s) it is for);
    None when unknown (no prescription, or a history from before sides were kept)."""
    prescription: dict[str, Any] | None = None
    """The prescription (`Prescription` as JSON) it ran under; None without one."""

    @property
    def started(self) -> datetime:
        """`started_at` as an aware datetime (UTC when the stored time has no offset)."""
        return _aware(self.started_at)

    @property
    def ended(self) -> datetime | None:
        """`ended_at` as an aware datetime, or None while it has not ended."""
        return _aware(self.ended_at) if self.ended_at else None


_Write = tuple[str, tuple[Any, ...], bool]
"""A write held in memory: SQL, its parameters, whether it is an angle trace."""


class History:
    """`History(path)`; one writer per file (the gateway), any number of readers."""

    def __init__(
        self,
        path: Path | str,
        *,
        memory_limit: int = MEMORY_LIMIT,
        retry_s: float = RETRY_S,
        raw_reserve_bytes: int = RAW_RESERVE_BYTES,
    ) -> None:
        self.path = str(path)
        """The SQLite file."""
        self.memory_limit = memory_limit
        """Writes held in memory at most while the file cannot be written."""
        self.retry_s = retry_s
        """How often (at most) to try writing the held writes out."""
        self.raw_reserve_bytes = raw_reserve_bytes
        """Free space kept for events: raw samples stop below it (see `RAW_RESERVE_BYTES`)."""
        self.degraded: str | None = None
        """Why writes are held in memory (the storage fault), or None when they are not."""
        self.raw_paused: str | None = None
        """Why raw samples are not being stored now, or None when they are."""
        self.raw_skipped = 0
        """Raw samples not stored (`raw_paused`), since opening."""
        self.lost = 0
        """Writes dropped because the memory queue was full, since opening."""
        self._db: sqlite3.Connection | None = None
        """The open file, or None while it could not be opened."""
        self._pending: list[_Write] = []
        """Writes held in memory, in order."""
        self._retry_at = 0.0
        """When (monotonic) a degraded history may try the file again."""
        self._open()

    # -- the file -----------------------------------------------------------------

    def _open(self) -> bool:
        """Open the file; False (degraded) on a storage fault."""
        try:
            db = open_state_db(self.path, _setup)
        except sqlite3.OperationalError as exc:
            if not _storage_fault(exc):
                raise
            self._degrade(exc)
            return False
        self._db = db
        return True

    def _degrade(self, exc: sqlite3.Error) -> None:
        if self.degraded is None:
            log.warning(
                "history: cannot write %s (%s): holding its writes in memory (at most %d) "
                "until it can",
                self.path,
                exc,
                self.memory_limit,
            )
        self.degraded = str(exc)
        self._retry_at = time.monotonic() + self.retry_s

    def _retry(self, *, now: bool = False) -> None:
        """While degraded, try to write out what is held (at most every `retry_s`)."""
        if self.degraded is None or (not now and time.monotonic() < self._retry_at):
            return
        self._retry_at = time.monotonic() + self.retry_s
        if self._db is None and not self._open():
            return
        db = self._db
        assert db is not None
        bug: Exception | None = None
        while True:
            at: int | None = None
            try:
                db.execute("BEGIN IMMEDIATE")
                for i, (sql, params, _) in enumerate(self._pending):
                    at = i  # the write that fails, if one does
                    db.execute(sql, params)
                at = None
                db.execute("COMMIT")
            except BaseException as exc:
                # Rolled back whatever failed: a transaction left open would fail every
                # later write ("cannot start a transaction within a transaction").
                if db.in_transaction:
                    with contextlib.suppress(sqlite3.Error):
                        db.execute("ROLLBACK")
                if isinstance(exc, sqlite3.OperationalError) and _storage_fault(exc):
                    self.degraded = str(exc)
                    if bug is not None:
                        raise bug from None
                    return
                if not isinstance(exc, Exception) or at is None:
                    raise
                # A bug's write (a constraint, a bad parameter): dropped, or it would stop
                # every write held after it; the others are written out, then it is raised.
                sql, params, _ = self._pending.pop(at)
                log.error(
                    "history: a write held in memory failed (%s: %s) and is dropped: %s",
                    type(exc).__name__,
                    exc,
                    sql.split("(")[0].strip(),
                )
                bug = bug or exc
                continue
            break
        log.info(
            "history: %s can be written again: %d writes held in memory are on disk",
            self.path,
            len(self._pending),
        )
        self._pending.clear()
        self.degraded = None
        if bug is not None:
            raise bug

    def _write(self, sql: str, params: tuple[Any, ...], *, trace: bool = False) -> None:
        """Execute a write, or hold it in memory while the file cannot be written."""
        try:
            self._retry()
        except Exception:
            self._put(sql, params, trace)  # a held write's error is not this one's
            raise
        self._put(sql, params, trace)

    def _put(self, sql: str, params: tuple[Any, ...], trace: bool) -> None:
        if self.degraded is None:
            assert self._db is not None
            try:
                self._db.execute(sql, params)
            except sqlite3.OperationalError as exc:
                if not _storage_fault(exc):
                    raise
                self._degrade(exc)
            else:
                return
        if len(self._pending) >= self.memory_limit:
            oldest_trace = next((i for i, w in enumerate(self._pending) if w[2]), None)
            if trace or oldest_trace is None:
                self.lost += 1
                log.error(
                    "history: memory queue full (%d writes, %s cannot be written): a write "
                    "is lost (%d lost so far)",
                    self.memory_limit,
                    self.path,
                    self.lost,
                )
                return
            del self._pending[oldest_trace]
            self.lost += 1
        self._pending.append((sql, params, trace))

    def _reader(self) -> sqlite3.Connection:
        """The connection to read with, after writing out what is held if possible."""
        self._retry(now=True)
        if self._db is None:
            raise HistoryUnavailableError(self.path, self.degraded)
        return self._db

    @property
    def held(self) -> int:
        """Writes held in memory now (not on disk)."""
        return len(self._pending)

    def close(self) -> None:
        """Close the file (held writes are written out if the file allows, else lost)."""
        self._retry(now=True)
        if self._pending:
            log.error(
                "history: %d writes held in memory could not be written to %s (%s) and are lost",
                len(self._pending),
                self.path,
                self.degraded,
            )
        if self._db is not None:
            self._db.close()

    def start(
        self,
        session_id: str,
        *,
        sensor_id: str,
        exercise: str,
        started_at: str,
        patient_id: str | None = None,
        topic_root: str | None = None,
        side: str | None = None,
        prescription: dict[str, Any] | None = None,
    ) -> None:
        """A session begins (`topic_root`: the MQTT root its messages go under).

        `side`: the side(s) it is for ("left", "right", "both"), replaced by the side(s)
        done when it finishes; `prescription`: the `Prescription` (as JSON) it runs under.
        """
        self._write(
            "INSERT OR REPLACE INTO sessions (session_id, sensor_id, patient_id, exercise, "
            "started_at, topic_root, side, prescription) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                session_id,
                sensor_id,
                patient_id,
                exercise,
                started_at,
                topic_root,
                side,
                None if prescription is None else json.dumps(prescription),
            ),
        )

    def add_event(self, session_id: str, seq: int, event: dict[str, Any]) -> None:
        """One event payload (a rep, hold, set end or calibration)."""
        self._write(
            "INSERT OR REPLACE INTO events VALUES (?, ?, ?, ?)",
            (session_id, seq, str(event.get("kind", "")), json.dumps(event)),
        )

    def add_trace(
        self, session_id: str, t_s: NDArray[np.float64], angle_deg: NDArray[np.float64]
    ) -> None:
        """A stretch of the angle over time."""
        if t_s.shape[0]:
            self._write(
                "INSERT INTO traces VALUES (?, ?, ?)",
                (
                    session_id,
                    np.asarray(t_s, np.float32).tobytes(),
                    np.asarray(angle_deg, np.float32).tobytes(),
                ),
                trace=True,
            )

    def add_raw(
        self,
        session_id: str,
        t_s: NDArray[np.float64],
        acc_m_s2: NDArray[np.float64],
        gyr_rad_s: NDArray[np.float64],
    ) -> None:
        """Raw samples (session time, accelerometer, gyroscope) for a later re-analysis.

        Not stored (counted in `raw_skipped`) while the disk is full or nearly so.
        """
        if not t_s.shape[0]:
            return
        self._retry()
        why = self._raw_blocked()
        if why is None:
            assert self._db is not None
            try:
                self._db.execute(
                    "INSERT INTO raw VALUES (?, ?, ?, ?)",
                    (
                        session_id,
                        np.asarray(t_s, np.float64).tobytes(),
                        np.asarray(acc_m_s2, np.float64).tobytes(),
                        np.asarray(gyr_rad_s, np.float64).tobytes(),
                    ),
                )
            except sqlite3.OperationalError as exc:
                if not _storage_fault(exc):
                    raise
                why = str(exc)
                self._degrade(exc)
            else:
                return
        if self.raw_paused is None:
            log.warning(
                "history: raw samples are not stored in %s until it has room (%s): they are "
                "the first to give up",
                self.path,
                why,
            )
        self.raw_paused = why
        self.raw_skipped += int(t_s.shape[0])

    def _raw_blocked(self) -> str | None:
        """Why raw samples may not be stored now, or None (resuming says so)."""
        if self.degraded is not None:
            return self.degraded
        try:
            fs = os.statvfs(os.path.dirname(os.path.abspath(self.path)))
        except OSError as exc:
            return str(exc)
        free = fs.f_bavail * fs.f_frsize
        reserve = min(self.raw_reserve_bytes, fs.f_blocks * fs.f_frsize // 10)
        if free < reserve:
            return f"{free / 1e6:.1f} MB free, {reserve / 1e6:.1f} MB kept for events"
        if self.raw_paused is not None:
            log.info(
                "history: storing raw samples in %s again (%.1f MB free)", self.path, free / 1e6
            )
            self.raw_paused = None
        return None

    def load_raw(self, session_id: str) -> Recording:
        """The raw samples kept of a session, as a recording (`hipsense analyze` reads it)."""
        rows = (
            self._reader()
            .execute(
                "SELECT t_s, acc_m_s2, gyr_rad_s FROM raw WHERE session_id = ? ORDER BY rowid",
                (session_id,),
            )
            .fetchall()
        )
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

    def finish(
        self, session_id: str, summary: dict[str, Any], *, interrupted: bool = False
    ) -> None:
        """The session is over: keep its summary (`interrupted`: closed on a later start).

        The summary's `side` (the side(s) done), when it has one, replaces the side kept.
        """
        self._write(
            "UPDATE sessions SET ended_at = ?, summary = ?, interrupted = ?, "
            "side = COALESCE(?, side) WHERE session_id = ?",
            (
                summary.get("ended_at"),
                json.dumps(summary),
                int(interrupted),
                summary.get("side"),
                session_id,
            ),
        )

    def unfinished(self) -> list[str]:
        """Sessions never finished, oldest first: left open by a gateway that stopped."""
        rows = self._reader().execute(
            "SELECT session_id FROM sessions WHERE ended_at IS NULL ORDER BY started_at"
        )
        return [str(sid) for (sid,) in rows]

    def event_seqs(self, session_id: str) -> set[int]:
        """Sequence numbers of the events stored of a session."""
        rows = self._reader().execute("SELECT seq FROM events WHERE session_id = ?", (session_id,))
        return {int(seq) for (seq,) in rows}

    def last_sample_s(self, session_id: str) -> float | None:
        """Session time of the last angle or raw sample stored of a session, if any."""
        db = self._reader()
        last: list[float] = []
        for sql, dtype in (
            ("SELECT t_s FROM traces WHERE session_id = ? ORDER BY rowid DESC LIMIT 1", np.float32),
            ("SELECT t_s FROM raw WHERE session_id = ? ORDER BY rowid DESC LIMIT 1", np.float64),
        ):
            row = db.execute(sql, (session_id,)).fetchone()
            t = np.frombuffer(row[0], dtype) if row is not None else np.empty(0)
            if t.shape[0]:
                last.append(float(t[-1]))
        return max(last) if last else None

    def sessions(
        self, patient_id: str | None = None, since: date | datetime | None = None
    ) -> list[dict[str, Any]]:
        """The sessions, newest first, with their counts (`patient_id`, `since`: only those).

        `since`: a date (from its local midnight) or a datetime (naive: local time).
        `adherence_pct` is the session's own, `program_adherence_pct` the program's running
        total (see `Summary`); both are None where not known.
        """
        # One query, the patient a parameter: NULL matches every session.
        rows = (
            self._reader()
            .execute(
                "SELECT session_id, sensor_id, patient_id, exercise, started_at, ended_at, "
                "summary, interrupted, side FROM sessions WHERE ? IS NULL OR patient_id = ? "
                "ORDER BY started_at DESC",
                (patient_id, patient_id),
            )
            .fetchall()
        )
        after = _since(since)
        out = []
        for sid, sensor, patient, exercise, started, ended, summary, interrupted, side in rows:
            if after is not None and _aware(started) < after:
                continue
            s = _current(json.loads(summary)) if summary else {}
            out.append(
                {
                    "session_id": sid,
                    "sensor_id": sensor,
                    "patient_id": patient,
                    "exercise": exercise,
                    "side": side,
                    "started_at": started,
                    "ended_at": ended,
                    "rep_count": s.get("rep_count"),
                    "hold_count": s.get("hold_count"),
                    "adherence_pct": s.get("adherence_pct"),
                    "program_adherence_pct": s.get("program_adherence_pct"),
                    "quality_pct": s.get("quality_pct"),
                    "interrupted": bool(interrupted),
                }
            )
        return out

    def records(
        self,
        patient_id: str | None,
        since: date | datetime | None = None,
        *,
        traces: bool = False,
    ) -> list[SessionRecord]:
        """A patient's sessions, oldest first (`patient_id` None: every session).

        `since` as for `sessions`; `traces`: also load the angle traces (else they are
        empty, which is all a progress report or an export needs).
        """
        rows = self.sessions(patient_id, since)
        return [self.load(r["session_id"], traces=traces) for r in reversed(rows)]

    def load(self, session_id: str, *, traces: bool = True) -> SessionRecord:
        """Everything stored of one session (`traces` False: its angle trace left empty)."""
        db = self._reader()
        row = db.execute(
            "SELECT sensor_id, patient_id, exercise, started_at, ended_at, summary, interrupted, "
            "topic_root, side, prescription FROM sessions WHERE session_id = ?",
            (session_id,),
        ).fetchone()
        if row is None:
            raise UnknownSessionError(session_id)
        (
            sensor,
            patient,
            exercise,
            started,
            ended,
            summary,
            interrupted,
            topic_root,
            side,
            prescription,
        ) = row
        events = [
            json.loads(e)
            for (e,) in db.execute(
                "SELECT event FROM events WHERE session_id = ? ORDER BY seq", (session_id,)
            )
        ]
        parts = (
            db.execute(
                "SELECT t_s, angle_deg FROM traces WHERE session_id = ? ORDER BY rowid",
                (session_id,),
            ).fetchall()
            if traces
            else []
        )
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
            summary=_current(json.loads(summary)) if summary else None,
            events=events,
            t_s=t.astype(np.float64),
            angle_deg=ang.astype(np.float64),
            interrupted=bool(interrupted),
            topic_root=topic_root,
            side=side,
            prescription=json.loads(prescription) if prescription else None,
        )


def _aware(text: str) -> datetime:
    """A stored ISO time as an aware datetime (UTC when it has no offset)."""
    t = datetime.fromisoformat(text)
    return t if t.tzinfo is not None else t.replace(tzinfo=UTC)


def _since(since: date | datetime | None) -> datetime | None:
    """`since` as an aware datetime: a date from its local midnight, naive times local."""
    if since is None:
        return None
    if not isinstance(since, datetime):
        since = datetime.combine(since, dt_time())
    return since if since.tzinfo is not None else since.astimezone()


def _current(summary: dict[str, Any]) -> dict[str, Any]:
    """A stored summary in today's terms.

    A summary written before `program_adherence_pct` existed carried the program's running
    total in `adherence_pct`: it is moved there, and the session's own is not known.
    """
    if "program_adherence_pct" in summary or summary.get("adherence_pct") is None:
        return summary
    return {**summary, "program_adherence_pct": summary["adherence_pct"], "adherence_pct": None}
