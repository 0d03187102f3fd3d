"""Exports a clinical record can take: CSV tables and a FHIR R4B Bundle of Observations.

Per session or per patient, from the history's records (docs/exports.md says what each
column and field means). `hipsense export` writes them.
"""

from ._csv import CSV_COLUMNS, csv_tables, write_csv
from ._errors import ExportError
from ._fhir import (
    EXERCISE_CODES,
    LOCAL_CODES,
    LOINC,
    OBSERVATION_IDS,
    PATIENT_IDS,
    UCUM,
    fhir_bundle,
    fhir_json,
    write_fhir,
)

__all__ = [
    "CSV_COLUMNS",
    "EXERCISE_CODES",
    "LOCAL_CODES",
    "LOINC",
    "OBSERVATION_IDS",
    "PATIENT_IDS",
    "UCUM",
    "ExportError",
    "csv_tables",
    "fhir_bundle",
    "fhir_json",
    "write_csv",
    "write_fhir",
]
