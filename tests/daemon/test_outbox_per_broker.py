"""Messages queued for an unreachable broker wait for it, not for the next demo's broker.

Real demos on one state folder, real mosquittos: the first demo's broker (A) is down, so
its session stays in the outbox; the second demo publishes to another broker (B), which
must get its own session and nothing of the first; once A is back, a third demo on A
delivers the first session there.
"""

import contextlib
import io
from pathlib import Path

from hipsense.daemon import DemoOptions, run_demo
from hipsense.mqtt import Outbox, OutboxMessage
from tests.brokers import Mosquitto, Subscriber, running, until
from tests.conftest import require_tool

PREFIX = "hipsense/v1/gw-two-brokers"


def _demo(tmp_path: Path, url: str, session_id: str) -> DemoOptions:
    return DemoOptions(
        reps=3,
        speed=50.0,
        sets=1,
        broker_url=url,
        state_dir=tmp_path / "state",
        gateway_id="gw-two-brokers",
        session_id=session_id,
        loss=0.0,
    )


def _queued(tmp_path: Path) -> list[OutboxMessage]:
    with contextlib.closing(Outbox(tmp_path / "state" / "outbox.db")) as box:
        return list(box.messages(every_broker=True))


def _sessions(sub: Subscriber) -> set[str]:
    return {t.split("/")[4] for t, _, _, _ in sub.messages if "/sessions/" in t}


async def test_a_broker_gets_only_what_was_queued_for_it(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    (tmp_path / "a").mkdir()
    a = Mosquitto(require_tool("mosquitto"), tmp_path / "a")  # not started: unreachable
    out = io.StringIO()
    assert await run_demo(_demo(tmp_path, a.url, "for-a"), out) == 0
    assert "summary: 3 reps" in out.getvalue()
    for_a = _queued(tmp_path)
    assert {m.broker for m in for_a} == {a.url}
    assert f"; {len(for_a)} left in the outbox" in out.getvalue()
    assert sum("/sessions/for-a/events" in m.topic for m in for_a) >= 3  # reps and the set
    assert any("/sessions/for-a/summary" in m.topic for m in for_a)

    b = Subscriber(mosquitto.port, f"{PREFIX}/#")
    async with running(b):
        out = io.StringIO()
        assert await run_demo(_demo(tmp_path, mosquitto.url, "for-b"), out) == 0
        await until(lambda: any(s.get("session_id") == "for-b" for s in b.on("/summary")))
    assert "; 0 left in the outbox" in out.getvalue()  # of B's: A's are not B's to send
    assert _sessions(b) == {"for-b"}
    # Still there for A, untouched (A's last sensor state may have made room: none did).
    assert _queued(tmp_path) == for_a

    a.start()
    try:
        sub_a = Subscriber(a.port, f"{PREFIX}/#")
        async with running(sub_a):
            assert await run_demo(_demo(tmp_path, a.url, "again-a"), io.StringIO()) == 0
            await until(lambda: any(s.get("session_id") == "for-a" for s in sub_a.on("/summary")))
            await until(lambda: any(s.get("session_id") == "again-a" for s in sub_a.on("/summary")))
        assert _sessions(sub_a) == {"for-a", "again-a"}
        reps = [e for e in sub_a.on("/events") if e["session_id"] == "for-a"]
        assert sum(e["event"]["kind"] == "rep" for e in reps) == 3
        assert _queued(tmp_path) == []
    finally:
        a.stop()
