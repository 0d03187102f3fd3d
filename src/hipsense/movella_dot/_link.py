"""The Movella DOT link: bleak at the edge, `_codec` inside, the `SensorLink` interface out.

Built like the native `BleLink`: one named task keeps the connection (an explicit loop
that finds the DOT, connects, sets its output rate, reads its battery, starts real-time
streaming, watches for a lost link or a stalled stream, and on a failure waits a
capped, jittered backoff and starts again); the notify callback only timestamps the
bytes and queues them; a second task decodes them and places them on the host clock.
A DOT stops measuring when its link drops and keeps no backlog, so what it sampled
meanwhile is lost: its own clock says how much, and the link yields that as a `Gap`.
"""

import asyncio
import contextlib
import logging
import random
import re
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from bleak import BleakClient, BleakScanner
from bleak.backends.characteristic import BleakGATTCharacteristic
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData
from bleak.exc import BleakError

from hipsense.link import END_OF_STREAM, BleEdge, BleLinkError, LinkTelemetry, StreamItem
from hipsense.protocol import MalformedPacket, ProtocolError

from ._codec import (
    BATTERY_CHAR_UUID,
    CONFIGURATION_SERVICE_UUID,
    DEVICE_CONTROL_CHAR_UUID,
    DEVICE_INFO_CHAR_UUID,
    MEASUREMENT_CONTROL_CHAR_UUID,
    MEASUREMENT_SERVICE_UUID,
    XSENS_COMPANY_ID,
    DotStreamFormat,
    DotTimeline,
    PayloadMode,
    decode_battery,
    decode_device_control,
    decode_device_info,
    decode_many,
    decode_measurement_control,
    encode_measurement_control,
    encode_set_output_rate,
)

__all__ = [
    "DotCommandError",
    "DotNotFoundError",
    "MovellaDotLink",
    "MovellaDotSettings",
    "is_movella_dot",
]

log = logging.getLogger("hipsense.link.movella_dot")

_ADDRESS = re.compile(r"^[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}$")
_NAME_PREFIXES = ("Xsens DOT", "Movella DOT")
"""The advertised name until the user gives the DOT a tag of its own."""
_DOT_SERVICES = (CONFIGURATION_SERVICE_UUID, MEASUREMENT_SERVICE_UUID)


def is_movella_dot(adv: AdvertisementData) -> bool:
    """Whether an advertisement is a Movella (Xsens) DOT's.

    By the Xsens company id in its manufacturer data (which survives a renamed device
    tag), one of its service UUIDs, or its default name.
    """
    if XSENS_COMPANY_ID in adv.manufacturer_data:
        return True
    if any(u.lower() in _DOT_SERVICES for u in adv.service_uuids):
        return True
    return (adv.local_name or "").startswith(_NAME_PREFIXES)


class DotNotFoundError(BleLinkError):
    """No DOT matching the target answered a scan."""

    def __init__(self, target: str, timeout_s: float) -> None:
        super().__init__(
            f"Movella DOT {target!r}: expected it to advertise (an Xsens company id or a "
            f"'Xsens DOT' name), found nothing in {timeout_s:g} s"
        )
        self.target = target


class DotCommandError(BleLinkError):
    """The DOT did not take a setting written to it (read back, it says otherwise)."""

    def __init__(self, setting: str, expected: str, actual: str) -> None:
        super().__init__(f"Movella DOT {setting}: expected {expected}, got {actual}")
        self.setting = setting


@dataclass(frozen=True)
class MovellaDotSettings:
    """How the link streams and how patient it is."""

    rate_hz: int = 60
    """Output rate: 1, 4, 10, 12, 15, 20, 30 or 60 Hz."""
    mode: PayloadMode = PayloadMode.RATE_QUANTITIES
    scan_timeout_s: float = 10.0
    connect_timeout_s: float = 10.0
    command_timeout_s: float = 3.0
    stall_intervals: float = 10.0
    """The watchdog fires after this many sample periods without a notification."""
    stall_min_s: float = 1.0
    backoff_base_s: float = 0.25
    backoff_max_s: float = 10.0
    queue_size: int = 4096
    """Notifications waiting to be decoded; beyond it they are dropped and counted."""


class _LinkRestartError(Exception):
    """The connection must start over (lost link, stall); not a failure of the sensor."""


_RETRYABLE = (BleakError, TimeoutError, EOFError, OSError, DotCommandError, DotNotFoundError)
"""Failures the link retries with backoff; a DOT out of range or off may come back."""


class MovellaDotLink(BleEdge):
    """`async with MovellaDotLink("D4:22:CD:00:48:53") as link:` then `link.items()`.

    `target` is an address, or a name (or name prefix) the DOT advertises.
    """

    kind = "dot"

    def __init__(
        self,
        target: str,
        *,
        settings: MovellaDotSettings | None = None,
        sensor_id: str | None = None,
        adapter: str | None = None,
    ) -> None:
        self._edge_init(target)
        self.settings = settings if settings is not None else MovellaDotSettings()
        s = self.settings
        self._fmt = DotStreamFormat(s.rate_hz)
        self._sensor_id = sensor_id or ("dot-" + target.replace(":", "").lower())[-16:]
        self._adapter = adapter
        self._timeline = DotTimeline(self._fmt)
        self._telemetry = LinkTelemetry(
            self._sensor_id, self._fmt.rate_hz, stream=self._timeline.stats
        )
        self._rx: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue(s.queue_size)
        self._device: BLEDevice | None = None
        self._last_rx_s = 0.0
        self._ever_connected = False
        self.firmware_version: str | None = None
        self.serial: str | None = None
        self.charging: bool | None = None

    # -- the notify callbacks: timestamp and enqueue, nothing else ------------------

    def _on_measurement(self, _char: BleakGATTCharacteristic, data: bytearray) -> None:
        try:
            self._rx.put_nowait((time.monotonic(), bytes(data)))
        except asyncio.QueueFull:
            self._telemetry.queue_overflows += 1

    def _on_battery(self, _char: BleakGATTCharacteristic, data: bytearray) -> None:
        self._take_battery(bytes(data))

    def _take_battery(self, data: bytes) -> None:
        try:
            battery = decode_battery(data)
        except ProtocolError as exc:
            log.warning("dot %s: bad battery notification: %s", self.target, exc)
            return
        self._telemetry.battery_pct = float(battery.level_pct)
        self.charging = battery.charging

    # -- the decoding task ----------------------------------------------------------

    async def _decode_loop(self) -> None:
        try:
            while True:
                try:
                    first = await asyncio.wait_for(self._rx.get(), 0.25)
                except TimeoutError:
                    if self._closing.is_set() and self._rx.empty():
                        break
                    continue
                batch = [first]
                while not self._rx.empty():
                    batch.append(self._rx.get_nowait())
                for item in self._decode(batch):
                    await self._out.put(item)
        except Exception as exc:  # any death of the task ends the link loudly
            self._die("decode", exc)
        finally:
            self._out.put_nowait(END_OF_STREAM)

    def _decode(self, batch: list[tuple[float, bytes]]) -> list[StreamItem]:
        times = [t for t, _ in batch]
        self._last_rx_s = times[-1]
        self._telemetry.note_arrivals(times)
        samples, errors = decode_many([p for _, p in batch], self.settings.mode)
        out: list[StreamItem] = []
        if errors:
            self._timeline.note_malformed(len(errors))
            out += [MalformedPacket(times[i], err) for i, err in errors]
        host_s = np.asarray(times, dtype=np.float64)[samples.index]
        out += self._timeline.push(samples, host_s)
        return out

    # -- the connection task --------------------------------------------------------

    async def _connection_loop(self) -> None:
        attempt = 0
        try:
            while not self._closing.is_set():
                try:
                    await self._connect_once()
                    attempt = 0
                except _LinkRestartError as why:
                    log.info("dot %s: %s; reconnecting", self.target, why)
                    continue
                except _RETRYABLE as exc:
                    if self._closing.is_set():
                        break
                    if self._stops_for_good(exc):
                        break
                    attempt += 1
                    if isinstance(exc, DotNotFoundError) or attempt % 5 == 0:
                        self._device = None  # look for it again: BlueZ's object may be stale
                    delay = min(
                        self.settings.backoff_max_s, self.settings.backoff_base_s * 2**attempt
                    )
                    delay *= random.uniform(0.5, 1.0)  # noqa: S311 -- jitter, not secrecy
                    log.warning(
                        "dot %s: %s; retrying in %.2f s (attempt %d)",
                        self.target,
                        _describe(exc),
                        delay,
                        attempt,
                    )
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._closing.wait(), delay)
        except ProtocolError as exc:
            # A DOT that answers its configuration with bytes of another layout: a
            # firmware this host does not know; retrying cannot help.
            self._fatal = BleLinkError(f"DOT {self.target!r}: {exc}")
            self._fatal.__cause__ = exc
            log.error("dot %s: %s", self.target, exc)
        except Exception as exc:  # any death of the task ends the link loudly
            self._die("connection", exc)
        finally:
            self._closing.set()

    async def _find(self) -> BLEDevice:
        if self._device is not None:
            return self._device
        timeout = self.settings.scan_timeout_s
        kwargs: dict[str, Any] = {"adapter": self._adapter} if self._adapter else {}
        by_address = bool(_ADDRESS.match(self.target))
        target = self.target.upper() if by_address else self.target

        def match(device: BLEDevice, adv: AdvertisementData) -> bool:
            if by_address:
                found = device.address.upper() == target
            else:
                found = is_movella_dot(adv) and (adv.local_name or "").startswith(target)
            if found:
                self._telemetry.rssi_dbm = float(adv.rssi)
            return found

        device = await BleakScanner.find_device_by_filter(match, timeout=timeout, **kwargs)
        if device is None:
            raise DotNotFoundError(self.target, timeout)
        self._device = device
        return device

    async def _connect_once(self) -> None:
        device = await self._find()
        client = BleakClient(
            device,
            disconnected_callback=self._on_disconnected,
            timeout=self.settings.connect_timeout_s,
        )
        await client.connect()
        # Cleared only now: a Connect that bleak retried (BlueZ's le-connection-abort-by-
        # local) has reported the aborted attempt's disconnection already.
        self._lost.clear()
        if not client.is_connected:
            raise _LinkRestartError("disconnected while connecting")
        try:
            await self._setup(client)
            if self._ever_connected:
                self._telemetry.reconnects += 1
            self._ever_connected = True
            self._telemetry.connected = True
            await self._watch()
        finally:
            self._telemetry.connected = False
            await self._teardown(client)

    async def _read(self, client: BleakClient, uuid: str) -> bytes:
        return bytes(
            await asyncio.wait_for(client.read_gatt_char(uuid), self.settings.command_timeout_s)
        )

    async def _write(self, client: BleakClient, uuid: str, value: bytes) -> None:
        await asyncio.wait_for(
            client.write_gatt_char(uuid, value, response=True), self.settings.command_timeout_s
        )

    async def _setup(self, client: BleakClient) -> None:
        """Stop, set the output rate (read back), read the battery, subscribe, start."""
        s = self.settings
        with contextlib.suppress(BleakError, ProtocolError):
            info = decode_device_info(await self._read(client, DEVICE_INFO_CHAR_UUID))
            self.firmware_version = ".".join(map(str, info.firmware))
            self.serial = info.serial
        # Measuring already (another host's stream, or ours before a lost link)? The
        # output rate can only be changed while it is not.
        control = decode_measurement_control(
            await self._read(client, MEASUREMENT_CONTROL_CHAR_UUID)
        )
        if control.streaming:
            await self._write(
                client, MEASUREMENT_CONTROL_CHAR_UUID, encode_measurement_control(False, s.mode)
            )
        device = decode_device_control(await self._read(client, DEVICE_CONTROL_CHAR_UUID))
        if device.output_rate_hz != s.rate_hz:
            await self._write(
                client, DEVICE_CONTROL_CHAR_UUID, encode_set_output_rate(device, s.rate_hz)
            )
            device = decode_device_control(await self._read(client, DEVICE_CONTROL_CHAR_UUID))
            if device.output_rate_hz != s.rate_hz:
                raise DotCommandError(
                    "output rate", f"{s.rate_hz} Hz", f"{device.output_rate_hz} Hz read back"
                )
        with contextlib.suppress(BleakError, ProtocolError):
            self._take_battery(await self._read(client, BATTERY_CHAR_UUID))
        with contextlib.suppress(BleakError):
            await client.start_notify(BATTERY_CHAR_UUID, self._on_battery)
        self._timeline.reconnected(time.monotonic())
        await client.start_notify(s.mode.char_uuid, self._on_measurement)
        self._last_rx_s = time.monotonic()
        await self._write(
            client, MEASUREMENT_CONTROL_CHAR_UUID, encode_measurement_control(True, s.mode)
        )
        control = decode_measurement_control(
            await self._read(client, MEASUREMENT_CONTROL_CHAR_UUID)
        )
        if not control.streaming or control.mode != s.mode:
            raise DotCommandError(
                "measurement",
                f"streaming in mode {int(s.mode)} ({s.mode.name})",
                f"streaming={control.streaming} in mode {control.mode}",
            )
        log.info(
            "dot %s: streaming %d Hz in %s, firmware %s, battery %s %%",
            self.target,
            s.rate_hz,
            s.mode.name,
            self.firmware_version,
            self._telemetry.battery_pct,
        )

    def stall_timeout_s(self) -> float:
        """Silence after which the watchdog restarts the link."""
        return max(self.settings.stall_min_s, self.settings.stall_intervals / self._fmt.rate_hz)

    async def _watch(self) -> None:
        """Return when closing; raise `_LinkRestartError` when the link is lost or stalls."""
        limit = self.stall_timeout_s()
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._lost.wait(), limit / 4)
            if self._closing.is_set():
                return
            if self._lost.is_set():
                raise _LinkRestartError("link lost")
            silent = time.monotonic() - self._last_rx_s
            if silent > limit:
                self._telemetry.stalls += 1
                raise _LinkRestartError(
                    f"no notification for {silent:.1f} s (watchdog {limit:.1f} s)"
                )

    async def _teardown(self, client: BleakClient) -> None:
        """Stop measuring and unsubscribe when the link is up; always disconnect."""
        if client.is_connected and not self._lost.is_set():
            with contextlib.suppress(BleakError, TimeoutError, EOFError):
                stop = encode_measurement_control(False, self.settings.mode)
                await asyncio.wait_for(
                    client.write_gatt_char(MEASUREMENT_CONTROL_CHAR_UUID, stop, response=True),
                    2.0,
                )
                await client.stop_notify(self.settings.mode.char_uuid)
        with contextlib.suppress(BleakError, TimeoutError, EOFError, OSError):
            await asyncio.wait_for(client.disconnect(), self.settings.connect_timeout_s)


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    # BlueZ's own words (org.bluez.Error.InProgress, NotConnected, Failed) are the useful part.
    return text if "org.bluez" in text else f"{type(exc).__name__}: {text}"
