"""The WitMotion BLE 5.0 link: bleak at the edge, `_codec` and `_timing` inside.

Same shape as the native `BleLink`: one named task keeps the connection (find, connect,
subscribe, set the rate, read the battery, watch for a lost link or a stalled stream,
back off and start again), the notify callback only timestamps the bytes, and a second
named task decodes them. The sensor streams as soon as notifications are on, at the rate
it last saved; the link unlocks, sets the configured rate and saves it at every
connection (a unit that was power-cycled forgets an unsaved rate). The records carry no
time and no counter, so nothing tells what was lost while the link was down: after a
reconnect the first item is a `Gap` sized by the host clock and the delivered rate.
"""

import asyncio
import contextlib
import enum
import logging
import time
from dataclasses import dataclass
from typing import Final

from bleak import BleakClient
from bleak.backends.characteristic import BleakGATTCharacteristic
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData
from bleak.exc import BleakError

from hipsense.link import (
    END_OF_STREAM,
    BleEdge,
    BleLinkError,
    LinkTelemetry,
    backoff_s,
    describe,
    find_sensor,
)
from hipsense.protocol import (
    Gap,
    MalformedPacket,
    PayloadKind,
    ReassemblyStats,
    SampleBlock,
    StreamFormat,
)

from ._codec import (
    ACCEL_FULL_SCALE_G,
    GYRO_FULL_SCALE_DPS,
    NOTIFY_CHAR_UUID,
    REG_BATTERY,
    REG_RATE,
    SERVICE_UUID,
    WRITE_CHAR_UUID,
    RegisterReply,
    WitMotionDecoder,
    WitMotionProtocolError,
    battery_pct,
    encode_read_register,
    encode_save,
    encode_set_rate,
    encode_unlock,
    rate_hz_of_code,
)
from ._timing import ArrivalTimer

__all__ = ["WitMotionLink", "WitMotionSettings", "is_witmotion"]

log = logging.getLogger("hipsense.witmotion")

STREAM_RATES_HZ: Final = (50, 100, 200)
"""Rates the link streams at: those the motion core is set up for (`StreamFormat`) that
the sensor offers too. The codec and the emulator also know 10 and 20 Hz."""
_NAME_PREFIXES: Final = ("WT", "BWT")
_COMMAND_GAP_S: Final = 0.1
"""Between configuration writes: WitMotion's own SDK waits 100 ms after an unlock and a write."""


def is_witmotion(adv: AdvertisementData) -> bool:
    """An advertisement of a WitMotion BLE 5.0 sensor: its vendor service, or a WT name.

    The units advertise names such as WT901BLE68; WitMotion's SDK (`test.py`) picks them
    by "WT" in the name, here at its start, so fewer other devices pass.
    """
    uuids = [u.lower() for u in adv.service_uuids]
    return SERVICE_UUID in uuids or (adv.local_name or "").startswith(_NAME_PREFIXES)


@dataclass(frozen=True)
class WitMotionSettings:
    """How the link streams and how patient it is."""

    rate_hz: int = 100
    save_rate: bool = True
    """Save the rate after setting it (FF AA 00 00 00), so it survives a power cycle."""
    scan_timeout_s: float = 10.0
    connect_timeout_s: float = 10.0
    reply_timeout_s: float = 2.0
    stall_periods: float = 25.0
    """The watchdog fires after this many sample periods without a notification."""
    stall_min_s: float = 1.0
    battery_every_s: float = 60.0
    backoff_base_s: float = 0.25
    backoff_max_s: float = 10.0
    queue_size: int = 4096

    def __post_init__(self) -> None:
        if self.rate_hz not in STREAM_RATES_HZ:
            options = ", ".join(str(r) for r in STREAM_RATES_HZ)
            raise ValueError(f"rate_hz: expected one of {options}, got {self.rate_hz}")


class _LinkRestartError(Exception):
    """The connection must start over (lost link, stall)."""


class _Mark(enum.Enum):
    """Put on the receive queue between notifications, in their order."""

    CONNECTING = enum.auto()
    """A connection starts: what follows comes after a gap, and at the saved rate."""
    CONFIGURED = enum.auto()
    """The rate is set: samples from here on are at the configured rate."""


class WitMotionLink(BleEdge):
    """`async with WitMotionLink("DF:BE:12:20:70:8C") as link:`, then iterate `link.items()`.

    `target` is an address, or a name (prefix) the sensor advertises. Items are what the
    native link yields for raw payloads: `SampleBlock`s of kind RAW in m/s² and rad/s
    (no quaternion: the sensor's own angles are not used), `Gap`s and `MalformedPacket`s.
    Sample times are host-derived (`telemetry.timing == "host"`).
    """

    kind = "witmotion"

    def __init__(
        self,
        target: str,
        *,
        settings: WitMotionSettings | None = None,
        sensor_id: str | None = None,
        adapter: str | None = None,
    ) -> None:
        self._edge_init(target)
        self.settings = settings if settings is not None else WitMotionSettings()
        s = self.settings
        self._fmt = StreamFormat(s.rate_hz, int(ACCEL_FULL_SCALE_G), int(GYRO_FULL_SCALE_DPS))
        self._sensor_id = sensor_id or ("wit-" + target.replace(":", "").lower())[-16:]
        self._adapter = adapter
        # A record is the stream's "packet": the counts mean what the native link's do.
        self._stats = ReassemblyStats()
        self._telemetry = LinkTelemetry(
            self._sensor_id, s.rate_hz, kind="witmotion", timing="host", stream=self._stats
        )
        self._decoder = WitMotionDecoder()
        self._timer = ArrivalTimer(s.rate_hz)
        self._records = 0
        self._rx: asyncio.Queue[tuple[float, bytes | _Mark]] = asyncio.Queue(s.queue_size)
        self._replies: asyncio.Queue[RegisterReply] = asyncio.Queue()
        self._device: BLEDevice | None = None
        self._last_rx_s = 0.0
        self._ever_connected = False
        self.sensor_rate_hz: int | None = None
        """The rate register read back after setting it (None if it did not answer)."""

    # -- callbacks: timestamp and enqueue -------------------------------------------

    def _on_data(self, _char: BleakGATTCharacteristic, data: bytearray) -> None:
        try:
            self._rx.put_nowait((time.monotonic(), bytes(data)))
        except asyncio.QueueFull:
            self._telemetry.queue_overflows += 1

    # -- the decoding task ----------------------------------------------------------

    async def _decode_loop(self) -> None:
        after_gap = False
        # Until the rate is set, the unit streams at whatever rate it saved: those samples
        # would be timed at the wrong period, so they are dropped (a fraction of a second).
        configured = False
        try:
            while True:
                try:
                    t, data = await asyncio.wait_for(self._rx.get(), 0.25)
                except TimeoutError:
                    if self._closing.is_set() and self._rx.empty():
                        break
                    continue
                if data is _Mark.CONNECTING:
                    configured = False
                    after_gap = self._timer.samples > 0
                    continue
                if data is _Mark.CONFIGURED:
                    configured = True
                    self._decoder.reset()
                    continue
                assert isinstance(data, bytes)
                self._last_rx_s = t
                self._telemetry.note_arrivals([t])
                try:
                    note = self._decoder.push(data)
                except WitMotionProtocolError as exc:
                    self._stats.packets += 1
                    self._stats.malformed += 1
                    await self._out.put(MalformedPacket(t, exc))
                    continue
                for reply in note.replies:
                    self._replies.put_nowait(reply)
                n = note.samples.count
                if n == 0 or not configured:
                    continue
                if after_gap:
                    after_gap = False
                    await self._out.put(self._gap(t, n))
                self._stats.packets += n
                self._stats.samples += n
                t_us, t_host = self._timer.stamp(n, t)
                self._telemetry.delivered_rate_hz = self._timer.delivered_rate_hz
                first = self._records
                self._records += n
                await self._out.put(
                    SampleBlock(
                        seq_first=first,
                        seq_last=self._records - 1,
                        kind=PayloadKind.RAW,
                        t_sensor_us=t_us,
                        t_host_s=t_host,
                        acc_m_s2=note.samples.acc_m_s2,
                        gyr_rad_s=note.samples.gyr_rad_s,
                        quat=None,
                    )
                )
        except Exception as exc:  # any death of the task ends the link loudly
            self._die("decode", exc)
        finally:
            self._out.put_nowait(END_OF_STREAM)

    def _gap(self, arrival_s: float, n: int) -> Gap:
        """The time without a link, up to the first sample of this notification."""
        start_host = self._timer.last_host_s
        start_us = (self._timer.samples - 1) * self._timer.period_us
        rate = self._timer.delivered_rate_hz or float(self.settings.rate_hz)
        first_host = arrival_s - (n - 1) / rate
        lost = self._timer.skip(first_host - start_host)
        self._stats.lost_packets += lost
        self._stats.lost_samples += lost
        self._stats.gaps += 1
        self._stats.restarts += 1
        return Gap(
            reason="restart",  # no counter: the sensor's stream is new as far as we can tell
            lost_packets=lost,
            lost_samples=lost,
            start_host_s=start_host,
            end_host_s=first_host,
            start_sensor_us=start_us,
            end_sensor_us=self._timer.samples * self._timer.period_us,
        )

    # -- the connection task --------------------------------------------------------

    async def _connection_loop(self) -> None:
        attempt = 0
        try:
            while not self._closing.is_set():
                try:
                    await self._connect_once()
                    attempt = 0
                except _LinkRestartError as why:
                    log.info("witmotion %s: %s; reconnecting", self.target, why)
                    continue
                except (BleakError, TimeoutError, EOFError, OSError, BleLinkError) as exc:
                    if self._closing.is_set():
                        break
                    if self._stops_for_good(exc):
                        break
                    attempt += 1
                    if attempt % 5 == 0 or not self._ever_connected:
                        self._device = None  # look for it again: BlueZ's object may be stale
                    delay = backoff_s(
                        attempt, self.settings.backoff_base_s, self.settings.backoff_max_s
                    )
                    log.warning(
                        "witmotion %s: %s; retrying in %.2f s (attempt %d)",
                        self.target,
                        describe(exc),
                        delay,
                        attempt,
                    )
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._closing.wait(), delay)
        except Exception as exc:  # any death of the task ends the link loudly
            self._die("connection", exc)
        finally:
            self._closing.set()

    async def _find(self) -> BLEDevice:
        if self._device is None:

            def found(adv: AdvertisementData) -> None:
                self._telemetry.rssi_dbm = float(adv.rssi)

            self._device = await find_sensor(
                self.target,
                is_witmotion,
                timeout_s=self.settings.scan_timeout_s,
                adapter=self._adapter,
                what=f"the WitMotion service {SERVICE_UUID} or a name starting with WT",
                on_found=found,
            )
        return self._device

    async def _connect_once(self) -> None:
        device = await self._find()
        self._lost.clear()
        client = BleakClient(
            device,
            disconnected_callback=self._on_disconnected,
            timeout=self.settings.connect_timeout_s,
        )
        await client.connect()
        try:
            await self._setup(client)
            if self._ever_connected:
                self._telemetry.reconnects += 1
            self._ever_connected = True
            self._telemetry.connected = True
            await self._watch(client)
        finally:
            self._telemetry.connected = False
            with contextlib.suppress(BleakError, TimeoutError, EOFError, OSError):
                await asyncio.wait_for(client.disconnect(), self.settings.connect_timeout_s)

    async def _setup(self, client: BleakClient) -> None:
        for uuid in (NOTIFY_CHAR_UUID, WRITE_CHAR_UUID):
            if client.services.get_characteristic(uuid) is None:
                found = sorted(c.uuid for svc in client.services for c in svc.characteristics)
                raise BleLinkError(
                    f"sensor {self.target!r}: expected the WitMotion characteristic {uuid} "
                    f"(UUID base ...9a34fb), found {', '.join(found) or 'none'}"
                )
        while not self._replies.empty():
            self._replies.get_nowait()
        await self._rx.put((time.monotonic(), _Mark.CONNECTING))
        self._last_rx_s = time.monotonic()
        # Streaming starts here, at the saved rate; the new rate follows the writes.
        await client.start_notify(NOTIFY_CHAR_UUID, self._on_data)
        s = self.settings
        await self._write(client, encode_unlock())
        await self._write(client, encode_set_rate(s.rate_hz))
        if s.save_rate:
            await self._write(client, encode_save())
        await self._rx.put((time.monotonic(), _Mark.CONFIGURED))
        rate = await self._read(client, REG_RATE)
        if rate is not None:
            with contextlib.suppress(WitMotionProtocolError):
                self.sensor_rate_hz = rate_hz_of_code(rate.values[0])
            if self.sensor_rate_hz != s.rate_hz:
                log.warning(
                    "witmotion %s: rate register: expected %d Hz, got code 0x%02x",
                    self.target,
                    s.rate_hz,
                    rate.values[0],
                )
        await self._read_battery(client)
        log.info(
            "witmotion %s: streaming, rate set to %d Hz (register says %s)",
            self.target,
            s.rate_hz,
            self.sensor_rate_hz,
        )

    async def _write(self, client: BleakClient, command: bytes) -> None:
        await client.write_gatt_char(WRITE_CHAR_UUID, command, response=True)
        await asyncio.sleep(_COMMAND_GAP_S)

    async def _read(self, client: BleakClient, register: int) -> RegisterReply | None:
        """Registers from `register` on; None when the sensor does not answer in time."""
        await client.write_gatt_char(WRITE_CHAR_UUID, encode_read_register(register), response=True)
        try:
            async with asyncio.timeout(self.settings.reply_timeout_s):
                while True:
                    reply = await self._replies.get()
                    if reply.first == register:
                        return reply
        except TimeoutError:
            log.warning("witmotion %s: no reply to reading register 0x%02x", self.target, register)
            return None

    async def _read_battery(self, client: BleakClient) -> None:
        reply = await self._read(client, REG_BATTERY)
        if reply is not None:
            try:
                self._telemetry.battery_pct = battery_pct(reply)
            except WitMotionProtocolError as exc:
                log.warning("witmotion %s: %s", self.target, exc)

    def stall_timeout_s(self) -> float:
        """Silence after which the watchdog restarts the link."""
        return max(self.settings.stall_min_s, self.settings.stall_periods / self._fmt.rate_hz)

    async def _watch(self, client: BleakClient) -> None:
        """Return when closing; raise `_LinkRestartError` when the link is lost or stalls."""
        limit = self.stall_timeout_s()
        next_battery_s = time.monotonic() + self.settings.battery_every_s
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
            if time.monotonic() >= next_battery_s:
                next_battery_s = time.monotonic() + self.settings.battery_every_s
                await self._read_battery(client)
                # Units deliver less than they are set to: say how much, now and then.
                delivered = self._telemetry.delivered_rate_hz
                if delivered is not None:
                    log.info(
                        "witmotion %s: delivering %.1f samples/s at %d Hz configured",
                        self.target,
                        delivered,
                        self.settings.rate_hz,
                    )
