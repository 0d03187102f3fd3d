"""What every BLE sensor link does alike.

Its asyncio edge (`BleEdge`), finding the sensor, backing off, describing failures, and
telling a machine with no Bluetooth stack.
"""

import asyncio
import contextlib
import logging
import random
import re
from collections.abc import AsyncIterator, Callable
from types import TracebackType
from typing import Any, Self

from bleak import BleakScanner
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData
from bleak.exc import (
    BleakBluetoothNotAvailableError,
    BleakBluetoothNotAvailableReason,
    BleakDBusError,
)

from hipsense._errors import HipsenseError
from hipsense.protocol import StreamFormat

from ._base import StreamItem
from ._telemetry import LinkTelemetry

__all__ = [
    "ADDRESS",
    "END_OF_STREAM",
    "BleEdge",
    "BleLinkError",
    "SensorNotFoundError",
    "backoff_s",
    "bluetooth_missing",
    "describe",
    "find_sensor",
]

log = logging.getLogger("hipsense.link")

ADDRESS = re.compile(r"^[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}$")


class BleLinkError(HipsenseError):
    """A BLE link failed in a way a retry will not fix."""


class SensorNotFoundError(BleLinkError):
    """No sensor matching the target answered a scan (a link retries: it may come back)."""

    def __init__(self, target: str, timeout_s: float, what: str = "the hipsense service") -> None:
        super().__init__(
            f"sensor {target!r}: expected it to advertise {what}, found nothing in {timeout_s:g} s"
        )
        self.target = target


def backoff_s(attempt: int, base_s: float, max_s: float) -> float:
    """Delay before retry `attempt` (1, 2, ...): doubling, capped, jittered down to half."""
    delay = min(max_s, base_s * 2.0**attempt)
    return float(delay * random.uniform(0.5, 1.0))  # noqa: S311 -- jitter, not secrecy


def describe(exc: BaseException) -> str:
    """A failure in a log line: BlueZ's own words when it has them."""
    text = str(exc) or type(exc).__name__
    # BlueZ's own words (org.bluez.Error.InProgress, NotConnected, Failed) are the useful part.
    return text if "org.bluez" in text else f"{type(exc).__name__}: {text}"


async def find_sensor(
    target: str,
    is_kind: Callable[[AdvertisementData], bool],
    *,
    timeout_s: float,
    adapter: str | None,
    what: str,
    on_found: Callable[[AdvertisementData], None] | None = None,
) -> BLEDevice:
    """The device at address `target`, or advertising a name starting with it and of the kind."""
    kwargs: dict[str, Any] = {"adapter": adapter} if adapter else {}
    by_address = bool(ADDRESS.match(target))
    wanted = target.upper() if by_address else target

    def match(device: BLEDevice, adv: AdvertisementData) -> bool:
        if by_address:
            found = device.address.upper() == wanted
        else:
            found = is_kind(adv) and (adv.local_name or "").startswith(wanted)
        if found and on_found is not None:
            on_found(adv)
        return found

    device = await BleakScanner.find_device_by_filter(match, timeout=timeout_s, **kwargs)
    if device is None:
        raise SensorNotFoundError(target, timeout_s, what)
    return device


def bluetooth_missing(exc: BaseException) -> str | None:
    """What is missing, if `exc` says this machine has no usable Bluetooth stack.

    No D-Bus system bus, no BlueZ on it, no adapter (or none that can be a BLE central),
    or D-Bus refusing this user: none of them heals by retrying. None for anything else,
    an adapter that is off included (someone may switch it on).
    """
    if isinstance(exc, FileNotFoundError):
        return "no D-Bus system bus (is dbus running? BlueZ needs it)"
    if isinstance(exc, BleakDBusError) and exc.dbus_error in (
        "org.freedesktop.DBus.Error.ServiceUnknown",
        "org.freedesktop.DBus.Error.NameHasNoOwner",
    ):
        return "no BlueZ on the system bus (install and start bluetooth.service)"
    reason = BleakBluetoothNotAvailableReason
    if isinstance(exc, BleakBluetoothNotAvailableError) and exc.reason is not reason.POWERED_OFF:
        if exc.reason is reason.DENIED_BY_SYSTEM:
            return f"{exc.args[0]} (is this user in the bluetooth group?)"
        return str(exc.args[0])
    return None


END_OF_STREAM: Any = object()
"""Put on a link's output queue when its stream has ended (for good, or by close)."""


class BleEdge:
    """The asyncio edge every BLE link shares, whatever the sensor speaks.

    `async with link:` starts two named tasks in a TaskGroup, `hipsense-{kind}-connection`
    (the link's explicit reconnect loop) and `hipsense-{kind}-decode`; leaving closes
    both. `items()` yields what the decode task puts on `_out` until `END_OF_STREAM`,
    then raises what ended the link for good, if anything did: a stream never just
    stops. A subclass sets the fields below in its `__init__` (through `_edge_init`)
    and defines the two loops.
    """

    kind: str = "ble"
    """Names the tasks and the log lines (ble, witmotion, dot)."""
    target: str
    _sensor_id: str
    _fmt: StreamFormat
    _telemetry: LinkTelemetry

    def _edge_init(self, target: str) -> None:
        self.target = target
        self._out: asyncio.Queue[Any] = asyncio.Queue()
        self._lost = asyncio.Event()
        self._closing = asyncio.Event()
        self._stack: contextlib.AsyncExitStack | None = None
        self._fatal: BaseException | None = None

    @property
    def sensor_id(self) -> str:
        """Id used in topics: from the address or the configuration, never a patient's."""
        return self._sensor_id

    @property
    def fmt(self) -> StreamFormat:
        """The rate and ranges the stream is measured at."""
        return self._fmt

    @property
    def telemetry(self) -> LinkTelemetry:
        """Live link counters."""
        return self._telemetry

    async def __aenter__(self) -> Self:
        self._stack = contextlib.AsyncExitStack()
        tg = await self._stack.enter_async_context(asyncio.TaskGroup())
        tg.create_task(self._connection_loop(), name=f"hipsense-{self.kind}-connection")
        tg.create_task(self._decode_loop(), name=f"hipsense-{self.kind}-decode")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._stack is not None
        self._closing.set()
        self._lost.set()
        await self._stack.aclose()

    async def items(self) -> AsyncIterator[StreamItem]:
        """Decoded items until the link is closed; raises what ended it for good."""
        while True:
            item = await self._out.get()
            if item is END_OF_STREAM:
                if self._fatal is not None:
                    raise self._fatal
                return
            yield item

    async def _connection_loop(self) -> None:
        raise NotImplementedError

    async def _decode_loop(self) -> None:
        raise NotImplementedError

    def _on_disconnected(self, _client: Any) -> None:
        self._lost.set()

    def _die(self, task: str, exc: Exception) -> None:
        """A task ended by something it did not expect: the link ends with an error.

        `items()` raises it, so a consumer never sees a stream that just stops.
        """
        if self._fatal is None:
            self._fatal = BleLinkError(f"sensor {self.target!r}: the {task} task died: {exc!r}")
            self._fatal.__cause__ = exc
        log.error("%s %s: the %s task died", self.kind, self.target, task, exc_info=exc)
        self._closing.set()
        self._lost.set()

    def _stops_for_good(self, exc: BaseException) -> bool:
        """Whether `exc` says there is no Bluetooth stack; if so the link ends with it."""
        missing = bluetooth_missing(exc)
        if missing is None:
            return False
        wanted = f"expected a working Bluetooth adapter, got {missing}"
        self._telemetry.error = wanted
        self._fatal = BleLinkError(f"sensor {self.target!r}: {wanted}")
        self._fatal.__cause__ = exc
        log.error("%s %s: %s; not retrying", self.kind, self.target, wanted)
        return True
