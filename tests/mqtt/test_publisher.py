"""The publisher against a real mosquitto: topic tree, order, exactly-once after dedup."""

import asyncio
import json
import socket
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from hipsense.motion import RepEvent, SetEvent
from hipsense.mqtt import (
    BrokerConfig,
    EmbeddedBroker,
    LiveFrame,
    MqttPublisher,
    Outbox,
    SensorState,
    Summary,
    Topics,
)
from tests.brokers import Mosquitto, Subscriber, free_port, running, until


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


async def test_topic_tree_of_a_session(mosquitto: Mosquitto, tmp_path: Path) -> None:
    topics = Topics("gw-1")
    sub = Subscriber(mosquitto.port, f"{topics.prefix}/#")
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
            await until(lambda: len(sub.on("/summary")) == 1)
        await until(lambda: sub.on("/status")[-1]["state"] == "offline")
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
    late = Subscriber(mosquitto.port, f"{topics.prefix}/#")
    async with running(late):
        await until(lambda: len(late.messages) >= 3)
    retained = {t.rsplit("/", 1)[-1] for t, _, r, _ in late.messages if r}
    assert {"status", "summary", "state"} <= retained


async def test_every_event_arrives_once_in_order_across_broker_restarts(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    topics = Topics("gw-2")
    sub = Subscriber(mosquitto.port, topics.events("sess-9"))
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
                    await until(lambda: pub.connected and sub.connected)
            await until(lambda: len({e["id"] for e in sub.on("/events")}) == sent, 60)
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


async def _carry_out(pub: MqttPublisher, done: list[str]) -> None:
    """The daemon's side: take each command and answer it."""
    while True:
        command = await pub.commands.get()
        done.append(command.request.request.command)
        command.reply(session_id="sess-42")


async def test_commands_are_validated_and_answered(mosquitto: Mosquitto, tmp_path: Path) -> None:
    topics = Topics("gw-3")
    outbox = Outbox(tmp_path / "outbox.db")
    carried_out: list[str] = []
    async with (
        MqttPublisher(BrokerConfig(url=mosquitto.url), topics, outbox) as pub,
        aiomqtt.Client("127.0.0.1", mosquitto.port, protocol=aiomqtt.ProtocolVersion.V5) as dash,
        asyncio.TaskGroup() as tg,
    ):
        daemon = tg.create_task(_carry_out(pub, carried_out))
        await until(lambda: pub.connected)
        await asyncio.sleep(0.2)  # the gateway's cmd subscription
        await dash.subscribe("dash/replies", qos=1)
        await dash.subscribe(topics.cmd_reply, qos=1)

        async def ask(payload: bytes, corr: bytes | None) -> tuple[str, dict[str, Any]]:
            props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
            if corr is not None:
                props.ResponseTopic = "dash/replies"
                props.CorrelationData = corr
            await dash.publish(topics.cmd, payload, qos=1, properties=props)
            async for m in dash.messages:
                if corr is not None:
                    assert m.properties is not None
                    assert m.properties.CorrelationData == corr
                return str(m.topic), dict(json.loads(bytes(m.payload)))  # type: ignore[arg-type]
            raise AssertionError("no reply")

        _, bad = await ask(b'{"request": {"command": "calibrate", "sensor_id": "a/b"}}', b"1")
        assert bad["ok"] is False
        assert "sensor_id" in bad["error"]
        _, junk = await ask(b"not json", b"2")
        assert junk["ok"] is False
        _, neither = await ask(b'{"request": {"command": "start_session"}}', b"3")
        assert neither["ok"] is False
        assert "prescription or a patient_id" in neither["error"]
        start = {
            "request": {
                "command": "start_session",
                "prescription": {
                    "patient_id": "p-17",
                    "exercises": [{"exercise": "clamshell", "sets": 3, "reps": 10}],
                },
            }
        }
        topic, good = await ask(json.dumps(start).encode(), b"4")
        assert topic == "dash/replies"
        assert good["ok"] is True
        assert good["command"] == "start_session"
        assert good["session_id"] == "sess-42"
        assert good["error"] is None
        # Without a response topic (an MQTT 3.1.1 client), the reply goes to cmd/reply
        # with the request's correlation_id.
        topic, plain = await ask(json.dumps({**start, "correlation_id": "c-5"}).encode(), corr=None)
        assert topic == topics.cmd_reply
        assert plain["ok"] is True
        assert plain["correlation_id"] == "c-5"
        _, bad_plain = await ask(b'{"request": {}, "correlation_id": "c-6"}', corr=None)
        assert bad_plain["ok"] is False
        assert bad_plain["correlation_id"] == "c-6"
        # The bad ones were never passed on.
        assert carried_out == ["start_session", "start_session"]
        daemon.cancel()


async def test_a_replys_correlation_data_stays_on_that_reply(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    # Publishes share their properties (content type, versions); a reply's correlation
    # data must not be written into them, or every later event carries it, and a reply
    # paho packs late (queued behind the in-flight window) carries another's.
    topics = Topics("gw-9")
    outbox = Outbox(tmp_path / "outbox.db")
    async with (
        MqttPublisher(
            BrokerConfig(url=mosquitto.url), topics, outbox, command_timeout_s=0.5
        ) as pub,
        aiomqtt.Client("127.0.0.1", mosquitto.port, protocol=aiomqtt.ProtocolVersion.V5) as dash,
    ):
        await until(lambda: pub.connected)
        await asyncio.sleep(0.2)  # the gateway's cmd subscription
        await dash.subscribe("dash/replies", qos=1)
        await dash.subscribe(f"{topics.prefix}/sessions/#", qos=1)
        props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
        props.ResponseTopic = "dash/replies"
        props.CorrelationData = b"7"
        await dash.publish(
            topics.cmd, b'{"request": {"command": "calibrate"}}', qos=1, properties=props
        )
        got: dict[str, bytes | None] = {}
        async for m in dash.messages:
            got[str(m.topic)] = getattr(m.properties, "CorrelationData", None)
            if str(m.topic) == "dash/replies":
                pub.publish_event("sess-1", "s-1", _rep(0))
            else:
                break
    assert got["dash/replies"] == b"7"
    events = [t for t in got if t.endswith("/events")]
    assert events, "the event arrived"
    assert got[events[0]] is None


async def test_an_unanswered_command_gets_an_error_reply(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    topics = Topics("gw-4")
    outbox = Outbox(tmp_path / "outbox.db")
    broker = BrokerConfig(url=mosquitto.url)
    async with (
        MqttPublisher(broker, topics, outbox, command_timeout_s=0.5) as pub,
        aiomqtt.Client("127.0.0.1", mosquitto.port) as dash,
    ):
        await until(lambda: pub.connected)
        await asyncio.sleep(0.2)
        await dash.subscribe(topics.cmd_reply, qos=1)
        await dash.publish(
            topics.cmd, b'{"request": {"command": "calibrate"}, "correlation_id": "x"}', qos=1
        )
        async for m in dash.messages:
            reply = json.loads(bytes(m.payload))  # type: ignore[arg-type]
            break
    assert reply["ok"] is False
    assert "not carried out within 0.5 s" in reply["error"]
    assert reply["correlation_id"] == "x"


async def test_a_command_taken_late_is_answered_by_what_happened(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    # A burst the daemon works through more slowly than the reply timeout: every reply
    # says what happened. Those taken in time are carried out and say so; the rest are
    # dropped untouched, and say that.
    topics = Topics("gw-7")
    done: list[int] = []

    async def slow_daemon(pub: MqttPublisher) -> None:
        while True:
            command = await pub.next_command()
            await asyncio.sleep(0.1)
            done.append(int(command.request.correlation_id or "-1"))
            command.reply()

    async with (
        MqttPublisher(
            BrokerConfig(url=mosquitto.url),
            topics,
            Outbox(tmp_path / "o.db"),
            command_timeout_s=0.3,
        ) as pub,
        aiomqtt.Client("127.0.0.1", mosquitto.port) as dash,
        asyncio.TaskGroup() as tg,
    ):
        daemon = tg.create_task(slow_daemon(pub))
        await until(lambda: pub.connected)
        await asyncio.sleep(0.2)
        await dash.subscribe(topics.cmd_reply, qos=1)
        for i in range(12):
            request = {"request": {"command": "calibrate"}, "correlation_id": str(i)}
            await dash.publish(topics.cmd, json.dumps(request), qos=1)
        replies: dict[str, dict[str, Any]] = {}
        async with asyncio.timeout(20):
            async for m in dash.messages:
                reply = json.loads(bytes(m.payload))  # type: ignore[arg-type]
                replies[reply["correlation_id"]] = reply
                if len(replies) == 12:
                    break
        daemon.cancel()
    ok = sorted(int(c) for c, r in replies.items() if r["ok"])
    assert ok == sorted(done)
    assert 0 < len(done) < 12
    for c, r in replies.items():
        if not r["ok"]:
            assert int(c) not in done
            assert r["error"] == "not carried out within 0.3 s; nothing changed"


async def test_replies_never_land_in_a_gateways_tree_and_redeliveries_run_once(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    topics = Topics("gw-8")
    carried_out: list[str] = []
    async with (
        MqttPublisher(BrokerConfig(url=mosquitto.url), topics, Outbox(tmp_path / "o.db")) as pub,
        aiomqtt.Client("127.0.0.1", mosquitto.port, protocol=aiomqtt.ProtocolVersion.V5) as dash,
        asyncio.TaskGroup() as tg,
    ):
        daemon = tg.create_task(_carry_out(pub, carried_out))
        await until(lambda: pub.connected)
        await asyncio.sleep(0.2)
        await dash.subscribe("hipsense/v1/#", qos=1)

        async def ask(response_topic: str, corr: bytes) -> str:
            props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
            props.ResponseTopic = response_topic
            props.CorrelationData = corr
            await dash.publish(
                topics.cmd, b'{"request": {"command": "calibrate"}}', 1, properties=props
            )
            async with asyncio.timeout(10):
                async for m in dash.messages:
                    if str(m.topic) != topics.cmd and (
                        m.properties is not None
                        and getattr(m.properties, "CorrelationData", None) == corr
                    ):
                        return str(m.topic)
            raise AssertionError("no reply")

        # Its own status, another gateway's events, a wildcard: the reply goes to
        # cmd/reply instead; its own cmd/reply/... is a reply topic.
        assert await ask(topics.status, b"1") == topics.cmd_reply
        assert await ask("hipsense/v1/gw-2/sessions/s/events", b"2") == topics.cmd_reply
        assert await ask("x/+/y", b"3") == topics.cmd_reply
        assert await ask(f"{topics.cmd_reply}/dash-1", b"4") == f"{topics.cmd_reply}/dash-1"
        # The same request again (what the broker redelivers): the same answer, once
        # carried out.
        assert await ask(f"{topics.cmd_reply}/dash-1", b"4") == f"{topics.cmd_reply}/dash-1"
        daemon.cancel()
    assert carried_out == ["calibrate"] * 4


async def test_retained_prescriptions_are_read_and_checked(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    topics = Topics("gw-5")
    good = {
        "patient_id": "p-1",
        "exercises": [{"exercise": "clamshell", "sets": 2, "reps": 15, "hold_s": 3}],
    }
    async with aiomqtt.Client("127.0.0.1", mosquitto.port) as clinic:
        await clinic.publish(topics.prescription("p-1"), json.dumps(good), qos=1, retain=True)
        # Someone else's prescription on p-2's topic, and one that is not valid.
        await clinic.publish(topics.prescription("p-2"), json.dumps(good), qos=1, retain=True)
        await clinic.publish(topics.prescription("p-3"), b'{"patient_id": "p-3"}', retain=True)
    outbox = Outbox(tmp_path / "outbox.db")
    async with MqttPublisher(BrokerConfig(url=mosquitto.url), topics, outbox) as pub:
        await until(lambda: "p-1" in pub.prescriptions)
        await asyncio.sleep(0.3)
        assert set(pub.prescriptions) == {"p-1"}
        assert pub.prescriptions["p-1"].exercises[0].hold_s == 3
        async with aiomqtt.Client("127.0.0.1", mosquitto.port) as clinic:
            # Clearing the retained message withdraws the prescription.
            await clinic.publish(topics.prescription("p-1"), b"", qos=1, retain=True)
        await until(lambda: "p-1" not in pub.prescriptions)


async def test_embedded_broker_speaks_3_1_1_and_the_publisher_falls_back(
    tmp_path: Path,
) -> None:
    topics = Topics("gw-6")
    async with EmbeddedBroker(port=free_port(), ws_port=None) as broker:
        # The embedded broker is private: a client logs in with its account.
        account = broker.config.credentials()
        sub = Subscriber(broker.port, f"{topics.prefix}/#", v5=False, credentials=account)
        async with running(sub):
            outbox = Outbox(tmp_path / "outbox.db")
            # "auto" on purpose: the broker refuses MQTT 5 and the publisher notices.
            config = BrokerConfig(url=broker.config.url, username=account[0], password=account[1])
            async with MqttPublisher(config, topics, outbox) as pub:
                for i in range(3):
                    pub.publish_event("sess-1", "s-1", _rep(i))
                await until(lambda: len(sub.on("/events")) == 3)
                assert pub.protocol == "3.1.1"
                assert await pub.publish_live(
                    LiveFrame(session_id="sess-1", t_s=[0.0], angle_deg=[1.0], off_plane_deg=[0])
                )
                await until(lambda: len(sub.on("/live")) == 1)
            await until(lambda: sub.on("/status")[-1]["state"] == "offline")
    assert [e["seq"] for e in sub.on("/events")] == [0, 1, 2]
    assert sub.on("/status")[0]["state"] == "online"


async def test_events_are_not_held_back_by_nagle(mosquitto: Mosquitto, tmp_path: Path) -> None:
    # An event right after another small packet must not wait ~40 ms for the broker's
    # delayed TCP acknowledgement: the publisher's socket sends at once.
    topics = Topics("gw-nagle")
    sub = Subscriber(mosquitto.port, topics.events("sess-n"))
    async with running(sub):
        outbox = Outbox(tmp_path / "outbox.db")
        async with MqttPublisher(BrokerConfig(url=mosquitto.url), topics, outbox) as pub:
            await until(lambda: pub.connected)
            assert pub._client is not None
            sock = pub._client._client.socket()
            assert sock is not None
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
            for i in range(5):
                pub.publish_event("sess-n", "s-1", _rep(i))
            await until(lambda: len(sub.on("/events")) == 5)
        outbox.close()
