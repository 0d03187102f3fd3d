"""The embedded broker's one account: an amqtt authentication plugin.

A module of its own because amqtt loads plugins by their dotted path, and this one
imports amqtt, which only a gateway that starts the embedded broker should pay for.
"""

import hmac
from dataclasses import dataclass

from amqtt.plugins.base import BaseAuthPlugin
from amqtt.session import Session

__all__ = ["AccountAuthPlugin"]


class AccountAuthPlugin(BaseAuthPlugin):  # type: ignore[misc]
    """Lets in the client that presents the configured user name and password, no other.

    On every listener: the TCP one (the gateway's publisher, any local program) and the
    WebSockets one (the dashboard) alike.
    """

    @dataclass
    class Config:
        """The account (amqtt fills it in from the plugin's entry of the config)."""

        username: str = ""
        password: str = ""

    async def authenticate(self, *, session: Session) -> bool:
        """True only for the right user name and password; never anonymous."""
        expected: AccountAuthPlugin.Config = self.config
        if not expected.username or not expected.password or session is None:
            return False
        # Both compared, in time independent of where they differ.
        user_ok = hmac.compare_digest((session.username or "").encode(), expected.username.encode())
        password_ok = hmac.compare_digest(
            (session.password or "").encode(), expected.password.encode()
        )
        return user_ok and password_ok
