"""The hipsense recording format: IMU samples in SI units as CSV (docs/recording-format.md)."""

import io
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import numpy as np
from numpy.typing import NDArray

from .._errors import HipsenseError

__all__ = [
    "OPTIONAL_COLUMNS",
    "REQUIRED_COLUMNS",
    "Recording",
    "RecordingError",
    "read_recording",
    "write_recording",
]

REQUIRED_COLUMNS: Final = ("time_s", "ax", "ay", "az", "gx", "gy", "gz")
"""Time in seconds, acceleration in m/s^2 (gravity included), angular rate in rad/s."""
OPTIONAL_COLUMNS: Final = ("qw", "qx", "qy", "qz")
"""A sensor-fused unit quaternion, all four or none."""
_META: Final = re.compile(r"^#\s*([A-Za-z_][\w.-]*)\s*:\s*(.*?)\s*$")

F64Array = NDArray[np.float64]


class RecordingError(HipsenseError, ValueError):
    """A recording file that does not follow the format; says where and what."""

    def __init__(self, path: str, line: int | None, problem: str) -> None:
        self.path = path
        self.line = line
        self.problem = problem
        where = f"{path}:{line}" if line is not None else path
        super().__init__(f"{where}: {problem}")


@dataclass(frozen=True, slots=True, eq=False)
class Recording:
    """Samples of one IMU, in SI units, with the metadata from `# key: value` lines.

    `quat` is None when the recording holds raw data only.
    """

    time_s: F64Array
    acc_m_s2: F64Array
    gyr_rad_s: F64Array
    quat: F64Array | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = self.time_s.shape[0]
        shapes = {"time_s": (n,), "acc_m_s2": (n, 3), "gyr_rad_s": (n, 3)}
        if self.quat is not None:
            shapes["quat"] = (n, 4)
        for name, shape in shapes.items():
            actual = getattr(self, name).shape
            if actual != shape:
                raise ValueError(f"{name}: expected shape {shape}, got {actual}")

    @property
    def rate_hz(self) -> float:
        """Median sample rate, from the time column."""
        if self.time_s.shape[0] < 2:
            return math.nan
        return float(1.0 / np.median(np.diff(self.time_s)))

    @property
    def duration_s(self) -> float:
        """Time from the first to the last sample."""
        return float(self.time_s[-1] - self.time_s[0]) if self.time_s.shape[0] else 0.0

    def __len__(self) -> int:
        return int(self.time_s.shape[0])


def read_recording(source: str | Path | Iterable[str], *, name: str | None = None) -> Recording:
    """Read a recording from a path or from lines of text.

    Raises `RecordingError` naming the line for a missing or duplicated column, a row
    with the wrong number of fields, a value that is not a finite number, a time that
    does not increase, or a line longer than any row of the format can be. Columns the
    format does not define are ignored. A file is read a line at a time and parsed in
    blocks of rows, so memory grows with the samples, not with the text.
    """
    if isinstance(source, str | Path):
        label = name or str(source)
        try:
            with Path(source).open(encoding="utf-8") as f:
                lines = iter(lambda: f.readline(_MAX_LINE_CHARS + 1), "")
                return _read(_bounded(lines, label), label)
        except (OSError, UnicodeDecodeError) as exc:
            raise RecordingError(label, None, f"cannot read the file ({exc})") from exc
    label = name or "<recording>"
    return _read(_bounded(source, label), label)


_MAX_LINE_CHARS: Final = 4096
"""A row of eleven numbers fits in a few hundred characters; a longer line is not a row,
and reading it whole could take any amount of memory."""
_BLOCK_ROWS: Final = 65536
"""Rows parsed at a time: their text is freed before the next block is read."""


def _bounded(lines: Iterable[str], label: str) -> Iterable[tuple[int, str]]:
    """Lines with their numbers, none longer than `_MAX_LINE_CHARS`."""
    for number, line in enumerate(lines, start=1):
        if len(line.rstrip("\r\n")) > _MAX_LINE_CHARS:
            raise RecordingError(
                label,
                number,
                f"expected a line of at most {_MAX_LINE_CHARS} characters, got a longer one",
            )
        yield number, line


def _read(lines: Iterable[tuple[int, str]], label: str) -> Recording:
    metadata: dict[str, str] = {}
    header: list[str] | None = None
    header_line = 0
    rows: list[str] = []
    row_lines: list[int] = []
    blocks: list[F64Array] = []
    block_lines: list[NDArray[np.int64]] = []

    def parse() -> None:
        assert header is not None
        blocks.append(_parse(rows, row_lines, len(header), label))
        block_lines.append(np.asarray(row_lines, dtype=np.int64))
        rows.clear()
        row_lines.clear()

    for number, raw in lines:
        line = raw.strip()
        if not line:
            continue
        if line.startswith("#"):
            m = _META.match(line)
            if m and header is None:
                metadata[m.group(1)] = m.group(2)
            continue
        if header is None:
            header = [c.strip() for c in line.split(",")]
            header_line = number
            _columns(header, label, header_line)
            continue
        rows.append(line)
        row_lines.append(number)
        if len(rows) >= _BLOCK_ROWS:
            parse()

    if header is None:
        raise RecordingError(
            label,
            None,
            f"expected a header line {','.join(REQUIRED_COLUMNS)}, "
            "found no line that is not a comment",
        )
    columns = _columns(header, label, header_line)
    if rows or not blocks:
        parse()
    values = blocks[0] if len(blocks) == 1 else np.concatenate(blocks)
    numbers = block_lines[0] if len(block_lines) == 1 else np.concatenate(block_lines)
    time_s = values[:, columns["time_s"]]
    if time_s.shape[0] > 1:
        steps = np.diff(time_s)
        if (steps <= 0).any():
            i = int(np.argmax(steps <= 0)) + 1
            raise RecordingError(
                label,
                int(numbers[i]),
                f"time_s: expected more than {float(time_s[i - 1])!r} (the row before), "
                f"got {float(time_s[i])!r}",
            )
    quat = None
    if "qw" in columns:
        quat = values[:, [columns[c] for c in OPTIONAL_COLUMNS]]
    return Recording(
        time_s=np.ascontiguousarray(time_s),
        acc_m_s2=values[:, [columns[c] for c in ("ax", "ay", "az")]],
        gyr_rad_s=values[:, [columns[c] for c in ("gx", "gy", "gz")]],
        quat=quat,
        metadata=metadata,
    )


def _columns(header: list[str], label: str, line: int) -> dict[str, int]:
    seen: dict[str, int] = {}
    for i, name in enumerate(header):
        if name in seen:
            raise RecordingError(label, line, f"column {name!r}: expected once, found twice")
        seen[name] = i
    missing = [c for c in REQUIRED_COLUMNS if c not in seen]
    if missing:
        raise RecordingError(
            label,
            line,
            f"expected columns {','.join(REQUIRED_COLUMNS)}; missing {', '.join(missing)}",
        )
    quat = [c for c in OPTIONAL_COLUMNS if c in seen]
    if quat and len(quat) != len(OPTIONAL_COLUMNS):
        absent = [c for c in OPTIONAL_COLUMNS if c not in seen]
        raise RecordingError(
            label,
            line,
            f"expected all of {','.join(OPTIONAL_COLUMNS)} or none; missing {', '.join(absent)}",
        )
    return {c: seen[c] for c in (*REQUIRED_COLUMNS, *quat)}


def _parse(rows: list[str], row_lines: list[int], width: int, label: str) -> F64Array:
    if not rows:
        return np.empty((0, width))
    try:
        values = np.loadtxt(io.StringIO("\n".join(rows)), delimiter=",", ndmin=2, dtype=np.float64)
        if values.shape[1] != width:
            raise ValueError("width")
        if np.isfinite(values).all():
            return values
    except ValueError:
        pass
    # Slow path, only for a bad file: find the first offending line and say what is wrong.
    for text, number in zip(rows, row_lines, strict=True):
        fields = text.split(",")
        if len(fields) != width:
            raise RecordingError(
                label, number, f"expected {width} fields like the header, got {len(fields)}"
            )
        for i, f in enumerate(fields):
            try:
                v = float(f)
            except ValueError:
                raise RecordingError(
                    label, number, f"field {i + 1}: expected a number, got {f.strip()!r}"
                ) from None
            if not math.isfinite(v):
                raise RecordingError(
                    label, number, f"field {i + 1}: expected a finite number, got {f.strip()!r}"
                )
    raise RecordingError(label, None, "the file could not be parsed")  # pragma: no cover


def write_recording(path: str | Path, rec: Recording) -> None:
    """Write a recording; metadata become `# key: value` lines above the header."""
    columns = list(REQUIRED_COLUMNS)
    parts = [rec.time_s[:, None], rec.acc_m_s2, rec.gyr_rad_s]
    if rec.quat is not None:
        columns += OPTIONAL_COLUMNS
        parts.append(rec.quat)
    data = np.concatenate(parts, axis=1) if len(rec) else np.empty((0, len(columns)))
    buf = io.StringIO()
    for key, value in rec.metadata.items():
        if not re.fullmatch(r"[A-Za-z_][\w.-]*", key) or "\n" in value:
            raise ValueError(f"metadata {key!r}: expected a name and a one-line value")
        buf.write(f"# {key}: {value}\n")
    buf.write(",".join(columns) + "\n")
    # Microseconds for time; 8 significant digits is finer than any int16 IMU count.
    fmt = ["%.6f"] + ["%.8g"] * (len(columns) - 1)
    np.savetxt(buf, data, delimiter=",", fmt=fmt)
    Path(path).write_text(buf.getvalue(), encoding="utf-8")
