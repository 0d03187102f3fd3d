"""A durable outbox: messages are written to SQLite before they are published.

A message leaves the outbox only when the broker has acknowledged it, so a broker
restart, a dropped network or a killed process (even SIGKILL) loses nothing that was
accepted: on restart the publisher sends what is left, in the order it was put.

A message the broker refuses (an MQTT 5 PUBACK with an error reason, e.g. not
authorized) is moved to a `rejected` table with the reason, logged, and counted; it is
not sent again, because it would be refused again and hold up everything behind it.

Policy when full (`max_messages`): droppable messages (sensor states and running
summaries, which a later one supersedes) go first, oldest first. Live frames never enter
the outbox: the publisher drops them while the broker is away. Events and the other
summaries are never dropped silently; when only they are left, `put` raises
`OutboxFullError` and the caller decides (the daemon logs it and keeps measuring).

Storage faults degrade, they do not raise. When the file cannot be written (disk full,
read-only, I/O error) or not even opened, messages are held in memory, at most
`memory_limit` of them, in order, and sent from there as usual; the outbox says why in
`degraded` and logs it once. Held messages have ids of their own (from `HELD_ID_BASE`
up), which no message on disk ever has, even when the file could not be read to learn
what it holds: an acknowledgement can never be taken for another message's. Every
`retry_s` (on the next call) it tries to write them out, in one transaction, after
everything on disk and in order (with ids the file gives them; an id handed out before
is still acknowledged), and once that works it is a plain durable outbox again. Only
when the memory queue is full is anything dropped: droppable messages first, then the
new message, which is counted in `lost`, logged, and refused with `OutboxMemoryFullError`
(an `OutboxFullError`). What is held in memory when the process ends is lost, and
`close` says so.

Each message is kept for one broker, the outbox's `broker` when it was put (e.g.
"mqtt://broker.clinic:1883", or "embedded"): an outbox opened for another broker does not
see it (`peek`, `len`), so messages queued while a clinic's broker was unreachable are
not delivered to the next demo's embedded broker, and go out when that broker is used
again. The file's capacity (`max_messages`) is shared by all brokers.
"""

import bisect
import contextlib
import logging
import sqlite3
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hipsense._errors import HipsenseError
from hipsense._sqlite import open_state_db
from hipsense._sqlite import storage_fault as _storage_fault

__all__ = [
    "HELD_ID_BASE",
    "Outbox",
    "OutboxFullError",
    "OutboxMemoryFullError",
    "OutboxMessage",
    "OutboxUnavailableError",
]

log = logging.getLogger("hipsense.outbox")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    topic     TEXT    NOT NULL,
    payload   BLOB    NOT NULL,
    qos       INTEGER NOT NULL,
    retain    INTEGER NOT NULL,
    droppable INTEGER NOT NULL,
    broker    TEXT    NOT NULL DEFAULT ''
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

HELD_ID_BASE = 1 << 62
"""Ids of messages held in memory count from here. The file's own ids (AUTOINCREMENT,
never given explicitly) would need 2**62 puts to get this far, so a held id is never one
the file has or will hand out, even when it could not be read to learn its last id."""

MEMORY_LIMIT = 10_000
"""Messages held in memory at most by default: hours of events (a few a minute per
sensor) and their states, a few MB at most (a message is well under a kB)."""

RETRY_S = 1.0
"""How often at most a degraded outbox tries the file again by default: a freed disk is
used within a second, and a failing try (a few syscalls) costs nothing noticeable."""

SCAN_BATCH = 1000
"""Messages read at a time by `messages()`: few queries, little memory."""


def _setup(db: sqlite3.Connection) -> None:
    # FULL: a committed put survives power loss, not only a killed process.
    db.execute("PRAGMA synchronous=FULL")
    db.executescript(_SCHEMA)
    columns = {str(row[1]) for row in db.execute("PRAGMA table_info(outbox)")}
    if "broker" not in columns:  # a file from before messages were kept per broker
        db.execute("ALTER TABLE outbox ADD COLUMN broker TEXT NOT NULL DEFAULT ''")


@contextlib.contextmanager
def _transaction(db: sqlite3.Connection) -> Iterator[None]:
    """BEGIN IMMEDIATE ... COMMIT; rolled back on any error, a failed COMMIT included."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                db.execute("ROLLBACK")
        raise


class OutboxUnavailableError(HipsenseError):
    """The outbox file cannot be read now (e.g. it could not be opened: disk full)."""

    def __init__(self, path: str, reason: str | None) -> None:
        super().__init__(f"outbox: expected to read {path}, got {reason}")
        self.path = path


class OutboxFullError(HipsenseError):
    """The outbox holds `limit` messages that may not be dropped."""

    seq: int | None = None
    """For `put_sequenced`: the number the refused message used up (a subscriber sees the
    gap), or None when none was used."""

    def __init__(self, limit: int, seq: int | None = None) -> None:
        super().__init__(
            f"outbox: expected room for one more message, found {limit} undroppable "
            "messages waiting for the broker"
        )
        self.limit = limit
        self.seq = seq


class OutboxMemoryFullError(OutboxFullError):
    """The file cannot be written and the memory queue holds `limit` undroppable messages."""

    def __init__(self, limit: int, path: str, reason: str, seq: int | None = None) -> None:
        HipsenseError.__init__(
            self,
            f"outbox: expected room for one more message, found {limit} messages held in "
            f"memory because {path} cannot be written ({reason}); this one is lost",
        )
        self.limit = limit
        self.seq = seq


@dataclass(frozen=True)
class OutboxMessage:
    """One message waiting for the broker's acknowledgement."""

    id: int
    topic: str
    payload: bytes
    qos: int
    retain: bool
    droppable: bool
    broker: str = ""
    """The broker it is for (the `broker` of the outbox that put it)."""


class Outbox:
    """SQLite (WAL) queue of messages to publish, oldest first.

    `put` commits before it returns; `ack` removes a message once the broker has it.
    Use one `Outbox` per process; the file may be reopened after a crash.
    """

    def __init__(
        self,
        path: Path | str,
        *,
        max_messages: int = 100_000,
        memory_limit: int = MEMORY_LIMIT,
        retry_s: float = RETRY_S,
        broker: str = "",
    ) -> None:
        self.path = str(path)
        """The SQLite file."""
        self.broker = broker
        """The broker this outbox sends to: only its messages are seen and put."""
        self.max_messages = max_messages
        """Messages on disk at most (`put` makes room, or refuses, beyond)."""
        self.memory_limit = memory_limit
        """Messages held in memory at most while the file cannot be written."""
        self.retry_s = retry_s
        """How often (at most) to try writing the held messages out."""
        self.dropped = 0
        """Droppable messages removed to make room, since opening."""
        self.lost = 0
        """Undroppable messages refused because the memory queue was full, since opening."""
        self.degraded: str | None = None
        """Why messages are held in memory (the storage fault), or None when they are not."""
        self._db: sqlite3.Connection | None = None
        self._memory: dict[int, OutboxMessage] = {}
        """Messages not on disk yet, by (held) id; in id order, all newer than the disk's."""
        self._unsaved_seq: dict[str, int] = {}
        """Next sequence numbers not on disk yet."""
        self._seq: dict[str, int] = {}
        """Next sequence numbers known to this process (the disk may be unreadable)."""
        self._gone: dict[int, str | None] = {}
        """Messages on disk acknowledged (None) or refused (the reason) while the file
        could not be written, by id: hidden, moved to `rejected` or deleted later."""
        self._refused: list[tuple[str, bytes, str]] = []
        """Refused held messages (topic, payload, reason) not yet in the `rejected` table."""
        self._moved: dict[int, int] = {}
        """The file's ids of held messages written out, by held id, in held-id order (an
        id handed out by `peek` may be acknowledged after); the latest `memory_limit`."""
        self._next_held = HELD_ID_BASE
        """The id the next held message gets."""
        self._retry_at = 0.0
        """When (monotonic) a degraded outbox may try the file again."""
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
        if self.broker:
            self._claim_unkept()
        return True

    def _claim_unkept(self) -> None:
        """Messages of a file from before brokers were kept go to this outbox's broker."""
        assert self._db is not None
        try:
            with _transaction(self._db):
                n = self._db.execute(
                    "UPDATE outbox SET broker = ? WHERE broker = ''", (self.broker,)
                ).rowcount
        except sqlite3.OperationalError as exc:
            if not _storage_fault(exc):
                raise
            return  # a read-only moment: they are claimed by a later open
        if n:
            log.info(
                "outbox: %d messages queued for no broker in particular are for %s", n, self.broker
            )

    def _degrade(self, exc: sqlite3.Error) -> None:
        reason = str(exc)
        if self.degraded is None:
            log.warning(
                "outbox: cannot write %s (%s): holding messages in memory (at most %d) "
                "until it can",
                self.path,
                reason,
                self.memory_limit,
            )
        self.degraded = reason
        self._retry_at = time.monotonic() + self.retry_s

    def _retry(self, *, now: bool = False) -> None:
        """While degraded, try to write the held messages out (at most every `retry_s`)."""
        if self.degraded is None or (not now and time.monotonic() < self._retry_at):
            return
        self._retry_at = time.monotonic() + self.retry_s
        if self._db is None and not self._open():
            return
        db = self._db
        assert db is not None
        held = list(self._memory.values())
        moved: dict[int, int] = {}
        try:
            with _transaction(db):
                # Still in the `rejected` table's order: those refused from disk first.
                db.executemany(
                    "INSERT INTO rejected (topic, payload, reason) "
                    "SELECT topic, payload, ? FROM outbox WHERE id = ?",
                    [(why, i) for i, why in self._gone.items() if why is not None],
                )
                db.executemany("DELETE FROM outbox WHERE id = ?", [(i,) for i in self._gone])
                for m in held:  # after everything on disk, in order; the file's ids
                    cur = db.execute(
                        "INSERT INTO outbox (topic, payload, qos, retain, droppable, broker) "
                        "VALUES (?, ?, ?, ?, ?, ?)",
                        (m.topic, m.payload, m.qos, int(m.retain), int(m.droppable), m.broker),
                    )
                    assert cur.lastrowid is not None
                    moved[m.id] = int(cur.lastrowid)
                db.executemany(
                    "INSERT INTO sequence (stream, next) VALUES (?, ?) ON CONFLICT(stream) "
                    "DO UPDATE SET next = MAX(next, excluded.next)",
                    list(self._unsaved_seq.items()),
                )
                db.executemany(
                    "INSERT INTO rejected (topic, payload, reason) VALUES (?, ?, ?)",
                    self._refused,
                )
        except sqlite3.OperationalError as exc:
            if not _storage_fault(exc):
                raise
            self.degraded = str(exc)
            return
        self._moved.update(moved)
        while len(self._moved) > self.memory_limit:
            del self._moved[next(iter(self._moved))]
        self._memory.clear()
        self._unsaved_seq.clear()
        self._gone.clear()
        self._refused.clear()
        log.info(
            "outbox: %s can be written again: %d messages held in memory are on disk",
            self.path,
            len(held),
        )
        self.degraded = None

    # -- the queue ----------------------------------------------------------------

    @property
    def held(self) -> int:
        """Messages held in memory now (not on disk)."""
        return len(self._memory)

    def close(self) -> None:
        """Close the database (held messages are written out if the file allows, else lost)."""
        self._retry(now=True)
        if self._memory:
            log.error(
                "outbox: %d messages held in memory could not be written to %s (%s) and are lost",
                len(self._memory),
                self.path,
                self.degraded,
            )
        if self._db is not None:
            self._db.close()

    def __len__(self) -> int:
        """Messages waiting for this outbox's broker."""
        return self._count(every_broker=False)

    def _count(self, *, every_broker: bool) -> int:
        on_disk = 0
        gone = self._gone
        if self._db is not None:
            where = "" if every_broker else " WHERE broker = ?"
            try:
                on_disk = int(
                    self._db.execute(
                        f"SELECT COUNT(*) FROM outbox{where}",  # noqa: S608 -- a fixed clause
                        () if every_broker else (self.broker,),
                    ).fetchone()[0]
                )
            except sqlite3.OperationalError as exc:
                if not _storage_fault(exc):
                    raise
        # Messages hidden (acknowledged while the file could not be written) are all
        # this outbox's: it only hands out its own.
        held = [m for m in self._memory.values() if every_broker or m.broker == self.broker]
        return max(0, on_disk - len(gone)) + len(held)

    def put(
        self,
        topic: str,
        payload: bytes,
        *,
        qos: int = 1,
        retain: bool = False,
        droppable: bool = False,
        broker: str | None = None,
    ) -> int:
        """Store a message durably; return its id (ids increase in put order).

        A droppable message that finds no room is dropped itself (counted in `dropped`)
        and 0 is returned; an undroppable one raises `OutboxFullError`. `broker`: the
        broker it is for, when not this outbox's (e.g. the one a session's events went to).
        """
        self._retry()
        for_broker = self.broker if broker is None else broker
        if self.degraded is None:
            assert self._db is not None
            try:
                with _transaction(self._db):
                    if not self._make_room():
                        raise OutboxFullError(self.max_messages)
                    cur = self._db.execute(
                        "INSERT INTO outbox (topic, payload, qos, retain, droppable, broker) "
                        "VALUES (?, ?, ?, ?, ?, ?)",
                        (topic, payload, qos, int(retain), int(droppable), for_broker),
                    )
            except OutboxFullError:
                if not droppable:
                    raise
                self.dropped += 1
                return 0
            except sqlite3.OperationalError as exc:
                if not _storage_fault(exc):
                    raise
                self._degrade(exc)
            else:
                assert cur.lastrowid is not None
                return int(cur.lastrowid)
        return self._hold(topic, payload, qos, retain, droppable, for_broker)

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
        numbers nor a number used twice. A message refused for want of room
        (`OutboxFullError`) uses its number up all the same, in `exc.seq`: subscribers see
        the gap, and the caller may keep the message under that number (the next one
        gets the next number).
        """
        self._retry()
        built: tuple[int, str, bytes] | None = None
        if self.degraded is None:
            assert self._db is not None
            refused = False
            try:
                with _transaction(self._db):
                    seq = self._next_seq(stream)
                    topic, payload = make(seq)
                    built = (seq, topic, payload)
                    if self._make_room():
                        self._db.execute(
                            "INSERT INTO outbox (topic, payload, qos, retain, droppable, broker) "
                            "VALUES (?, ?, ?, ?, 0, ?)",
                            (topic, payload, qos, int(retain), self.broker),
                        )
                    else:
                        refused = True
                    self._db.execute(
                        "INSERT INTO sequence (stream, next) VALUES (?, ?) "
                        "ON CONFLICT(stream) DO UPDATE SET next = excluded.next",
                        (stream, seq + 1),
                    )
            except sqlite3.OperationalError as exc:
                if not _storage_fault(exc):
                    raise
                self._degrade(exc)
            else:
                self._seq[stream] = seq + 1
                if refused:
                    raise OutboxFullError(self.max_messages, seq)
                return seq
        seq = self._next_seq(stream)
        if built is not None and built[0] == seq:
            topic, payload = built[1], built[2]  # built once: `make` may have side effects
        else:
            topic, payload = make(seq)
        # The number is used even if memory is full: the gap tells subscribers.
        self._seq[stream] = self._unsaved_seq[stream] = seq + 1
        try:
            self._hold(topic, payload, qos, retain, False, self.broker)
        except OutboxMemoryFullError as exc:
            exc.seq = seq
            raise
        return seq

    def next_seq(self, stream: str) -> int:
        """The sequence number the next message of `stream` will get."""
        return self._next_seq(stream)

    def _next_seq(self, stream: str) -> int:
        on_disk = 0
        if self._db is not None:
            try:
                row = self._db.execute(
                    "SELECT next FROM sequence WHERE stream = ?", (stream,)
                ).fetchone()
            except sqlite3.OperationalError as exc:
                if not _storage_fault(exc):
                    raise
            else:
                on_disk = 0 if row is None else int(row[0])
        return max(on_disk, self._seq.get(stream, 0))

    def _hold(
        self, topic: str, payload: bytes, qos: int, retain: bool, droppable: bool, broker: str
    ) -> int:
        """Keep a message in memory while the file cannot be written."""
        if len(self._memory) >= self.memory_limit:
            victim = next((m.id for m in self._memory.values() if m.droppable), None)
            if victim is not None:
                del self._memory[victim]
                self.dropped += 1
            elif droppable:
                self.dropped += 1
                return 0
            else:
                self.lost += 1
                log.error(
                    "outbox: memory queue full (%d messages, %s cannot be written): %s lost "
                    "(%d lost so far)",
                    self.memory_limit,
                    self.path,
                    topic,
                    self.lost,
                )
                raise OutboxMemoryFullError(self.memory_limit, self.path, self.degraded or "")
        mid = self._next_held
        self._next_held += 1
        self._memory[mid] = OutboxMessage(mid, topic, payload, qos, retain, droppable, broker)
        return mid

    def _disk_after(self, after: int) -> int:
        """`after` as a cursor on the file's ids.

        A held id becomes the file's id it was written out with (or the one before the
        first written out after it).
        """
        if after < HELD_ID_BASE or not self._moved:
            return after
        keys = list(self._moved)
        i = bisect.bisect_right(keys, after)
        if i:  # the last one written out at or before it: everything later is above
            return self._moved[keys[i - 1]]
        # Every message written out came after it; everything on disk before them was
        # older than it (held messages are newer than the disk's).
        return self._moved[keys[0]] - 1

    def peek(self, limit: int = 100, after: int = 0) -> list[OutboxMessage]:
        """The oldest messages with an id above `after` (one `peek` returned), in put order."""
        self._retry()
        on_disk: list[OutboxMessage] = []
        if self._db is not None:
            try:
                rows = self._db.execute(
                    "SELECT id, topic, payload, qos, retain, droppable, broker FROM outbox "
                    "WHERE id > ? AND broker = ? ORDER BY id LIMIT ?",
                    (self._disk_after(after), self.broker, limit + len(self._gone)),
                ).fetchall()
            except sqlite3.OperationalError as exc:
                if not _storage_fault(exc):
                    raise
                rows = []
            on_disk = [_message(r) for r in rows if int(r[0]) not in self._gone]
        held = [m for m in self._memory.values() if m.id > after and m.broker == self.broker]
        # The disk's ids are all below HELD_ID_BASE, the held ones above: put order.
        return sorted(on_disk + held, key=lambda m: m.id)[:limit]

    def messages(self, *, every_broker: bool = False) -> Iterator[OutboxMessage]:
        """Every message waiting (for this broker, or `every_broker`), in put order.

        Held ones included. For a caller that must see them all: `OutboxUnavailableError`
        when the file cannot be read (`peek` would show the held messages only).
        """
        self._retry(now=True)
        if self._db is None:
            raise OutboxUnavailableError(self.path, self.degraded)
        after = 0
        while True:
            try:
                rows = self._db.execute(
                    "SELECT id, topic, payload, qos, retain, droppable, broker FROM outbox "
                    "WHERE id > ? AND (? OR broker = ?) ORDER BY id LIMIT ?",
                    (after, every_broker, self.broker, SCAN_BATCH),
                ).fetchall()
            except sqlite3.OperationalError as exc:
                if not _storage_fault(exc):
                    raise
                raise OutboxUnavailableError(self.path, str(exc)) from exc
            if not rows:
                break
            after = int(rows[-1][0])
            for r in rows:
                if int(r[0]) not in self._gone:
                    yield _message(r)
        yield from [m for m in self._memory.values() if every_broker or m.broker == self.broker]

    def _make_room(self) -> bool:
        """Whether there is room for one more message (inside a transaction).

        A droppable message is dropped to make it if need be.
        """
        if self._count(every_broker=True) < self.max_messages:
            return True
        assert self._db is not None
        victim = self._db.execute(
            "SELECT id FROM outbox WHERE droppable = 1 ORDER BY id LIMIT 1"
        ).fetchone()
        if victim is None:
            return False
        self._db.execute("DELETE FROM outbox WHERE id = ?", victim)
        self.dropped += 1
        return True

    def ack(self, message_id: int) -> None:
        """The broker has the message: remove it."""
        self._remove(message_id, None)

    def reject(self, message_id: int, reason: str) -> None:
        """The broker refused the message (e.g. not authorized): keep it aside, with why.

        Sending it again would be refused again and hold up everything behind it.
        """
        self._remove(message_id, reason)

    def _remove(self, message_id: int, reason: str | None) -> None:
        if message_id >= HELD_ID_BASE:
            held = self._memory.pop(message_id, None)
            if held is not None:
                if reason is not None:
                    # Kept aside with the others once the file can be written.
                    self._refused.append((held.topic, held.payload, reason))
                return
            if message_id not in self._moved:
                return  # removed already
            # Written out since `peek` handed it out: on disk now, under the file's id.
            message_id = self._moved.pop(message_id)
        if self._db is None:
            return
        try:
            with _transaction(self._db):
                if reason is not None:
                    # A new row id (rejection order): never one a held message took.
                    self._db.execute(
                        "INSERT INTO rejected (topic, payload, reason) "
                        "SELECT topic, payload, ? FROM outbox WHERE id = ?",
                        (reason, message_id),
                    )
                self._db.execute("DELETE FROM outbox WHERE id = ?", (message_id,))
        except sqlite3.OperationalError as exc:
            if not _storage_fault(exc):
                raise
            # Still on disk: moved to `rejected` (or deleted) with the held messages.
            self._gone[message_id] = reason
            self._degrade(exc)

    def rejected(self) -> list[tuple[str, bytes, str]]:
        """Messages the broker refused: (topic, payload, reason), oldest first."""
        on_disk: list[tuple[str, bytes, str]] = []
        if self._db is not None:
            try:
                on_disk = [
                    (str(t), bytes(p), str(r))
                    for t, p, r in self._db.execute(
                        "SELECT topic, payload, reason FROM rejected ORDER BY id"
                    )
                ]
                for i, why in self._gone.items():  # refused, not yet moved over
                    if why is not None:
                        row = self._db.execute(
                            "SELECT topic, payload FROM outbox WHERE id = ?", (i,)
                        ).fetchone()
                        if row is not None:
                            on_disk.append((str(row[0]), bytes(row[1]), why))
            except sqlite3.OperationalError as exc:
                if not _storage_fault(exc):
                    raise
        return on_disk + self._refused


def _message(r: Any) -> OutboxMessage:
    """A row of `SELECT id, topic, payload, qos, retain, droppable, broker`."""
    return OutboxMessage(
        int(r[0]), str(r[1]), bytes(r[2]), int(r[3]), bool(r[4]), bool(r[5]), str(r[6])
    )
