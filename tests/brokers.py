"""Broker helpers for tests: a real mosquitto, a dashboard-like subscriber, waiting."""

import asyncio
import contextlib
import getpass
import json
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiomqtt
from paho.mqtt.client import MQTT_CLEAN_START_FIRST_ONLY
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties


def free_port() -> int:
    """A TCP port nobody listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Mosquitto:
    """One mosquitto process; `stop()` / `start()` keep port and persistence."""

    def __init__(
        self, binary: str, workdir: Path, *, config: str | None = None, port: int | None = None
    ) -> None:
        """A plain anonymous listener on `port`, or `config` (which listens on `port`)."""
        self.binary = binary
        self.port = port if port is not None else free_port()
        self.conf = workdir / "mosquitto.conf"
        if config is None:
            config = f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence true\n"
        self.conf.write_text(
            config + "\n"
            # Run as root, mosquitto would switch to user "mosquitto", which cannot write
            # its persistence file here; as anyone else this line changes nothing.
            f"user {getpass.getuser()}\n"
            # Persistence (when on): queued QoS 1 messages of offline subscribers survive
            # a restart.
            f"persistence_location {workdir}/\n"
            "log_dest none\n"
        )
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """mqtt:// URL of the broker."""
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start and wait until the port accepts connections."""
        self.proc = subprocess.Popen([self.binary, "-c", str(self.conf)])
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            if self.proc.poll() is not None:
                raise RuntimeError(f"mosquitto exited with {self.proc.returncode}")
            time.sleep(0.02)
        raise RuntimeError("mosquitto did not open its port within 10 s")

    def stop(self) -> None:
        """Stop (SIGTERM: mosquitto saves its persistence file)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.proc = None


class Subscriber:
    """A dashboard-like subscriber: persistent session, reconnects, records everything."""

    def __init__(
        self,
        port: int,
        topic: str,
        *,
        v5: bool = True,
        credentials: tuple[str | None, str | None] = (None, None),
    ) -> None:
        self.port = port
        self.v5 = v5
        self.topic = topic
        self.username, self.password = credentials
        self.messages: list[tuple[str, dict[str, Any], bool, dict[str, str]]] = []
        self.ready = asyncio.Event()
        self.connected = False
        self.expiry_s: dict[str, list[int | None]] = {}
        """MQTT 5 message expiry interval of each message, by topic."""

    async def run(self) -> None:
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = 3600
        while True:
            try:
                async with aiomqtt.Client(
                    "127.0.0.1",
                    self.port,
                    username=self.username,
                    password=self.password,
                    identifier="dashboard-test",
                    protocol=aiomqtt.ProtocolVersion.V5
                    if self.v5
                    else aiomqtt.ProtocolVersion.V311,
                    clean_start=False if self.v5 else MQTT_CLEAN_START_FIRST_ONLY,
                    clean_session=None if self.v5 else False,
                    properties=props if self.v5 else None,
                ) as client:
                    await client.subscribe(self.topic, qos=1)
                    self.connected = True
                    self.ready.set()
                    async for m in client.messages:
                        user = dict(getattr(m.properties, "UserProperty", []) or [])
                        payload = json.loads(bytes(m.payload))  # type: ignore[arg-type]
                        self.messages.append((str(m.topic), payload, bool(m.retain), user))
                        expiry = getattr(m.properties, "MessageExpiryInterval", None)
                        self.expiry_s.setdefault(str(m.topic), []).append(expiry)
            except aiomqtt.MqttError:
                self.connected = False
                await asyncio.sleep(0.2)

    def on(self, suffix: str) -> list[dict[str, Any]]:
        return [p for t, p, _, _ in self.messages if t.endswith(suffix)]


@contextlib.asynccontextmanager
async def running(sub: Subscriber) -> AsyncIterator[Subscriber]:
    task = asyncio.create_task(sub.run(), name="test-subscriber")
    ready = asyncio.create_task(sub.ready.wait())
    await asyncio.wait([task, ready], timeout=10, return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        task.result()  # the subscriber failed: raise its error here
    assert sub.ready.is_set(), "subscriber not ready within 10 s"
    try:
        yield sub
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def until(cond: Callable[[], object], within_s: float = 20.0) -> None:
    """Wait until `cond()` is true; fail after `within_s`."""
    deadline = asyncio.get_running_loop().time() + within_s
    while not cond():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.05)
