"""Session history (SQLite) and the clinician's HTML report."""

from ._report import render_report, write_report
from ._store import History, HistoryUnavailableError, SessionRecord, UnknownSessionError

__all__ = [
    "History",
    "HistoryUnavailableError",
    "SessionRecord",
    "UnknownSessionError",
    "render_report",
    "write_report",
]
