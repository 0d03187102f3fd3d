"""A sensor that never delivers a sample leaves no session behind (no empty "0 reps")."""

import asyncio
import math
from collections.abc import AsyncIterator
from pathlib import Path
from types import TracebackType
from typing import Self

from hipsense.daemon import run_session
from hipsense.exercises import load_library
from hipsense.history import History
from hipsense.link import LinkTelemetry, SimulatedLink, StreamItem
from hipsense.mqtt import BrokerConfig, MqttPublisher, Outbox, Topics
from hipsense.protocol import StreamFormat
from hipsense.session import SessionPipeline


class _SilentSensor:
    """Hardware that is never heard from: out of range, switched off, no adapter."""

    sensor_id = "silent-1"
    fmt = StreamFormat(rate_hz=100)
    telemetry = LinkTelemetry(sensor_id="silent-1", rate_hz=100)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None

    async def items(self) -> AsyncIterator[StreamItem]:
        for item in ():
            yield item


async def _run(link: _SilentSensor | SimulatedLink, tmp_path: Path) -> tuple[History, list[str]]:
    history = History(tmp_path / "history.db")
    box = Outbox(tmp_path / "outbox.db")
    publisher = MqttPublisher(BrokerConfig(), Topics("gw-t"), box)
    pipeline = SessionPipeline(
        session_id="s",
        sensor_id=link.sensor_id,
        rate_hz=link.fmt.rate_hz,
        exercise=load_library()["clamshell"],
    )
    async with link:
        async for _ in run_session(link, pipeline, publisher, history=history):
            pass
    topics = [m.topic for m in box.peek()]
    box.close()
    return history, topics


def test_a_sensor_that_delivers_nothing_records_no_session(tmp_path: Path) -> None:
    history, topics = asyncio.run(_run(_SilentSensor(), tmp_path))
    assert history.sessions() == []
    assert not any(t.endswith("/summary") for t in topics)
    assert any(t.endswith("/state") for t in topics)  # the sensor's state still says why
    history.close()


def test_a_sensor_that_delivers_records_its_session(tmp_path: Path) -> None:
    # The same run with samples does record: the test above is not blind.
    from hipsense_sim import ImuSpec, LinkSpec, ScenarioSpec, SetSpec, simulate

    spec = ScenarioSpec(
        name="short",
        exercise="clamshell",
        seed=3,
        sets=[SetSpec(reps=3, side="right", rest_after_s=5.0)],
        imu=ImuSpec(rate_hz=100),
        link=LinkSpec(loss_ratio=0.0),
    )
    result = simulate(spec, load_library()["clamshell"])
    history, topics = asyncio.run(
        _run(SimulatedLink(result, sensor_id="sim-1", speed=math.inf), tmp_path)
    )
    assert [s["session_id"] for s in history.sessions()] == ["s"]
    assert any(t.endswith("/summary") for t in topics)
    history.close()
