"""A durable outbox: messages are written to SQLite before they are published.

A message leaves the outbox only when the broker has acknowledged it, so a broker
restart, a dropped network or a killed process (even SIGKILL) loses nothing that was
accepted: on restart the publisher sends what is left, in the order it was put.

A message the broker refuses (an MQTT 5 PUBACK with an error reason, e.g. not
authorized) is moved to a `rejected` table with the reason, logged, and counted; it is
not sent again, because it would be refused again and hold up everything behind it.

Policy when full (`max_messages`): droppable messages (sensor states, which a later
state supersedes) go first, oldest first. Live frames never enter the outbox: the
publisher drops them while the broker is away. Events and summaries are never dropped
silently; when only they are left, `put` raises
`OutboxFullError` and the caller decides (the daemon logs it and keeps measuring).
"""

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from hipsense._errors import HipsenseError

__all__ = ["Outbox", "OutboxFullError", "OutboxMessage"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    topic     TEXT    NOT NULL,
    payload   BLOB    NOT NULL,
    qos       INTEGER NOT NULL,
    retain    INTEGER NOT NULL,
    droppable INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS rejected (
    id        INTEGER PRIMARY KEY,
    topic     TEXT    NOT NULL,
    payload   BLOB    NOT NULL,
    reason    TEXT    NOT NULL,
    at        TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
CREATE TABLE IF NOT EXISTS sequence (
    stream TEXT PRIMARY KEY,
    next   INTEGER NOT NULL
);
"""


class OutboxFullError(HipsenseError):
    """The outbox holds `limit` messages that may not be dropped."""

    def __init__(self, limit: int) -> None:
        super().__init__(
            f"outbox: expected room for one more message, found {limit} undroppable "
            "messages waiting for the broker"
        )
        self.limit = limit


@dataclass(frozen=True)
class OutboxMessage:
    """One message waiting for the broker's acknowledgement."""

    id: int
    topic: str
    payload: bytes
    qos: int
    retain: bool
    droppable: bool


class Outbox:
    """SQLite (WAL) queue of messages to publish, oldest first.

    `put` commits before it returns; `ack` removes a message once the broker has it.
    Use one `Outbox` per process; the file may be reopened after a crash.
    """

    def __init__(self, path: Path | str, *, max_messages: int = 100_000) -> None:
        self.path = str(path)
        self.max_messages = max_messages
        self.dropped = 0
        """Droppable messages removed to make room, since opening."""
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        # FULL: a committed put survives power loss, not only a killed process.
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        """Close the database."""
        self._db.close()

    def __len__(self) -> int:
        row = self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()
        return int(row[0])

    def put(
        self,
        topic: str,
        payload: bytes,
        *,
        qos: int = 1,
        retain: bool = False,
        droppable: bool = False,
    ) -> int:
        """Store a message durably; return its id (ids increase in put order)."""
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            self._make_room()
            cur = self._db.execute(
                "INSERT INTO outbox (topic, payload, qos, retain, droppable) "
                "VALUES (?, ?, ?, ?, ?)",
                (topic, payload, qos, int(retain), int(droppable)),
            )
        assert cur.lastrowid is not None
        return int(cur.lastrowid)

    def put_sequenced(
        self,
        stream: str,
        make: Callable[[int], tuple[str, bytes]],
        *,
        qos: int = 1,
        retain: bool = False,
    ) -> int:
        """Store the message `make(seq)` builds, seq counting 0, 1, 2 ... per `stream`.

        Number and message commit together: a crash leaves neither a gap in the
        numbers nor a number used twice.
        """
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            row = self._db.execute(
                "SELECT next FROM sequence WHERE stream = ?", (stream,)
            ).fetchone()
            seq = 0 if row is None else int(row[0])
            topic, payload = make(seq)
            self._make_room()
            self._db.execute(
                "INSERT INTO outbox (topic, payload, qos, retain, droppable) "
                "VALUES (?, ?, ?, ?, 0)",
                (topic, payload, qos, int(retain)),
            )
            self._db.execute(
                "INSERT INTO sequence (stream, next) VALUES (?, ?) "
                "ON CONFLICT(stream) DO UPDATE SET next = excluded.next",
                (stream, seq + 1),
            )
        return seq

    def peek(self, limit: int = 100, after: int = 0) -> list[OutboxMessage]:
        """The oldest messages with an id above `after`, in put order."""
        rows = self._db.execute(
            "SELECT id, topic, payload, qos, retain, droppable FROM outbox "
            "WHERE id > ? ORDER BY id LIMIT ?",
            (after, limit),
        ).fetchall()
        return [
            OutboxMessage(int(r[0]), r[1], bytes(r[2]), int(r[3]), bool(r[4]), bool(r[5]))
            for r in rows
        ]

    def _make_room(self) -> None:
        # Inside a transaction.
        if len(self) < self.max_messages:
            return
        victim = self._db.execute(
            "SELECT id FROM outbox WHERE droppable = 1 ORDER BY id LIMIT 1"
        ).fetchone()
        if victim is None:
            raise OutboxFullError(self.max_messages)
        self._db.execute("DELETE FROM outbox WHERE id = ?", victim)
        self.dropped += 1

    def ack(self, message_id: int) -> None:
        """The broker has the message: remove it."""
        self._db.execute("DELETE FROM outbox WHERE id = ?", (message_id,))

    def reject(self, message_id: int, reason: str) -> None:
        """The broker refused the message (e.g. not authorized): keep it aside, with why.

        Sending it again would be refused again and hold up everything behind it.
        """
        with self._db:
            self._db.execute("BEGIN")
            self._db.execute(
                "INSERT INTO rejected (id, topic, payload, reason) "
                "SELECT id, topic, payload, ? FROM outbox WHERE id = ?",
                (reason, message_id),
            )
            self._db.execute("DELETE FROM outbox WHERE id = ?", (message_id,))

    def rejected(self) -> list[tuple[str, bytes, str]]:
        """Messages the broker refused: (topic, payload, reason), oldest first."""
        return [
            (str(t), bytes(p), str(r))
            for t, p, r in self._db.execute(
                "SELECT topic, payload, reason FROM rejected ORDER BY id"
            )
        ]
