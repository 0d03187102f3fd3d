"""The exercise library: what each prescribed exercise is, from the seeds, validated."""

from ._anatomy import axis_from_vertical_deg, body_quat, neutral_thigh_quat, thigh_in_body_quat
from ._library import ExerciseError, ExerciseLibrary, default_library_dir, load_library
from ._model import (
    BodyPosition,
    Contraction,
    Dosage,
    Exercise,
    ExerciseKind,
    FormCheck,
    FormCue,
    Movement,
    RangeOfMotion,
    SensorThigh,
    Tempo,
    Variant,
)

__all__ = [
    "BodyPosition",
    "Contraction",
    "Dosage",
    "Exercise",
    "ExerciseError",
    "ExerciseKind",
    "ExerciseLibrary",
    "FormCheck",
    "FormCue",
    "Movement",
    "RangeOfMotion",
    "SensorThigh",
    "Tempo",
    "Variant",
    "axis_from_vertical_deg",
    "body_quat",
    "default_library_dir",
    "load_library",
    "neutral_thigh_quat",
    "thigh_in_body_quat",
]
