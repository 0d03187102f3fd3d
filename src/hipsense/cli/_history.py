"""`hipsense sessions`, `report` and `export`: the stored sessions, a report, raw samples."""

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from datetime import date, datetime

    from ..history import History

__all__ = ["add_parsers", "parse_since", "patient_id", "sessions_table"]


def add_parsers(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Register `sessions`, `report` and `export`."""
    # Where the history is: the same option on all three.
    state = argparse.ArgumentParser(add_help=False)
    state.add_argument("--state-dir", type=Path, help="default: $HIPSENSE_STATE_DIR or XDG state")
    p = sub.add_parser(
        "sessions",
        parents=[state],
        help="list the sessions in the history, newest first",
        description="List the sessions stored in the gateway's history: per session its "
        "patient, exercise, side, reps and holds, its own adherence and quality against "
        "the prescription, and the program's running adherence (named so), start in local "
        "time.",
    )
    p.add_argument(
        "--patient",
        metavar="P",
        type=patient_id,
        help="only this patient's sessions (pseudonymous id)",
    )
    p.add_argument(
        "--since",
        metavar="DATE",
        type=parse_since,
        help="only sessions started since: YYYY-MM-DD (from local midnight) or "
        "YYYY-MM-DDTHH:MM (local time unless it has an offset)",
    )
    p.add_argument("--json", action="store_true", help="print the rows as JSON, one list")
    p.set_defaults(func=_sessions)
    r = sub.add_parser(
        "report",
        parents=[state],
        help="write a session's or a patient's report as a self-contained HTML file",
        description="Write one session's report (SESSION: every line against the "
        "prescription, the session's adherence and the program's so far, angle over time "
        "with reps and holds, range of motion per rep against the target, tempo per rep) or "
        "a patient's (--patient: per exercise and side, range of motion, hold, tempo and "
        "quality over sessions; an adherence calendar; left against right; progression "
        "advice) as one HTML file, printable on A4. Times are local.",
    )
    r.add_argument("session", nargs="?", help="session id (hipsense sessions lists them)")
    r.add_argument(
        "--patient",
        metavar="P",
        type=patient_id,
        help="a patient's report instead (pseudonymous id)",
    )
    r.add_argument(
        "--since",
        metavar="DATE",
        type=parse_since,
        help="with --patient: only sessions started since (YYYY-MM-DD or YYYY-MM-DDTHH:MM)",
    )
    r.add_argument(
        "--out",
        type=Path,
        help="default: <state dir>/reports/<session>.html or <state dir>/reports/patient-<P>.html",
    )
    # Kept so a SESSION/--patient that do not fit are usage errors (exit 2).
    r.set_defaults(func=_report, report_parser=r)
    e = sub.add_parser(
        "export",
        parents=[state],
        help="export a session or a patient's sessions: raw samples, CSV tables or FHIR",
        description="Export one session (SESSION) or a patient's sessions (--patient). "
        "recording (the default, one session): the raw samples kept (keep_raw_samples, "
        "always on in hipsense demo) as a recording CSV that hipsense analyze reads. csv: "
        "a folder of CSV tables (sessions, lines, sets, reps, holds). fhir: a FHIR R4B "
        "Bundle of Observations (JSON). docs/exports.md says what each column and field "
        "means.",
    )
    e.add_argument("session", nargs="?", help="session id (hipsense sessions lists them)")
    e.add_argument(
        "--patient", metavar="P", type=patient_id, help="every session of this patient instead"
    )
    e.add_argument(
        "--since",
        metavar="DATE",
        type=parse_since,
        help="with --patient: only sessions started since (YYYY-MM-DD or YYYY-MM-DDTHH:MM)",
    )
    e.add_argument(
        "--format",
        choices=("recording", "csv", "fhir"),
        help="default: recording for a session; csv or fhir needed for --patient",
    )
    e.add_argument(
        "--out",
        type=Path,
        required=True,
        help="recording: the CSV file; csv: the folder of tables; fhir: the JSON file",
    )
    # Kept so a SESSION/--patient/--format that do not fit are usage errors (exit 2).
    e.set_defaults(func=_export, export_parser=e)


def _history(state_dir: Path | None) -> "History":
    from ..daemon import StateDirError, default_state_dir
    from ..history import History

    folder = state_dir or default_state_dir()
    if not folder.is_dir():
        raise StateDirError(
            f"state folder {folder}: expected the folder hipsense run or demo keeps its "
            "history in, found none"
        )
    return History(folder / "history.db")


def _sessions(args: argparse.Namespace) -> int:
    history = _history(args.state_dir)
    try:
        rows = history.sessions(patient_id=args.patient, since=args.since)
    finally:
        history.close()
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print("no sessions yet" if args.patient is None and args.since is None else "no sessions")
        return 0
    print(sessions_table(rows))
    return 0


_COLUMNS = (
    ("session", "<"),
    ("patient", "<"),
    ("exercise", "<"),
    ("side", "<"),
    ("reps", ">"),
    ("holds", ">"),
    ("session adherence", ">"),
    ("quality", ">"),
    ("program adherence", ">"),
    ("started (local)", "<"),
    ("ended", "<"),
)


def sessions_table(rows: list[dict[str, Any]]) -> str:
    """`hipsense sessions` as text: one line per session under a header, columns aligned."""
    cells = [[_cell_text(r, name) for name, _ in _COLUMNS] for r in rows]
    widths = [max(len(name), *(len(c[i]) for c in cells)) for i, (name, _) in enumerate(_COLUMNS)]
    from datetime import datetime

    # The start is in the local time zone of the machine that lists it: named in the header.
    zone = datetime.now().astimezone().tzname() or "local"
    header = [f"started ({zone})" if name == "started (local)" else name for name, _ in _COLUMNS]
    widths = [max(w, len(h)) for w, h in zip(widths, header, strict=True)]
    lines = [header, *cells]
    return "\n".join(
        "  ".join(
            f"{c:{align}{w}}" for c, (_, align), w in zip(line, _COLUMNS, widths, strict=True)
        ).rstrip()
        for line in lines
    )


def _cell_text(row: dict[str, Any], column: str) -> str:
    def pct(key: str) -> str:
        return "-" if row[key] is None else f"{row[key]:.0f} %"

    def count(key: str) -> str:
        return "-" if row[key] is None else str(row[key])

    if column == "session":
        return str(row["session_id"])
    if column in ("patient", "side"):
        return str(row["patient_id" if column == "patient" else "side"] or "-")
    if column == "exercise":
        return str(row["exercise"])
    if column in ("reps", "holds"):
        return count(f"{column.rstrip('s')}_count")
    if column == "session adherence":
        return pct("adherence_pct")
    if column == "quality":
        return pct("quality_pct")
    if column == "program adherence":
        return pct("program_adherence_pct")
    if column == "started (local)":
        return _local(row["started_at"])
    # interrupted: the gateway stopped first; closed at its next start.
    if row["interrupted"]:
        return "interrupted"
    return _local(row["ended_at"], since=row["started_at"]) if row["ended_at"] else "-"


def _local(text: str, since: str | None = None) -> str:
    """A stored time in local time to the minute; the date left out when it is `since`'s."""
    from datetime import UTC, datetime

    def parse(t: str) -> datetime:
        d = datetime.fromisoformat(t)
        return (d if d.tzinfo is not None else d.replace(tzinfo=UTC)).astimezone()

    try:
        t = parse(text)
        same_day = since is not None and parse(since).date() == t.date()
    except ValueError:
        return text  # not an ISO time: shown as stored
    return t.strftime("%H:%M") if same_day else t.strftime("%Y-%m-%d %H:%M")


def patient_id(text: str) -> str:
    """`--patient`: a pseudonymous id as the payloads have them (never a name)."""
    import re

    if not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", text):
        raise argparse.ArgumentTypeError(
            f"expected a pseudonymous patient id (1-64 of A-Z a-z 0-9 _ . -), got {text!r}"
        )
    return text


def parse_since(text: str) -> "date | datetime":
    """`--since`: a date (YYYY-MM-DD) or a date and time (YYYY-MM-DDTHH:MM[:SS][+HH:MM])."""
    from datetime import date, datetime

    try:
        return date.fromisoformat(text) if len(text) == 10 else datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a date YYYY-MM-DD or a local time YYYY-MM-DDTHH:MM, got {text!r}"
        ) from None


def _one_session_or_patient(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """A usage error unless exactly one of SESSION and --patient is given (--since with it)."""
    if (args.session is None) == (args.patient is None):
        both = "both" if args.session is not None else "neither"
        parser.error(f"expected a SESSION or --patient P, got {both}")
    if args.since is not None and args.patient is None:
        parser.error("--since goes with --patient (a SESSION is one session)")


def _report(args: argparse.Namespace) -> int:
    from ..daemon import default_state_dir
    from ..history import write_patient_report, write_report

    parser: argparse.ArgumentParser = args.report_parser
    _one_session_or_patient(parser, args)
    state_dir = args.state_dir or default_state_dir()
    history = _history(state_dir)
    reports = state_dir / "reports"
    try:
        if args.patient is not None:
            out = args.out or reports / f"patient-{args.patient}.html"
            path = write_patient_report(history, args.patient, out, args.since)
        else:
            path = write_report(history, args.session, args.out or reports / f"{args.session}.html")
    finally:
        history.close()
    print(path)
    return 0


def _export(args: argparse.Namespace) -> int:
    from ..recording import write_recording

    fmt = _export_format(args)
    if fmt != "recording":
        return _export_records(args, fmt)
    history = _history(args.state_dir)
    try:
        record = history.load(args.session)
        recording = history.load_raw(args.session)
    finally:
        history.close()
    write_recording(args.out, recording)
    print(
        f"wrote {args.out}: {len(recording.time_s)} samples of {record.exercise}; "
        f"hipsense analyze {args.out} --exercise {record.exercise}"
    )
    return 0


def _export_format(args: argparse.Namespace) -> str:
    """The format asked for, checked against what is exported (a usage error if it does not fit)."""
    parser: argparse.ArgumentParser = args.export_parser
    _one_session_or_patient(parser, args)
    fmt = str(args.format or ("recording" if args.session is not None else ""))
    if args.patient is not None and fmt in ("", "recording"):
        parser.error(
            "--patient: expected --format csv or --format fhir (recording is one session's "
            f"raw samples), got {'--format ' + fmt if fmt else 'no --format'}"
        )
    return fmt


def _export_records(args: argparse.Namespace, fmt: str) -> int:
    """`--format csv|fhir`: one session's record, or a patient's (oldest first)."""
    from .._text import counted
    from ..exports import ExportError, write_csv, write_fhir

    history = _history(args.state_dir)
    try:
        if args.session is not None:
            records = [history.load(args.session, traces=False)]
        else:
            records = history.records(args.patient, args.since)
    finally:
        history.close()
    if not records:
        since = "" if args.since is None else f" since {args.since}"
        raise ExportError(
            f"--patient: expected sessions of {args.patient!r}{since} in the history, found "
            "none (hipsense sessions lists them)"
        )
    if fmt == "csv":
        paths = write_csv(records, args.out)
        print(
            f"wrote {len(paths)} tables of {counted(len(records), 'session')} to {args.out}: "
            + ", ".join(p.name for p in paths)
        )
    else:
        write_fhir(records, args.out)
        print(
            f"wrote {args.out}: a FHIR R4B Bundle of the observations of "
            f"{counted(len(records), 'session')}"
        )
    return 0
