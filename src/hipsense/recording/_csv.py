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
_WRITE_ROWS: Final = 65536
"""Rows formatted at a time when writing: memory stays bounded for long recordings."""
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
    columns: dict[str, int] = {}
    rows: list[str] = []
    row_lines: list[int] = []
    # Per block, only the columns a recording keeps, each as its own array: a 2-hour
    # 100 Hz file is then about 40 MB of samples, with no copy of every column beside it.
    kept: dict[str, list[F64Array]] = {"time_s": [], "acc": [], "gyr": [], "quat": []}
    last_t: list[float] = []

    def parse() -> None:
        assert header is not None
        values = _parse(rows, row_lines, len(header), label)
        time_s = values[:, columns["time_s"]]
        if time_s.shape[0]:
            # Increasing, also from the last row of the block before.
            t_all = np.concatenate([last_t, time_s])
            bad = np.flatnonzero(np.diff(t_all) <= 0)
            if bad.size:
                j = int(bad[0])
                raise RecordingError(
                    label,
                    row_lines[j + 1 - len(last_t)],
                    f"time_s: expected more than {float(t_all[j])!r} (the row before), "
                    f"got {float(t_all[j + 1])!r}",
                )
            last_t[:] = [float(time_s[-1])]
        kept["time_s"].append(np.ascontiguousarray(time_s))
        kept["acc"].append(values[:, [columns[c] for c in ("ax", "ay", "az")]])
        kept["gyr"].append(values[:, [columns[c] for c in ("gx", "gy", "gz")]])
        if "qw" in columns:
            kept["quat"].append(values[:, [columns[c] for c in OPTIONAL_COLUMNS]])
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
            columns = _columns(header, label, number)
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
    if rows or not kept["time_s"]:
        parse()

    def joined(name: str) -> F64Array:
        # One column at a time, each block freed as soon as it is copied: the pages of an
        # empty array become resident only as they are written, so the peak is the
        # samples once plus one block, not twice the column.
        parts = kept.pop(name)
        if len(parts) == 1:
            return parts[0]
        out = np.empty((sum(p.shape[0] for p in parts), *parts[0].shape[1:]))
        at = 0
        parts.reverse()
        while parts:
            block = parts.pop()
            out[at : at + block.shape[0]] = block
            at += block.shape[0]
            del block
        return out

    return Recording(
        time_s=joined("time_s"),
        acc_m_s2=joined("acc"),
        gyr_rad_s=joined("gyr"),
        quat=joined("quat") if "qw" in columns else None,
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
    for key, value in rec.metadata.items():
        if not re.fullmatch(r"[A-Za-z_][\w.-]*", key) or "\n" in value:
            raise ValueError(f"metadata {key!r}: expected a name and a one-line value")
    # Microseconds for time; 8 significant digits is finer than any int16 IMU count.
    fmt = ["%.6f"] + ["%.8g"] * (len(columns) - 1)
    with Path(path).open("w", encoding="utf-8", newline="\n") as out:
        for key, value in rec.metadata.items():
            out.write(f"# {key}: {value}\n")
        out.write(",".join(columns) + "\n")
        # In blocks: the text of a 2-hour 100 Hz recording is 65 MB, kept whole twice.
        for a in range(0, len(rec), _WRITE_ROWS):
            b = min(len(rec), a + _WRITE_ROWS)
            block = np.concatenate([p[a:b] for p in parts], axis=1)
            np.savetxt(out, block, delimiter=",", fmt=fmt)
