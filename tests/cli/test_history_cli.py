"""`hipsense sessions` and `hipsense export` on a small history, in-process."""

import csv
import json
from datetime import timedelta
from pathlib import Path

import pytest
from fhir.resources.R4B.bundle import Bundle

from hipsense.cli import main
from tests.exports.histories import T0, program_history


@pytest.fixture(scope="module")
def state(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("state")
    program_history(folder / "history.db").close()
    return folder


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    try:
        status = main(list(argv))
    except SystemExit as exc:  # argparse's usage errors
        status = int(exc.code or 0)
    out = capsys.readouterr()
    return status, out.out, out.err


def test_sessions_lists_per_session_and_program_adherence_apart(
    state: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, _ = _run(capsys, "sessions", "--state-dir", str(state))
    assert status == 0
    header, *rows = out.splitlines()
    columns = ("session", "patient", "exercise", "side", "reps", "holds", "session adherence",
               "quality", "program adherence", "started (", "ended")  # fmt: skip
    assert [header.index(c) for c in columns] == sorted(header.index(c) for c in columns)
    assert [r.split()[0] for r in rows] == [
        "p1-d1-hold", "p1-d1-clam", "p2-d0-clam", "p1-d0-hold", "p1-d0-clam",
    ]  # fmt: skip
    first = rows[-1]  # p1-d0-clam: 4 of 4 on each side; the program's first of two lines
    assert "100 %" in first and "67 %" in first
    assert first.split()[1:4] == ["p-1", "clamshell", "both"]
    local = T0.astimezone()
    assert local.strftime("%Y-%m-%d %H:%M") in first  # local time, to the minute
    assert (local + timedelta(minutes=6)).strftime("%H:%M") == first.split()[-1]
    assert ".000" not in out and "+00:00" not in out  # no raw UTC with microseconds


def test_sessions_filters_and_json(state: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = _run(capsys, "sessions", "--state-dir", str(state), "--patient", "p-2")
    assert status == 0 and [r.split()[0] for r in out.splitlines()[1:]] == ["p2-d0-clam"]
    day2 = (T0 + timedelta(days=1)).astimezone().date().isoformat()
    status, out, _ = _run(capsys, "sessions", "--state-dir", str(state), "--since", day2, "--json")
    rows = json.loads(out)
    assert status == 0 and [r["session_id"] for r in rows] == ["p1-d1-hold", "p1-d1-clam"]
    assert (rows[0]["adherence_pct"], rows[0]["program_adherence_pct"]) == (75.0, 91.7)
    assert rows[0]["side"] == "both" and rows[0]["quality_pct"] == 100.0
    status, out, _ = _run(capsys, "sessions", "--state-dir", str(state), "--patient", "nobody")
    assert (status, out.strip()) == (0, "no sessions")


@pytest.mark.parametrize("since", ["yesterday", "2026-13-01", "02/03/2026"])
def test_a_bad_since_says_what_it_expected(
    state: Path, capsys: pytest.CaptureFixture[str], since: str
) -> None:
    status, _, err = _run(capsys, "sessions", "--state-dir", str(state), "--since", since)
    assert status == 2
    assert f"expected a date YYYY-MM-DD or a local time YYYY-MM-DDTHH:MM, got {since!r}" in err


def test_export_csv_and_fhir_per_session_and_per_patient(
    state: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    s = ("--state-dir", str(state))
    status, out, _ = _run(capsys, "export", *s, "p1-d0-clam", "--format", "csv",
                          "--out", str(tmp_path / "one"))  # fmt: skip
    assert status == 0 and "5 tables of 1 session to" in out
    with (tmp_path / "one" / "reps.csv").open(newline="") as f:
        reps = list(csv.DictReader(f))
    assert {r["session_id"] for r in reps} == {"p1-d0-clam"} and len(reps) == 8
    status, out, _ = _run(capsys, "export", *s, "--patient", "p-1", "--since",
                          (T0 + timedelta(days=1)).astimezone().date().isoformat(),
                          "--format", "fhir", "--out", str(tmp_path / "p.json"))  # fmt: skip
    assert status == 0 and "of 2 sessions" in out
    bundle = Bundle.model_validate_json((tmp_path / "p.json").read_text())
    assert bundle.type == "collection" and bundle.entry
    ids = {e.resource.identifier[0].value.split("/")[0] for e in bundle.entry}  # type: ignore[union-attr,index]
    assert ids == {"p1-d1-clam", "p1-d1-hold"}


@pytest.mark.parametrize(
    ("argv", "status", "message"),
    [
        (("--out", "x"), 2, "expected a SESSION or --patient P, got neither"),
        (("p1-d0-clam", "--patient", "p-1", "--format", "csv", "--out", "x"), 2,
         "expected a SESSION or --patient P, got both"),
        (("--patient", "p-1", "--out", "x"), 2,
         "--patient: expected --format csv or --format fhir"),
        (("--patient", "p-1", "--format", "recording", "--out", "x"), 2,
         "got --format recording"),
        (("p1-d0-clam", "--since", "2026-03-01", "--format", "csv", "--out", "x"), 2,
         "--since goes with --patient"),
        (("p1-d0-clam", "--format", "pdf", "--out", "x"), 2, "invalid choice: 'pdf'"),
        (("--patient", "nobody", "--format", "csv", "--out", "x"), 1,
         "expected sessions of 'nobody' in the history, found none"),
        (("--patient", "Jane Doe", "--format", "csv", "--out", "x"), 2,
         "expected a pseudonymous patient id (1-64 of A-Z a-z 0-9 _ . -), got 'Jane Doe'"),
        (("nope", "--format", "fhir", "--out", "x"), 1,
         "session: expected an id of `hipsense sessions`, got 'nope'"),
        (("p1-d0-clam", "--out", "x"), 1, "expected raw samples, found none"),
    ],
)  # fmt: skip
def test_export_bad_input_is_a_clear_error(
    state: Path,
    capsys: pytest.CaptureFixture[str],
    argv: tuple[str, ...],
    status: int,
    message: str,
) -> None:
    got, _, err = _run(capsys, "export", "--state-dir", str(state), *argv)
    assert got == status
    assert message in err
    assert "Traceback" not in err
