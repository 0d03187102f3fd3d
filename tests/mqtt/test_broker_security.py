"""configs/mosquitto/ as shipped: TLS with a CA made here, passwords, and the ACL."""

import asyncio
import gc
import json
import ssl
import subprocess
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import aiomqtt
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from hipsense.mqtt import BrokerConfig, MqttPublisher, Outbox, Topics
from tests.brokers import Mosquitto, free_port, until
from tests.conftest import ROOT, require_tool
from tests.mqtt.test_publisher import _rep

CONFIGS = ROOT / "configs" / "mosquitto"
PASSWORDS = {"gw-1": "gw-1-secret", "gw-2": "gw-2-secret", "dashboard": "dash-secret"}


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run([require_tool("openssl"), *args], cwd=cwd, check=True, capture_output=True)


def make_certificates(folder: Path) -> None:
    """A throw-away CA and a server certificate for 127.0.0.1 / localhost, signed by it."""
    folder.mkdir()
    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    _openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.crt", "-days", "2",
             "-subj", "/CN=hipsense test CA", cwd=folder)  # fmt: skip
    _openssl("req", *ec, "-keyout", "server.key", "-out", "server.csr",
             "-subj", "/CN=localhost", cwd=folder)  # fmt: skip
    (folder / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    _openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
             "-CAcreateserial", "-out", "server.crt", "-days", "2", "-extfile", "san.ext",
             cwd=folder)  # fmt: skip


def start_secure_broker(
    tmp_path: Path, *, acl: str, passwords: Mapping[str, str] = PASSWORDS
) -> Mosquitto:
    """mosquitto running configs/mosquitto/hipsense.conf with temporary paths and ports.

    `acl` is the text of the ACL file; the CA is `tmp_path / "certs" / "ca.crt"`.
    """
    binary = require_tool("mosquitto")
    passwd_tool = require_tool("mosquitto_passwd")
    make_certificates(tmp_path / "certs")
    passwd = tmp_path / "hipsense.passwd"
    passwd.touch(mode=0o600)
    for user, password in passwords.items():
        subprocess.run([passwd_tool, "-b", str(passwd), user, password], check=True)
    (tmp_path / "hipsense.acl").write_text(acl)
    port = free_port()
    config = (
        (CONFIGS / "hipsense.conf")
        .read_text()
        .replace("/etc/mosquitto/", f"{tmp_path}/")
        .replace("listener 8883", f"listener {port} 127.0.0.1")
        .replace("listener 9443", f"listener {free_port()}")
    )
    broker = Mosquitto(binary, tmp_path, config=config, port=port)
    broker.start()
    return broker


@pytest.fixture
def secure_broker(tmp_path: Path) -> Iterator[Mosquitto]:
    """The shipped configuration and ACL, with the accounts of PASSWORDS."""
    broker = start_secure_broker(tmp_path, acl=(CONFIGS / "hipsense.acl").read_text())
    try:
        yield broker
    finally:
        broker.stop()


def _tls(ca: Path | None) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(ca) if ca else None)


def _client(broker: Mosquitto, user: str | None, ca: Path | None, **kw: Any) -> aiomqtt.Client:
    return aiomqtt.Client(
        "127.0.0.1",
        broker.port,
        username=user,
        password=PASSWORDS.get(user or ""),
        tls_context=_tls(ca),
        protocol=aiomqtt.ProtocolVersion.V5,
        **kw,
    )


async def _collect(client: aiomqtt.Client, into: list[tuple[str, bytes]]) -> None:
    async for m in client.messages:
        # Appended one by one: the test reads the list while messages still arrive.
        into.append((str(m.topic), bytes(m.payload)))  # type: ignore[arg-type]  # noqa: PERF401


async def test_tls_passwords_and_the_acl_hold(secure_broker: Mosquitto, tmp_path: Path) -> None:
    ca = tmp_path / "certs" / "ca.crt"
    seen: list[tuple[str, bytes]] = []
    async with (
        _client(secure_broker, "dashboard", ca) as dash,
        _client(secure_broker, "gw-1", ca) as gw1_raw,
        _client(secure_broker, "gw-2", ca) as gw2_raw,
        asyncio.TaskGroup() as tg,
    ):
        await dash.subscribe("hipsense/v1/#", qos=1)
        # gw-1 tries to listen to gw-2: the broker grants nothing it may not read.
        spy: list[tuple[str, bytes]] = []
        await gw1_raw.subscribe("hipsense/v1/gw-2/#", qos=1)
        listeners = [tg.create_task(_collect(dash, seen)), tg.create_task(_collect(gw1_raw, spy))]

        # The real publisher over mqtts, logged in as its gateway id.
        broker = BrokerConfig(
            url=f"mqtts://127.0.0.1:{secure_broker.port}",
            username="gw-1",
            password=PASSWORDS["gw-1"],
            ca_file=ca,
        )
        topics = Topics("gw-1")
        outbox = Outbox(tmp_path / "outbox.db")
        async with MqttPublisher(broker, topics, outbox) as pub:
            await until(lambda: pub.connected)
            await asyncio.sleep(0.3)  # its cmd subscription
            # A command from the dashboard, replied to under the gateway's prefix.
            props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
            props.ResponseTopic = f"{topics.cmd_reply}/dashboard-1"
            props.CorrelationData = b"42"
            await dash.publish(
                topics.cmd, b'{"request": {"command": "calibrate"}}', qos=1, properties=props
            )
            command = await asyncio.wait_for(pub.commands.get(), 5)
            command.reply()
            await until(lambda: any(t.endswith("/cmd/reply/dashboard-1") for t, _ in seen))

            # Forgeries: a gateway writing as another, a dashboard writing a gateway's event.
            await gw1_raw.publish("hipsense/v1/gw-2/status", b'{"forged": 1}', qos=1)
            await dash.publish(topics.events("s-1"), b'{"forged": 2}', qos=1)
            await gw2_raw.publish("hipsense/v1/gw-2/status", b'{"real": 3}', qos=1)
            await until(lambda: any(p == b'{"real": 3}' for _, p in seen))
            await asyncio.sleep(0.5)
        for task in listeners:
            task.cancel()

    payloads = [p for _, p in seen]
    assert b'{"forged": 1}' not in payloads
    assert b'{"forged": 2}' not in payloads
    assert spy == []
    statuses = [json.loads(p) for t, p in seen if t == "hipsense/v1/gw-1/status"]
    assert [s["state"] for s in statuses] == ["online", "offline"]
    reply = next(json.loads(p) for t, p in seen if t.endswith("/cmd/reply/dashboard-1"))
    assert reply["ok"] is True


@pytest.mark.parametrize(
    ("case", "error"),
    [
        ("wrong password", r"[Nn]ot authorized|[Bb]ad user"),
        ("anonymous", r"[Nn]ot authorized"),
        # The system's CAs do not know the test CA: the server certificate is rejected.
        pytest.param(
            "untrusted server",
            r"CERTIFICATE_VERIFY_FAILED|certificate verify failed",
            # paho leaves the socket of a failed TLS handshake to the garbage collector.
            marks=pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
        ),
        # Plain MQTT to the TLS port gets nowhere.
        ("no TLS", None),
    ],
)
async def test_refused(
    secure_broker: Mosquitto, tmp_path: Path, case: str, error: str | None
) -> None:
    ca = tmp_path / "certs" / "ca.crt"
    user: str | None = "gw-1"
    password = PASSWORDS["gw-1"]
    tls: ssl.SSLContext | None = _tls(ca)
    if case == "wrong password":
        password = "wrong"
    elif case == "anonymous":
        user = password = None  # type: ignore[assignment]
    elif case == "untrusted server":
        tls = _tls(None)
    elif case == "no TLS":
        tls = None
    with pytest.raises((aiomqtt.MqttError, ssl.SSLError), match=error):
        async with aiomqtt.Client(
            "127.0.0.1",
            secure_broker.port,
            username=user,
            password=password,
            tls_context=tls,
            protocol=aiomqtt.ProtocolVersion.V5,
            timeout=3,
        ):
            pass
    gc.collect()  # what paho left open is collected here, within this test


async def test_messages_the_broker_refuses_are_kept_aside_not_lost(
    secure_broker: Mosquitto, tmp_path: Path
) -> None:
    ca = tmp_path / "certs" / "ca.crt"
    # Logged in as gw-1 but publishing under gw-2's prefix: the ACL refuses every event.
    broker = BrokerConfig(
        url=f"mqtts://127.0.0.1:{secure_broker.port}",
        username="gw-1",
        password=PASSWORDS["gw-1"],
        ca_file=ca,
    )
    outbox = Outbox(tmp_path / "outbox.db")
    async with MqttPublisher(broker, Topics("gw-2"), outbox) as pub:
        for i in range(3):
            pub.publish_event("s-1", "x", _rep(i))
        await until(lambda: pub.stats.rejected == 3)
    assert pub.stats.published == 0
    assert len(outbox) == 0  # nothing left to retry forever
    rejected = outbox.rejected()
    assert [t for t, _, _ in rejected] == ["hipsense/v1/gw-2/sessions/s-1/events"] * 3
    assert {r for _, _, r in rejected} == {"Not authorized"}
    assert [json.loads(p)["seq"] for _, p, _ in rejected] == [0, 1, 2]
