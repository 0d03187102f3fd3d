"""`hipsense sessions`, `report` and `export`: the stored sessions, a report, raw samples."""

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..history import History

__all__ = ["add_parsers"]


def add_parsers(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Register `sessions`, `report` and `export`."""
    # Where the history is: the same option on all three.
    state = argparse.ArgumentParser(add_help=False)
    state.add_argument("--state-dir", type=Path, help="default: $HIPSENSE_STATE_DIR or XDG state")
    p = sub.add_parser(
        "sessions",
        parents=[state],
        help="list the sessions in the history, newest first",
        description="List the sessions stored in the gateway's history.",
    )
    p.set_defaults(func=_sessions)
    r = sub.add_parser(
        "report",
        parents=[state],
        help="write one session's report as a self-contained HTML file",
        description="Write a session's report (angle over time with reps and holds, range of "
        "motion per rep against the target, tempo per rep, adherence) as one HTML file.",
    )
    r.add_argument("session", help="session id (hipsense sessions lists them)")
    r.add_argument("--out", type=Path, help="default: <state dir>/reports/<session>.html")
    r.set_defaults(func=_report)
    e = sub.add_parser(
        "export",
        parents=[state],
        help="write a session's raw samples as a recording CSV (for hipsense analyze)",
        description="Write the raw samples kept of a session (keep_raw_samples, always on in "
        "hipsense demo) as a recording CSV that hipsense analyze reads.",
    )
    e.add_argument("session", help="session id (hipsense sessions lists them)")
    e.add_argument("--out", type=Path, required=True, help="recording CSV to write")
    e.set_defaults(func=_export)


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
    rows = history.sessions()
    history.close()
    if not rows:
        print("no sessions yet")
        return 0
    print(
        f"{'session':<24} {'sensor':<12} {'exercise':<36} {'reps':>5} {'holds':>5} {'adh.':>6}"
        "  ended"
    )
    for s in rows:
        adherence = "" if s["adherence_pct"] is None else f"{s['adherence_pct']:.0f} %"
        # interrupted: the gateway stopped first; closed at its next start.
        ended = "interrupted" if s["interrupted"] else "yes" if s["ended_at"] else "-"
        print(
            f"{s['session_id']:<24} {s['sensor_id']:<12} {s['exercise']:<36} "
            f"{s['rep_count'] if s['rep_count'] is not None else '-':>5} "
            f"{s['hold_count'] if s['hold_count'] is not None else '-':>5} {adherence:>6}"
            f"  {ended}"
        )
    return 0


def _report(args: argparse.Namespace) -> int:
    from ..daemon import default_state_dir
    from ..history import write_report

    state_dir = args.state_dir or default_state_dir()
    history = _history(state_dir)
    try:
        path = write_report(
            history, args.session, args.out or state_dir / "reports" / f"{args.session}.html"
        )
    finally:
        history.close()
    print(path)
    return 0


def _export(args: argparse.Namespace) -> int:
    from ..recording import write_recording

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
