"""The durable outbox: order, acknowledgement, crash safety, bounds, storage faults."""

import logging
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from hipsense.mqtt import Outbox, OutboxFullError, OutboxMemoryFullError
from tests.daemon.storage import fill, tmpfs


def test_messages_come_out_in_order_until_acknowledged(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.db")
    ids = [box.put(f"t/{i}", f"{i}".encode()) for i in range(5)]
    assert ids == sorted(ids)
    assert [m.payload for m in box.peek()] == [b"0", b"1", b"2", b"3", b"4"]
    box.ack(ids[0])
    box.ack(ids[2])
    assert [m.topic for m in box.peek()] == ["t/1", "t/3", "t/4"]
    assert [m.topic for m in box.peek(limit=1, after=ids[1])] == ["t/3"]
    assert len(box) == 3


def test_what_was_put_survives_reopening(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.db")
    box.put("a", b"1", retain=True)
    seq = [box.put_sequenced("s1", lambda n: ("ev", f"{n}".encode())) for _ in range(3)]
    box.close()  # as good as a crash: every put was committed
    again = Outbox(tmp_path / "o.db")
    assert [(m.topic, m.payload, m.retain) for m in again.peek()] == [
        ("a", b"1", True),
        ("ev", b"0", False),
        ("ev", b"1", False),
        ("ev", b"2", False),
    ]
    assert seq == [0, 1, 2]
    # Sequence numbers continue after a restart, per stream.
    assert again.put_sequenced("s1", lambda n: ("ev", b"x")) == 3
    assert again.put_sequenced("s2", lambda n: ("ev", b"y")) == 0


def test_a_failing_build_uses_no_sequence_number(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.db")

    def broken(n: int) -> tuple[str, bytes]:
        raise ValueError("cannot build")

    with pytest.raises(ValueError, match="cannot build"):
        box.put_sequenced("s", broken)
    assert box.put_sequenced("s", lambda n: ("ev", b"ok")) == 0
    assert len(box) == 1


def test_full_outbox_drops_live_first_and_never_events(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.db", max_messages=3)
    box.put("state", b"old", droppable=True)
    box.put("ev", b"1")
    box.put("ev", b"2")
    box.put("ev", b"3")  # makes room by dropping the droppable state
    assert box.dropped == 1
    assert [m.payload for m in box.peek()] == [b"1", b"2", b"3"]
    with pytest.raises(OutboxFullError, match="expected room for one more message") as err:
        box.put("ev", b"4")
    assert err.value.limit == 3
    assert len(box) == 3


# -- storage faults: the disk full or read-only while running, unusable at start ----------
# SQLite's own limits stand in for the disk: `max_page_count` at the file's size fails
# every write that needs a page with SQLITE_FULL ("database or disk is full"), as a full
# disk does; `query_only` fails every write with SQLITE_READONLY. Payloads are padded to
# more than a page, so that every put needs one.


def _big(text: str) -> bytes:
    return text.encode().ljust(5000, b".")


def _ev(prefix: str = "e") -> Callable[[int], tuple[str, bytes]]:
    return lambda n: ("ev", _big(f"{prefix}{n}"))


def _text(payload: bytes) -> str:
    return payload.rstrip(b".").decode()


def _full(box: Outbox, full: bool = True) -> None:
    assert box._db is not None
    box._db.execute(f"PRAGMA max_page_count = {1 if full else 1 << 30}")


def _read_only(box: Outbox, read_only: bool = True) -> None:
    assert box._db is not None
    box._db.execute(f"PRAGMA query_only = {int(read_only)}")


def test_a_full_disk_holds_messages_in_memory_in_order_until_it_can_write_them(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    box = Outbox(tmp_path / "o.db", retry_s=0)
    first = box.put("a", b"on disk")
    assert box.put_sequenced("s", _ev()) == 0
    _full(box)
    with caplog.at_level(logging.INFO, "hipsense.outbox"):
        held = box.put("b", _big("in memory"), retain=True)
        assert box.put_sequenced("s", _ev()) == 1
        assert box.put_sequenced("s", _ev()) == 2
        assert box.degraded == "database or disk is full"
        assert box.held == 3
        # Sent from memory as from disk: in put order, ids increasing, acknowledged alike.
        out = box.peek()
        assert [(m.topic, _text(m.payload)) for m in out] == [
            ("a", "on disk"),
            ("ev", "e0"),
            ("b", "in memory"),
            ("ev", "e1"),
            ("ev", "e2"),
        ]
        assert [m.id for m in out] == sorted(m.id for m in out)
        assert out[2].id == held and out[2].retain
        assert len(box) == 5
        box.ack(out[3].id)  # e1 reached the broker from memory: it never needs the disk
        assert box.held == 2
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 1  # said once, not at every put
        assert "cannot write" in warnings[0].getMessage()
        assert "holding messages in memory" in warnings[0].getMessage()
        _full(box, False)
        assert box.put_sequenced("s", _ev()) == 3
    assert box.degraded is None
    assert box.held == 0
    assert "can be written again: 2 messages held in memory are on disk" in caplog.text
    box.close()
    # Written out for good, in put order (with the file's ids), numbers going on.
    again = Outbox(tmp_path / "o.db")
    kept = again.peek()
    assert [_text(m.payload) for m in kept] == ["on disk", "e0", "in memory", "e2", "e3"]
    assert [m.id for m in kept][:2] == [first, out[1].id]
    assert [m.id for m in kept] == sorted(m.id for m in kept)
    assert kept[2].retain
    assert again.put_sequenced("s", lambda n: ("ev", b"x")) == 4


def test_a_read_only_file_hides_acknowledged_messages_until_it_can_delete_them(
    tmp_path: Path,
) -> None:
    box = Outbox(tmp_path / "o.db", retry_s=0)
    a, b = box.put("a", b"1"), box.put("b", b"2")
    _read_only(box)
    box.ack(a)  # the DELETE fails: hidden, deleted later
    box.reject(b, "Not authorized")
    c = box.put("c", b"3")
    assert box.degraded == "attempt to write a readonly database"
    assert [m.topic for m in box.peek()] == ["c"]
    assert len(box) == 1
    assert box.rejected() == [("b", b"2", "Not authorized")]
    _read_only(box, False)
    assert [m.topic for m in box.peek()] == ["c"]  # written out on the way
    assert box.degraded is None
    box.ack(c)  # the id it was sent with, though it is on disk under another now
    assert box.peek() == []
    box.close()
    again = Outbox(tmp_path / "o.db")
    assert again.peek() == []
    assert again.rejected() == [("b", b"2", "Not authorized")]


def test_when_memory_is_full_too_states_go_first_then_events_are_refused_and_counted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    box = Outbox(tmp_path / "o.db", memory_limit=3, retry_s=3600)
    _full(box)
    box.put("state", _big("old"), droppable=True)
    box.put_sequenced("s", _ev())
    box.put_sequenced("s", _ev())
    assert box.put_sequenced("s", _ev()) == 2  # drops the state
    assert box.dropped == 1
    assert box.put("state", _big("new"), droppable=True) == 0  # no room: dropped itself
    assert box.dropped == 2
    with pytest.raises(OutboxMemoryFullError, match="3 messages held in memory") as err:
        box.put_sequenced("s", _ev())
    assert isinstance(err.value, OutboxFullError)  # the daemon already handles that
    assert err.value.seq == 3  # used up: subscribers see the gap
    assert box.lost == 1
    assert "memory queue full" in caplog.text
    with pytest.raises(OutboxMemoryFullError):
        box.put("summary", _big("{}"), retain=True)
    assert box.lost == 2
    assert [_text(m.payload) for m in box.peek()] == ["e0", "e1", "e2"]
    box.ack(box.peek()[0].id)
    assert box.put_sequenced("s", _ev()) == 4


def test_held_messages_not_written_out_by_close_are_reported_lost(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    box = Outbox(tmp_path / "o.db")
    _full(box)
    box.put("a", _big("1"))
    box.put("b", _big("2"))
    box.close()
    assert "2 messages held in memory could not be written" in caplog.text
    assert "are lost" in caplog.text


def test_a_bug_is_not_taken_for_a_storage_fault(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.db")
    assert box._db is not None
    box._db.execute("DROP TABLE sequence")
    with pytest.raises(sqlite3.OperationalError, match="no such table"):
        box.put_sequenced("s", lambda n: ("ev", b"x"))
    assert box.degraded is None


def test_an_outbox_on_a_full_disk_opens_later_and_keeps_the_order(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with tmpfs(tmp_path / "disk", "1m") as disk:
        box = Outbox(disk / "o.db")
        old = [box.put("old", f"{i}".encode()) for i in range(3)]
        box.close()
        filler = fill(disk)
        # Not even readable now (SQLite cannot make its WAL index): all in memory.
        box = Outbox(disk / "o.db", retry_s=0)
        assert box.degraded is not None
        assert "cannot write" in caplog.text
        assert box.put_sequenced("s", _ev()) == 0
        new = box.put("new", b"x")
        assert [m.topic for m in box.peek()] == ["ev", "new"]
        in_flight = box.peek()[0]  # e.g. being published when the disk comes back
        filler.unlink()
        # The old messages first; the held ones after them, with the file's ids now, the
        # id in flight still acknowledged (and never taken for an old message's).
        out = box.peek()
        assert box.degraded is None
        assert [m.topic for m in out] == ["old", "old", "old", "ev", "new"]
        assert [m.id for m in out][:3] == old
        assert [m.id for m in out] == sorted(m.id for m in out)
        assert in_flight.id not in old and new not in old
        box.ack(in_flight.id)
        assert [m.topic for m in box.peek()] == ["old", "old", "old", "new"]
        box.close()
        again = Outbox(disk / "o.db")
        assert [m.topic for m in again.peek()] == ["old", "old", "old", "new"]
        assert again.put_sequenced("s", lambda n: ("ev", b"x")) == 1
        again.close()


# -- held ids never collide with the file's (review M1) ------------------------------


class _CannotOpen(sqlite3.OperationalError):
    sqlite_errorname = "SQLITE_CANTOPEN"


def _drain(box: Outbox, limit: int) -> list[tuple[str, bytes]]:
    """As the publisher's `_drain`: peek a batch, send each, acknowledge it by its id."""
    sent: list[tuple[str, bytes]] = []
    for _ in range(100):
        batch = box.peek(limit=limit)
        if not batch:
            return sent
        for m in batch:
            sent.append((m.topic, m.payload))
            box.ack(m.id)
    raise AssertionError(f"still draining after 100 batches: {sent}")


def _unopenable(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> sqlite3.Connection:
        raise _CannotOpen("unable to open database file")

    monkeypatch.setattr(sqlite3, "connect", refuse)


@pytest.mark.parametrize("in_flight", [False, True])
def test_messages_held_while_the_file_could_not_be_opened_drain_once_each_after_the_old(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, in_flight: bool
) -> None:
    box = Outbox(tmp_path / "o.db")
    for i in range(5):  # more than one batch's worth
        box.put("old", f"{i}".encode())
    box.close()
    with monkeypatch.context() as m:
        _unopenable(m)
        box = Outbox(tmp_path / "o.db", retry_s=0)
        assert box.degraded is not None
        ids = [box.put("new", b"a"), box.put("new", b"b")]
        held = box.peek(limit=2)
        assert [h.id for h in held] == ids
    sent = []
    if in_flight:  # peeked before the file opens, acknowledged after they are written out
        assert [x.topic for x in box.peek(limit=10)] == ["old"] * 5 + ["new"] * 2
        assert box.degraded is None and box.held == 0
        for h in held:
            sent.append((h.topic, h.payload))
            box.ack(h.id)
    sent += _drain(box, limit=2)
    expected_old = [("old", f"{i}".encode()) for i in range(5)]
    if in_flight:
        assert sent == [("new", b"a"), ("new", b"b"), *expected_old]
    else:
        assert sent == [*expected_old, ("new", b"a"), ("new", b"b")]
    assert len(box) == 0
    box.close()
    assert Outbox(tmp_path / "o.db").peek() == []


def test_a_cursor_on_a_held_message_goes_on_after_it_is_written_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    box = Outbox(tmp_path / "o.db")
    box.put("old", b"0")
    box.close()
    with monkeypatch.context() as m:
        _unopenable(m)
        box = Outbox(tmp_path / "o.db", retry_s=0)
        box.put("new", b"a")
        box.put("new", b"b")
        first, _ = box.peek()  # the held ones only: the file is not open
    # The file opens during this peek: what came after `first` is on disk now.
    assert [x.payload for x in box.peek(after=first.id)] == [b"b"]
    assert box.held == 0
    box.put("later", b"c")
    assert [x.payload for x in box.peek(after=first.id)] == [b"b", b"c"]
    assert [x.payload for x in box.peek(after=0)] == [b"0", b"a", b"b", b"c"]


def test_a_message_refused_from_a_read_only_file_is_kept_aside_once_it_can_be_written(
    tmp_path: Path,
) -> None:
    box = Outbox(tmp_path / "o.db", retry_s=0)
    a = box.put("a", b"1")
    _read_only(box)
    box.reject(a, "Not authorized")
    assert box.rejected() == [("a", b"1", "Not authorized")]  # seen, not lost
    _read_only(box, False)
    box.peek()
    assert box.degraded is None
    box.close()
    again = Outbox(tmp_path / "o.db")
    assert again.peek() == []
    assert again.rejected() == [("a", b"1", "Not authorized")]


# -- a refusal uses up its number (review S2) -------------------------------------------


def test_an_event_refused_by_a_full_outbox_uses_up_its_number(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.db", max_messages=2)
    assert [box.put_sequenced("s", _ev()) for _ in range(2)] == [0, 1]
    with pytest.raises(OutboxFullError) as err:
        box.put_sequenced("s", _ev())
    assert err.value.seq == 2  # the gap subscribers see
    assert len(box) == 2
    box.ack(box.peek()[0].id)
    assert box.put_sequenced("s", _ev()) == 3  # never 2 again
    box.close()
    assert Outbox(tmp_path / "o.db").next_seq("s") == 4  # the number used up is kept


# -- storage faults only (review S7) ------------------------------------------------------


def test_an_out_of_memory_error_is_not_a_storage_fault() -> None:
    from hipsense.mqtt._outbox import _storage_fault

    class NoMem(sqlite3.OperationalError):
        sqlite_errorname = "SQLITE_IOERR_NOMEM"

    class Short(sqlite3.OperationalError):
        sqlite_errorname = "SQLITE_IOERR_SHORT_READ"

    assert not _storage_fault(NoMem("out of memory"))
    assert _storage_fault(Short("disk I/O error"))


def test_reads_raise_a_bug_instead_of_hiding_it(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.db")
    assert box._db is not None
    box._db.execute("DROP TABLE sequence")
    with pytest.raises(sqlite3.OperationalError, match="no such table"):
        box.next_seq("s")
    box._db.execute("DROP TABLE rejected")
    with pytest.raises(sqlite3.OperationalError, match="no such table"):
        box.rejected()
    box._db.execute("DROP TABLE outbox")
    with pytest.raises(sqlite3.OperationalError, match="no such table"):
        len(box)


def test_messages_says_when_the_file_cannot_be_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from hipsense.mqtt._outbox import OutboxUnavailableError

    box = Outbox(tmp_path / "o.db")
    box.put("a", b"1")
    assert [m.topic for m in box.messages()] == ["a"]
    box.close()
    with monkeypatch.context() as m:
        _unopenable(m)
        box = Outbox(tmp_path / "o.db", retry_s=0)
        box.put("b", b"2")
        assert [x.topic for x in box.peek()] == ["b"]  # the held ones only
        with pytest.raises(OutboxUnavailableError, match="expected to read"):
            list(box.messages())
    assert [x.topic for x in box.messages()] == ["a", "b"]
