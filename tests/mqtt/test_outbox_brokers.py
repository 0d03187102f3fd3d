"""The outbox keeps each message for the broker it was queued for."""

import contextlib
import sqlite3
from pathlib import Path

from hipsense.mqtt import Outbox

A = "mqtt://broker.clinic.example:1883"
B = "embedded"


def test_messages_for_one_broker_are_not_seen_by_an_outbox_for_another(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    box = Outbox(path, broker=A)
    box.put("t/1", b"one")
    box.put("t/2", b"two", retain=True)
    box.close()

    other = Outbox(path, broker=B)
    assert len(other) == 0
    assert other.peek() == []
    assert list(other.messages()) == []
    other.put("t/3", b"three")
    assert [m.topic for m in other.peek()] == ["t/3"]
    # Acknowledging what it has does not touch A's.
    other.ack(other.peek()[0].id)
    assert len(other) == 0
    # Who must see everything (closing sessions a killed gateway left open) can.
    assert [(m.topic, m.broker) for m in other.messages(every_broker=True)] == [
        ("t/1", A),
        ("t/2", A),
    ]
    # Put for another broker: the summary of a session whose events went to A.
    other.put("t/4", b"four", broker=A)
    assert len(other) == 0
    other.close()

    again = Outbox(path, broker=A)
    assert [(m.topic, m.payload, m.retain) for m in again.peek()] == [
        ("t/1", b"one", False),
        ("t/2", b"two", True),
        ("t/4", b"four", False),
    ]
    assert len(again) == 3
    again.close()


def test_the_file_s_capacity_is_shared_and_its_droppable_messages_go_first(
    tmp_path: Path,
) -> None:
    path = tmp_path / "outbox.db"
    box = Outbox(path, broker=A, max_messages=2)
    box.put("state", b"s", droppable=True)
    box.put("event", b"e")
    box.close()
    other = Outbox(path, broker=B, max_messages=2)
    other.put("event-b", b"e")  # A's sensor state made room
    assert other.dropped == 1
    assert [m.topic for m in other.peek()] == ["event-b"]
    other.close()
    with contextlib.closing(Outbox(path, broker=A)) as box:
        assert [m.topic for m in box.peek()] == ["event"]


def test_messages_of_a_file_from_before_brokers_were_kept_go_to_the_first_broker(
    tmp_path: Path,
) -> None:
    path = tmp_path / "outbox.db"
    with contextlib.closing(sqlite3.connect(path)) as db, db:
        db.execute(
            "CREATE TABLE outbox (id INTEGER PRIMARY KEY AUTOINCREMENT, topic TEXT NOT NULL, "
            "payload BLOB NOT NULL, qos INTEGER NOT NULL, retain INTEGER NOT NULL, "
            "droppable INTEGER NOT NULL)"
        )
        db.execute("INSERT INTO outbox (topic, payload, qos, retain, droppable) "
                   "VALUES ('old/1', x'00', 1, 0, 0)")  # fmt: skip
    first = Outbox(path, broker=A)
    assert [m.topic for m in first.peek()] == ["old/1"]
    first.close()
    # Claimed once: it is A's now, not the next broker's too.
    with contextlib.closing(Outbox(path, broker=B)) as other:
        assert len(other) == 0
