"""A FHIR R4B Bundle (type collection) of Observations of sessions (docs/exports.md).

Built as plain JSON, then validated by `fhir.resources`' R4B models (FHIR 4.3.0: its
Observation, Bundle and datatypes are R4's, so an R4 server takes them as they are). Per
summary line (an exercise on one side) the range of motion, the hold, the repetitions,
the adherence and the quality; per session its adherence, the program's running
adherence and the exercise duration. LOINC where a code for the concept exists
(55411-3 Exercise duration, 73985-4 Exercise activity for the exercise done); local codes
of `LOCAL_CODES` where none does (no LOINC code stands for the range of motion of a
rehabilitation exercise's repetitions, a hold's duration, a repetition count or
adherence to a prescription). Units are UCUM. The patient appears only as a reference by
their pseudonymous id; ids are derived from the session and measure, so exporting twice
gives the same resources (an import can de-duplicate).
"""

import uuid
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from hipsense._files import write_private
from hipsense.domain import utc_now
from hipsense.history import SessionRecord

from ._errors import ExportError

if TYPE_CHECKING:
    from fhir.resources.R4B.bundle import Bundle

__all__ = [
    "EXERCISE_CODES",
    "LOCAL_CODES",
    "LOINC",
    "OBSERVATION_IDS",
    "PATIENT_IDS",
    "UCUM",
    "fhir_bundle",
    "fhir_json",
    "write_fhir",
]

LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
LOCAL_CODES = "https://hipsense.org/fhir/CodeSystem/hipsense"
"""hipsense's own codes, for what LOINC has no code for (docs/exports.md lists them)."""
EXERCISE_CODES = "https://hipsense.org/fhir/CodeSystem/exercise"
"""The exercise library's ids (`hipsense exercises`) as codes."""
PATIENT_IDS = "https://hipsense.org/fhir/NamingSystem/patient-id"
"""The identifier system of the pseudonymous patient ids the clinic assigns."""
OBSERVATION_IDS = "https://hipsense.org/fhir/NamingSystem/observation-id"
"""`{session_id}/{exercise}/{side}/{code}`: one measure of one session."""

_CATEGORY = {
    "coding": [
        {
            "system": "http://terminology.hl7.org/CodeSystem/observation-category",
            "code": "activity",
            "display": "Activity",
        }
    ]
}
_DISPLAY = {
    "range-of-motion": "Range of motion of the repetitions, mean",
    "range-of-motion-max": "Range of motion of the repetitions, largest",
    "hold-duration": "Hold duration, mean",
    "repetitions": "Repetitions (or holds) done",
    "repetitions-prescribed": "Repetitions (or holds) prescribed",
    "sets": "Sets done",
    "adherence": "Adherence to the prescription line in this session",
    "quality": "Repetitions without a form flag and with the prescribed hold reached",
    "session-adherence": "Adherence to the prescription in this session",
    "program-adherence": "Adherence to the whole program so far",
}
"""The local codes of `LOCAL_CODES` and what each means."""


def _local(code: str) -> dict[str, Any]:
    return {"coding": [{"system": LOCAL_CODES, "code": code, "display": _DISPLAY[code]}]}


def _quantity(value: float, unit: str) -> dict[str, Any]:
    return {"value": value, "unit": unit, "system": UCUM, "code": unit}


def _exercise_component(exercise: str) -> dict[str, Any]:
    return {
        "code": {"coding": [{"system": LOINC, "code": "73985-4", "display": "Exercise activity"}]},
        "valueCodeableConcept": {
            "coding": [{"system": EXERCISE_CODES, "code": exercise}],
            "text": exercise,
        },
    }


class _Session:
    """The parts all Observations of one session share."""

    def __init__(self, r: SessionRecord) -> None:
        self.r = r
        self.base: dict[str, Any] = {"resourceType": "Observation", "status": "final"}
        self.base["category"] = [_CATEGORY]
        if r.patient_id is not None:
            self.base["subject"] = {
                "type": "Patient",
                "identifier": {"system": PATIENT_IDS, "value": r.patient_id},
            }
        start = r.started.isoformat()
        if (ended := r.ended) is not None:
            self.base["effectivePeriod"] = {"start": start, "end": ended.isoformat()}
        else:
            self.base["effectiveDateTime"] = start

    def observation(
        self,
        code: dict[str, Any],
        key: str,
        *,
        exercise: str | None,
        side: str | None,
        **fields: Any,
    ) -> dict[str, Any]:
        value = f"{self.r.session_id}/{exercise or '-'}/{side or '-'}/{key}"
        obs = {
            **self.base,
            "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{OBSERVATION_IDS}|{value}")),
            "identifier": [{"system": OBSERVATION_IDS, "value": value}],
            "code": code,
            **fields,
        }
        if side is not None:
            obs["bodySite"] = {"text": f"{side} hip"}
        if exercise is not None:
            obs["component"] = [_exercise_component(exercise), *obs.get("component", [])]
        return obs


def _measures(
    s: _Session, m: dict[str, Any], exercise: str, side: str | None
) -> list[dict[str, Any]]:
    """Range of motion, hold, repetitions, adherence and quality of one line (or session)."""
    out = []
    where = {"exercise": exercise, "side": side}
    if m.get("mean_rom_deg") is not None:
        extra: dict[str, Any] = {}
        if m.get("max_rom_deg") is not None:
            extra["component"] = [
                {
                    "code": _local("range-of-motion-max"),
                    "valueQuantity": _quantity(m["max_rom_deg"], "deg"),
                }
            ]
        band = m.get("target_range_deg")
        if band:
            extra["referenceRange"] = [
                {
                    "low": _quantity(band[0], "deg"),
                    "high": _quantity(band[1], "deg"),
                    "text": "the prescribed target band",
                }
            ]
        out.append(
            s.observation(
                _local("range-of-motion"),
                "range-of-motion",
                valueQuantity=_quantity(m["mean_rom_deg"], "deg"),
                **where,
                **extra,
            )
        )
    if m.get("mean_hold_s") is not None:
        extra = {}
        if m.get("prescribed_hold_s"):
            extra["referenceRange"] = [
                {"low": _quantity(m["prescribed_hold_s"], "s"), "text": "the prescribed hold"}
            ]
        out.append(
            s.observation(
                _local("hold-duration"),
                "hold-duration",
                valueQuantity=_quantity(m["mean_hold_s"], "s"),
                **where,
                **extra,
            )
        )
    if "reps_done" in m:
        reps, sets = int(m["reps_done"]), int(m.get("sets_done", 0))
        prescribed = int(m.get("prescribed_sets", 0)) * int(m.get("prescribed_reps", 0))
    else:  # a session without lines: its counts
        reps = int(m.get("rep_count") or 0) + int(m.get("hold_count") or 0)
        sets, prescribed = int(m.get("set_count") or 0), 0
    components = [{"code": _local("sets"), "valueQuantity": _quantity(sets, "{sets}")}]
    if prescribed:
        components.append(
            {
                "code": _local("repetitions-prescribed"),
                "valueQuantity": _quantity(prescribed, "{repetitions}"),
            }
        )
    out.append(
        s.observation(
            _local("repetitions"),
            "repetitions",
            valueQuantity=_quantity(reps, "{repetitions}"),
            component=components,
            **where,
        )
    )
    if "reps_done" in m and m.get("adherence_pct") is not None:
        out.append(
            s.observation(
                _local("adherence"),
                "adherence",
                valueQuantity=_quantity(m["adherence_pct"], "%"),
                **where,
            )
        )
    if m.get("quality_pct") is not None:
        out.append(
            s.observation(
                _local("quality"),
                "quality",
                valueQuantity=_quantity(m["quality_pct"], "%"),
                **where,
            )
        )
    return out


def _observations(r: SessionRecord) -> list[dict[str, Any]]:
    s = _Session(r)
    summary = r.summary or {}
    lines = summary.get("lines") or []
    out = []
    for line in lines:
        out.extend(_measures(s, line, str(line["exercise"]), str(line["side"])))
    if not lines and summary:
        side = r.side if r.side in ("left", "right") else None
        out.extend(_measures(s, summary, r.exercise, side))
    for key in ("session-adherence", "program-adherence"):
        value = summary.get(key.replace("session-", "").replace("-", "_") + "_pct")
        if value is not None and (lines or key == "program-adherence"):
            out.append(
                s.observation(
                    _local(key),
                    key,
                    valueQuantity=_quantity(value, "%"),
                    exercise=r.exercise,
                    side=None,
                )
            )
    if (ended := r.ended) is not None:
        minutes = (ended - r.started).total_seconds() / 60
        out.append(
            s.observation(
                {"coding": [{"system": LOINC, "code": "55411-3", "display": "Exercise duration"}]},
                "duration",
                valueQuantity=_quantity(round(minutes, 2), "min"),
                exercise=r.exercise,
                side=None,
            )
        )
    return out


def fhir_json(records: Sequence[SessionRecord], *, timestamp: datetime | None = None) -> str:
    """The sessions' Bundle as FHIR JSON, validated (`ExportError` if it is not valid)."""
    return fhir_bundle(records, timestamp=timestamp).model_dump_json(indent=2)


def fhir_bundle(records: Sequence[SessionRecord], *, timestamp: datetime | None = None) -> "Bundle":
    """A FHIR R4B Bundle (type collection) of the sessions' Observations, validated.

    `timestamp`: when the bundle was assembled (default: now).
    """
    from fhir.resources.R4B.bundle import Bundle

    if not records:
        raise ExportError("export: expected at least one session, found none")
    entries = [
        {"fullUrl": f"urn:uuid:{obs['id']}", "resource": obs}
        for r in records
        for obs in _observations(r)
    ]
    names = sorted(r.session_id for r in records)
    bundle = {
        "resourceType": "Bundle",
        "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{OBSERVATION_IDS}|{'|'.join(names)}")),
        "type": "collection",
        "timestamp": (timestamp or utc_now()).isoformat(),
        "entry": entries,
    }
    try:
        return Bundle.model_validate(bundle)
    except ValidationError as exc:
        # A bug of ours (or a stored summary of another shape), not the user's input.
        raise ExportError(f"FHIR bundle: expected a valid R4B Bundle, got {exc}") from exc


def write_fhir(records: Sequence[SessionRecord], path: Path) -> Path:
    """Write the sessions' Bundle as FHIR JSON to `path`, readable by its owner only."""
    text = fhir_json(records)
    if path.is_dir():
        raise ExportError(f"--out {path}: expected a file for the FHIR bundle, found a folder")
    try:
        write_private(path, text + "\n")
    except OSError as exc:
        raise ExportError(f"--out {path}: expected a file to write to, got {exc}") from exc
    return path
