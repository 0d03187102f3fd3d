"""A broker inside the hipsense process, for when none is configured.

amqtt is pure Python, so a patient's laptop needs nothing installed. It speaks MQTT
3.1.1 only: the publisher connects to it with `protocol="3.1.1"`. It listens on
loopback only (health data stays on the machine), on TCP and on WebSockets for the
dashboard, and keeps nothing across restarts; a clinic uses a real broker instead.
"""

import asyncio
import logging
import socket
from types import TracebackType
from typing import Any, Self

from hipsense._errors import HipsenseError

from ._broker import BrokerConfig

__all__ = ["EmbeddedBroker", "EmbeddedBrokerError"]

log = logging.getLogger("hipsense.mqtt")

DEFAULT_PORT = 1883
DEFAULT_WS_PORT = 9001


class EmbeddedBrokerError(HipsenseError):
    """The embedded broker could not start."""


def _free(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def _any_free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class EmbeddedBroker:
    """`async with EmbeddedBroker() as broker:` then connect to `broker.config`.

    Ports default to MQTT's usual 1883 and 9001 (WebSockets); when one is taken (another
    broker or another hipsense), a free port is used instead and `port` / `ws_port`
    say which.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = DEFAULT_PORT,
        ws_port: int | None = DEFAULT_WS_PORT,
    ) -> None:
        self.host = host
        self.port = port
        self.ws_port = ws_port
        self._broker: Any = None

    @property
    def config(self) -> BrokerConfig:
        """How a client reaches this broker."""
        return BrokerConfig(url=f"mqtt://{self.host}:{self.port}", protocol="3.1.1")

    @property
    def ws_url(self) -> str | None:
        """The WebSockets URL for browsers (the dashboard), if that listener is on."""
        return None if self.ws_port is None else f"ws://{self.host}:{self.ws_port}/mqtt"

    async def __aenter__(self) -> Self:
        # Imported here: only a gateway without a broker pays for amqtt's import.
        from amqtt.broker import Broker

        class _Broker(Broker):  # type: ignore[misc]
            async def stream_connected(
                self,
                reader: asyncio.StreamReader,
                writer: asyncio.StreamWriter,
                listener_name: str,
            ) -> None:
                # amqtt leaves the socket of a connection that never became a session
                # (an MQTT 5 CONNECT, garbage) open; close it when its handler ends.
                try:
                    await super().stream_connected(reader, writer, listener_name)
                finally:
                    if not writer.is_closing():
                        writer.close()

        if not _free(self.host, self.port):
            self.port = _any_free_port(self.host)
        if self.ws_port is not None and not _free(self.host, self.ws_port):
            self.ws_port = _any_free_port(self.host)
        listeners: dict[str, dict[str, object]] = {
            "default": {"type": "tcp", "bind": f"{self.host}:{self.port}"}
        }
        if self.ws_port is not None:
            listeners["ws"] = {"type": "ws", "bind": f"{self.host}:{self.ws_port}"}
        broker = _Broker(
            {
                "listeners": listeners,
                "plugins": {
                    # Loopback only, so anonymous access is limited to this machine.
                    "amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True},
                },
            }
        )
        try:
            await broker.start()
        except Exception as exc:
            raise EmbeddedBrokerError(
                f"embedded broker: expected to listen on {self.host}:{self.port}"
                f"{'' if self.ws_port is None else f' and :{self.ws_port}'}, got {exc}"
            ) from exc
        self._broker = broker
        log.info("embedded broker on %s (WebSockets %s)", self.config.url, self.ws_url)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        broker, self._broker = self._broker, None
        if broker is not None:
            # Shut down even when the caller is being cancelled: a listener left open
            # keeps the port busy for the next start.
            await asyncio.shield(broker.shutdown())
