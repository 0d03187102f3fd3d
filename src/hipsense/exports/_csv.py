"""CSV tables of sessions: summaries, per side lines, sets, reps, holds (docs/exports.md).

One file per table in a folder, every table keyed by `session_id`, so a spreadsheet or a
clinic's import joins them. Times of events are seconds from the session's start (its
`started_at` in sessions.csv); lists are `;`-separated; flags `name=count`.
"""

import csv
import io
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from hipsense._files import write_private
from hipsense.history import SessionRecord

from ._errors import ExportError

__all__ = ["CSV_COLUMNS", "csv_tables", "write_csv"]

CSV_COLUMNS: dict[str, tuple[str, ...]] = {
    "sessions": (
        "session_id", "patient_id", "sensor_id", "exercise", "side", "started_at", "ended_at",
        "interrupted", "rep_count", "hold_count", "set_count", "reps_per_set", "mean_rom_deg",
        "mean_hold_s", "adherence_pct", "program_adherence_pct", "quality_pct", "flags",
        "progress", "advice", "notes",
    ),
    "lines": (
        "session_id", "patient_id", "started_at", "exercise", "side", "prescribed_sets",
        "prescribed_reps", "prescribed_hold_s", "target_min_deg", "target_max_deg",
        "tempo_out_s", "tempo_back_s", "sets_done", "reps_done", "reps_per_set",
        "mean_rom_deg", "max_rom_deg", "mean_hold_s", "mean_concentric_s", "mean_eccentric_s",
        "adherence_pct", "quality_pct", "flags",
    ),
    "sets": (
        "session_id", "patient_id", "exercise", "side", "index", "start_s", "end_s", "reps",
        "holds",
    ),
    "reps": (
        "session_id", "patient_id", "exercise", "side", "index", "set_index", "start_s",
        "peak_s", "end_s", "rom_deg", "concentric_s", "hold_s", "eccentric_s",
        "rest_before_s", "peak_velocity_dps", "smoothness", "max_off_plane_deg", "flags",
        "confidence", "recovered",
    ),
    "holds": (
        "session_id", "patient_id", "exercise", "side", "index", "set_index", "start_s",
        "end_s", "hold_s", "angle_deg", "on_target_pct", "stability_deg", "broken", "flags",
        "confidence", "recovered",
    ),
}  # fmt: skip
"""The columns of each table, in order (docs/exports.md says what each means)."""


def _text(v: Any) -> str:
    """One cell: empty for unknown, lists `;`-joined, flags `name=count`, booleans 0/1."""
    if v is None:
        return ""
    if isinstance(v, bool):
        return str(int(v))
    if isinstance(v, dict):
        return ";".join(f"{k}={n}" for k, n in v.items())
    if isinstance(v, list | tuple):
        return ";".join(_text(x) for x in v)
    return str(v)


def _sides(summary: dict[str, Any]) -> dict[int, str]:
    """The side of each of the motion core's sets, from the summary's lines."""
    out: dict[int, str] = {}
    for line in summary.get("lines") or []:
        for index in line.get("set_indexes") or []:
            out[int(index)] = str(line["side"])
    return out


def _session_row(r: SessionRecord) -> dict[str, Any]:
    s = r.summary or {}
    row = {
        "session_id": r.session_id,
        "patient_id": r.patient_id,
        "sensor_id": r.sensor_id,
        "exercise": r.exercise,
        "side": r.side,
        "started_at": r.started.isoformat(),
        "ended_at": None if r.ended is None else r.ended.isoformat(),
        "interrupted": r.interrupted,
    }
    for key in CSV_COLUMNS["sessions"][8:]:
        row[key] = s.get(key)
    row["advice"] = " | ".join(s.get("advice") or []) or None
    row["notes"] = " | ".join(s.get("notes") or []) or None
    return row


def _line_rows(r: SessionRecord) -> list[dict[str, Any]]:
    rows = []
    for line in (r.summary or {}).get("lines") or []:
        band = line.get("target_range_deg") or (None, None)
        tempo = line.get("tempo_s") or (None, None)
        row = {k: line.get(k) for k in CSV_COLUMNS["lines"]}
        row |= {
            "session_id": r.session_id,
            "patient_id": r.patient_id,
            "started_at": r.started.isoformat(),
            "target_min_deg": band[0],
            "target_max_deg": band[1],
            "tempo_out_s": tempo[0],
            "tempo_back_s": tempo[1],
        }
        rows.append(row)
    return rows


def _event_rows(r: SessionRecord, kind: str) -> list[dict[str, Any]]:
    sides = _sides(r.summary or {})
    rows = []
    for e in r.events:
        if e.get("kind") != kind:
            continue
        set_index = e.get("index" if kind == "set" else "set_index")
        row = {k: e.get(k) for k in CSV_COLUMNS[f"{kind}s"]}
        row |= {
            "session_id": r.session_id,
            "patient_id": r.patient_id,
            "exercise": r.exercise,
            "side": sides.get(int(set_index)) if set_index is not None else None,
        }
        rows.append(row)
    return rows


def csv_tables(records: Iterable[SessionRecord]) -> dict[str, list[dict[str, Any]]]:
    """The rows of each table (`CSV_COLUMNS`) for these sessions, in their order."""
    tables: dict[str, list[dict[str, Any]]] = {name: [] for name in CSV_COLUMNS}
    for r in records:
        tables["sessions"].append(_session_row(r))
        tables["lines"].extend(_line_rows(r))
        for kind in ("set", "rep", "hold"):
            tables[f"{kind}s"].extend(_event_rows(r, kind))
    return tables


def write_csv(records: Sequence[SessionRecord], folder: Path) -> list[Path]:
    """Write `<table>.csv` for each table into `folder` (made if missing); the paths.

    The files are readable by their owner only (0600), as the history is.
    """
    if not records:
        raise ExportError("export: expected at least one session, found none")
    if folder.exists() and not folder.is_dir():
        raise ExportError(f"--out {folder}: expected a folder for the CSV tables, found a file")
    tables = csv_tables(records)
    paths = []
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        for name, rows in tables.items():
            path = folder / f"{name}.csv"
            buf = io.StringIO()
            w = csv.writer(buf)
            w.writerow(CSV_COLUMNS[name])
            w.writerows([_text(row.get(c)) for c in CSV_COLUMNS[name]] for row in rows)
            write_private(path, buf.getvalue())
            paths.append(path)
    except OSError as exc:
        raise ExportError(f"--out {folder}: expected a folder to write to, got {exc}") from exc
    return paths
