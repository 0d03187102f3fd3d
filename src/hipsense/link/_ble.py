"""The BLE sensor link: bleak at the edge, the sans-I/O protocol inside.

One named task keeps the connection: an explicit loop that finds the sensor, connects,
sets it up as the protocol's section 7 says, watches for a lost link or a stalled
stream, and on any failure waits a capped, jittered backoff and starts again. The
notify callback only timestamps the bytes and puts them on a bounded queue; a second
task decodes and reassembles them. One reassembler lives as long as the link: after a
reconnect it asks a sensor that kept a backlog (protocol 1.1) to resume from the first
packet it missed, and whatever the sensor could not keep comes out as a `Gap`, never
hidden.
"""

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from bleak import BleakClient, BleakScanner
from bleak.backends.characteristic import BleakGATTCharacteristic
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData
from bleak.exc import BleakError

from hipsense.protocol import (
    BATTERY_SERVICE_UUID,
    CONTROL_POINT_CHAR_UUID,
    FIRMWARE_REVISION_CHAR_UUID,
    IMU_DATA_CHAR_UUID,
    MODEL_NUMBER_CHAR_UUID,
    SERVICE_UUID,
    STATUS_CHAR_UUID,
    ControlCommand,
    ControlResponse,
    ErrorFlag,
    PayloadKind,
    ProtocolError,
    SensorStatus,
    SetRanges,
    SetRate,
    StartStreaming,
    StopStreaming,
    StreamFormat,
    StreamReassembler,
    TimeSync,
    UnsupportedVersionError,
    decode_response,
    decode_status,
    encode_command,
    max_samples_per_packet,
)

from ._edge import (
    END_OF_STREAM,
    BleEdge,
    BleLinkError,
    SensorNotFoundError,
    backoff_s,
    bluetooth_missing,
    describe,
    find_sensor,
)
from ._telemetry import LinkTelemetry

__all__ = [
    "BleLink",
    "BleLinkError",
    "BleLinkSettings",
    "FoundSensor",
    "SensorCommandError",
    "SensorNotFoundError",
    "is_hipsense",
    "scan",
]

log = logging.getLogger("hipsense.link")

_NAME_PREFIX = "hipsense"


class SensorCommandError(BleLinkError):
    """The sensor refused a control point command, or did not answer it."""

    def __init__(self, command: str, result: str) -> None:
        super().__init__(f"control point {command}: expected SUCCESS, got {result}")
        self.command = command
        self.result = result


@dataclass(frozen=True)
class BleLinkSettings:
    """How the link streams and how patient it is."""

    rate_hz: int = 100
    accel_range_g: int = 8
    gyro_range_dps: int = 1000
    scan_timeout_s: float = 10.0
    connect_timeout_s: float = 10.0
    command_timeout_s: float = 3.0
    stall_intervals: float = 5.0
    """The watchdog fires after this many expected packet intervals without one."""
    stall_min_s: float = 1.0
    backoff_base_s: float = 0.25
    backoff_max_s: float = 10.0
    queue_size: int = 4096
    """Notifications waiting to be decoded; beyond it they are dropped and counted."""


@dataclass(frozen=True)
class FoundSensor:
    """A sensor seen by `scan`, of one of the kinds hipsense reads."""

    address: str
    name: str
    rssi_dbm: int
    battery_pct: int | None
    device: BLEDevice
    kind: str = "hipsense"
    """The sensor kind (`hipsense.sensor_kinds`) its advertisement says it is."""


def is_hipsense(adv: AdvertisementData) -> bool:
    """An advertisement of a native hipsense sensor: its service, or a `hipsense` name."""
    uuids = [u.lower() for u in adv.service_uuids]
    return SERVICE_UUID in uuids or (adv.local_name or "").startswith(_NAME_PREFIX)


def _battery(adv: AdvertisementData) -> int | None:
    data = adv.service_data.get(BATTERY_SERVICE_UUID)
    return data[0] if data and data[0] <= 100 else None


Classifier = Callable[[AdvertisementData], bool]


async def scan(
    timeout_s: float = 5.0,
    *,
    adapter: str | None = None,
    kinds: Mapping[str, Classifier] | None = None,
) -> list[FoundSensor]:
    """Sensors of the `kinds` (name: is-it-one test; default every kind), strongest first.

    An advertisement is of the first kind whose test it passes.
    """
    if kinds is None:
        from hipsense.sensor_kinds import advertisement_classifiers

        kinds = advertisement_classifiers()
    kwargs: dict[str, Any] = {"adapter": adapter} if adapter else {}
    try:
        found = await BleakScanner.discover(timeout=timeout_s, return_adv=True, **kwargs)
    except (BleakError, OSError) as exc:
        why = bluetooth_missing(exc) or describe(exc)
        raise BleLinkError(f"scan: expected a working Bluetooth adapter, got {why}") from exc
    sensors = []
    for device, adv in found.values():
        kind = next((name for name, test in kinds.items() if test(adv)), None)
        if kind is None:
            continue
        sensors.append(
            FoundSensor(
                address=device.address,
                name=adv.local_name or device.name or "",
                rssi_dbm=adv.rssi,
                battery_pct=_battery(adv),
                device=device,
                kind=kind,
            )
        )
    return sorted(sensors, key=lambda s: -s.rssi_dbm)


class _LinkRestartError(Exception):
    """The connection must start over (lost link, stall); not a failure of the sensor."""


class BleLink(BleEdge):
    """`async with BleLink("C0:FF:EE:00:48:53") as link:` then `async for item in link.items():`.

    `target` is an address, or a name (or name prefix) the sensor advertises.
    """

    kind = "ble"

    def __init__(
        self,
        target: str,
        *,
        settings: BleLinkSettings | None = None,
        sensor_id: str | None = None,
        adapter: str | None = None,
    ) -> None:
        self._edge_init(target)
        self.settings = settings if settings is not None else BleLinkSettings()
        s = self.settings
        self._fmt = StreamFormat(s.rate_hz, s.accel_range_g, s.gyro_range_dps)
        self._sensor_id = sensor_id or ("ble-" + target.replace(":", "").lower())[-16:]
        self._adapter = adapter
        self._reassembler = StreamReassembler(self._fmt)
        self._telemetry = LinkTelemetry(
            self._sensor_id, self._fmt.rate_hz, stream=self._reassembler.stats
        )
        self._rx: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue(s.queue_size)
        self._responses: asyncio.Queue[ControlResponse] = asyncio.Queue()
        self._device: BLEDevice | None = None
        self._last_rx_s = 0.0
        self._ever_connected = False
        self.att_payload: int | None = None
        """Negotiated ATT payload (MTU - 3) of the current or last connection."""
        self.firmware_version: str | None = None
        self.model: str | None = None

    # -- the notify callbacks: timestamp and enqueue, nothing else ------------------

    def _on_imu(self, _char: BleakGATTCharacteristic, data: bytearray) -> None:
        try:
            self._rx.put_nowait((time.monotonic(), bytes(data)))
        except asyncio.QueueFull:
            self._telemetry.queue_overflows += 1

    def _on_control(self, _char: BleakGATTCharacteristic, data: bytearray) -> None:
        try:
            self._responses.put_nowait(decode_response(data))
        except ProtocolError as exc:
            log.warning("ble %s: bad control point response: %s", self.target, exc)

    def _on_status(self, _char: BleakGATTCharacteristic, data: bytearray) -> None:
        with contextlib.suppress(ProtocolError):
            status = decode_status(data)
            if status.battery_pct is not None:
                self._telemetry.battery_pct = float(status.battery_pct)

    # -- the decoding task ----------------------------------------------------------

    async def _decode_loop(self) -> None:
        try:
            while True:
                try:
                    first = await asyncio.wait_for(self._rx.get(), 0.25)
                except TimeoutError:
                    if self._closing.is_set() and self._rx.empty():
                        break
                    # Packets held for reordering are released after their timeout.
                    for item in self._reassembler.poll(time.monotonic()):
                        await self._out.put(item)
                    continue
                batch = [first]
                while not self._rx.empty():
                    batch.append(self._rx.get_nowait())
                times = [t for t, _ in batch]
                self._count_arrivals(times)
                for item in self._reassembler.push_many([p for _, p in batch], times):
                    await self._out.put(item)
            for item in self._reassembler.flush():
                await self._out.put(item)
        except Exception as exc:  # any death of the task ends the link loudly
            self._die("decode", exc)
        finally:
            self._out.put_nowait(END_OF_STREAM)

    def _count_arrivals(self, times: list[float]) -> None:
        now = times[-1]
        self._last_rx_s = now
        self._telemetry.note_arrivals(times)

    # -- the connection task --------------------------------------------------------

    async def _connection_loop(self) -> None:
        attempt = 0
        try:
            while not self._closing.is_set():
                try:
                    await self._connect_once()
                    attempt = 0
                except _LinkRestartError as why:
                    log.info("ble %s: %s; reconnecting", self.target, why)
                    continue
                except (
                    BleakError,
                    TimeoutError,
                    EOFError,
                    OSError,
                    SensorCommandError,
                    SensorNotFoundError,  # out of range or switched off: it may come back
                ) as exc:
                    if self._closing.is_set():
                        break
                    if self._stops_for_good(exc):
                        break
                    attempt += 1
                    if isinstance(exc, SensorNotFoundError) or attempt % 5 == 0:
                        self._device = None  # look for it again: BlueZ's object may be stale
                    delay = backoff_s(
                        attempt, self.settings.backoff_base_s, self.settings.backoff_max_s
                    )
                    log.warning(
                        "ble %s: %s; retrying in %.2f s (attempt %d)",
                        self.target,
                        describe(exc),
                        delay,
                        attempt,
                    )
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._closing.wait(), delay)
        except (UnsupportedVersionError, ProtocolError) as exc:
            # Another protocol major version: retrying cannot help.
            self._fatal = BleLinkError(f"sensor {self.target!r}: {exc}")
            self._fatal.__cause__ = exc
            self._telemetry.error = str(exc)
            log.error("ble %s: %s", self.target, exc)
        except Exception as exc:  # any death of the task ends the link loudly
            self._die("connection", exc)
        finally:
            self._closing.set()

    async def _find(self) -> BLEDevice:
        if self._device is not None:
            return self._device

        def found(adv: AdvertisementData) -> None:
            # BlueZ reports RSSI from advertisements only, so the last scan's value.
            self._telemetry.rssi_dbm = float(adv.rssi)
            if (battery := _battery(adv)) is not None:
                self._telemetry.battery_pct = float(battery)

        self._device = await find_sensor(
            self.target,
            is_hipsense,
            timeout_s=self.settings.scan_timeout_s,
            adapter=self._adapter,
            what="the hipsense service",
            on_found=found,
        )
        return self._device

    async def _connect_once(self) -> None:
        device = await self._find()
        client = BleakClient(
            device,
            disconnected_callback=self._on_disconnected,
            timeout=self.settings.connect_timeout_s,
        )
        await client.connect()
        # Only now: a failed attempt's own disconnection (BlueZ reports one) must not be
        # taken for this connection's.
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

    async def _setup(self, client: BleakClient) -> None:
        """Section 7 of the protocol: read, check, configure, subscribe, start."""
        for uuid, attr in ((FIRMWARE_REVISION_CHAR_UUID, "firmware_version"),
                           (MODEL_NUMBER_CHAR_UUID, "model")):  # fmt: skip
            with contextlib.suppress(BleakError):
                value = await client.read_gatt_char(uuid)
                setattr(self, attr, bytes(value).decode(errors="replace"))
        status = decode_status(await client.read_gatt_char(STATUS_CHAR_UUID))
        # What this connection delivers is judged against the host time since the last
        # one. CLOCK_UNSYNCED still set after the TIME_SYNC of every connection means the
        # sensor has powered up since: its stream starts over.
        self._reassembler.reconnected(
            time.monotonic(),
            sensor_restarted=ErrorFlag.CLOCK_UNSYNCED in status.errors,
        )
        if status.battery_pct is not None:
            self._telemetry.battery_pct = float(status.battery_pct)
        imu = client.services.get_characteristic(IMU_DATA_CHAR_UUID)
        if imu is None:
            raise BleakError(f"expected the IMU data characteristic {IMU_DATA_CHAR_UUID}")
        self.att_payload = imu.max_write_without_response_size
        while not self._responses.empty():
            self._responses.get_nowait()
        await client.start_notify(CONTROL_POINT_CHAR_UUID, self._on_control)
        s = self.settings
        resume_seq = self._resume_seq(status)
        if resume_seq is None:
            await self._command(client, StopStreaming())
            await self._command(client, SetRate(s.rate_hz))
            await self._command(client, SetRanges(s.accel_range_g, s.gyro_range_dps))
        await self._command(client, TimeSync(secrets.randbits(32)))
        with contextlib.suppress(BleakError):
            await client.start_notify(STATUS_CHAR_UUID, self._on_status)
        await client.start_notify(IMU_DATA_CHAR_UUID, self._on_imu)
        self._last_rx_s = time.monotonic()
        await self._command(client, StartStreaming(PayloadKind.RAW, resume_seq))
        log.info(
            "ble %s: streaming %d Hz, ATT payload %d, firmware %s%s",
            self.target,
            s.rate_hz,
            self.att_payload,
            self.firmware_version,
            "" if resume_seq is None else f", resumed from packet {resume_seq}",
        )

    def _resume_seq(self, status: SensorStatus) -> int | None:
        """The packet to resume from, when the sensor kept this link's stream open."""
        seq = self._reassembler.resume_seq
        s = self.settings
        same = (status.rate_hz, status.accel_range_g, status.gyro_range_dps, status.kind) == (
            s.rate_hz,
            s.accel_range_g,
            s.gyro_range_dps,
            PayloadKind.RAW,
        )
        if seq is None or not status.streaming or status.backlog_packets == 0 or not same:
            return None
        return seq

    async def _command(self, client: BleakClient, cmd: ControlCommand) -> ControlResponse:
        name = type(cmd).__name__
        await client.write_gatt_char(CONTROL_POINT_CHAR_UUID, encode_command(cmd), response=True)
        try:
            resp = await asyncio.wait_for(self._responses.get(), self.settings.command_timeout_s)
        except TimeoutError:
            raise SensorCommandError(name, "no indication") from None
        if not resp.ok:
            raise SensorCommandError(name, resp.result.name)
        return resp

    def stall_timeout_s(self) -> float:
        """Silence after which the watchdog restarts the link."""
        att = self.att_payload or 20
        per_packet = max(1, max_samples_per_packet(PayloadKind.RAW, att)) / self._fmt.rate_hz
        return max(self.settings.stall_min_s, self.settings.stall_intervals * per_packet)

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
        """Stop streaming and unsubscribe when the link is up; always disconnect."""
        if client.is_connected and not self._lost.is_set():
            with contextlib.suppress(BleakError, TimeoutError, SensorCommandError, EOFError):
                await asyncio.wait_for(self._command(client, StopStreaming()), 2.0)
                await client.stop_notify(IMU_DATA_CHAR_UUID)
        with contextlib.suppress(BleakError, TimeoutError, EOFError, OSError):
            await asyncio.wait_for(client.disconnect(), self.settings.connect_timeout_s)
