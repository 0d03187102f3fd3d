"""Session history (SQLite), a patient's progress over sessions, the clinician's report."""

from ._progress import (
    Advice,
    CalendarDay,
    PatientProgress,
    ProgressPoint,
    ProgressSeries,
    SideComparison,
    SideFigures,
    patient_progress,
)
from ._report import render_report, write_report
from ._store import History, HistoryUnavailableError, SessionRecord, UnknownSessionError

__all__ = [
    "Advice",
    "CalendarDay",
    "History",
    "HistoryUnavailableError",
    "PatientProgress",
    "ProgressPoint",
    "ProgressSeries",
    "SessionRecord",
    "SideComparison",
    "SideFigures",
    "UnknownSessionError",
    "patient_progress",
    "render_report",
    "write_report",
]
