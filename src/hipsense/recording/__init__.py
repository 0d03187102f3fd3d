"""Recordings: IMU samples in SI units as CSV files, for offline analysis and simulation."""

from ._csv import (
    OPTIONAL_COLUMNS,
    REQUIRED_COLUMNS,
    Recording,
    RecordingError,
    read_recording,
    write_recording,
)

__all__ = [
    "OPTIONAL_COLUMNS",
    "REQUIRED_COLUMNS",
    "Recording",
    "RecordingError",
    "read_recording",
    "write_recording",
]
