"""An event a full outbox refuses keeps its number: history and MQTT agree (review S2).

The refused event uses its number up (subscribers see the gap) and is kept in the history
under it; the next event gets the next number, so none is stored over another.
"""

import asyncio
import math
from pathlib import Path

from hipsense.daemon import run_session
from hipsense.exercises import load_library
from hipsense.history import History
from hipsense.link import SimulatedLink
from hipsense.mqtt import BrokerConfig, EventMessage, MqttPublisher, Outbox, Topics
from hipsense.session import SessionPipeline


async def _session(tmp_path: Path) -> tuple[list[object], dict[int, dict[str, object]], History]:
    from hipsense_sim import ImuSpec, LinkSpec, ScenarioSpec, SetSpec, simulate

    exercise = load_library()["clamshell"]
    spec = ScenarioSpec(
        name="refused",
        exercise="clamshell",
        seed=5,
        sets=[SetSpec(reps=6, side="right", rest_after_s=10.0)],
        imu=ImuSpec(rate_hz=100),
        link=LinkSpec(loss_ratio=0.0),
    )
    result = simulate(spec, exercise)
    box = Outbox(tmp_path / "outbox.db", max_messages=2)
    history = History(tmp_path / "history.db")
    publisher = MqttPublisher(BrokerConfig(), Topics("gw-t"), box)
    sent: dict[int, dict[str, object]] = {}  # what the broker got, by seq
    yielded: list[object] = []
    async with SimulatedLink(result, sensor_id="sim-1", speed=math.inf) as link:
        pipeline = SessionPipeline(
            session_id="s", sensor_id=link.sensor_id, rate_hz=link.fmt.rate_hz, exercise=exercise
        )
        async for ev in run_session(link, pipeline, publisher, history=history):
            yielded.append(ev)
            if len(yielded) % 3 == 0:  # now and then the broker takes what is queued
                for m in box.peek():
                    if m.topic.endswith("/events"):
                        msg = EventMessage.model_validate_json(m.payload)
                        sent[msg.seq] = msg.event.model_dump(mode="json")
                    box.ack(m.id)
    for m in box.peek():
        if m.topic.endswith("/events"):
            msg = EventMessage.model_validate_json(m.payload)
            sent[msg.seq] = msg.event.model_dump(mode="json")
    box.close()
    return yielded, sent, history


def test_a_refused_event_keeps_its_number_and_the_next_gets_the_next(tmp_path: Path) -> None:
    yielded, sent, history = asyncio.run(_session(tmp_path))
    record = history.load("s")
    stored = dict(enumerate(record.events))  # by seq, once seqs are 0..n-1
    seqs = sorted(history.event_seqs("s"))
    history.close()
    assert len(sent) < len(yielded)  # some were refused: the outbox was full
    # Every event measured is in the history, each under its own number...
    assert seqs == list(range(len(yielded)))
    # ...the same number it had on MQTT (the refused ones are the gaps there).
    for seq, event in sent.items():
        assert stored[seq] == event
    assert record.summary is not None and record.summary["last_seq"] == len(yielded) - 1
