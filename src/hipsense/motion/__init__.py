"""The motion core: orientation, calibration, hip angle, reps, holds and sets.

Pure and synchronous: numpy blocks in, events out, explicit state in each stage.
"""

from ._core import (
    MAX_RATE_HZ,
    MIN_RATE_HZ,
    Analysis,
    CoreSettings,
    MotionCore,
    MotionEvent,
    MotionInputError,
    analyze,
)
from ._events import Flag, HoldEvent, RepEvent, SetEvent
from ._orientation import OrientationBlock, OrientationEstimator, OrientationSettings
from ._reference import AngleBlock, Calibration, Reference, ReferenceTracker
from ._reps import Segmenter
from ._settings import ReferenceSettings, SegmenterSettings
from ._targets import Targets

__all__ = [
    "MAX_RATE_HZ",
    "MIN_RATE_HZ",
    "Analysis",
    "AngleBlock",
    "Calibration",
    "CoreSettings",
    "Flag",
    "HoldEvent",
    "MotionCore",
    "MotionEvent",
    "MotionInputError",
    "OrientationBlock",
    "OrientationEstimator",
    "OrientationSettings",
    "Reference",
    "ReferenceSettings",
    "ReferenceTracker",
    "RepEvent",
    "Segmenter",
    "SegmenterSettings",
    "SetEvent",
    "Targets",
    "analyze",
]
