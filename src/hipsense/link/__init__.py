"""Sensor links: how samples get from a sensor into hipsense.

`SensorLink` is the interface; `SimulatedLink` streams a simulated session in-process.
"""

from ._base import SensorLink, StreamItem
from ._simulated import SimulatedLink
from ._telemetry import LinkTelemetry

__all__ = ["LinkTelemetry", "SensorLink", "SimulatedLink", "StreamItem"]
