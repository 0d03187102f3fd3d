"""BlueZ's D-Bus objects, as bleak sees them: adapter, devices, GATT services.

Only what bleak uses is there (see the BLE link issue's feasibility notes): the
object manager on `/` (dbus-fast answers GetManagedObjects and emits
InterfacesAdded / InterfacesRemoved), properties with PropertiesChanged, and the
methods bleak calls. Paths follow BlueZ exactly (`.../serviceXXXX/charYYYY`), because
bleak takes handles from them.
"""

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import Annotated

from dbus_fast import Variant
from dbus_fast.annotations import (
    DBusBool,
    DBusBytes,
    DBusDict,
    DBusInt16,
    DBusObjectPath,
    DBusSignature,
    DBusStr,
    DBusUInt16,
)
from dbus_fast.constants import PropertyAccess
from dbus_fast.errors import DBusError
from dbus_fast.service import ServiceInterface, dbus_method, dbus_property

__all__ = ["Adapter", "Characteristic", "Device", "GattService"]

DBusStrList = Annotated[list[str], DBusSignature("as")]
DBusPathList = Annotated[list[str], DBusSignature("ao")]
DBusManufacturerData = Annotated[dict[int, Variant], DBusSignature("a{qv}")]
DBusServiceData = Annotated[dict[str, Variant], DBusSignature("a{sv}")]

_READ = PropertyAccess.READ


class Adapter(ServiceInterface):
    """`org.bluez.Adapter1` of hci0."""

    def __init__(self, address: str, on_discovery: Callable[[bool], None]) -> None:
        super().__init__("org.bluez.Adapter1")
        self._address = address
        self._discovering = False
        self._on_discovery = on_discovery

    @dbus_property(access=_READ)
    def Address(self) -> DBusStr:  # noqa: N802 -- D-Bus names
        return self._address

    @dbus_property(access=_READ)
    def Name(self) -> DBusStr:  # noqa: N802
        return "hipsense-emulated-hci0"

    @dbus_property(access=_READ)
    def Alias(self) -> DBusStr:  # noqa: N802
        return "hipsense-emulated-hci0"

    @dbus_property(access=_READ)
    def Powered(self) -> DBusBool:  # noqa: N802
        return True

    @dbus_property(access=_READ)
    def Discovering(self) -> DBusBool:  # noqa: N802
        return self._discovering

    @dbus_property(access=_READ)
    def Roles(self) -> DBusStrList:  # noqa: N802
        return ["central", "peripheral"]

    @dbus_property(access=_READ)
    def UUIDs(self) -> DBusStrList:  # noqa: N802
        return []

    @dbus_method()
    def SetDiscoveryFilter(self, properties: DBusDict) -> None:  # noqa: N802
        del properties  # every emulated device matches any filter bleak sets

    @dbus_method()
    def StartDiscovery(self) -> None:  # noqa: N802
        if self._discovering:
            raise DBusError("org.bluez.Error.InProgress", "Operation already in progress")
        self._set_discovering(True)

    @dbus_method()
    def StopDiscovery(self) -> None:  # noqa: N802
        if not self._discovering:
            raise DBusError("org.bluez.Error.Failed", "No discovery started")
        self._set_discovering(False)

    @dbus_method()
    def RemoveDevice(self, device: DBusObjectPath) -> None:  # noqa: N802
        del device  # the emulated devices stay known

    @dbus_method()
    def GetDiscoveryFilters(self) -> DBusStrList:  # noqa: N802
        return ["UUIDs", "RSSI", "Transport", "DuplicateData"]

    def _set_discovering(self, on: bool) -> None:
        self._discovering = on
        self.emit_properties_changed({"Discovering": on})
        self._on_discovery(on)


class Device(ServiceInterface):
    """`org.bluez.Device1`; `connect` / `disconnect` are the emulator's callbacks."""

    def __init__(
        self,
        *,
        address: str,
        name: str,
        adapter_path: str,
        service_uuids: list[str],
        connect: Callable[[], Awaitable[None]],
        disconnect: Callable[[], Awaitable[None]],
        service_data: Callable[[], dict[str, bytes]] = dict,
    ) -> None:
        super().__init__("org.bluez.Device1")
        self._service_data = service_data
        self._address = address
        self._name = name
        self._adapter = adapter_path
        self._uuids = service_uuids
        self._connect = connect
        self._disconnect = disconnect
        self.connected = False
        self.services_resolved = False
        self.rssi = -60

    def set_state(self, *, connected: bool, services_resolved: bool) -> None:
        """Change the connection state and tell the bus, as BlueZ does."""
        changed: dict[str, object] = {}
        if connected != self.connected:
            self.connected = connected
            changed["Connected"] = connected
        if services_resolved != self.services_resolved:
            self.services_resolved = services_resolved
            changed["ServicesResolved"] = services_resolved
        if changed:
            self.emit_properties_changed(changed)

    def advertise(self) -> None:
        """One advertisement seen: a fresh RSSI reading."""
        self.rssi = -60 + random.randint(-4, 4)
        self.emit_properties_changed({"RSSI": self.rssi})

    @dbus_property(access=_READ)
    def Address(self) -> DBusStr:  # noqa: N802
        return self._address

    @dbus_property(access=_READ)
    def AddressType(self) -> DBusStr:  # noqa: N802
        return "random"

    @dbus_property(access=_READ)
    def Name(self) -> DBusStr:  # noqa: N802
        return self._name

    @dbus_property(access=_READ)
    def Alias(self) -> DBusStr:  # noqa: N802
        return self._name

    @dbus_property(access=_READ)
    def Adapter(self) -> DBusObjectPath:  # noqa: N802
        return self._adapter

    @dbus_property(access=_READ)
    def Connected(self) -> DBusBool:  # noqa: N802
        return self.connected

    @dbus_property(access=_READ)
    def ServicesResolved(self) -> DBusBool:  # noqa: N802
        return self.services_resolved

    @dbus_property(access=_READ)
    def Paired(self) -> DBusBool:  # noqa: N802
        return False

    @dbus_property(access=_READ)
    def Trusted(self) -> DBusBool:  # noqa: N802
        return False

    @dbus_property(access=_READ)
    def Blocked(self) -> DBusBool:  # noqa: N802
        return False

    @dbus_property(access=_READ)
    def UUIDs(self) -> DBusStrList:  # noqa: N802
        return self._uuids

    @dbus_property(access=_READ)
    def RSSI(self) -> DBusInt16:  # noqa: N802
        return self.rssi

    @dbus_property(access=_READ)
    def ManufacturerData(self) -> DBusManufacturerData:  # noqa: N802
        return {}

    @dbus_property(access=_READ)
    def ServiceData(self) -> DBusServiceData:  # noqa: N802
        return {k: Variant("ay", v) for k, v in self._service_data().items()}

    @dbus_method()
    async def Connect(self) -> None:  # noqa: N802
        await self._connect()

    @dbus_method()
    async def Disconnect(self) -> None:  # noqa: N802
        await self._disconnect()


class GattService(ServiceInterface):
    """`org.bluez.GattService1`."""

    def __init__(self, uuid: str, device_path: str) -> None:
        super().__init__("org.bluez.GattService1")
        self._uuid = uuid
        self._device = device_path

    @dbus_property(access=_READ)
    def UUID(self) -> DBusStr:  # noqa: N802
        return self._uuid

    @dbus_property(access=_READ)
    def Device(self) -> DBusObjectPath:  # noqa: N802
        return self._device

    @dbus_property(access=_READ)
    def Primary(self) -> DBusBool:  # noqa: N802
        return True

    @dbus_property(access=_READ)
    def Includes(self) -> DBusPathList:  # noqa: N802
        return []


class Characteristic(ServiceInterface):
    """`org.bluez.GattCharacteristic1`: reads, writes and notifications via callbacks."""

    def __init__(
        self,
        *,
        uuid: str,
        service_path: str,
        flags: list[str],
        mtu: int,
        read: Callable[[], bytes] | None = None,
        write: Callable[[bytes], None] | None = None,
        is_connected: Callable[[], bool],
    ) -> None:
        super().__init__("org.bluez.GattCharacteristic1")
        self._uuid = uuid
        self._service = service_path
        self._flags = flags
        self.mtu = mtu
        self._read = read
        self._write = write
        self._is_connected = is_connected
        self.value = b""
        self.notifying = False

    def notify(self, value: bytes) -> None:
        """A notification or indication from the sensor: `Value` changes."""
        self.value = value
        self.emit_properties_changed({"Value": value})

    def stop_notifying(self) -> None:
        """The link is gone: BlueZ drops the subscription."""
        if self.notifying:
            self.notifying = False
            self.emit_properties_changed({"Notifying": False})

    def _check_connected(self) -> None:
        if not self._is_connected():
            raise DBusError("org.bluez.Error.NotConnected", "Not Connected")

    @dbus_property(access=_READ)
    def UUID(self) -> DBusStr:  # noqa: N802
        return self._uuid

    @dbus_property(access=_READ)
    def Service(self) -> DBusObjectPath:  # noqa: N802
        return self._service

    @dbus_property(access=_READ)
    def Flags(self) -> DBusStrList:  # noqa: N802
        return self._flags

    @dbus_property(access=_READ)
    def Value(self) -> DBusBytes:  # noqa: N802
        return self.value

    @dbus_property(access=_READ)
    def Notifying(self) -> DBusBool:  # noqa: N802
        return self.notifying

    @dbus_property(access=_READ)
    def MTU(self) -> DBusUInt16:  # noqa: N802
        return self.mtu

    @dbus_method()
    def ReadValue(self, options: DBusDict) -> DBusBytes:  # noqa: N802
        del options
        self._check_connected()
        if self._read is None:
            raise DBusError("org.bluez.Error.NotPermitted", "Read not permitted")
        value = self._read()
        if self.notifying:
            # Real BlueZ reports a read of a notifying characteristic as a Value change.
            asyncio.get_running_loop().call_soon(self.notify, value)
        self.value = value
        return value

    @dbus_method()
    def WriteValue(self, value: DBusBytes, options: DBusDict) -> None:  # noqa: N802
        del options
        self._check_connected()
        if self._write is None:
            raise DBusError("org.bluez.Error.NotPermitted", "Write not permitted")
        # The response (an indication) follows the write's acknowledgement.
        asyncio.get_running_loop().call_soon(self._write, bytes(value))

    @dbus_method()
    def StartNotify(self) -> None:  # noqa: N802
        self._check_connected()
        if not self.notifying:
            self.notifying = True
            self.emit_properties_changed({"Notifying": True})

    @dbus_method()
    def StopNotify(self) -> None:  # noqa: N802
        self.stop_notifying()
