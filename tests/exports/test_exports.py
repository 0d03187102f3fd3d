"""CSV tables and the FHIR bundle of a patient's sessions (docs/exports.md)."""

import csv
import json
import stat
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fhir.resources.R4B.bundle import Bundle

from hipsense.exports import (
    CSV_COLUMNS,
    EXERCISE_CODES,
    LOCAL_CODES,
    LOINC,
    PATIENT_IDS,
    UCUM,
    ExportError,
    fhir_bundle,
    fhir_json,
    write_csv,
    write_fhir,
)
from hipsense.history import History, SessionRecord

from .histories import T0, program_history


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> Iterator[History]:
    h = program_history(tmp_path_factory.mktemp("exports") / "history.db")
    yield h
    h.close()


@pytest.fixture
def records(history: History) -> list[SessionRecord]:
    return history.records("p-1")


def _read(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        return list(reader.fieldnames or []), list(reader)


def test_csv_tables_have_the_documented_columns_and_rows(
    records: list[SessionRecord], tmp_path: Path
) -> None:
    paths = write_csv(records, tmp_path / "out")
    assert [p.name for p in paths] == [f"{name}.csv" for name in CSV_COLUMNS]
    tables = {p.stem: _read(p) for p in paths}
    for name, (header, _) in tables.items():
        assert tuple(header) == CSV_COLUMNS[name]
    # Every column is documented.
    doc = (Path(__file__).parents[2] / "docs" / "exports.md").read_text(encoding="utf-8")
    for name, columns in CSV_COLUMNS.items():
        assert f"### {name}.csv" in doc
        for column in columns:
            assert f"`{column}`" in doc, f"{name}.csv: {column} not in docs/exports.md"
    sessions = tables["sessions"][1]
    assert [s["session_id"] for s in sessions] == [
        "p1-d0-clam", "p1-d0-hold", "p1-d1-clam", "p1-d1-hold",
    ]  # fmt: skip
    d1_hold = sessions[3]
    assert (d1_hold["adherence_pct"], d1_hold["program_adherence_pct"]) == ("75.0", "91.7")
    assert (d1_hold["side"], d1_hold["hold_count"], d1_hold["set_count"]) == ("both", "3", "2")
    assert datetime.fromisoformat(sessions[0]["started_at"]) == T0
    lines = tables["lines"][1]
    done = [(ln["session_id"], ln["side"], ln["reps_done"], ln["adherence_pct"]) for ln in lines]
    assert done == [
        ("p1-d0-clam", "right", "4", "100.0"),
        ("p1-d0-clam", "left", "4", "100.0"),
        ("p1-d0-hold", "right", "2", "100.0"),
        ("p1-d0-hold", "left", "2", "100.0"),
        ("p1-d1-clam", "right", "4", "100.0"),
        ("p1-d1-clam", "left", "4", "100.0"),
        ("p1-d1-hold", "right", "2", "100.0"),
        ("p1-d1-hold", "left", "1", "50.0"),
    ]  # fmt: skip
    clam = lines[0]
    assert (clam["mean_rom_deg"], clam["max_rom_deg"], clam["flags"]) == ("31.5", "33.0", "")
    assert lines[1]["flags"] == "too_fast=1" and lines[1]["quality_pct"] == "75.0"
    assert (clam["tempo_out_s"], clam["tempo_back_s"], clam["prescribed_hold_s"]) == (
        "1.5",
        "1.5",
        "1.0",
    )
    reps = tables["reps"][1]
    assert len(reps) == 16  # 4 a side, 2 days
    assert [r["side"] for r in reps[:8]] == ["right"] * 4 + ["left"] * 4
    assert reps[4]["flags"] == "too_fast" and reps[0]["rest_before_s"] == ""
    assert [float(r["rom_deg"]) for r in reps[:4]] == [30.0, 31.0, 32.0, 33.0]
    holds = tables["holds"][1]
    assert [(h["session_id"], h["side"], h["hold_s"]) for h in holds[-3:]] == [
        ("p1-d1-hold", "right", "10.2"),
        ("p1-d1-hold", "right", "10.4"),
        ("p1-d1-hold", "left", "10.1"),
    ]
    sets = tables["sets"][1]
    assert [(s["session_id"], s["side"], s["reps"], s["holds"]) for s in sets[:4]] == [
        ("p1-d0-clam", "right", "4", "0"),
        ("p1-d0-clam", "left", "4", "0"),
        ("p1-d0-hold", "right", "0", "2"),
        ("p1-d0-hold", "left", "0", "2"),
    ]


def _codes(obs: dict[str, object]) -> set[tuple[str, str]]:
    code = obs["code"]
    assert isinstance(code, dict)
    return {(c["system"], c["code"]) for c in code["coding"]}


def test_the_fhir_bundle_validates_round_trips_and_says_what_was_measured(
    records: list[SessionRecord],
) -> None:
    stamp = datetime(2026, 3, 4, 12, 0, tzinfo=UTC)
    bundle = fhir_bundle(records, timestamp=stamp)
    text = bundle.model_dump_json()
    again = Bundle.model_validate_json(text)  # the validator's own parse of what we wrote
    assert again.model_dump(mode="json") == bundle.model_dump(mode="json")
    # Exporting twice gives the same resources: the ids are the session's and measure's.
    assert fhir_json(records, timestamp=stamp) == fhir_json(records, timestamp=stamp)
    data = json.loads(text)
    assert data["resourceType"] == "Bundle" and data["type"] == "collection"
    observations = [e["resource"] for e in data["entry"]]
    assert {o["resourceType"] for o in observations} == {"Observation"}
    assert len({e["fullUrl"] for e in data["entry"]}) == len(observations)
    for o in observations:
        assert o["status"] == "final"
        assert o["subject"] == {
            "type": "Patient",
            "identifier": {"system": PATIENT_IDS, "value": "p-1"},
        }
        q = o["valueQuantity"]
        assert q["system"] == UCUM and q["code"] in {"deg", "s", "{repetitions}", "%", "min"}
    loinc = {c for o in observations for s, c in _codes(o) if s == LOINC}
    assert loinc == {"55411-3"}  # exercise duration; nothing else measured has a LOINC
    local = {c for o in observations for s, c in _codes(o) if s == LOCAL_CODES}
    assert local == {
        "range-of-motion", "hold-duration", "repetitions", "adherence", "quality",
        "session-adherence", "program-adherence",
    }  # fmt: skip

    def find(session: str, side: str | None, code: str) -> dict[str, object]:
        # The identifier is {session}/{exercise}/{side or -}/{code}.
        ids = [str(o["identifier"][0]["value"]) for o in observations]
        (o,) = [
            o
            for o, v in zip(observations, ids, strict=True)
            if v.startswith(f"{session}/") and v.endswith(f"/{side or '-'}/{code}")
        ]
        return o

    rom = find("p1-d0-clam", "right", "range-of-motion")
    assert rom["valueQuantity"]["value"] == 31.5  # type: ignore[index]
    assert rom["bodySite"] == {"text": "right hip"}
    assert rom["referenceRange"][0]["low"]["code"] == "deg"  # type: ignore[index]
    assert rom["component"][0]["code"]["coding"][0]["code"] == "73985-4"  # type: ignore[index]
    assert rom["component"][0]["valueCodeableConcept"]["coding"][0] == {  # type: ignore[index]
        "system": EXERCISE_CODES,
        "code": "clamshell",
    }
    assert rom["component"][1]["valueQuantity"]["value"] == 33.0  # type: ignore[index]
    period = rom["effectivePeriod"]
    assert datetime.fromisoformat(period["start"]) == T0  # type: ignore[index]
    hold = find("p1-d1-hold", "left", "hold-duration")
    assert hold["valueQuantity"] == {  # type: ignore[comparison-overlap]
        "value": 10.1, "unit": "s", "system": UCUM, "code": "s",
    }  # fmt: skip
    assert find("p1-d1-hold", "left", "adherence")["valueQuantity"]["value"] == 50.0  # type: ignore[index]
    reps = find("p1-d1-hold", "left", "repetitions")
    assert reps["valueQuantity"]["value"] == 1  # type: ignore[index]
    assert reps["valueQuantity"]["code"] == "{repetitions}"  # type: ignore[index]
    session = find("p1-d1-hold", None, "session-adherence")
    assert session["valueQuantity"]["value"] == 75.0 and "bodySite" not in session  # type: ignore[index]
    program = find("p1-d1-hold", None, "program-adherence")
    assert program["valueQuantity"]["value"] == 91.7  # type: ignore[index]
    duration = find("p1-d0-clam", None, "duration")
    assert duration["valueQuantity"] == {  # type: ignore[comparison-overlap]
        "value": 6.0, "unit": "min", "system": UCUM, "code": "min",
    }  # fmt: skip


def test_an_invalid_bundle_is_refused_by_the_validator() -> None:
    # The check the export relies on is a real one: a bundle without its type fails.
    with pytest.raises(ValueError, match="type"):
        Bundle.model_validate({"resourceType": "Bundle", "entry": []})


def test_bad_outputs_and_nothing_to_export_are_clear_errors(
    records: list[SessionRecord], tmp_path: Path
) -> None:
    with pytest.raises(ExportError, match="expected at least one session, found none"):
        write_csv([], tmp_path / "none")
    with pytest.raises(ExportError, match="expected at least one session, found none"):
        fhir_bundle([])
    a_file = tmp_path / "file.csv"
    a_file.write_text("x")
    with pytest.raises(ExportError, match="expected a folder for the CSV tables, found a file"):
        write_csv(records, a_file)
    with pytest.raises(ExportError, match="expected a file for the FHIR bundle, found a folder"):
        write_fhir(records, tmp_path)
    with pytest.raises(ExportError, match="expected a file to write to"):
        write_fhir(records, tmp_path / "missing" / "b.json")
    assert write_fhir(records[:1], tmp_path / "one.json").stat().st_size > 0


def test_exports_are_readable_by_their_owner_only(
    records: list[SessionRecord], tmp_path: Path
) -> None:
    # Health data, as the history is (0600); an existing file is made so too.
    old = tmp_path / "b.json"
    old.write_text("{}")
    old.chmod(0o644)
    paths = [write_fhir(records, old), *write_csv(records, tmp_path / "tables")]
    assert {stat.S_IMODE(p.stat().st_mode) for p in paths} == {0o600}
    assert stat.S_IMODE((tmp_path / "tables").stat().st_mode) & 0o077 == 0
