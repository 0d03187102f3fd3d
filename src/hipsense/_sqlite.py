"""What the SQLite state files (outbox, history) share: telling storage faults from bugs."""

import sqlite3

__all__ = ["storage_fault"]

_STORAGE_FAULTS = ("SQLITE_FULL", "SQLITE_IOERR", "SQLITE_READONLY", "SQLITE_CANTOPEN")
_NOT_STORAGE = ("SQLITE_IOERR_NOMEM",)
"""Named like I/O errors, but the process's memory ran out, not the disk: holding writes
in memory would not help."""


def storage_fault(exc: sqlite3.Error) -> bool:
    """Whether an SQLite error is the storage's (full, read-only, I/O), not a bug's."""
    name = getattr(exc, "sqlite_errorname", None) or ""
    return (
        isinstance(exc, sqlite3.OperationalError)
        and name.startswith(_STORAGE_FAULTS)
        and not name.startswith(_NOT_STORAGE)
    )
