"""The publisher against a real mosquitto: topic tree, order, exactly-once after dedup."""

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from hipsense.motion import RepEvent, SetEvent
from hipsense.mqtt import BrokerConfig, MqttPublisher, Outbox, SensorState, Summary, Topics

from .conftest import Mosquitto


def _rep(i: int) -> RepEvent:
    return RepEvent(
        index=i,
        set_index=0,
        start_s=10.0 * i,
        peak_s=10.0 * i + 2,
        end_s=10.0 * i + 4,
        rom_deg=30.0,
        concentric_s=1.5,
        hold_s=1.0,
        eccentric_s=1.5,
        rest_before_s=None,
        peak_velocity_dps=40.0,
        smoothness=-6.5,
        max_off_plane_deg=2.0,
        flags=(),
        confidence=0.9,
    )


class Subscriber:
    """A dashboard-like subscriber: persistent session, reconnects, records everything."""

    def __init__(self, broker: Mosquitto, topic: str) -> None:
        self.broker = broker
        self.topic = topic
        self.messages: list[tuple[str, dict[str, Any], bool, dict[str, str]]] = []
        self.ready = asyncio.Event()
        self.connected = False

    async def run(self) -> None:
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = 3600
        while True:
            try:
                async with aiomqtt.Client(
                    "127.0.0.1",
                    self.broker.port,
                    identifier="dashboard-test",
                    protocol=aiomqtt.ProtocolVersion.V5,
                    clean_start=False,
                    properties=props,
                ) as client:
                    await client.subscribe(self.topic, qos=1)
                    self.connected = True
                    self.ready.set()
                    async for m in client.messages:
                        user = dict(getattr(m.properties, "UserProperty", []) or [])
                        payload = json.loads(bytes(m.payload))  # type: ignore[arg-type]
                        self.messages.append((str(m.topic), payload, bool(m.retain), user))
            except aiomqtt.MqttError:
                self.connected = False
                await asyncio.sleep(0.2)

    def on(self, suffix: str) -> list[dict[str, Any]]:
        return [p for t, p, _, _ in self.messages if t.endswith(suffix)]


@contextlib.asynccontextmanager
async def running(sub: Subscriber) -> AsyncIterator[Subscriber]:
    task = asyncio.create_task(sub.run(), name="test-subscriber")
    await asyncio.wait_for(sub.ready.wait(), 10)
    try:
        yield sub
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _until(cond: Any, within_s: float = 20.0) -> None:
    deadline = asyncio.get_running_loop().time() + within_s
    while not cond():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def test_topic_tree_of_a_session(mosquitto: Mosquitto, tmp_path: Path) -> None:
    topics = Topics("gw-1")
    sub = Subscriber(mosquitto, f"{topics.prefix}/#")
    async with running(sub):
        outbox = Outbox(tmp_path / "outbox.db")
        async with MqttPublisher(BrokerConfig(url=mosquitto.url), topics, outbox) as pub:
            pub.publish_sensor_state(SensorState(sensor_id="s-1", connected=True, rate_hz=100))
            for i in range(3):
                pub.publish_event("sess-1", "s-1", _rep(i))
            pub.publish_event(
                "sess-1", "s-1", SetEvent(index=0, start_s=0.0, end_s=24.0, reps=3, holds=0)
            )
            pub.publish_summary(
                Summary(
                    session_id="sess-1",
                    sensor_id="s-1",
                    exercise="clamshell",
                    started_at=datetime.now(UTC),
                    rep_count=3,
                    hold_count=0,
                    set_count=1,
                    reps_per_set=[3],
                    mean_rom_deg=30.0,
                    mean_hold_s=1.0,
                    flags={},
                    last_seq=3,
                )
            )
            await _until(lambda: len(sub.on("/summary")) == 1)
        await _until(lambda: sub.on("/status")[-1]["state"] == "offline")
    assert len(outbox) == 0
    statuses = [p["state"] for p in sub.on("/status")]
    assert statuses[0] == "online"
    assert statuses[-1] == "offline"
    events = sub.on("/sessions/sess-1/events")
    assert [e["seq"] for e in events] == [0, 1, 2, 3]
    assert [e["event"]["kind"] for e in events] == ["rep", "rep", "rep", "set"]
    assert events[1]["event"]["rom_deg"] == 30.0
    assert sub.on("/sensors/s-1/state")[0]["connected"] is True
    # MQTT 5 metadata on every message.
    for topic, _, _, user in sub.messages:
        assert user.get("schema_version") == "1", topic
    # Retained where the contract says so: a late subscriber still sees status and summary.
    late = Subscriber(mosquitto, f"{topics.prefix}/#")
    async with running(late):
        await _until(lambda: len(late.messages) >= 3)
    retained = {t.rsplit("/", 1)[-1] for t, _, r, _ in late.messages if r}
    assert {"status", "summary", "state"} <= retained


async def test_every_event_arrives_once_in_order_across_broker_restarts(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    topics = Topics("gw-2")
    sub = Subscriber(mosquitto, topics.events("sess-9"))
    n_events, restarts = 120, 5
    async with running(sub):
        outbox = Outbox(tmp_path / "outbox.db")
        broker = BrokerConfig(url=mosquitto.url)
        async with MqttPublisher(broker, topics, outbox, backoff_max_s=1.0) as pub:
            per_gap = n_events // (restarts + 1)
            sent = 0
            for r in range(restarts + 1):
                for _ in range(per_gap):
                    pub.publish_event("sess-9", "s-1", _rep(sent))
                    sent += 1
                    await asyncio.sleep(0.005)
                if r < restarts:
                    # Measuring goes on while the broker is away: events queue on disk.
                    mosquitto.stop()
                    for _ in range(3):
                        pub.publish_event("sess-9", "s-1", _rep(sent))
                        sent += 1
                    await asyncio.sleep(0.3)
                    mosquitto.start()
                    # Both ends back before the next fault: every restart is one the
                    # publisher lives through, not one hidden inside its backoff.
                    await _until(lambda: pub.connected and sub.connected)
            await _until(lambda: len({e["id"] for e in sub.on("/events")}) == sent, 60)
        stats = pub.stats
    received = sub.on("/events")
    unique: dict[str, dict[str, Any]] = {}
    for e in received:
        unique.setdefault(e["id"], e)
    seqs = [e["seq"] for e in unique.values()]
    print(
        f"\nevents sent {sent}, received {len(received)}, unique {len(unique)}, "
        f"duplicates {len(received) - len(unique)}, publisher connects {stats.connects}"
    )
    assert seqs == list(range(sent))
    assert [e["event"]["index"] for e in unique.values()] == list(range(sent))
    assert stats.connects >= restarts + 1
    assert len(outbox) == 0


async def test_commands_are_validated_and_answered(mosquitto: Mosquitto, tmp_path: Path) -> None:
    topics = Topics("gw-3")
    outbox = Outbox(tmp_path / "outbox.db")
    async with (
        MqttPublisher(BrokerConfig(url=mosquitto.url), topics, outbox) as pub,
        aiomqtt.Client("127.0.0.1", mosquitto.port, protocol=aiomqtt.ProtocolVersion.V5) as dash,
    ):
        await _until(lambda: pub.connected)
        await asyncio.sleep(0.2)  # the gateway's cmd subscription
        await dash.subscribe("dash/replies", qos=1)

        async def ask(payload: bytes, corr: bytes) -> dict[str, Any]:
            props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
            props.ResponseTopic = "dash/replies"
            props.CorrelationData = corr
            await dash.publish(topics.cmd, payload, qos=1, properties=props)
            async for m in dash.messages:
                assert m.properties is not None
                assert m.properties.CorrelationData == corr
                return dict(json.loads(bytes(m.payload)))  # type: ignore[arg-type]
            raise AssertionError("no reply")

        bad = await ask(b'{"request": {"command": "calibrate", "sensor_id": "a/b"}}', b"1")
        assert bad["ok"] is False
        assert "sensor_id" in bad["error"]
        junk = await ask(b"not json", b"2")
        assert junk["ok"] is False
        good = await ask(
            json.dumps(
                {
                    "request": {
                        "command": "start_session",
                        "prescription": {
                            "patient_id": "p-17",
                            "exercises": [{"exercise": "clamshell", "sets": 3, "reps": 10}],
                        },
                    }
                }
            ).encode(),
            b"3",
        )
        assert good["ok"] is True
        assert good["command"] == "start_session"
        assert good["error"] is None
        request = pub.commands.get_nowait()
        assert request.request.command == "start_session"
        assert pub.commands.empty()  # the bad ones were never passed on
