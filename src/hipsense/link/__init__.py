"""Sensor links: how samples get from a sensor into hipsense.

`SensorLink` is the interface; `BleLink` talks to a sensor with bleak; `SimulatedLink`
streams a simulated session in-process.
"""

from ._base import SensorLink, StreamItem
from ._ble import (
    BleLink,
    BleLinkError,
    BleLinkSettings,
    FoundSensor,
    SensorCommandError,
    SensorNotFoundError,
    is_hipsense,
    scan,
)
from ._edge import END_OF_STREAM, BleEdge, backoff_s, bluetooth_missing, describe, find_sensor
from ._simulated import SimulatedLink
from ._telemetry import LinkTelemetry

__all__ = [
    "END_OF_STREAM",
    "BleEdge",
    "BleLink",
    "BleLinkError",
    "BleLinkSettings",
    "FoundSensor",
    "LinkTelemetry",
    "SensorCommandError",
    "SensorLink",
    "SensorNotFoundError",
    "SimulatedLink",
    "StreamItem",
    "backoff_s",
    "bluetooth_missing",
    "describe",
    "find_sensor",
    "is_hipsense",
    "scan",
]
