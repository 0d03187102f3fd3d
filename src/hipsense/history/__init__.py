"""Session history (SQLite), a patient's progress over sessions, the clinician's reports.

Reports: one session's (`render_report`), one patient's over sessions
(`render_patient_report`).
"""

from ._patient_report import NoSessionsError, render_patient_report, write_patient_report
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
    "NoSessionsError",
    "PatientProgress",
    "ProgressPoint",
    "ProgressSeries",
    "SessionRecord",
    "SideComparison",
    "SideFigures",
    "UnknownSessionError",
    "patient_progress",
    "render_patient_report",
    "render_report",
    "write_patient_report",
    "write_report",
]
