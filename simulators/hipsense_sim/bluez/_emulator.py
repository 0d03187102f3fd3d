"""The BlueZ emulator: owns `org.bluez` on a (private) bus and serves hipsense sensors.

Run as a process (`python -m hipsense_sim.bluez --bus ADDRESS`), it exposes hci0 and
one or more sensors with their GATT tree, streams the simulator's packets as
notifications at the configured rate, answers the control point, and takes faults
through its own interface `org.hipsense.Emulator1` at `/org/hipsense/emulator`:
DropLink, Stall, Inject (loss, duplicates, malformed packets), Burst and Counts.
"""

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from typing import Any, Protocol

from dbus_fast.aio import MessageBus
from dbus_fast.annotations import DBusDouble, DBusStr, DBusUInt32
from dbus_fast.constants import BusType, RequestNameReply
from dbus_fast.errors import DBusError
from dbus_fast.service import ServiceInterface, dbus_method

from hipsense.protocol import (
    BATTERY_LEVEL_CHAR_UUID,
    BATTERY_SERVICE_UUID,
    CONTROL_POINT_CHAR_UUID,
    DEVICE_INFORMATION_SERVICE_UUID,
    FIRMWARE_REVISION_CHAR_UUID,
    IMU_DATA_CHAR_UUID,
    MANUFACTURER_NAME_CHAR_UUID,
    MODEL_NUMBER_CHAR_UUID,
    SERIAL_NUMBER_CHAR_UUID,
    SERVICE_UUID,
    STATUS_CHAR_UUID,
    encode_response,
)

from ._bluez import Adapter, Characteristic, Device, GattService
from ._firmware import EmulatedFirmware

__all__ = ["BluezEmulator", "DeviceFactory", "EmulatedDevice", "EmulatedSensor"]

log = logging.getLogger("hipsense_sim.bluez")

ADAPTER_PATH = "/org/bluez/hci0"
CONTROL_PATH = "/org/hipsense/emulator"
_ADVERTISING_INTERVAL_S = 0.1
_CONNECT_DELAY_S = 0.05
_UNREACHABLE_CONNECT_S = 1.0
"""How long a Connect to an out-of-range sensor takes to fail."""
_TICK_S = 0.005
_SIGNALS_PER_PAUSE = 16
"""Back-to-back signals before yielding: a long burst can overflow the bus socket."""


class EmulatedDevice(Protocol):
    """What the emulator needs of a device of any kind (hipsense, WitMotion, ...)."""

    address: str
    firmware: Any
    """Takes `stall`, `inject`, `backlog_packets` and has `counts` (a dataclass)."""

    @property
    def device(self) -> Device:
        """Its `org.bluez.Device1` object (read-only here, so a kind may subclass it)."""
        ...

    @property
    def reachable(self) -> bool: ...

    def export(self) -> None: ...

    def drop_link(self, down_s: float) -> None: ...

    def burst(self, packets: int) -> None: ...

    async def stream(self) -> None: ...


class DeviceFactory(Protocol):
    """Builds one device: `factory(bus, address, name, mtu=..., seed=...)`."""

    def __call__(
        self, bus: MessageBus, address: str, name: str, *, mtu: int, seed: int
    ) -> EmulatedDevice: ...


class EmulatedSensor:
    """A sensor: its Device1 object, its GATT tree, its firmware, its link state."""

    def __init__(self, bus: MessageBus, address: str, name: str, *, mtu: int, seed: int) -> None:
        self.bus = bus
        self.address = address
        self.name = name
        self.path = f"{ADAPTER_PATH}/dev_{address.replace(':', '_')}"
        self.firmware = EmulatedFirmware(seed=seed, att_payload=mtu - 3)
        self.mtu = mtu
        self.reachable_at_s = 0.0
        self.exported = False
        self._gatt_exported = False
        self._burst = 0
        self.device = Device(
            address=address,
            name=name,
            adapter_path=ADAPTER_PATH,
            service_uuids=[SERVICE_UUID, BATTERY_SERVICE_UUID, DEVICE_INFORMATION_SERVICE_UUID],
            connect=self._on_connect,
            disconnect=self._on_disconnect,
            # The battery level in the advertisement, so a scan shows it (PROTOCOL.md 2.1).
            service_data=lambda: {BATTERY_SERVICE_UUID: bytes([self.firmware.battery_pct])},
        )
        connected = lambda: self.device.connected  # noqa: E731
        svc = f"{self.path}/service0010"
        bat = f"{self.path}/service0020"
        dis = f"{self.path}/service0030"
        self.services = {
            svc: GattService(SERVICE_UUID, self.path),
            bat: GattService(BATTERY_SERVICE_UUID, self.path),
            dis: GattService(DEVICE_INFORMATION_SERVICE_UUID, self.path),
        }
        fw = self.firmware
        self.imu = Characteristic(
            uuid=IMU_DATA_CHAR_UUID, service_path=svc, flags=["notify"], mtu=mtu,
            is_connected=connected,
        )  # fmt: skip
        self.control = Characteristic(
            uuid=CONTROL_POINT_CHAR_UUID, service_path=svc, flags=["write", "indicate"],
            mtu=mtu, write=self._on_control, is_connected=connected,
        )  # fmt: skip
        self.status = Characteristic(
            uuid=STATUS_CHAR_UUID, service_path=svc, flags=["read", "notify"], mtu=mtu,
            read=fw.status, is_connected=connected,
        )  # fmt: skip

        def text(value: str) -> Callable[[], bytes]:
            return lambda: value.encode()

        self.chars = {
            f"{svc}/char0011": self.imu,
            f"{svc}/char0014": self.control,
            f"{svc}/char0017": self.status,
            f"{bat}/char0021": Characteristic(
                uuid=BATTERY_LEVEL_CHAR_UUID, service_path=bat, flags=["read", "notify"],
                mtu=mtu, read=lambda: bytes([fw.battery_pct]), is_connected=connected,
            ),
            f"{dis}/char0031": Characteristic(
                uuid=MANUFACTURER_NAME_CHAR_UUID, service_path=dis, flags=["read"], mtu=mtu,
                read=text("hipsense"), is_connected=connected,
            ),
            f"{dis}/char0033": Characteristic(
                uuid=MODEL_NUMBER_CHAR_UUID, service_path=dis, flags=["read"], mtu=mtu,
                read=text("emulated thigh IMU"), is_connected=connected,
            ),
            f"{dis}/char0035": Characteristic(
                uuid=SERIAL_NUMBER_CHAR_UUID, service_path=dis, flags=["read"], mtu=mtu,
                read=text(address.replace(":", "")[-6:]), is_connected=connected,
            ),
            f"{dis}/char0037": Characteristic(
                uuid=FIRMWARE_REVISION_CHAR_UUID, service_path=dis, flags=["read"], mtu=mtu,
                read=text(".".join(map(str, fw.firmware))), is_connected=connected,
            ),
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
            # What BlueZ does before it gives up: Connected true, then false at once. bleak
            # waits for that before it returns the error; without it, its whole timeout.
            self.device.set_state(connected=True, services_resolved=False)
            self.device.set_state(connected=False, services_resolved=False)
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
        self.firmware.link_lost()
        for char in self.chars.values():
            char.stop_notifying()
        self.device.set_state(connected=False, services_resolved=False)

    def drop_link(self, down_s: float) -> None:
        """The radio link is gone (out of range) for `down_s` seconds."""
        self.firmware.counts.link_drops += 1
        self.reachable_at_s = time.monotonic() + down_s
        if self.device.connected:
            self._drop()

    def burst(self, packets: int) -> None:
        """Hold the next `packets` packets back, then send them back to back."""
        self._burst = packets

    def _on_control(self, data: bytes) -> None:
        response = self.firmware.command(data)
        if self.control.notifying:
            self.control.notify(encode_response(response))
        if self.status.notifying:
            self.status.notify(self.firmware.status())

    async def stream(self) -> None:
        """Notify IMU packets as they fall due, for as long as the emulator runs."""
        held: list[bytes] = []
        while True:
            await asyncio.sleep(_TICK_S)
            if not (self.device.connected and self.imu.notifying):
                held.clear()
                continue
            packets = self.firmware.due_packets()
            if self._burst > 0:
                held += packets
                if len(held) < self._burst:
                    continue
                packets, held, self._burst = held, [], 0
            for i, pkt in enumerate(packets):
                self.imu.notify(pkt)
                if i % _SIGNALS_PER_PAUSE == _SIGNALS_PER_PAUSE - 1:
                    await asyncio.sleep(0.001)


class _Control(ServiceInterface):
    """`org.hipsense.Emulator1`: faults for tests, by sensor address."""

    def __init__(self, emulator: "BluezEmulator") -> None:
        super().__init__("org.hipsense.Emulator1")
        self._emu = emulator

    def _sensor(self, address: str) -> EmulatedDevice:
        try:
            return self._emu.sensors[address.upper()]
        except KeyError:
            raise DBusError("org.hipsense.Error.NoSuchSensor", address) from None

    @dbus_method()
    def DropLink(self, address: DBusStr, down_s: DBusDouble) -> None:  # noqa: N802
        self._sensor(address).drop_link(down_s)

    @dbus_method()
    def Stall(self, address: DBusStr, seconds: DBusDouble) -> None:  # noqa: N802
        self._sensor(address).firmware.stall(seconds)

    @dbus_method()
    def Inject(  # noqa: N802
        self, address: DBusStr, lose: DBusUInt32, duplicate: DBusUInt32, malformed: DBusUInt32
    ) -> None:
        self._sensor(address).firmware.inject(lose=lose, duplicate=duplicate, malformed=malformed)

    @dbus_method()
    def Burst(self, address: DBusStr, packets: DBusUInt32) -> None:  # noqa: N802
        self._sensor(address).burst(packets)

    @dbus_method()
    def SetBacklog(self, address: DBusStr, packets: DBusUInt32) -> None:  # noqa: N802
        """Packets the firmware keeps for a resume; 0 makes it a protocol 1.0 sensor."""
        self._sensor(address).firmware.backlog_packets = packets

    @dbus_method()
    def Counts(self, address: DBusStr) -> DBusStr:  # noqa: N802
        """What was sent and injected so far, as JSON."""
        return json.dumps(asdict(self._sensor(address).firmware.counts))


class BluezEmulator:
    """Owns `org.bluez` on the bus at `bus_address` and serves `sensors`.

    `device` builds each sensor: the native `EmulatedSensor` by default, or another
    kind's device (`_witmotion.WitMotionSensor`); a sensor given as (address, name,
    factory) is built by its own factory, so one emulator can serve mixed kinds.
    """

    def __init__(
        self,
        bus_address: str | None,
        sensors: Sequence[tuple[str, str] | tuple[str, str, DeviceFactory]],
        *,
        mtu: int,
        seed: int = 0,
        device: DeviceFactory | None = None,
    ) -> None:
        self.bus_address = bus_address
        self.sensor_specs = sensors
        self.mtu = mtu
        self.seed = seed
        self.device_factory: DeviceFactory = device if device is not None else EmulatedSensor
        self.sensors: dict[str, EmulatedDevice] = {}
        self._discovering = False

    def _on_discovery(self, on: bool) -> None:
        self._discovering = on
        if on:
            for s in self.sensors.values():
                if s.reachable:
                    s.export()

    async def _advertise(self) -> None:
        # A device is only "found" while it keeps advertising during discovery.
        while True:
            await asyncio.sleep(_ADVERTISING_INTERVAL_S)
            if not self._discovering:
                continue
            for s in self.sensors.values():
                if s.reachable and not s.device.connected:
                    s.export()
                    s.device.advertise()

    async def run(self, ready: asyncio.Event | None = None) -> None:
        """Serve until cancelled."""
        if self.bus_address:
            bus = await MessageBus(bus_address=self.bus_address).connect()
        else:
            bus = await MessageBus(bus_type=BusType.SYSTEM).connect()
        try:
            adapter = Adapter("00:00:00:00:48:53", self._on_discovery)
            bus.export(ADAPTER_PATH, adapter)
            for i, spec in enumerate(self.sensor_specs):
                address, name = spec[0], spec[1]
                factory = spec[2] if len(spec) == 3 else self.device_factory
                sensor = factory(bus, address.upper(), name, mtu=self.mtu, seed=self.seed + i)
                self.sensors[sensor.address] = sensor
            bus.export(CONTROL_PATH, _Control(self))
            reply = await bus.request_name("org.bluez")
            if reply is not RequestNameReply.PRIMARY_OWNER:
                raise RuntimeError(f"org.bluez: expected to own the name, got {reply.name}")
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._advertise(), name="bluez-advertise")
                for s in self.sensors.values():
                    tg.create_task(s.stream(), name=f"bluez-stream-{s.address}")
                if ready is not None:
                    ready.set()
        finally:
            with contextlib.suppress(Exception):
                bus.disconnect()
