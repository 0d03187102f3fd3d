"""Where the thigh points: body position, start pose, movement axis, strap mounting.

Frames (all right-handed):
- world: z up;
- body (pelvis): x to the patient's right, y anterior, z cranial; standing it is world;
- thigh: x distal along the femur, y anterior, z = x * y (lateral on the right leg);
- sensor: z out of the strap's face (away from the skin), x along the thigh, y = z * x,
  then turned by a random misalignment.
"""

from typing import Literal

import numpy as np
from numpy.typing import NDArray

from hipsense.exercises import BodyPosition, Exercise

from ._rotation import axis_angle_quat, quat_mul

__all__ = ["Side", "body_quat", "mounting_quat", "neutral_thigh_quat", "thigh_in_body_quat"]

Side = Literal["left", "right"]
F64Array = NDArray[np.float64]

_X = np.array([1.0, 0.0, 0.0])
_Y = np.array([0.0, 1.0, 0.0])
_Z = np.array([0.0, 0.0, 1.0])


def _q(axis: F64Array, deg: float) -> F64Array:
    return axis_angle_quat(axis, np.array(np.deg2rad(deg)))


def _from_columns(x: F64Array, y: F64Array, z: F64Array) -> F64Array:
    """Quaternion of the rotation whose matrix columns are x, y, z."""
    m = np.stack([x, y, z], axis=1)
    w = np.sqrt(max(0.0, 1.0 + m[0, 0] + m[1, 1] + m[2, 2])) / 2.0
    if w > 1e-6:
        return np.array(
            [
                w,
                (m[2, 1] - m[1, 2]) / (4 * w),
                (m[0, 2] - m[2, 0]) / (4 * w),
                (m[1, 0] - m[0, 1]) / (4 * w),
            ]
        )
    # 180 degree turn: take the axis from the largest diagonal element.
    i = int(np.argmax(np.diag(m)))
    j, k = (i + 1) % 3, (i + 2) % 3
    v = np.zeros(3)
    v[i] = np.sqrt(max(0.0, 1.0 + m[i, i] - m[j, j] - m[k, k])) / 2.0
    v[j] = (m[j, i] + m[i, j]) / (4 * v[i])
    v[k] = (m[k, i] + m[i, k]) / (4 * v[i])
    return np.array([(m[k, j] - m[j, k]) / (4 * v[i]), *v])


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
            return _from_columns(right, anterior, cranial)
    raise ValueError(f"body position: unknown {position!r}")  # pragma: no cover


def thigh_in_body_quat(
    hip_flexion_deg: float, hip_rotation_deg: float = 0.0, side: Side = "right"
) -> F64Array:
    """Thigh-to-body rotation at a hip flexion and external rotation, no abduction."""
    # Standing, the thigh's x (distal) is body -z, y is body y, z is body x; flexion turns
    # it about body x.
    standing = _from_columns(-_Z, _Y, _X)
    # External rotation turns the thigh's front (y) outwards, about the femur (x): towards
    # thigh z, which is lateral on the right leg and medial on the left.
    outwards = hip_rotation_deg if side == "right" else -hip_rotation_deg
    return quat_mul(quat_mul(_q(_X, hip_flexion_deg), standing), _q(_X, outwards))


def neutral_thigh_quat(exercise: Exercise, side: Side) -> F64Array:
    """Thigh-to-world rotation of the exercise's start position."""
    body = body_quat(exercise.body_position, side, working_side_down=exercise.lying_on_working_side)
    thigh = thigh_in_body_quat(exercise.hip_flexion_deg, exercise.hip_rotation_deg, side)
    return quat_mul(body, thigh)


def mounting_quat(side: Side, misalignment_deg: float, rng: np.random.Generator) -> F64Array:
    """Sensor-to-thigh rotation: a strap on the lateral thigh, misaligned at random.

    The misalignment is a rotation of up to `misalignment_deg` about a random axis.
    """
    lateral = _Z if side == "right" else -_Z
    z = lateral
    x = np.array([1.0, 0.0, 0.0])  # along the femur, distal
    y = np.cross(z, x)
    nominal = _from_columns(x, y, z)
    axis = rng.normal(size=3)
    angle = rng.uniform(-misalignment_deg, misalignment_deg)
    return quat_mul(nominal, _q(axis / np.linalg.norm(axis), angle))
