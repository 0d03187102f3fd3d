"""Commands from outside against a running `hipsense run`: each is answered, none stops it.

A simulated sensor streams while every command and field is sent with wrong types,
unknown names, sizes up to 10 MB, deep nesting and bad UTF-8. Each request must get
exactly one reply (matched by its MQTT 5 correlation data); the known bad ones an
error naming what was expected; and afterwards the service still carries out a valid
command and still measures.
"""

import asyncio
import itertools
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from tests.brokers import Mosquitto, Subscriber, running, until

GATEWAY = "gw-cmd"
PREFIX = f"hipsense/v1/{GATEWAY}"
REPLIES = "fuzz/replies"
# Values that are wrong for some field in every way JSON allows.
HOSTILE: list[Any] = [
    None,
    0,
    -1,
    1e308,
    True,
    "",
    "nope",
    "../../etc",
    "\u0000",
    "x" * 100_000,
    [],
    {},
    [1, 2],
    {"a": {"b": {}}},
]
FIELDS = {
    "start_session": ["session_id", "prescription", "patient_id", "sensor_id"],
    "stop_session": ["session_id"],
    "calibrate": ["sensor_id"],
    "change_exercise": ["session_id", "exercise", "variant"],
}


def _prescription(exercise: str = "clamshell", variant: str | None = None) -> dict[str, Any]:
    item: dict[str, Any] = {"exercise": exercise, "sets": 1, "reps": 5}
    if variant is not None:
        item["variant"] = variant
    return {"patient_id": "p-1", "exercises": [item]}


def _valid(command: str, session_id: str) -> dict[str, Any]:
    return {
        "start_session": {"command": command, "prescription": _prescription()},
        "stop_session": {"command": command, "session_id": "not-live"},
        "calibrate": {"command": command},
        "change_exercise": {
            "command": command,
            "session_id": session_id,
            "exercise": "pelvic-drop",
        },
    }[command]


def fuzzed_commands(session_id: str) -> list[bytes]:
    """Every field of every command replaced by every hostile value; then the envelope."""
    out: list[bytes] = []
    for command, fields in FIELDS.items():
        for name, value in itertools.product(fields, HOSTILE):
            request = {**_valid(command, session_id), name: value}
            out.append(json.dumps({"request": request}).encode())
        out += [
            json.dumps({"request": {**_valid(command, session_id), "extra": v}}).encode()
            for v in HOSTILE
        ]
    for value in HOSTILE:
        out.append(json.dumps({"request": value}).encode())
        out.append(json.dumps({"request": {"command": value}}).encode())
        out.append(
            json.dumps({"request": _valid("calibrate", ""), "correlation_id": value}).encode()
        )
        out.append(json.dumps(value).encode())
    return out


def known_bad_commands(session_id: str) -> dict[str, tuple[bytes, str]]:
    """Requests that once killed the service, each with what its error must say."""
    deep = b'{"request": ' + b"[" * 1000 + b"]" * 1000 + b"}"
    big = json.dumps({"request": {"command": "calibrate"}, "pad": "x" * 10_000_000}).encode()

    def ask(request: dict[str, Any]) -> bytes:
        return json.dumps({"request": request}).encode()

    return {
        "start an unknown exercise": (
            ask({"command": "start_session", "prescription": _prescription("moonwalk")}),
            "exercise id: expected one of",
        ),
        "start an unknown variant": (
            ask({"command": "start_session", "prescription": _prescription(variant="nope")}),
            "variant of clamshell: expected one of",
        ),
        "change to an unknown exercise": (
            ask({"command": "change_exercise", "session_id": session_id, "exercise": "moonwalk"}),
            "exercise id: expected one of",
        ),
        "change to an unknown variant": (
            ask(
                {
                    "command": "change_exercise",
                    "session_id": session_id,
                    "exercise": "clamshell",
                    "variant": "nope",
                }
            ),
            "variant of clamshell: expected one of",
        ),
        "calibrate an unknown sensor": (
            ask({"command": "calibrate", "sensor_id": "nobody"}),
            "sensor_id: expected one of sim-1, got 'nobody'",
        ),
        "stop an unknown session": (
            ask({"command": "stop_session", "session_id": "nobody"}),
            "session_id: expected a live session",
        ),
        "nested 1000 deep": (deep, "recursion limit exceeded"),
        "10 MB": (big, "Extra inputs are not permitted"),
        "bad UTF-8": (b'{"request": {"command": "calibrate\xff\xfe"}}', "Invalid JSON"),
        "not JSON": (b"\x00\x01\x02", "Invalid JSON"),
    }


async def test_every_command_gets_one_reply_and_the_service_lives_on(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    config = tmp_path / "hipsense.toml"
    config.write_text(
        f'state_dir = "{tmp_path / "state"}"\n'
        f'gateway_id = "{GATEWAY}"\nlog_format = "json"\n'
        f'[broker]\nurl = "{mosquitto.url}"\n'
        '[[sensors]]\nid = "sim-1"\n'
        '[sensors.simulated]\nexercise = "clamshell"\nreps = 200\nsets = 1\nspeed = 2.0\n'
    )
    sub = Subscriber(mosquitto.port, f"{PREFIX}/sessions/#")  # not cmd: it is junk
    async with running(sub):
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "hipsense", "run", "--config", str(config),
            stderr=asyncio.subprocess.PIPE, env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )  # fmt: skip
        try:
            await until(lambda: sub.on("/events"), 60)
            session_id = sub.on("/events")[-1]["session_id"]
            known = known_bad_commands(session_id)
            requests = [payload for payload, _ in known.values()] + fuzzed_commands(session_id)
            replies = await ask_all(mosquitto.port, requests)
            assert proc.returncode is None, "the service died"
            assert sorted(replies) == list(range(len(requests))), "one reply each"
            for (name, (_, expected)), i in zip(known.items(), itertools.count(), strict=False):
                assert replies[i]["ok"] is False, name
                assert expected in replies[i]["error"], (name, replies[i]["error"])
            answered_ok = sum(r["ok"] for r in replies.values())
            print(f"\n{len(requests)} commands, each answered once; {answered_ok} carried out")
            # Still alive and measuring: a valid command works, and reps keep coming.
            [calibrated] = (
                await ask_all(mosquitto.port, [b'{"request": {"command": "calibrate"}}'])
            ).values()
            assert calibrated["ok"] is True
            before = len(sub.on("/events"))
            await until(lambda: len(sub.on("/events")) > before + 2, 60)
            assert proc.returncode is None
        finally:
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
            _, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()[-3000:]


async def ask_all(port: int, requests: list[bytes]) -> dict[int, dict[str, Any]]:
    """Send each request with its index as correlation data; the replies by index."""
    replies: dict[int, dict[str, Any]] = {}
    async with aiomqtt.Client(
        "127.0.0.1", port, protocol=aiomqtt.ProtocolVersion.V5, timeout=30
    ) as client:
        await client.subscribe(REPLIES, qos=1)
        for i, payload in enumerate(requests):
            props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
            props.ResponseTopic = REPLIES
            props.CorrelationData = str(i).encode()
            await client.publish(f"{PREFIX}/cmd", payload, qos=1, properties=props)

        async def collect() -> None:
            async for m in client.messages:
                assert m.properties is not None
                i = int(m.properties.CorrelationData.decode())
                reply = json.loads(bytes(m.payload))  # type: ignore[arg-type]
                # A command the broker delivered twice (QoS 1) is answered twice, with
                # the same reply: carried out once.
                assert replies.get(i, reply) == reply, f"request {i}: two different replies"
                replies[i] = reply
                if len(replies) == len(requests):
                    return

        await asyncio.wait_for(collect(), 120)
    return replies
