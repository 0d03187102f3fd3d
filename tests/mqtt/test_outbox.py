"""The durable outbox: order, acknowledgement, crash safety, bounds."""

from pathlib import Path

import pytest

from hipsense.mqtt import Outbox, OutboxFullError


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
