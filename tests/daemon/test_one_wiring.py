"""`hipsense demo` and `hipsense run` are one service: the same sensor, the same messages.

A demo and a run with the same simulated sensor (exercise, reps, seed) publish, on a real
mosquitto, the same topics once gateway and session ids are placeholders, and on each
such topic payloads of the same JSON shape (keys and value types). A demo that skipped a
message the service publishes (its sensor state, its Home Assistant discovery) differs.
"""

import asyncio
import contextlib
import io
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from hipsense._errors import HipsenseError
from hipsense.daemon import DaemonSettings, DemoOptions, load_settings, run_daemon, run_demo
from hipsense.daemon._demo import demo_settings
from tests.brokers import Mosquitto

_SENSOR: dict[str, Any] = {
    "exercise": "clamshell",
    "reps": 3,
    "sets": 1,
    "seed": 5,
    "speed": 12.0,
    "loss": 0.01,
}
"""The simulated sensor both run: about 20 s of stream, 2 s of wall time."""

Shapes = dict[str, set[tuple[str, str]]]
"""By topic shape: every (JSON path, value type) its payloads had."""


def _paths(value: Any, path: str = "$") -> set[tuple[str, str]]:
    if isinstance(value, dict):
        out = {(path, "object")}
        for key, item in value.items():
            out |= _paths(item, f"{path}.{key}")
        return out
    if isinstance(value, list):
        out = {(path, "array")}
        for item in value:
            out |= _paths(item, f"{path}[]")
        return out
    return {(path, "null" if value is None else type(value).__name__)}


class _Recorder:
    """Every message on the broker, raw, in arrival order."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.messages: list[tuple[str, bytes]] = []
        self.ready = asyncio.Event()

    async def run(self) -> None:
        async with aiomqtt.Client("127.0.0.1", self.port) as client:
            await client.subscribe("#", qos=1)
            self.ready.set()
            async for m in client.messages:
                payload = m.payload if isinstance(m.payload, bytes) else b""
                self.messages.append((str(m.topic), payload))

    def shapes(self, gateway: str, session_ids: set[str]) -> Shapes:
        """The gateway's messages by topic shape (ids as placeholders), with their shapes."""
        out: Shapes = {}
        for topic, payload in self.messages:
            if gateway not in topic.split("/"):
                continue
            shape = "/".join(
                "{gateway}" if part == gateway else "{session}" if part in session_ids else part
                for part in topic.split("/")
            )
            paths = _paths(json.loads(payload)) if payload else {("$", "empty")}
            out.setdefault(shape, set()).update(paths)
        return out

    def session_ids(self, gateway: str) -> set[str]:
        return {
            json.loads(p)["session_id"]
            for t, p in self.messages
            if t.startswith(f"hipsense/v1/{gateway}/sessions/") and t.endswith("/summary") and p
        }


@contextlib.asynccontextmanager
async def _recording(port: int) -> AsyncIterator[_Recorder]:
    rec = _Recorder(port)
    task = asyncio.create_task(rec.run(), name="test-recorder")
    await asyncio.wait_for(rec.ready.wait(), 10)
    try:
        yield rec
    finally:
        await asyncio.sleep(0.5)  # the last messages (offline) reach the recorder
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _demo(broker: Mosquitto, state_dir: Path, gateway: str, **extra: Any) -> Shapes:
    options = DemoOptions(
        broker_url=broker.url, state_dir=state_dir, gateway_id=gateway, **_SENSOR, **extra
    )
    async with _recording(broker.port) as rec:
        assert await asyncio.wait_for(run_demo(options, io.StringIO()), 60) == 0
    return rec.shapes(gateway, rec.session_ids(gateway))


async def _run(broker: Mosquitto, state_dir: Path, gateway: str) -> Shapes:
    config = state_dir.parent / f"{gateway}.toml"
    simulated = "\n".join(f"{k} = {v!r}".replace("'", '"') for k, v in _SENSOR.items())
    config.write_text(
        f'state_dir = "{state_dir}"\ngateway_id = "{gateway}"\n[broker]\nurl = "{broker.url}"\n'
        f'[[sensors]]\nid = "sim-1"\n[sensors.simulated]\n{simulated}\n'
    )
    async with _recording(broker.port) as rec:
        assert await asyncio.wait_for(run_daemon(load_settings(config)), 60) == 0
    return rec.shapes(gateway, rec.session_ids(gateway))


def _differences(a: Shapes, b: Shapes) -> dict[str, Any]:
    """What one publishes that the other does not: topic shapes, then paths by topic."""
    out: dict[str, Any] = {}
    if only := set(a) ^ set(b):
        out["topics only one publishes"] = sorted(only)
    for topic in sorted(set(a) & set(b)):
        if paths := a[topic] ^ b[topic]:
            out[topic] = sorted(paths)
    return out


async def test_demo_and_run_publish_the_same_topics_and_payload_shapes(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    demo = await _demo(mosquitto, tmp_path / "demo", "gw-demo")
    run = await _run(mosquitto, tmp_path / "run", "gw-run")

    # What is compared is the whole service's output, not a corner of it.
    assert {
        "hipsense/v1/{gateway}/status",
        "hipsense/v1/{gateway}/sensors/sim-1/state",
        "hipsense/v1/{gateway}/sensors/sim-1/session",
        "hipsense/v1/{gateway}/sessions/{session}/events",
        "hipsense/v1/{gateway}/sessions/{session}/summary",
        "hipsense/v1/{gateway}/sessions/{session}/live",
    } <= set(run)
    assert any(t.startswith("homeassistant/") for t in run)
    assert ("$.event.rom_deg", "float") in run["hipsense/v1/{gateway}/sessions/{session}/events"]
    assert _differences(demo, run) == {}

    # The comparison sees a demo that leaves out what the service publishes: here its
    # Home Assistant discovery, as the demo had its own (optional) announcement once.
    quiet = await _demo(mosquitto, tmp_path / "quiet", "gw-quiet", home_assistant=False)
    missing = _differences(quiet, run)
    assert missing, "a demo without discovery compared equal to the service"
    assert all(re.match(r"homeassistant/", t) for t in missing["topics only one publishes"]), (
        missing
    )


def test_the_demo_options_are_the_services_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    # The environment configures `hipsense run`, not the demo (its options say it all).
    monkeypatch.setenv("HIPSENSE_BROKER__URL", "mqtt://elsewhere:1883")
    settings = demo_settings(DemoOptions(reps=4, sets=1, seed=7, rate_hz=50, gateway_id="gw-x"))
    assert isinstance(settings, DaemonSettings)
    assert (settings.broker.url, settings.gateway_id, settings.keep_raw_samples) == (
        None,
        "gw-x",
        True,
    )
    [sensor] = settings.sensors
    assert sensor.simulated is not None
    assert (sensor.id, sensor.exercise, sensor.stream_rate_hz) == ("sim-1", "clamshell", 50)
    assert (sensor.simulated.reps, sensor.simulated.sets, sensor.simulated.seed) == (4, 1, 7)
    program = demo_settings(DemoOptions(program="hip-core-level-1")).sensors[0]
    assert (program.program, program.exercise, program.patient_id) == (
        "hip-core-level-1",
        None,
        "demo-patient",
    )


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (DemoOptions(loss=0.7), r"^--loss: .*0\.5, got 0\.7$"),
        (DemoOptions(reps=0), r"^--reps: .*, got 0$"),
        (DemoOptions(gateway_id="a/b"), r"^--gateway-id: .*, got 'a/b'$"),
        (DemoOptions(broker_url="http://x"), r"^--broker: .*mqtt://"),
    ],
)
def test_a_bad_demo_option_is_named(options: DemoOptions, message: str) -> None:
    with pytest.raises(HipsenseError, match=message):
        demo_settings(options)
