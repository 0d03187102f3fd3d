"""Files readable by their owner only: exports and reports are health data, as the history is."""

import os
from pathlib import Path

__all__ = ["OWNER_ONLY", "write_private"]

OWNER_ONLY = 0o600
"""The mode of every export and report file (the history's own, see hipsense._sqlite)."""


def write_private(path: Path, text: str) -> None:
    """Write `text` (UTF-8) to `path`, made or truncated with mode 0600 (`OSError` if not)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, OWNER_ONLY)
    with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
        os.fchmod(f.fileno(), OWNER_ONLY)  # an existing file keeps its mode on O_CREAT
        f.write(text)
