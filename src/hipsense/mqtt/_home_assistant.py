"""Home Assistant discovery on the broker: announce, re-announce on HA's birth, clear.

The publisher runs `serve` as a named task of each connection. It publishes every config
(retained, QoS 1) at once, again when Home Assistant announces itself (`<prefix>/status`
= `online`, its birth message) and when what the gateway knows of a sensor changes (a
BLE sensor's model and firmware, read once it is connected). Configs it announced before
and no longer has (a sensor taken out of the configuration, another discovery prefix)
are cleared with an empty retained message: the topics announced are kept in a file of
the state folder, written once the broker has them.
"""

import asyncio
import contextlib
import json
import logging
import os
import tempfile
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

from ._discovery import SensorDescription, check_prefix, discovery_messages
from ._topics import Topics

__all__ = ["DISCOVERY_MEMORY_FILE", "HomeAssistantDiscovery", "RetainedPublish"]

log = logging.getLogger("hipsense.mqtt")

DISCOVERY_MEMORY_FILE = "home-assistant-discovery.json"
"""The state folder's list of the config topics announced."""

RetainedPublish = Callable[[str, bytes], Awaitable[str | None]]
"""Publish retained at QoS 1 on this connection; the broker's refusal reason, or None."""


class HomeAssistantDiscovery:
    """The discovery configs of one gateway and what it announced of them."""

    def __init__(
        self,
        topics: Topics,
        describe: Callable[[], Sequence[SensorDescription]],
        *,
        memory: Path,
        prefix: str = "homeassistant",
        refresh_s: float = 5.0,
    ) -> None:
        """`describe()` gives the sensors as the gateway knows them now.

        `memory` is the file of topics announced (in the state folder); `refresh_s` is
        how often `describe()` is asked again for changes.
        """
        self.topics = topics
        self.describe = describe
        self.memory = memory
        self.prefix = check_prefix(prefix)
        self.refresh_s = refresh_s
        self.announcements = 0
        """Complete announcements made (on connect, on birth, on a change)."""
        self._birth = asyncio.Event()
        self._announced: list[tuple[str, bytes]] | None = None

    @property
    def birth_topic(self) -> str:
        """Where Home Assistant publishes `online` when it (re)starts."""
        return f"{self.prefix}/status"

    def messages(self) -> list[tuple[str, bytes]]:
        """The configs as they are now."""
        return discovery_messages(self.topics, self.describe(), prefix=self.prefix)

    def on_birth(self, payload: bytes | str) -> None:
        """A message on `birth_topic`: `online` asks for every config again."""
        text = payload.decode(errors="replace") if isinstance(payload, bytes) else payload
        if text.strip() == "online":
            self._birth.set()

    async def serve(self, publish: RetainedPublish) -> None:
        """Announce now, then on each birth message or change, until cancelled."""
        self._birth.clear()
        await self.announce(publish)
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._birth.wait(), self.refresh_s)
            if self._birth.is_set():
                self._birth.clear()
                log.info("home assistant: birth message; announcing again")
                await self.announce(publish)
            elif self.messages() != self._announced:
                await self.announce(publish)

    async def announce(self, publish: RetainedPublish) -> None:
        """Publish every config and clear the ones announced before that are gone."""
        messages = self.messages()
        current = {topic for topic, _ in messages}
        stale = sorted(self._remembered() - current)
        refused: list[str] = []
        for topic, payload in [*messages, *((t, b"") for t in stale)]:
            if (reason := await publish(topic, payload)) is not None:
                refused.append(f"{topic}: {reason}")
        if refused:
            # An ACL without discovery rights: nothing else is affected; say it once.
            log.warning(
                "home assistant: the broker refused %d discovery messages (%s); set "
                "home_assistant.enabled = false if this broker is not for Home Assistant",
                len(refused),
                refused[0],
            )
        else:
            self._remember(current)
        if stale:
            log.info("home assistant: cleared %d configs of removed entities", len(stale))
        self._announced = messages
        self.announcements += 1

    def _remembered(self) -> set[str]:
        try:
            data = json.loads(self.memory.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return set()
        except (OSError, ValueError) as exc:
            log.warning("home assistant: %s: ignored (%s)", self.memory, exc)
            return set()
        topics = data.get("topics") if isinstance(data, dict) else None
        if not isinstance(topics, list) or not all(isinstance(t, str) for t in topics):
            log.warning("home assistant: %s: expected {'topics': [...]}, ignored", self.memory)
            return set()
        return set(topics)

    def _remember(self, topics: set[str]) -> None:
        body = json.dumps({"topics": sorted(topics)}, indent=1) + "\n"
        try:
            fd, tmp = tempfile.mkstemp(dir=self.memory.parent, prefix=".ha-", suffix=".tmp")
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(body)
            os.replace(tmp, self.memory)
        except OSError as exc:
            # Only the clearing of a sensor removed later depends on it.
            log.warning("home assistant: could not write %s: %s", self.memory, exc)
