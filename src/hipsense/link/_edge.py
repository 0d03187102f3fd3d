"""What every BLE sensor link does alike: find the sensor, back off, describe failures."""

import random
import re
from collections.abc import Callable
from typing import Any

from bleak import BleakScanner
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData
from bleak.exc import (
    BleakBluetoothNotAvailableError,
    BleakBluetoothNotAvailableReason,
    BleakDBusError,
)

from hipsense._errors import HipsenseError

__all__ = [
    "ADDRESS",
    "BleLinkError",
    "SensorNotFoundError",
    "backoff_s",
    "bluetooth_missing",
    "describe",
    "find_sensor",
]

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
