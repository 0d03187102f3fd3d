"""A broker inside the hipsense process, for when none is configured.

amqtt is pure Python, so a patient's laptop needs nothing installed. It speaks MQTT
3.1.1 only: the publisher connects to it with `protocol="3.1.1"`. It listens on
loopback only (health data stays on the machine), on TCP and on WebSockets for the
dashboard, and keeps no messages across restarts; a clinic uses a real broker instead.

It is private to its user, not only to the machine: every client logs in with the
account kept in the state folder (`broker-credentials.json`, mode 0600, made at the
first start), and the WebSockets listener takes only pages of the dashboard's own
origins, so a web page of any other site, open in the same browser, can neither read
what the gateway publishes nor command it.
"""

import asyncio
import contextlib
import errno
import http
import json
import logging
import os
import secrets
import socket
import stat
import tempfile
import urllib.parse
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from hipsense._errors import HipsenseError
from hipsense._net import is_loopback as _loopback

from ._broker import BrokerConfig

if TYPE_CHECKING:
    from websockets.asyncio.server import Server, ServerConnection
    from websockets.http11 import Request, Response

__all__ = [
    "CREDENTIALS_FILE",
    "DEFAULT_DASHBOARD_ORIGINS",
    "ORIGINS_ENV",
    "BrokerCredentials",
    "EmbeddedBroker",
    "EmbeddedBrokerError",
    "broker_credentials",
    "dashboard_origins",
    "read_broker_credentials",
]

log = logging.getLogger("hipsense.mqtt")

DEFAULT_PORT = 1883
DEFAULT_WS_PORT = 9001
CREDENTIALS_FILE = "broker-credentials.json"
"""In the state folder: the embedded broker's account, mode 0600."""
ORIGINS_ENV = "HIPSENSE_DASHBOARD_ORIGINS"
"""Origins whose pages may use the WebSockets listener, separated by spaces or commas."""
DEFAULT_DASHBOARD_ORIGINS = ("http://127.0.0.1:8080", "http://localhost:8080")
"""`hipsense dashboard` on its default port, by either name of loopback."""
_USERNAME = "hipsense"
_MAX_LOGGED_ORIGINS = 16  # a page that tries many origins does not flood the log


class EmbeddedBrokerError(HipsenseError):
    """The embedded broker could not start."""


@dataclass(frozen=True)
class BrokerCredentials:
    """A user name and password; the password is left out of repr (and so of logs)."""

    username: str
    password: str = field(repr=False)


def _parse_credentials(text: str) -> BrokerCredentials | None:
    try:
        data = json.loads(text)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    user, password = data.get("username"), data.get("password")
    if not (isinstance(user, str) and user and isinstance(password, str) and password):
        return None
    return BrokerCredentials(user, password)


def read_broker_credentials(path: Path) -> BrokerCredentials | None:
    """The credentials in a credentials file, or None when it is missing or unreadable."""
    try:
        return _parse_credentials(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError):
        return None


def broker_credentials(state_dir: Path) -> BrokerCredentials:
    """The embedded broker's account: kept in `state_dir`, made on the first call.

    The file (`broker-credentials.json`) is readable by its owner only (0600). One that
    others could read, or that does not hold an account, is replaced by a new account:
    whoever read it must not keep the way in. Two gateways starting at once on the same
    folder end up with the same account (the file is made whole, then linked in place
    only if there is none). On a full disk, an account for this run only, kept in
    memory: the gateway goes on measuring, and the dashboard logs in once there is room.
    """
    path = state_dir / CREDENTIALS_FILE
    try:
        state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        mode = stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        mode = None
    except OSError as exc:
        raise EmbeddedBrokerError(
            f"embedded broker: expected a state folder it can write, got {state_dir}: {exc}"
        ) from exc
    if mode is not None:
        found = read_broker_credentials(path)
        if found is not None and mode & 0o077 == 0:
            return found
        log.warning(
            "embedded broker: %s %s; made a new account",
            path,
            "held no account" if found is None else f"was readable by others (mode {mode:o})",
        )
    try:
        return _new_credentials(path, replace=mode is not None)
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            log.warning(
                "embedded broker: cannot keep its account in %s (%s): one for this run only, "
                "which the dashboard cannot read",
                path,
                exc.strerror or exc,
            )
            return _account()
        raise EmbeddedBrokerError(
            f"embedded broker: expected to keep its account in {path}, got {exc}"
        ) from exc


def _account() -> BrokerCredentials:
    return BrokerCredentials(_USERNAME, secrets.token_urlsafe(32))


def _new_credentials(path: Path, *, replace: bool) -> BrokerCredentials:
    made = _account()
    body = json.dumps({"username": made.username, "password": made.password}) + "\n"
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # mode 0600
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(body)
            f.flush()
            os.fsync(f.fileno())
        if replace:
            os.replace(tmp, path)
            return made
        try:
            os.link(tmp, path)  # fails when another process made one meanwhile
        except FileExistsError:
            found = read_broker_credentials(path)
            if found is None:
                raise
            return found
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.EXDEV):
                raise
            os.replace(tmp, path)  # a file system without hard links: the last one wins
        return made
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def _origin(value: str) -> str:
    """`scheme://host[:port]` as a browser sends it in an Origin header."""
    parts = urllib.parse.urlsplit(value.strip())
    try:
        port = parts.port
    except ValueError:
        port = -1
    if (
        parts.scheme not in ("http", "https")
        or not parts.hostname
        or port == -1
        or parts.path not in ("", "/")
        or parts.query
        or parts.fragment
        or parts.username is not None
    ):
        raise EmbeddedBrokerError(
            f"embedded broker: expected dashboard origins as http://host:port, got {value!r}"
        )
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    default = 80 if parts.scheme == "http" else 443
    suffix = "" if port in (None, default) else f":{port}"
    return f"{parts.scheme}://{host}{suffix}"


def dashboard_origins(origins: Iterable[str] | None = None) -> frozenset[str]:
    """The origins whose pages may use the WebSockets listener, as browsers send them.

    `origins`, else $HIPSENSE_DASHBOARD_ORIGINS, else `hipsense dashboard`'s default
    address (http://127.0.0.1:8080 and http://localhost:8080).
    """
    if origins is None:
        env = os.environ.get(ORIGINS_ENV, "")
        origins = env.replace(",", " ").split() or DEFAULT_DASHBOARD_ORIGINS
    return frozenset(_origin(o) for o in origins)


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
    """`async with EmbeddedBroker(state_dir=...) as broker:` then connect to `broker.config`.

    Ports default to MQTT's usual 1883 and 9001 (WebSockets); when one is taken (another
    broker or another hipsense), a free port is used instead and `port` / `ws_port`
    say which.

    Every client must log in: with the account kept in `state_dir` (see
    `broker_credentials`), or, without a state folder, one made for this run only.
    `config` carries it, for the gateway's own publisher. The WebSockets listener
    answers only a handshake whose Origin is one of `origins` (see `dashboard_origins`);
    one without an Origin, which no browser sends, is refused too: programs use TCP.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = DEFAULT_PORT,
        ws_port: int | None = DEFAULT_WS_PORT,
        state_dir: Path | None = None,
        origins: Iterable[str] | None = None,
    ) -> None:
        if not _loopback(host):
            raise EmbeddedBrokerError(
                f"embedded broker: expected a loopback address to listen on, got {host!r}"
            )
        self.host = host
        self.port = port
        self.ws_port = ws_port
        self.state_dir = state_dir
        self.origins = dashboard_origins(origins)
        self.credentials = _account() if state_dir is None else broker_credentials(state_dir)
        self._broker: Any = None
        self._ws_server: Server | None = None
        self._logged_origins: set[str] = set()

    @property
    def config(self) -> BrokerConfig:
        """How a client reaches this broker, the account included."""
        return BrokerConfig(
            url=f"mqtt://{self.host}:{self.port}",
            username=self.credentials.username,
            password=self.credentials.password,
            protocol="3.1.1",
        )

    @property
    def ws_url(self) -> str | None:
        """The WebSockets URL for browsers (the dashboard), if that listener is on."""
        return None if self.ws_port is None else f"ws://{self.host}:{self.ws_port}/mqtt"

    def _check_origin(self, conn: "ServerConnection", request: "Request") -> "Response | None":
        """Refuse (403) a handshake that does not come from a dashboard page."""
        origins = request.headers.get_all("Origin")
        if len(origins) == 1 and origins[0] in self.origins:
            return None
        shown = "no Origin" if not origins else " ".join(origins)[:200]
        if shown not in self._logged_origins and len(self._logged_origins) < _MAX_LOGGED_ORIGINS:
            self._logged_origins.add(shown)
            log.warning(
                "embedded broker: refused a WebSocket connection from %r: expected a page "
                "of %s (set %s for a dashboard elsewhere)",
                shown,
                ", ".join(sorted(self.origins)),
                ORIGINS_ENV,
            )
        return conn.respond(http.HTTPStatus.FORBIDDEN, "Forbidden: origin not allowed\n")

    async def __aenter__(self) -> Self:
        # Imported here: only a gateway without a broker pays for amqtt's import.
        from amqtt.adapters import WebSocketsReader, WebSocketsWriter
        from amqtt.broker import Broker
        from websockets.asyncio.server import serve
        from websockets.typing import Subprotocol

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
            # amqtt's own WebSockets listener takes any Origin and has no hook to check
            # it; this one is served here (with the check) and handed to amqtt as an
            # external listener's connections.
            listeners["ws"] = {"type": "external"}
        account = {"username": self.credentials.username, "password": self.credentials.password}
        broker = _Broker(
            {
                "listeners": listeners,
                "plugins": {"hipsense.mqtt._embedded_auth.AccountAuthPlugin": account},
            }
        )

        async def ws_connected(ws: "ServerConnection") -> None:
            await broker.external_connected(WebSocketsReader(ws), WebSocketsWriter(ws), "ws")

        try:
            await broker.start()
            if self.ws_port is not None:
                self._ws_server = await serve(
                    ws_connected,
                    self.host,
                    self.ws_port,
                    process_request=self._check_origin,
                    subprotocols=[Subprotocol("mqtt")],
                    server_header=None,
                )
        except Exception as exc:
            with contextlib.suppress(Exception):
                await broker.shutdown()
            raise EmbeddedBrokerError(
                f"embedded broker: expected to listen on {self.host}:{self.port}"
                f"{'' if self.ws_port is None else f' and :{self.ws_port}'}, got {exc}"
            ) from exc
        self._broker = broker
        log.info(
            "embedded broker on %s (WebSockets %s, for pages of %s)",
            self.config.url,
            self.ws_url,
            ", ".join(sorted(self.origins)),
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        broker, self._broker = self._broker, None
        ws_server, self._ws_server = self._ws_server, None
        # Shut down even when the caller is being cancelled: a listener left open
        # keeps the port busy for the next start.
        if ws_server is not None:
            ws_server.close()
            await asyncio.shield(ws_server.wait_closed())
        if broker is not None:
            await asyncio.shield(broker.shutdown())
