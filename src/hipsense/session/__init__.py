"""Sessions: a sensor's stream through the motion core, tallied and tracked."""

from ._pipeline import SessionPipeline, SessionTally, session_against_prescription
from ._programs import Program, default_programs_dir, load_programs
from ._tracker import ExerciseProgress, PrescriptionTracker, SetProgress, SideDone

__all__ = [
    "ExerciseProgress",
    "PrescriptionTracker",
    "Program",
    "SessionPipeline",
    "SessionTally",
    "SetProgress",
    "SideDone",
    "default_programs_dir",
    "load_programs",
    "session_against_prescription",
]
