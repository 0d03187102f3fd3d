"""Where the sensor sits: the strap's mounting on the thigh.

The start position's anatomy (body position, hip flexion and rotation) is the exercise
library's (`hipsense.exercises`); this adds how the strap is worn.
Frames: see `hipsense.exercises` (world, body, thigh); sensor: z out of the strap's face
(away from the skin), x along the thigh, y = z * x, then turned by a random misalignment.
"""

from typing import Literal

import numpy as np
from numpy.typing import NDArray

from hipsense._quat import axis_angle_quat, quat_from_columns, quat_mul
from hipsense.exercises import body_quat, neutral_thigh_quat, thigh_in_body_quat

__all__ = ["Side", "body_quat", "mounting_quat", "neutral_thigh_quat", "thigh_in_body_quat"]

Side = Literal["left", "right"]
F64Array = NDArray[np.float64]

_Z = np.array([0.0, 0.0, 1.0])


def mounting_quat(side: Side, misalignment_deg: float, rng: np.random.Generator) -> F64Array:
    """Sensor-to-thigh rotation: a strap on the lateral thigh, misaligned at random.

    The misalignment is a rotation of up to `misalignment_deg` about a random axis.
    """
    lateral = _Z if side == "right" else -_Z
    z = lateral
    x = np.array([1.0, 0.0, 0.0])  # along the femur, distal
    y = np.cross(z, x)
    nominal = quat_from_columns(x, y, z)
    axis = rng.normal(size=3)
    angle = rng.uniform(-misalignment_deg, misalignment_deg)
    return quat_mul(nominal, axis_angle_quat(axis / np.linalg.norm(axis), np.deg2rad(angle)))
