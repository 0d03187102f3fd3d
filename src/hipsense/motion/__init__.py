"""The motion core: orientation, calibration, hip angle, reps, holds and sets.

Pure and synchronous: numpy blocks in, events out, explicit state in each stage.
"""

from ._calibration import AngleBlock, AngleTracker, Calibration, CalibrationSettings
from ._core import Analysis, CoreSettings, MotionCore, MotionEvent, analyze
from ._events import Flag, HoldEvent, RepEvent, SetEvent
from ._orientation import OrientationBlock, OrientationEstimator, OrientationSettings
from ._segmentation import Segmenter, SegmenterSettings
from ._targets import Targets

__all__ = [
    "Analysis",
    "AngleBlock",
    "AngleTracker",
    "Calibration",
    "CalibrationSettings",
    "CoreSettings",
    "Flag",
    "HoldEvent",
    "MotionCore",
    "MotionEvent",
    "OrientationBlock",
    "OrientationEstimator",
    "OrientationSettings",
    "RepEvent",
    "Segmenter",
    "SegmenterSettings",
    "SetEvent",
    "Targets",
    "analyze",
]
