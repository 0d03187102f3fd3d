"""What the SQLite state files (outbox, history) share: telling storage faults from bugs."""

import contextlib
import os
import sqlite3
from collections.abc import Callable

__all__ = ["open_state_db", "owner_only", "storage_fault"]

_OWNER_ONLY = 0o600
"""Sessions, events and raw samples are health data: readable by their user alone. SQLite
gives the -wal and -shm files the database file's mode."""

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


def owner_only(path: str | os.PathLike[str]) -> None:
    """Make a state file readable and writable by its owner only.

    Best effort: a read-only or foreign file system may refuse, and the folder is 0700.
    """
    with contextlib.suppress(OSError):
        os.chmod(path, _OWNER_ONLY)


def open_state_db(path: str, setup: Callable[[sqlite3.Connection], None]) -> sqlite3.Connection:
    """Open (or create) a state file: owner-only, WAL, then `setup` (schema, pragmas).

    Raises what SQLite raises; the connection is closed if `setup` fails.
    """
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    owner_only(path)  # before WAL mode makes the -wal and -shm files
    try:
        db.execute("PRAGMA journal_mode=WAL")
        setup(db)
    except BaseException:
        db.close()
        raise
    return db
