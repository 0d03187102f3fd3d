"""Where the broker is: a URL plus credentials and TLS files."""

import ssl
from pathlib import Path
from typing import Literal
from urllib.parse import unquote, urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator

from hipsense._errors import HipsenseError

__all__ = ["BrokerConfig", "BrokerConfigError"]


class BrokerConfigError(HipsenseError, ValueError):
    """A broker setting that cannot work; names the setting."""


class BrokerConfig(BaseModel):
    """`mqtt://host[:1883]` or `mqtts://host[:8883]`, user and password in the URL or apart."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str = "mqtt://127.0.0.1:1883"
    username: str | None = None
    password: str | None = Field(default=None, repr=False)
    """Left out of repr, so a logged config never shows it."""
    ca_file: Path | None = None
    """CA certificate to trust (mqtts); the system's CAs when not given."""
    cert_file: Path | None = None
    """Client certificate (mqtts, optional)."""
    key_file: Path | None = None
    client_id: str | None = None
    keepalive_s: int = 30
    protocol: Literal["auto", "5", "3.1.1"] = "auto"
    """MQTT version: "auto" tries 5 and falls back to 3.1.1 when the broker refuses it.

    Over 3.1.1 messages carry no user properties, live frames no expiry, and command
    replies go to `cmd/reply` (there is no response topic).
    """

    @field_validator("url")
    @classmethod
    def _scheme(cls, v: str) -> str:
        parts = urlsplit(v)
        if parts.scheme not in ("mqtt", "mqtts"):
            raise ValueError(f"expected a mqtt:// or mqtts:// URL, got {v!r}")
        if not parts.hostname:
            raise ValueError(f"expected a host in the URL, got {v!r}")
        return v

    @property
    def tls(self) -> bool:
        """Whether the connection uses TLS."""
        return urlsplit(self.url).scheme == "mqtts"

    @property
    def host(self) -> str:
        """Broker host name or address."""
        host = urlsplit(self.url).hostname
        assert host is not None
        return host

    @property
    def port(self) -> int:
        """Broker port (1883 for mqtt, 8883 for mqtts by default)."""
        return urlsplit(self.url).port or (8883 if self.tls else 1883)

    @property
    def address(self) -> str:
        """`mqtt://host:port` (or mqtts): where the broker is, never with credentials."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'mqtts' if self.tls else 'mqtt'}://{host}:{self.port}"

    def credentials(self) -> tuple[str | None, str | None]:
        """Username and password: the explicit ones, else those in the URL."""
        parts = urlsplit(self.url)
        user = self.username or (unquote(parts.username) if parts.username else None)
        password = self.password or (unquote(parts.password) if parts.password else None)
        return user, password

    def ssl_context(self) -> ssl.SSLContext | None:
        """The TLS context for mqtts, None for mqtt."""
        if not self.tls:
            return None
        try:
            ctx = ssl.create_default_context(cafile=str(self.ca_file) if self.ca_file else None)
            if self.cert_file is not None:
                ctx.load_cert_chain(
                    str(self.cert_file), str(self.key_file) if self.key_file else None
                )
        except (OSError, ssl.SSLError) as exc:
            raise BrokerConfigError(
                f"broker TLS files: expected readable PEM files, got {exc}"
            ) from exc
        return ctx
