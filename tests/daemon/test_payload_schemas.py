"""What a running demo publishes validates against the checked-in docs/schemas/.

The schemas are what integrators code against; pydantic wrote them, so this checks them
with an independent JSON Schema 2020-12 validator (jsonschema) on captured payloads, not
on the models.
"""

import asyncio
import io
import json
import re
from pathlib import Path
from typing import Any

import aiomqtt
from jsonschema import Draft202012Validator
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from hipsense.daemon import DemoOptions, run_demo
from hipsense.mqtt._contract import CHANNELS
from tests.brokers import Mosquitto, Subscriber, running, until
from tests.conftest import ROOT

SCHEMAS = ROOT / "docs" / "schemas"
REPLIES = "dash/replies"


def validators() -> dict[str, Draft202012Validator]:
    out = {}
    for path in sorted(SCHEMAS.glob("*.json")):
        schema = json.loads(path.read_text())
        Draft202012Validator.check_schema(schema)
        out[path.stem] = Draft202012Validator(schema)
    return out


def schema_of(topic: str) -> str:
    """The payload model of a topic, from the contract's channel addresses."""
    if topic == REPLIES:
        return "CommandReply"
    for c in CHANNELS:
        pattern = re.sub(r"\\\{[a-z_]+\\\}", "[^/]+", re.escape(c.address))
        if re.fullmatch(pattern, topic):
            return c.model.__name__
    raise AssertionError(f"{topic} is on no channel of the contract")


def test_every_schema_is_a_valid_2020_12_schema() -> None:
    found = validators()
    assert set(found) == {c.model.__name__ for c in CHANNELS}
    for name in found:
        schema = json.loads((SCHEMAS / f"{name}.json").read_text())
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema", name


async def test_published_payloads_validate_against_docs_schemas(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    prefix = "hipsense/v1/gw-schema"
    sub = Subscriber(mosquitto.port, f"{prefix}/#")
    requests: list[dict[str, Any]] = [
        {"request": {"command": "stop_session", "session_id": "not-this-one"}},
        {"request": {"command": "calibrate"}, "correlation_id": "c-2"},
    ]
    replies: list[dict[str, Any]] = []

    async def clinician() -> None:
        await until(lambda: any(e["event"]["kind"] == "rep" for e in sub.on("/events")))
        async with aiomqtt.Client(
            "127.0.0.1", mosquitto.port, protocol=aiomqtt.ProtocolVersion.V5
        ) as dash:
            await dash.subscribe(REPLIES, qos=1)
            props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
            props.ResponseTopic = REPLIES
            for request in requests:
                await dash.publish(f"{prefix}/cmd", json.dumps(request), qos=1, properties=props)
                async for m in dash.messages:
                    replies.append(json.loads(bytes(m.payload)))  # type: ignore[arg-type]
                    break

    async with running(sub):
        # Reps and set ends, then a hold: every event kind but nothing the demo lacks.
        async with asyncio.TaskGroup() as tg:
            tg.create_task(clinician())
            options = DemoOptions(
                reps=4,
                sets=1,
                speed=25.0,
                broker_url=mosquitto.url,
                state_dir=tmp_path,
                gateway_id="gw-schema",
                session_id="schema-reps",
            )
            assert await asyncio.wait_for(run_demo(options, io.StringIO()), 120) == 0
        hold = DemoOptions(
            exercise="figure-4-stretch-seated",
            reps=1,
            sets=1,
            speed=50.0,
            broker_url=mosquitto.url,
            state_dir=tmp_path,
            gateway_id="gw-schema",
            session_id="schema-hold",
        )
        assert await asyncio.wait_for(run_demo(hold, io.StringIO()), 120) == 0
        await until(lambda: len([p for p in sub.on("/summary") if p.get("ended_at")]) == 2)

    check = validators()
    captured = [(t, p) for t, p, _, _ in sub.messages]
    captured += [(f"{prefix}/cmd", r) for r in requests]
    captured += [(REPLIES, r) for r in replies]
    seen: dict[str, int] = {}
    for topic, payload in captured:
        name = schema_of(topic)
        errors = [e.message for e in check[name].iter_errors(payload)]
        assert errors == [], f"{topic} ({name}): {errors}\n{json.dumps(payload)[:500]}"
        seen[name] = seen.get(name, 0) + 1
    kinds = {e["event"]["kind"] for e in sub.on("/events")}
    assert kinds == {"calibration", "rep", "set", "hold"}
    assert [r["ok"] for r in replies] == [False, True]
    # Everything the gateway sends was seen, and the commands it takes.
    assert set(seen) == {c.model.__name__ for c in CHANNELS} - {"Prescription"}, seen
