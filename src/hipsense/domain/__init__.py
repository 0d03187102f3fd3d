"""Domain types, pure: what a session, a report and an MQTT message say.

Prescriptions, live frames, rep, hold, set and calibration payloads, summaries and
commands, as pydantic models. Importing this package loads no network or storage code;
`hipsense.mqtt` publishes these types and re-exports them.
"""

from ._payloads import (
    ALGORITHM_VERSION,
    SCHEMA_VERSION,
    CalibrationPayload,
    CommandReply,
    CommandRequest,
    EventMessage,
    HoldPayload,
    LiveFrame,
    PrescribedExercise,
    Prescription,
    RepPayload,
    SensorSession,
    SensorState,
    SetPayload,
    Status,
    Summary,
    SummaryLine,
    event_payload,
    utc_now,
)

__all__ = [
    "ALGORITHM_VERSION",
    "SCHEMA_VERSION",
    "CalibrationPayload",
    "CommandReply",
    "CommandRequest",
    "EventMessage",
    "HoldPayload",
    "LiveFrame",
    "PrescribedExercise",
    "Prescription",
    "RepPayload",
    "SensorSession",
    "SensorState",
    "SetPayload",
    "Status",
    "Summary",
    "SummaryLine",
    "event_payload",
    "utc_now",
]
