"""An emulated WitMotion BLE 5.0 unit (BWT901BLECL5.0), built from the documented layout.

GATT: the vendor service ffe5 (UUID base ...9a34fb) with notify ffe4 and write ffe9.
Like the real unit it streams 0x55 0x61 records as soon as notifications are on, at
the rate it has (10 Hz out of the box), and answers FF AA commands on ffe9: an unlock
(FF AA 69 88 B5) opens register writes for a while, FF AA 03 RR 00 sets the rate,
FF AA 00 00 00 saves it, FF AA 27 RR 00 reads registers (a 0x55 0x71 record comes back
on ffe4; 0x64 is the battery in 1/100 V). A rate write without an unlock is ignored.

The samples are the native emulated firmware's simulated clamshells (`sensor_source`),
played from the start when notifications start, at the sensor's ranges (16 g and
2000 deg/s, so the counts are the records' counts). Real units deliver less than their
configured rate; `shortfall` (default 3 %) does the same. Angles are the tilt of the
accelerometer (roll, pitch; yaw 0): hipsense does not use them.
"""

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

import numpy as np
from dbus_fast.aio import MessageBus
from dbus_fast.errors import DBusError
from numpy.typing import NDArray

from hipsense.witmotion import (
    NOTIFY_CHAR_UUID,
    RATE_CODES,
    REG_BATTERY,
    REG_RATE,
    SERVICE_UUID,
    WRITE_CHAR_UUID,
    WitMotionProtocolError,
    decode_command,
    encode_register_reply,
    encode_samples,
    rate_hz_of_code,
)

from ._bluez import Characteristic, Device, GattService
from ._emulator import ADAPTER_PATH
from ._firmware import sensor_source

__all__ = ["WitMotionCounts", "WitMotionFirmware", "WitMotionSensor"]

log = logging.getLogger("hipsense_sim.bluez.witmotion")

_TICK_S: Final = 0.005
_CONNECT_DELAY_S: Final = 0.05
_UNREACHABLE_CONNECT_S: Final = 1.0
_UNLOCK_S: Final = 10.0
"""How long an unlock keeps register writes open (an assumption: the sources only say
to unlock before a write)."""
_REG_UNLOCK: Final = 0x69
_UNLOCK_KEY: Final = 0xB588
_REG_SAVE: Final = 0x00
_REG_READ: Final = 0x27
_JUNK: Final = bytes(range(0x20, 0x34))
"""An injected malformed notification: 20 bytes that are not a record."""


@dataclass
class WitMotionCounts:
    """What the emulated unit did, for comparison with the host's telemetry."""

    packets_sent: int = 0
    """Notifications sent."""
    samples_sent: int = 0
    lost_packets: int = 0
    """Records taken but never sent (injected loss)."""
    duplicates: int = 0
    malformed: int = 0
    link_drops: int = 0
    stalls: int = 0
    rate_hz: int = 10
    saved_rate_hz: int = 10
    rate_changes: int = 0
    saves: int = 0
    ignored_writes: int = 0
    """Register writes without an unlock, or of a value the unit does not take."""
    register_reads: int = 0
    replayed: int = 0
    """Always 0: the unit keeps nothing for a reconnection."""


def _source(seed: int, rate_hz: int, reps: int) -> NDArray[np.int16]:
    """(n, 6) counts at `rate_hz`: the native source, decimated for 10 and 20 Hz."""
    src: NDArray[np.int16]
    if rate_hz in (50, 100, 200):
        src = sensor_source(seed, rate_hz, 16, 2000, reps)
    else:
        src = sensor_source(seed, 100, 16, 2000, reps)[:: 100 // rate_hz]
    return src


def _angles(acc: NDArray[np.int16]) -> NDArray[np.int16]:
    a = acc.astype(np.float64)
    roll = np.arctan2(a[:, 1], a[:, 2])
    pitch = np.arctan2(-a[:, 0], np.hypot(a[:, 1], a[:, 2]))
    deg = np.degrees(np.stack([roll, pitch, np.zeros_like(roll)], axis=1))
    counts: NDArray[np.int16] = np.clip(np.round(deg * 32768.0 / 180.0), -32768, 32767).astype(
        np.int16
    )
    return counts


@dataclass
class WitMotionFirmware:
    """The unit's state; times come from the host's monotonic clock."""

    seed: int = 0
    reps: int = 8
    shortfall: float = 0.03
    """Share of the configured rate the unit fails to deliver."""
    battery_cv: int = 395
    """Battery voltage in 1/100 V (3.95 V: 90 % by WitMotion's table)."""
    records_per_notification: int = 1
    counts: WitMotionCounts = field(default_factory=WitMotionCounts)
    backlog_packets: int = 0
    """Kept for the emulator's SetBacklog; a WitMotion keeps nothing."""
    rate_hz: int = 10
    _unlocked_until_s: float = 0.0
    _stall_until_s: float = 0.0
    _streaming: bool = False
    _base_s: float = 0.0
    _base_pos: float = 0.0
    _sent_since_base: int = 0
    _lose: int = 0
    _duplicate: int = 0
    _malformed: int = 0
    replies: list[bytes] = field(default_factory=list)

    @property
    def delivered_hz(self) -> float:
        """What the unit really sends at its rate."""
        return self.rate_hz * (1.0 - self.shortfall)

    def start(self) -> None:
        """Notifications on: the simulated session plays from its start."""
        self._streaming = True
        self._base_s = time.monotonic()
        self._base_pos = 0.0
        self._sent_since_base = 0

    def stop(self) -> None:
        """Notifications off (or the link is gone)."""
        self._streaming = False

    def _position(self) -> float:
        return self._base_pos + self._sent_since_base

    def _set_rate(self, rate_hz: int) -> None:
        # The wearer's movement goes on in time: the position scales with the rate.
        pos = self._position() * rate_hz / self.rate_hz
        self.rate_hz = rate_hz
        self.counts.rate_hz = rate_hz
        self.counts.rate_changes += 1
        self._base_s = time.monotonic()
        self._base_pos = pos
        self._sent_since_base = 0

    def command(self, data: bytes) -> None:
        """A write to ffe9."""
        try:
            register, value = decode_command(data)
        except WitMotionProtocolError as exc:
            log.info("witmotion: ignored write: %s", exc)
            self.counts.ignored_writes += 1
            return
        now = time.monotonic()
        if register == _REG_READ:
            self.counts.register_reads += 1
            self.replies.append(self._registers(value & 0xFF))
        elif register == _REG_UNLOCK and value == _UNLOCK_KEY:
            self._unlocked_until_s = now + _UNLOCK_S
        elif now >= self._unlocked_until_s:
            self.counts.ignored_writes += 1
        elif register == REG_RATE:
            try:
                rate = rate_hz_of_code(value)
            except WitMotionProtocolError:
                self.counts.ignored_writes += 1
                return
            if rate != self.rate_hz:
                self._set_rate(rate)
        elif register == _REG_SAVE and value == 0:
            self.counts.saves += 1
            self.counts.saved_rate_hz = self.rate_hz
        else:
            self.counts.ignored_writes += 1

    def _registers(self, first: int) -> bytes:
        regs = {REG_RATE: RATE_CODES[self.rate_hz], REG_BATTERY: self.battery_cv}
        return encode_register_reply(first, tuple(regs.get(first + i, 0) for i in range(8)))

    def power_cycle(self) -> None:
        """Off and on: an unsaved rate is forgotten."""
        self.rate_hz = self.counts.rate_hz = self.counts.saved_rate_hz
        self._streaming = False

    def inject(self, *, lose: int = 0, duplicate: int = 0, malformed: int = 0) -> None:
        """Lose, duplicate or garble the next records."""
        self._lose += lose
        self._duplicate += duplicate
        self._malformed += malformed

    def stall(self, seconds: float) -> None:
        """Connected, but nothing is sent (the samples of the time are gone)."""
        self._stall_until_s = time.monotonic() + seconds
        self.counts.stalls += 1

    def due(self) -> list[bytes]:
        """Notifications due now: register replies first, then the records taken."""
        out, self.replies = self.replies, []
        if not self._streaming:
            return out
        now = time.monotonic()
        n = int((now - self._base_s) * self.delivered_hz) - self._sent_since_base
        if n <= 0:
            return out
        start = self._position()
        self._sent_since_base += n
        if now < self._stall_until_s:
            return out
        src = _source(self.seed, self.rate_hz, self.reps)
        k = (np.arange(n) + int(start)) % src.shape[0]
        raw = src[k]
        records = encode_samples(raw[:, :3], raw[:, 3:], _angles(raw[:, :3]))
        per = max(1, self.records_per_notification) * 20
        for i in range(0, len(records), per):
            chunk = records[i : i + per]
            if self._lose > 0:
                self._lose -= 1
                self.counts.lost_packets += len(chunk) // 20
                continue
            out.append(chunk)
            self.counts.samples_sent += len(chunk) // 20
            if self._duplicate > 0:
                self._duplicate -= 1
                self.counts.duplicates += 1
                out.append(chunk)
            if self._malformed > 0:
                self._malformed -= 1
                self.counts.malformed += 1
                out.append(_JUNK)
        return out


class WitMotionSensor:
    """The unit on the emulated BlueZ: Device1, the ffe5 service, the firmware."""

    def __init__(
        self,
        bus: MessageBus,
        address: str,
        name: str,
        *,
        mtu: int,
        seed: int,
        reps: int = 8,
        shortfall: float = 0.03,
        rate_hz: int = 10,
    ) -> None:
        self.bus = bus
        self.address = address
        self.name = name
        self.path = f"{ADAPTER_PATH}/dev_{address.replace(':', '_')}"
        self.firmware = WitMotionFirmware(seed=seed, reps=reps, shortfall=shortfall)
        fw = self.firmware
        fw.rate_hz = fw.counts.rate_hz = fw.counts.saved_rate_hz = rate_hz
        self.reachable_at_s = 0.0
        self.exported = False
        self._gatt_exported = False
        # Only the name is advertised: the WitMotion SDK finds the units by it.
        self.device = Device(
            address=address,
            name=name,
            adapter_path=ADAPTER_PATH,
            service_uuids=[],
            connect=self._on_connect,
            disconnect=self._on_disconnect,
        )
        connected: Callable[[], bool] = lambda: self.device.connected  # noqa: E731
        svc = f"{self.path}/service000b"
        self.services = {svc: GattService(SERVICE_UUID, self.path)}
        self.notify_char = Characteristic(
            uuid=NOTIFY_CHAR_UUID, service_path=svc, flags=["notify"], mtu=mtu,
            is_connected=connected,
        )  # fmt: skip
        self.write_char = Characteristic(
            uuid=WRITE_CHAR_UUID, service_path=svc, flags=["write-without-response", "write"],
            mtu=mtu, write=self.firmware.command, is_connected=connected,
        )  # fmt: skip
        self.chars = {f"{svc}/char000c": self.write_char, f"{svc}/char000e": self.notify_char}

    @property
    def reachable(self) -> bool:
        """In range (not inside a DropLink outage)."""
        return time.monotonic() >= self.reachable_at_s

    def export(self) -> None:
        """Become known to BlueZ."""
        if not self.exported:
            self.bus.export(self.path, self.device)
            self.exported = True

    async def _on_connect(self) -> None:
        if self.device.connected:
            raise DBusError("org.bluez.Error.AlreadyConnected", "Already Connected")
        if not self.reachable:
            await asyncio.sleep(_UNREACHABLE_CONNECT_S)
            raise DBusError("org.bluez.Error.Failed", "le-connection-abort-by-local")
        await asyncio.sleep(_CONNECT_DELAY_S)
        self.device.set_state(connected=True, services_resolved=False)
        if not self._gatt_exported:
            for path, service in self.services.items():
                self.bus.export(path, service)
            for path, char in self.chars.items():
                self.bus.export(path, char)
            self._gatt_exported = True
        await asyncio.sleep(_CONNECT_DELAY_S)
        self.device.set_state(connected=True, services_resolved=True)

    async def _on_disconnect(self) -> None:
        if not self.device.connected:
            raise DBusError("org.bluez.Error.NotConnected", "Not Connected")
        await asyncio.sleep(_CONNECT_DELAY_S / 2)
        self._drop()

    def _drop(self) -> None:
        self.firmware.stop()
        for char in self.chars.values():
            char.stop_notifying()
        self.device.set_state(connected=False, services_resolved=False)

    def drop_link(self, down_s: float) -> None:
        """The radio link is gone for `down_s` seconds."""
        self.firmware.counts.link_drops += 1
        self.reachable_at_s = time.monotonic() + down_s
        if self.device.connected:
            self._drop()

    def burst(self, packets: int) -> None:
        """Not a WitMotion behaviour: it sends as it samples."""
        raise DBusError("org.hipsense.Error.NotSupported", "a WitMotion unit does not burst")

    async def stream(self) -> None:
        """Notify what falls due, for as long as the emulator runs."""
        was_on = False
        while True:
            await asyncio.sleep(_TICK_S)
            on = self.device.connected and self.notify_char.notifying
            if on and not was_on:
                self.firmware.start()
            elif was_on and not on:
                self.firmware.stop()
            was_on = on
            if not on:
                self.firmware.replies.clear()
                continue
            out = self.firmware.due()
            for value in out:
                self.notify_char.notify(value)
            self.firmware.counts.packets_sent += len(out)
            if len(out) > 16:  # a long burst can overflow the bus socket
                await asyncio.sleep(0.001)
