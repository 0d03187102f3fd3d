"""An emulated BlueZ with hipsense sensors, on a private D-Bus: bleak without hardware."""

from ._dbus_daemon import PrivateBus
from ._emulator import CONTROL_PATH, BluezEmulator, EmulatedSensor
from ._firmware import EmulatedFirmware, FaultCounts, sensor_source

__all__ = [
    "CONTROL_PATH",
    "BluezEmulator",
    "EmulatedFirmware",
    "EmulatedSensor",
    "FaultCounts",
    "PrivateBus",
    "sensor_source",
]
