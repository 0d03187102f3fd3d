"""Simulated hipsense sensors: thigh motion, IMU model and the native wire format.

Ships with hipsense: it is the test bench, the demo, and the way to try hipsense
without a sensor. `simulate(ScenarioSpec(...))` gives a recording and its ground truth.
"""

from ._demo_stream import DemoSensor
from ._kinematics import body_quat, mounting_quat, neutral_thigh_quat
from ._motion import Motion, body_rates
from ._packetizer import Packetizer
from ._rotation import axis_angle_quat, quat_conj, quat_mul, rotate
from ._simulate import SimulationResult, simulate
from ._spec import (
    ImuSpec,
    LinkSpec,
    NonExerciseSpec,
    ScenarioSpec,
    SetSpec,
    load_scenario,
    load_suite,
    suite_dir,
)

__all__ = [
    "DemoSensor",
    "ImuSpec",
    "LinkSpec",
    "Motion",
    "NonExerciseSpec",
    "Packetizer",
    "ScenarioSpec",
    "SetSpec",
    "SimulationResult",
    "axis_angle_quat",
    "body_quat",
    "body_rates",
    "load_scenario",
    "load_suite",
    "mounting_quat",
    "neutral_thigh_quat",
    "quat_conj",
    "quat_mul",
    "rotate",
    "simulate",
    "suite_dir",
]
