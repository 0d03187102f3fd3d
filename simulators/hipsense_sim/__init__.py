"""Simulated hipsense sensors: thigh motion, IMU model and the native wire format.

Ships with hipsense: it is the test bench, the demo, and the way to try hipsense
without a sensor.
"""

from ._demo_stream import DemoSensor
from ._packetizer import Packetizer
from ._rotation import axis_angle_quat, quat_conj, quat_mul, rotate

__all__ = ["DemoSensor", "Packetizer", "axis_angle_quat", "quat_conj", "quat_mul", "rotate"]
