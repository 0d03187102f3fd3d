"""Where the thigh points in an exercise's start position, and its axis against gravity.

Frames (all right-handed):
- world: z up;
- body (pelvis): x to the patient's right, y anterior, z cranial; standing it is world;
- thigh: x distal along the femur, y anterior, z = x * y (lateral on the right leg).

The sensor's mounting on the thigh is unknown, but the angle between the movement axis
and the vertical does not depend on it: that is what the motion core takes from here
(an axis close to vertical is invisible to gravity, and is measured by the gyroscope).
"""

import math
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from hipsense._quat import axis_angle_quat, quat_from_columns, quat_mul, rotate

from ._model import BodyPosition, Exercise

__all__ = ["axis_from_vertical_deg", "body_quat", "neutral_thigh_quat", "thigh_in_body_quat"]

Side = Literal["left", "right"]
F64Array = NDArray[np.float64]

_X = np.array([1.0, 0.0, 0.0])
_Y = np.array([0.0, 1.0, 0.0])
_Z = np.array([0.0, 0.0, 1.0])


def _q(axis: F64Array, deg: float) -> F64Array:
    return axis_angle_quat(axis, np.array(np.deg2rad(deg)))


def body_quat(position: BodyPosition, side: Side, *, working_side_down: bool = False) -> F64Array:
    """Body-to-world rotation for a body position, the working leg being `side`.

    Side-lying puts the working leg on top unless `working_side_down`.
    """
    match position:
        case BodyPosition.STANDING | BodyPosition.SEATED:
            return np.array([1.0, 0.0, 0.0, 0.0])
        case BodyPosition.SUPINE:
            return _q(_X, 90.0)  # anterior up, head along -y
        case BodyPosition.PRONE | BodyPosition.QUADRUPED:
            return _q(_X, -90.0)  # anterior down
        case BodyPosition.SIDE_LYING:
            top_is_right = (side == "right") != working_side_down
            # Body x (the patient's right) points up when lying on the left side.
            right = _Z if top_is_right else -_Z
            cranial = _Y
            anterior = np.cross(cranial, right)
            return quat_from_columns(right, anterior, cranial)
    raise ValueError(f"body position: unknown {position!r}")  # pragma: no cover


def thigh_in_body_quat(
    hip_flexion_deg: float, hip_rotation_deg: float = 0.0, side: Side = "right"
) -> F64Array:
    """Thigh-to-body rotation at a hip flexion and external rotation, no abduction."""
    # Standing, the thigh's x (distal) is body -z, y is body y, z is body x; flexion turns
    # it about body x.
    standing = quat_from_columns(-_Z, _Y, _X)
    # External rotation turns the thigh's front (y) outwards, about the femur (x): towards
    # thigh z, which is lateral on the right leg and medial on the left.
    outwards = hip_rotation_deg if side == "right" else -hip_rotation_deg
    return quat_mul(quat_mul(_q(_X, hip_flexion_deg), standing), _q(_X, outwards))


def neutral_thigh_quat(exercise: Exercise, side: Side) -> F64Array:
    """Thigh-to-world rotation of the exercise's start position."""
    body = body_quat(exercise.body_position, side, working_side_down=exercise.lying_on_working_side)
    thigh = thigh_in_body_quat(exercise.hip_flexion_deg, exercise.hip_rotation_deg, side)
    return quat_mul(body, thigh)


def axis_from_vertical_deg(exercise: Exercise) -> float:
    """Angle (0 to 90 deg) between the movement axis and the vertical at the start position.

    90: a horizontal axis, whose rotation turns gravity in the thigh's frame by the full
    angle; 0: a vertical one, which gravity cannot see. The same for either leg.
    """
    axis = rotate(neutral_thigh_quat(exercise, "right"), np.array(exercise.axis_for("right")))
    return math.degrees(math.acos(min(1.0, abs(float(axis[2])) / float(np.linalg.norm(axis)))))
