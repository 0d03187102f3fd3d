"""An emulated Movella (Xsens) DOT in the BlueZ emulator: its GATT tree and behaviour.

What the DOT BLE Services Specification (XD0506P) describes and a host relies on: the
configuration service (device information, device control with the output rate, device
report), the measurement service (control: start/stop and payload mode; long, medium
and short payload notifications, one sample each), the battery service. Samples are the
same simulated clamshell session the native emulated firmware plays (`sensor_source`),
averaged over each output period as a DOT's strapdown integration does, played from the
first measurement on, stamped with the DOT's own microsecond clock. That clock starts
near its 2^32 wrap (as a DOT powered up 71 minutes ago), so every emulated session wraps
it within seconds.

Like a real DOT it stops measuring when the link drops and keeps no backlog. Faults
come through the emulator's `org.hipsense.Emulator1` interface like the native
sensor's: DropLink, Stall, Inject (loss only; a DOT has no sequence number to
duplicate against, and malformed bytes are sent as short notifications), Burst, Counts.
"""

import asyncio
import logging
import time
from functools import cache

import numpy as np
from dbus_fast import Variant
from dbus_fast.aio import MessageBus
from dbus_fast.constants import PropertyAccess
from dbus_fast.errors import DBusError
from dbus_fast.service import dbus_property
from numpy.typing import NDArray

from hipsense.movella_dot import (
    BATTERY_CHAR_UUID,
    BATTERY_SERVICE_UUID,
    CONFIGURATION_SERVICE_UUID,
    DEVICE_CONTROL_CHAR_UUID,
    DEVICE_INFO_CHAR_UUID,
    DEVICE_REPORT_CHAR_UUID,
    DOT_ACCEL_RANGE_G,
    DOT_GYRO_RANGE_DPS,
    LONG_PAYLOAD_CHAR_UUID,
    MEASUREMENT_CONTROL_CHAR_UUID,
    MEASUREMENT_SERVICE_UUID,
    MEDIUM_PAYLOAD_CHAR_UUID,
    OUTPUT_RATES_HZ,
    SHORT_PAYLOAD_CHAR_UUID,
    VISIT_OUTPUT_RATE,
    XSENS_COMPANY_ID,
    DeviceControl,
    DotBattery,
    DotProtocolError,
    PayloadMode,
    decode_device_control,
    decode_measurement_control,
    encode_battery,
    encode_device_control,
    encode_measurement,
)
from hipsense.protocol import accel_lsb_m_s2, gyro_lsb_rad_s

from ._bluez import Characteristic, DBusManufacturerData, Device, GattService
from ._firmware import FaultCounts, sensor_source

__all__ = ["EmulatedDot", "EmulatedDotFirmware", "dot_session", "dot_values"]

log = logging.getLogger("hipsense_sim.bluez")

_ADAPTER_PATH = "/org/bluez/hci0"
_CONNECT_DELAY_S = 0.05
_UNREACHABLE_CONNECT_S = 1.0
_TICK_S = 0.005
_SIGNALS_PER_PAUSE = 16
_SOURCE_RATE_HZ = 100
_WRAP = 1 << 32
CLOCK_START_US = _WRAP - 4_000_000
"""The DOT's clock at emulator start: 4 s before it wraps."""
_MALFORMED = bytes(7)
"""What an injected malformed notification is: too short for any payload."""


@cache
def dot_session(
    seed: int, reps: int = 8
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """(t_s, acc_m_s2, gyr_rad_s) of the session the emulated DOT plays in a loop.

    The native emulated sensor's source at 100 Hz and the DOT's ranges, in SI units; the
    DOT samples it wherever its output rate falls.
    """
    raw = sensor_source(seed, _SOURCE_RATE_HZ, DOT_ACCEL_RANGE_G, DOT_GYRO_RANGE_DPS, reps)
    t = np.arange(raw.shape[0], dtype=np.float64) / _SOURCE_RATE_HZ
    acc = raw[:, :3].astype(np.float64) * accel_lsb_m_s2(DOT_ACCEL_RANGE_G)
    gyr = raw[:, 3:].astype(np.float64) * gyro_lsb_rad_s(DOT_GYRO_RANGE_DPS)
    return t, acc, gyr


_SUBSAMPLES = 8


def dot_values(
    t_s: NDArray[np.float64], rate_hz: int, seed: int = 0, reps: int = 8
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Acceleration and angular velocity a DOT reports at session times `t_s`.

    A DOT's rate quantities come from its strapdown integration: the velocity and
    orientation increments over each output period, divided by it. So each value is
    the session's mean over the period that ends at the sample, not a point sample.
    """
    src_t, acc, gyr = dot_session(seed, reps)
    duration = src_t[-1] + 1.0 / _SOURCE_RATE_HZ
    offsets = (np.arange(_SUBSAMPLES) + 0.5 - _SUBSAMPLES) / (_SUBSAMPLES * rate_hz)
    tt = np.mod(np.asarray(t_s, dtype=np.float64)[:, None] + offsets, duration)
    a = np.stack([np.interp(tt, src_t, acc[:, i]).mean(axis=1) for i in range(3)], axis=1)
    g = np.stack([np.interp(tt, src_t, gyr[:, i]).mean(axis=1) for i in range(3)], axis=1)
    return a, g


class EmulatedDotFirmware:
    """A DOT's behaviour without the radio; times come from its own monotonic clock."""

    def __init__(self, *, seed: int = 0, battery_pct: int = 87, reps: int = 8) -> None:
        self.seed = seed
        self.reps = reps
        """Clamshells in the session it plays in a loop."""
        self.battery = DotBattery(battery_pct, charging=False)
        self.firmware = (2, 6, 0)
        self.rate_hz = 60
        self.mode = PayloadMode.RATE_QUANTITIES
        self.streaming = False
        self.tag = "Xsens DOT"
        self.counts = FaultCounts()
        self.backlog_packets = 0
        """A DOT keeps nothing for a resume; SetBacklog is taken and has no effect."""
        self._boot_s = time.monotonic()
        self._session_start_us: int | None = None
        self._next_k = 0
        self._lose = 0
        self._malformed = 0
        self._stall_until_s = 0.0

    def now_us(self) -> int:
        """The DOT's clock, unwrapped: microseconds since power-up."""
        return CLOCK_START_US + int((time.monotonic() - self._boot_s) * 1e6)

    def _sample_us(self, k: NDArray[np.int64] | int) -> NDArray[np.int64]:
        return np.asarray(np.round(np.asarray(k) * 1e6 / self.rate_hz), dtype=np.int64)

    def device_info(self) -> bytes:
        """The device information characteristic (address, firmware, build date, serial)."""
        return (
            bytes.fromhex("534800cd22d4")  # D4:22:CD:00:48:53, least significant first
            + bytes(self.firmware)
            + (2023).to_bytes(2, "little") + bytes((5, 1, 12, 0, 0))
            + (7).to_bytes(4, "little")
            + (0x0000D422CD004853).to_bytes(8, "little")
            + b"XS-T02"
        )  # fmt: skip

    def device_control(self) -> bytes:
        """The device control characteristic's value now."""
        return encode_device_control(DeviceControl(0, 0, 0, bytes(4), self.tag, self.rate_hz, 0))

    def write_device_control(self, data: bytes) -> None:
        """Apply the fields a write's visit index names (only the output rate here)."""
        try:
            dc = decode_device_control(data)
        except DotProtocolError as exc:
            log.warning("emulated DOT: bad device control write: %s", exc)
            return
        # A rate not offered, or a change while measuring, is not taken; the host sees
        # so when it reads the characteristic back.
        rate_ok = dc.output_rate_hz in OUTPUT_RATES_HZ and not self.streaming
        if dc.visit_index & VISIT_OUTPUT_RATE and rate_ok:
            self.rate_hz = dc.output_rate_hz

    def measurement_control(self) -> bytes:
        """The measurement control characteristic's value now."""
        return bytes((1, int(self.streaming), int(self.mode)))

    def write_measurement_control(self, data: bytes) -> None:
        """Start or stop real-time streaming in a payload mode."""
        try:
            ctl = decode_measurement_control(data)
            mode = PayloadMode(ctl.mode)
        except (DotProtocolError, ValueError) as exc:
            log.warning("emulated DOT: bad measurement control write: %s", exc)
            return
        if ctl.streaming:
            self.mode = mode
            self._start()
        else:
            self.streaming = False

    def _start(self) -> None:
        # Streaming begins with the next sample on the output-rate grid of its clock; the
        # session with the first sample ever sent, so a host can look each one up.
        self._next_k = int(self.now_us() * self.rate_hz // 1_000_000) + 1
        if self._session_start_us is None:
            self._session_start_us = int(self._sample_us(self._next_k))
        self.streaming = True

    def link_lost(self) -> None:
        """A DOT stops measuring when its link drops."""
        self.streaming = False

    def inject(self, *, lose: int = 0, duplicate: int = 0, malformed: int = 0) -> None:
        """Lose (or garble) the next notifications; duplicates are not emulated."""
        del duplicate
        self._lose += lose
        self._malformed += malformed

    def stall(self, seconds: float) -> None:
        """Stay connected but send nothing."""
        self._stall_until_s = time.monotonic() + seconds
        self.counts.stalls += 1

    def due(self) -> list[bytes]:
        """Notifications of the samples that fell due since the last call."""
        if not self.streaming or self._session_start_us is None:
            return []
        k_now = int(self.now_us() * self.rate_hz // 1_000_000)
        if k_now < self._next_k:
            return []
        k = np.arange(self._next_k, k_now + 1, dtype=np.int64)
        self._next_k = k_now + 1
        if time.monotonic() < self._stall_until_s:
            return []
        t_us = self._sample_us(k)
        since_s = (t_us - self._session_start_us).astype(np.float64) * 1e-6
        acc, gyr = dot_values(since_s, self.rate_hz, self.seed, self.reps)
        quat = None
        if self.mode is PayloadMode.CUSTOM_MODE_5:
            # No sensor fusion here: the identity, so a host can tell the mode works.
            quat = np.tile([1.0, 0.0, 0.0, 0.0], (k.shape[0], 1))
        payloads = encode_measurement(self.mode, t_us, acc, gyr, quat)
        out: list[bytes] = []
        for p in payloads:
            if self._lose > 0:
                self._lose -= 1
                self.counts.lost_packets += 1
                continue
            out.append(p)
            self.counts.samples_sent += 1
            if self._malformed > 0:
                self._malformed -= 1
                self.counts.malformed += 1
                out.append(_MALFORMED)
        self.counts.packets_sent += len(out)
        return out


class _DotDevice(Device):
    """`org.bluez.Device1` of a DOT: the Xsens company id in its manufacturer data."""

    @dbus_property(access=PropertyAccess.READ)
    def ManufacturerData(self) -> DBusManufacturerData:  # noqa: N802
        return {XSENS_COMPANY_ID: Variant("ay", bytes(4))}


class EmulatedDot:
    """A DOT: its Device1 object, its GATT tree, its firmware, its link state.

    The same surface as `EmulatedSensor`, so the emulator and its fault interface
    drive either.
    """

    def __init__(
        self, bus: MessageBus, address: str, name: str, *, mtu: int, seed: int, reps: int = 8
    ) -> None:
        self.bus = bus
        self.address = address
        self.name = name
        self.path = f"{_ADAPTER_PATH}/dev_{address.replace(':', '_')}"
        self.firmware = EmulatedDotFirmware(seed=seed, reps=reps)
        self.mtu = mtu
        self.reachable_at_s = 0.0
        self.exported = False
        self._gatt_exported = False
        self._burst = 0
        self.device = _DotDevice(
            address=address,
            name=name,
            adapter_path=_ADAPTER_PATH,
            service_uuids=[],
            connect=self._on_connect,
            disconnect=self._on_disconnect,
        )
        connected = lambda: self.device.connected  # noqa: E731
        cfg = f"{self.path}/service0010"
        meas = f"{self.path}/service0020"
        bat = f"{self.path}/service0030"
        self.services = {
            cfg: GattService(CONFIGURATION_SERVICE_UUID, self.path),
            meas: GattService(MEASUREMENT_SERVICE_UUID, self.path),
            bat: GattService(BATTERY_SERVICE_UUID, self.path),
        }
        fw = self.firmware

        def char(uuid: str, service: str, flags: list[str], **kw: object) -> Characteristic:
            return Characteristic(
                uuid=uuid, service_path=service, flags=flags, mtu=mtu, is_connected=connected,
                **kw,  # type: ignore[arg-type]
            )  # fmt: skip

        self.payloads = {
            PayloadMode.CUSTOM_MODE_5: char(LONG_PAYLOAD_CHAR_UUID, meas, ["notify"]),
            PayloadMode.RATE_QUANTITIES: char(MEDIUM_PAYLOAD_CHAR_UUID, meas, ["notify"]),
        }
        self.battery = char(
            BATTERY_CHAR_UUID, bat, ["read", "notify"], read=lambda: encode_battery(fw.battery)
        )
        self.chars = {
            f"{cfg}/char0011": char(DEVICE_INFO_CHAR_UUID, cfg, ["read"], read=fw.device_info),
            f"{cfg}/char0013": char(
                DEVICE_CONTROL_CHAR_UUID, cfg, ["read", "write"],
                read=fw.device_control, write=fw.write_device_control,
            ),
            f"{cfg}/char0015": char(DEVICE_REPORT_CHAR_UUID, cfg, ["notify"]),
            f"{meas}/char0021": char(
                MEASUREMENT_CONTROL_CHAR_UUID, meas, ["read", "write"],
                read=fw.measurement_control, write=fw.write_measurement_control,
            ),
            f"{meas}/char0023": self.payloads[PayloadMode.CUSTOM_MODE_5],
            f"{meas}/char0025": self.payloads[PayloadMode.RATE_QUANTITIES],
            f"{meas}/char0027": char(SHORT_PAYLOAD_CHAR_UUID, meas, ["notify"]),
            f"{bat}/char0031": self.battery,
        }  # fmt: skip

    @property
    def reachable(self) -> bool:
        """In range (not inside a DropLink outage)."""
        return time.monotonic() >= self.reachable_at_s

    def export(self) -> None:
        """Become known to BlueZ (first seen while discovering)."""
        if not self.exported:
            self.bus.export(self.path, self.device)
            self.exported = True

    async def _on_connect(self) -> None:
        if self.device.connected:
            raise DBusError("org.bluez.Error.AlreadyConnected", "Already Connected")
        if not self.reachable:
            await asyncio.sleep(_UNREACHABLE_CONNECT_S)
            # BlueZ gives this error after it had connected for a moment: Connected goes
            # true then false, and bleak waits for that before it retries the Connect.
            self.device.set_state(connected=True, services_resolved=False)
            self.device.set_state(connected=False, services_resolved=False)
            raise DBusError("org.bluez.Error.Failed", "le-connection-abort-by-local")
        await asyncio.sleep(_CONNECT_DELAY_S)
        self.device.set_state(connected=True, services_resolved=False)
        if not self._gatt_exported:
            for path, service in self.services.items():
                self.bus.export(path, service)
            for path, c in self.chars.items():
                self.bus.export(path, c)
            self._gatt_exported = True
        await asyncio.sleep(_CONNECT_DELAY_S)
        self.device.set_state(connected=True, services_resolved=True)

    async def _on_disconnect(self) -> None:
        if not self.device.connected:
            raise DBusError("org.bluez.Error.NotConnected", "Not Connected")
        await asyncio.sleep(_CONNECT_DELAY_S / 2)
        self._drop()

    def _drop(self) -> None:
        self.firmware.link_lost()
        for c in self.chars.values():
            c.stop_notifying()
        self.device.set_state(connected=False, services_resolved=False)

    def drop_link(self, down_s: float) -> None:
        """The radio link is gone (out of range) for `down_s` seconds."""
        self.firmware.counts.link_drops += 1
        self.reachable_at_s = time.monotonic() + down_s
        if self.device.connected:
            self._drop()

    def burst(self, packets: int) -> None:
        """Hold the next `packets` notifications back, then send them back to back."""
        self._burst = packets

    async def stream(self) -> None:
        """Notify samples as they fall due, for as long as the emulator runs."""
        held: list[bytes] = []
        while True:
            await asyncio.sleep(_TICK_S)
            target = self.payloads[self.firmware.mode]
            if not (self.device.connected and target.notifying):
                held.clear()
                continue
            out = self.firmware.due()
            if self._burst > 0:
                held += out
                if len(held) < self._burst:
                    continue
                out, held, self._burst = held, [], 0
            for i, p in enumerate(out):
                target.notify(p)
                if i % _SIGNALS_PER_PAUSE == _SIGNALS_PER_PAUSE - 1:
                    await asyncio.sleep(0.001)
