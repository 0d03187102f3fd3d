"""A simulated session through the real pipeline to a real mosquitto: the whole topic tree."""

import asyncio
import io
import json
from pathlib import Path

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from hipsense.daemon import DemoOptions, run_demo
from tests.brokers import Mosquitto, Subscriber, running, until


async def test_topic_tree_of_a_simulated_session(mosquitto: Mosquitto, tmp_path: Path) -> None:
    prefix = "hipsense/v1/gw-tree"
    sub = Subscriber(mosquitto.port, f"{prefix}/#")
    out = io.StringIO()
    options = DemoOptions(
        reps=6,
        sets=1,
        speed=25.0,
        broker_url=mosquitto.url,
        state_dir=tmp_path,
        gateway_id="gw-tree",
        session_id="tree-1",
        loss=0.0,
    )
    async with running(sub):
        assert await run_demo(options, out) == 0
        await until(lambda: any(p.get("ended_at") for p in sub.on("/summary")))
        await until(lambda: sub.on("/status")[-1]["state"] == "offline")

    topics = {t for t, _, _, _ in sub.messages}
    assert topics == {
        f"{prefix}/status",
        f"{prefix}/sensors/sim-1/state",
        f"{prefix}/sensors/sim-1/session",
        f"{prefix}/sessions/tree-1/live",
        f"{prefix}/sessions/tree-1/events",
        f"{prefix}/sessions/tree-1/summary",
    }
    assert [s["state"] for s in sub.on("/status")] == ["online", "offline"]
    states = sub.on("/sensors/sim-1/state")
    assert states[0]["connected"] is True
    assert states[0]["rate_hz"] == 100
    assert states[-1]["connected"] is False

    sessions = sub.on("/sensors/sim-1/session")
    assert sessions[0]["state"] == "calibrating"
    assert (sessions[-1]["state"], sessions[-1]["rep_count"]) == ("ended", 6)

    events = sub.on("/sessions/tree-1/events")
    assert [e["seq"] for e in events] == list(range(len(events)))
    assert len({e["id"] for e in events}) == len(events)
    kinds = [e["event"]["kind"] for e in events]
    assert kinds[0] == "calibration"
    assert kinds.count("rep") == 6
    assert kinds[-1] == "set"
    summary = sub.on("/sessions/tree-1/summary")[-1]
    assert summary["rep_count"] == 6
    assert summary["reps_per_set"] == [6]
    assert summary["last_seq"] == events[-1]["seq"]
    # The running summary follows every rep (or batch of them): each counts exactly the
    # events up to its last_seq, so the retained one is the count mid-set too.
    summaries = sub.on("/sessions/tree-1/summary")
    running_ = [s for s in summaries if s["ended_at"] is None]
    assert len(running_) >= 4  # not only at the set's end
    for s in summaries:
        upto = [e["event"]["kind"] for e in events if e["seq"] <= s["last_seq"]]
        assert (s["rep_count"], s["set_count"]) == (upto.count("rep"), upto.count("set"))
    assert [s["rep_count"] for s in running_] == sorted(s["rep_count"] for s in running_)

    live = sub.on("/sessions/tree-1/live")
    t = [x for frame in live for x in frame["t_s"]]
    # Batched (at most 4 frames a second of wall time, here 25x faster than the stream)
    # without losing samples: about 20 a second of stream time, in order.
    assert len(live) >= 3
    assert t == sorted(t)
    assert len(t) >= 0.8 * 20 * (t[-1] - t[0])
    assert max(abs(a) for frame in live for a in frame["angle_deg"]) > 20  # reps were seen
    # Live frames expire; nothing else does.
    assert set(sub.expiry_s[f"{prefix}/sessions/tree-1/live"]) == {5}
    assert set(sub.expiry_s[f"{prefix}/sessions/tree-1/events"]) == {None}
    for topic, _, _, user in sub.messages:
        assert user["schema_version"] == "1", topic
    printed = out.getvalue()
    assert "summary: 6 reps, 0 holds (simulated 6 reps)" in printed
    assert "0 left in the outbox" in printed


async def test_a_stop_command_ends_the_session_with_its_summary(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    prefix = "hipsense/v1/gw-stop"
    sub = Subscriber(mosquitto.port, f"{prefix}/sessions/#")
    options = DemoOptions(
        reps=30,
        sets=1,
        speed=20.0,
        broker_url=mosquitto.url,
        state_dir=tmp_path,
        gateway_id="gw-stop",
        session_id="stop-1",
    )
    replies: list[dict[str, object]] = []

    async def clinician() -> None:
        await until(lambda: len([e for e in sub.on("/events") if e["event"]["kind"] == "rep"]) >= 2)
        async with aiomqtt.Client(
            "127.0.0.1", mosquitto.port, protocol=aiomqtt.ProtocolVersion.V5
        ) as dash:
            await dash.subscribe("dash/replies", qos=1)
            props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
            props.ResponseTopic = "dash/replies"
            for request in (
                {"command": "stop_session", "session_id": "other"},
                {"command": "stop_session", "session_id": "stop-1"},
            ):
                await dash.publish(
                    f"{prefix}/cmd", json.dumps({"request": request}), qos=1, properties=props
                )
                async for m in dash.messages:
                    replies.append(json.loads(bytes(m.payload)))  # type: ignore[arg-type]
                    break

    async with running(sub), asyncio.TaskGroup() as tg:
        tg.create_task(clinician())
        assert await asyncio.wait_for(run_demo(options, io.StringIO()), 120) == 0
        await until(lambda: any(p.get("ended_at") for p in sub.on("/summary")))

    assert replies[0]["ok"] is False
    assert "expected a live session ('stop-1')" in str(replies[0]["error"])
    assert replies[1]["ok"] is True
    summary = sub.on("/summary")[-1]
    assert 2 <= summary["rep_count"] < 30
    reps = [e for e in sub.on("/events") if e["event"]["kind"] == "rep"]
    assert len(reps) == summary["rep_count"]
