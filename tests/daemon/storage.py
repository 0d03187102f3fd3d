"""A small tmpfs to fill up, for the storage-fault tests (mounting needs root: CI is)."""

import contextlib
import errno
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest


@contextlib.contextmanager
def tmpfs(path: Path, size: str = "4m") -> Iterator[Path]:
    """Mount a tmpfs of `size` on `path` (created) for the duration; skip if impossible."""
    path.mkdir(parents=True, exist_ok=True)
    mount = shutil.which("mount") or shutil.which("mount", path="/usr/bin:/bin:/usr/sbin:/sbin")
    if mount is None:
        pytest.skip("cannot mount a tmpfs: no mount command")
    done = subprocess.run(
        [mount, "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(
            "cannot mount a tmpfs to fill up (needs root or CAP_SYS_ADMIN): "
            f"{done.stderr.strip() or done.returncode}"
        )
    try:
        yield path
    finally:
        # Lazy: a process the test started may still hold a file open.
        subprocess.run(["umount", "-l", str(path)], check=False, capture_output=True)


def fill(folder: Path, *, leave_bytes: int = 0) -> Path:
    """Write a file in `folder` until its disk is full (but for `leave_bytes`); return it."""
    filler = folder / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        for chunk in (1 << 20, 1 << 16, 1 << 12, 1 << 9, 1):
            block = b"\0" * chunk
            while True:
                st = os.statvfs(folder)
                if st.f_bavail * st.f_frsize - chunk < leave_bytes:
                    break
                try:
                    os.write(fd, block)
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise
                    break
    finally:
        os.close(fd)
    return filler


def remount_read_only(path: Path) -> None:
    """Make the tmpfs on `path` read-only (no file on it may be open for writing)."""
    subprocess.run(["mount", "-o", "remount,ro", str(path)], check=True, capture_output=True)
