"""The embedded broker is private to its user: real clients, over TCP and WebSockets.

A web page of any other site, open in the same browser, must not reach it (its
WebSockets listener takes the dashboard's own origins only), and no client gets in
without the account that the gateway keeps, readable by its owner only, in its state
folder.
"""

import asyncio
import json
import os
import stat
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import aiomqtt
import pytest
import websockets
from websockets.asyncio.client import connect

from hipsense.mqtt import EmbeddedBroker, MqttPublisher, Outbox, Topics
from tests.brokers import free_port, until

DASHBOARD = "http://127.0.0.1:8123"
V311 = aiomqtt.ProtocolVersion.V311


@pytest.fixture
async def broker(tmp_path: Path) -> AsyncIterator[EmbeddedBroker]:
    async with EmbeddedBroker(
        port=free_port(), ws_port=free_port(), state_dir=tmp_path / "state", origins=[DASHBOARD]
    ) as embedded:
        yield embedded


def _connect_packet(client_id: bytes, user: str | None, password: str | None) -> bytes:
    """An MQTT 3.1.1 CONNECT (clean session, keepalive 30 s)."""

    def field(data: bytes) -> bytes:
        return len(data).to_bytes(2, "big") + data

    flags = 0x02 | (0x80 if user else 0) | (0x40 if password else 0)
    body = field(b"MQTT") + bytes([4, flags]) + (30).to_bytes(2, "big") + field(client_id)
    body += field(user.encode()) if user else b""
    body += field(password.encode()) if password else b""
    return bytes([0x10, len(body)]) + body


async def _over_websockets(
    broker: EmbeddedBroker, origin: str | None, user: str | None, password: str | None
) -> str:
    """What a WebSockets client gets: "http 403" (refused at the handshake) or the
    CONNACK's return code ("connack 0": in)."""
    assert broker.ws_url is not None
    try:
        async with connect(broker.ws_url, origin=origin, subprotocols=["mqtt"]) as ws:  # type: ignore[arg-type, list-item]
            await ws.send(_connect_packet(b"probe", user, password))
            connack = await asyncio.wait_for(ws.recv(), 5)
    except websockets.InvalidStatus as exc:
        return f"http {exc.response.status_code}"
    assert isinstance(connack, bytes)
    assert connack[:3] == b"\x20\x02\x00", connack
    return f"connack {connack[3]}"


@pytest.mark.parametrize(
    "origin",
    [
        "http://evil.example",
        "https://127.0.0.1:8123",  # the dashboard's host and port, another scheme
        "http://127.0.0.1:8124",  # another port of the same machine
        "http://127.0.0.1:8123.evil.example",
        "null",  # a sandboxed frame, a file:// page
    ],
)
async def test_a_page_of_another_origin_is_refused_at_the_handshake(
    broker: EmbeddedBroker, origin: str
) -> None:
    user, password = broker.config.credentials()
    # Even with the right account: the page could have it from a leak.
    assert await _over_websockets(broker, origin, user, password) == "http 403"


async def test_a_websocket_without_origin_is_refused(broker: EmbeddedBroker) -> None:
    # No browser omits it: a program talks TCP.
    user, password = broker.config.credentials()
    assert await _over_websockets(broker, None, user, password) == "http 403"


async def test_the_dashboards_page_needs_the_account(broker: EmbeddedBroker) -> None:
    user, _ = broker.config.credentials()
    assert await _over_websockets(broker, DASHBOARD, None, None) == "connack 5"
    assert await _over_websockets(broker, DASHBOARD, user, "guess") == "connack 5"


async def test_the_dashboards_page_with_the_account_reads_and_commands(
    broker: EmbeddedBroker,
) -> None:
    user, password = broker.config.credentials()
    assert await _over_websockets(broker, DASHBOARD, user, password) == "connack 0"
    # A real client over WebSockets, as the page is: it reads what the gateway retained.
    async with aiomqtt.Client(
        "127.0.0.1", broker.port, username=user, password=password, protocol=V311
    ) as gateway:
        await gateway.publish("hipsense/v1/gw-1/status", b'{"state":"online"}', qos=1, retain=True)
        async with aiomqtt.Client(
            "127.0.0.1",
            broker.ws_port,  # type: ignore[arg-type]
            transport="websockets",
            websocket_path="/mqtt",
            websocket_headers={"Origin": DASHBOARD},
            username=user,
            password=password,
            protocol=V311,
        ) as page:
            await page.subscribe("#", qos=1)
            message = await asyncio.wait_for(anext(aiter(page.messages)), 5)
            assert (str(message.topic), message.payload) == (
                "hipsense/v1/gw-1/status",
                b'{"state":"online"}',
            )
            # And what it sends reaches the gateway.
            await gateway.subscribe("hipsense/v1/gw-1/cmd", qos=1)
            await page.publish("hipsense/v1/gw-1/cmd", b"{}", qos=1)
            command = await asyncio.wait_for(anext(aiter(gateway.messages)), 5)
            assert str(command.topic) == "hipsense/v1/gw-1/cmd"


@pytest.mark.parametrize("account", ["none", "wrong password", "wrong user"])
async def test_a_tcp_client_without_the_account_is_refused(
    broker: EmbeddedBroker, account: str
) -> None:
    user, password = broker.config.credentials()
    given = {
        "none": {},
        "wrong password": {"username": user, "password": f"{password}x"},
        "wrong user": {"username": f"{user}x", "password": password},
    }[account]
    with pytest.raises(aiomqtt.MqttError, match=r"Not authorized|Bad user name or password"):
        async with aiomqtt.Client("127.0.0.1", broker.port, protocol=V311, **given):  # type: ignore[arg-type]
            pass


async def test_the_account_is_kept_private_and_used_again(tmp_path: Path) -> None:
    state = tmp_path / "state"
    path = state / "broker-credentials.json"
    async with EmbeddedBroker(port=free_port(), ws_port=None, state_dir=state) as first:
        user, password = first.config.credentials()
        assert user
        assert password
        assert len(password) >= 32
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert json.loads(path.read_text()) == {"username": user, "password": password}
    async with EmbeddedBroker(port=free_port(), ws_port=None, state_dir=state) as again:
        assert again.config.credentials() == (user, password)
        async with aiomqtt.Client(
            "127.0.0.1", again.port, username=user, password=password, protocol=V311
        ):
            pass
    # Another state folder, another account.
    async with EmbeddedBroker(port=free_port(), ws_port=None, state_dir=tmp_path / "b") as other:
        assert other.config.credentials()[1] != password


async def test_an_account_others_could_read_is_replaced(tmp_path: Path) -> None:
    state = tmp_path / "state"
    async with EmbeddedBroker(port=free_port(), ws_port=None, state_dir=state) as first:
        _, password = first.config.credentials()
    path = state / "broker-credentials.json"
    os.chmod(path, 0o644)
    async with EmbeddedBroker(port=free_port(), ws_port=None, state_dir=state) as again:
        assert again.config.credentials()[1] != password
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    path.write_text("not an account")
    async with EmbeddedBroker(port=free_port(), ws_port=None, state_dir=state) as fixed:
        assert json.loads(path.read_text())["password"] == fixed.config.credentials()[1]


def test_gateways_starting_at_once_share_one_account(tmp_path: Path) -> None:
    from hipsense.mqtt import broker_credentials

    found: list[object] = []
    threads = [
        threading.Thread(target=lambda: found.append(broker_credentials(tmp_path)))
        for _ in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(found) == 8
    assert len(set(found)) == 1
    assert [p.name for p in tmp_path.iterdir()] == ["broker-credentials.json"]


def test_the_dashboards_origins_default_to_its_loopback_address(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from hipsense.mqtt._embedded import EmbeddedBrokerError, dashboard_origins

    monkeypatch.delenv("HIPSENSE_DASHBOARD_ORIGINS", raising=False)
    assert dashboard_origins() == {"http://127.0.0.1:8080", "http://localhost:8080"}
    monkeypatch.setenv(
        "HIPSENSE_DASHBOARD_ORIGINS", "http://127.0.0.1:8123, HTTP://LocalHost:8123/"
    )
    assert dashboard_origins() == {"http://127.0.0.1:8123", "http://localhost:8123"}
    assert dashboard_origins(["https://dash.example:443"]) == {"https://dash.example"}
    for bad in ["ws://127.0.0.1:9001", "http://x/path", "http://u:p@x:1", "127.0.0.1:8080"]:
        with pytest.raises(EmbeddedBrokerError, match="expected dashboard origins"):
            dashboard_origins([bad])


def test_it_listens_on_loopback_only() -> None:
    from hipsense.mqtt import EmbeddedBrokerError

    with pytest.raises(EmbeddedBrokerError, match="loopback"):
        EmbeddedBroker(host="0.0.0.0")


async def test_the_gateways_publisher_logs_in_with_the_brokers_config(
    broker: EmbeddedBroker, tmp_path: Path
) -> None:
    # As `hipsense run` and `hipsense demo` do: the broker's config carries the account.
    user, password = broker.config.credentials()
    topics = Topics("gw-emb")
    outbox = Outbox(tmp_path / "outbox.db")
    async with (
        aiomqtt.Client(
            "127.0.0.1", broker.port, username=user, password=password, protocol=V311
        ) as sub,
        MqttPublisher(broker.config, topics, outbox) as pub,
    ):
        await sub.subscribe(topics.status, qos=1)
        await until(lambda: pub.connected)
        message = await asyncio.wait_for(anext(aiter(sub.messages)), 5)
        assert json.loads(message.payload)["state"] == "online"  # type: ignore[arg-type]
    outbox.close()


async def test_a_full_disk_does_not_stop_the_broker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno

    import hipsense.mqtt._embedded as embedded

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(embedded.os, "fsync", full)
    async with EmbeddedBroker(port=free_port(), ws_port=None, state_dir=tmp_path) as broker:
        user, password = broker.config.credentials()
        assert password
        async with aiomqtt.Client(
            "127.0.0.1", broker.port, username=user, password=password, protocol=V311
        ):
            pass
    assert os.listdir(tmp_path) == []  # no half-written account left behind
