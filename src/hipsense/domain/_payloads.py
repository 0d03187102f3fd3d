"""Payloads of every hipsense MQTT message, as pydantic models.

They are the domain's own types too (a prescription, a session's summary, a live frame),
so they live apart from the MQTT client: sessions and reports use them without loading
a network stack. The JSON Schemas in `docs/schemas/` and the AsyncAPI document
`docs/asyncapi.yaml` are generated from these models (`hipsense contract --write`); a
test fails when they are out of date.
"""

from datetime import UTC, datetime
from typing import Annotated, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from hipsense._version import __version__
from hipsense.motion import Calibration, Flag, HoldEvent, RepEvent, SetEvent

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

SCHEMA_VERSION = "1"
"""Sent as the `schema_version` user property; bumps on an incompatible change."""
ALGORITHM_VERSION = __version__
"""Sent as the `algorithm_version` user property: which motion core measured it."""

Id = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]


def utc_now() -> datetime:
    """The current time, timezone-aware."""
    return datetime.now(UTC)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Status(_Model):
    """`status` (retained): is the gateway there? Also its Last Will ("offline")."""

    state: Literal["online", "offline"]
    gateway_id: Id
    version: str = __version__
    time: datetime = Field(default_factory=utc_now)


class SensorState(_Model):
    """`sensors/{sensor_id}/state` (retained): the link to one sensor."""

    sensor_id: Id
    connected: bool
    battery_pct: float | None = None
    rssi_dbm: float | None = None
    rate_hz: float | None = None
    loss_pct: float | None = None
    reconnects: int = 0
    error: str | None = None
    """Why the link is down for good (no Bluetooth adapter, another protocol version):
    the gateway has stopped trying. None while it works or retries."""
    kind: str = "hipsense"
    """The sensor kind (hipsense, witmotion, ...; see docs/sensors.md)."""
    timing: Literal["sensor", "host"] = "sensor"
    """Where sample times come from: the sensor's clock, or their arrival at the gateway
    (a sensor whose packets carry no timestamp: rep times are less exact)."""
    delivered_rate_hz: float | None = None
    """Samples per second that really arrive, when the link measures it (a WitMotion
    delivers less than its configured `rate_hz`)."""
    storage: str | None = None
    """None while the gateway writes events to its state folder; else why it cannot (disk
    full, read-only) and what it does meanwhile: events are held in memory and written
    out once it can (see docs/architecture.md)."""
    time: datetime = Field(default_factory=utc_now)


class SensorSession(_Model):
    """`sensors/{sensor_id}/session` (retained): the session one sensor is in now.

    A fixed topic per sensor for consumers that cannot follow session topics (Home
    Assistant's entities each read one topic). Published when a session starts, after
    each of its events, and when it ends.
    """

    sensor_id: Id
    session_id: Id
    state: Literal["calibrating", "exercising", "resting", "ended"]
    """`calibrating` until the motion core has found the start position and axis (its first
    calibration or rep); `resting` after a set ended, until the next rep or hold;
    `ended` once the session is over."""
    exercise: str
    set_index: int = Field(ge=0)
    """The set under way (0 first); after a set ended, the next one."""
    set_reps: int = Field(ge=0)
    """Reps in that set so far."""
    rep_count: int = Field(ge=0)
    hold_count: int = Field(ge=0)
    last_rom_deg: float | None = None
    """Range of motion of the session's last rep."""
    time: datetime = Field(default_factory=utc_now)


class LiveFrame(_Model):
    """`sessions/{session_id}/live` (QoS 0, expires): the angle, about 20 frames/s."""

    session_id: Id
    t_s: list[float]
    """Stream time of each sample (s)."""
    angle_deg: list[float]
    """Primary angle from neutral, positive in the working direction."""
    off_plane_deg: list[float]


class RepPayload(_Model):
    """A repetition (see docs/motion.md for every field)."""

    kind: Literal["rep"] = "rep"
    index: int
    set_index: int
    start_s: float
    peak_s: float
    end_s: float
    rom_deg: float
    concentric_s: float
    hold_s: float
    eccentric_s: float
    rest_before_s: float | None
    peak_velocity_dps: float
    smoothness: float
    max_off_plane_deg: float
    flags: list[Flag]
    confidence: float
    recovered: bool = False
    """Measured late: made before the reference (start position and axis) was known, and
    published once it was (see docs/motion.md)."""


class HoldPayload(_Model):
    """An isometric hold or a stretch."""

    kind: Literal["hold"] = "hold"
    index: int
    set_index: int
    start_s: float
    end_s: float
    hold_s: float
    angle_deg: float
    on_target_pct: float
    stability_deg: float
    broken: int
    flags: list[Flag]
    confidence: float
    recovered: bool = False
    """Measured late, as for reps."""


class SetPayload(_Model):
    """The end of a set."""

    kind: Literal["set"] = "set"
    index: int
    start_s: float
    end_s: float
    reps: int
    holds: int


class CalibrationPayload(_Model):
    """A new neutral pose or movement axis."""

    kind: Literal["calibration"] = "calibration"
    t_s: float
    reason: Literal["still", "explicit", "reposition", "axis"]
    axis_quality: float


EventPayload = Annotated[
    RepPayload | HoldPayload | SetPayload | CalibrationPayload, Field(discriminator="kind")
]


class EventMessage(_Model):
    """`sessions/{session_id}/events` (QoS 1): one event of a session.

    `id` is unique; `seq` counts 0, 1, 2 ... per session, so a subscriber can drop
    duplicates (QoS 1 delivers at least once) and see a gap.
    """

    id: str
    session_id: Id
    seq: int = Field(ge=0)
    sensor_id: Id
    time: datetime = Field(default_factory=utc_now)
    event: EventPayload


def event_payload(
    ev: RepEvent | HoldEvent | SetEvent | Calibration,
) -> RepPayload | HoldPayload | SetPayload | CalibrationPayload:
    """The payload of a motion-core event."""
    if isinstance(ev, RepEvent):
        d = ev.to_dict()
        d.pop("top_s"), d.pop("hold_end_s")
        return RepPayload.model_validate(d)
    if isinstance(ev, HoldEvent):
        d = ev.to_dict()
        d.pop("enter_s"), d.pop("exit_s")
        return HoldPayload.model_validate(d)
    if isinstance(ev, SetEvent):
        return SetPayload(
            index=ev.index, start_s=ev.start_s, end_s=ev.end_s, reps=ev.reps, holds=ev.holds
        )
    return CalibrationPayload(t_s=ev.t_s, reason=ev.reason, axis_quality=ev.axis_quality)


class PrescribedExercise(_Model):
    """One line of a prescription."""

    exercise: Id
    variant: Id | None = None
    side: Literal["left", "right", "both"] = "both"
    sets: int = Field(ge=1, le=20)
    reps: int = Field(ge=1, le=100)
    hold_s: float = Field(default=0.0, ge=0.0, le=300.0)
    tempo_s: tuple[float, float] | None = None
    """Outward and return phase durations."""
    range_deg: tuple[float, float] | None = None


class Prescription(_Model):
    """What the physiotherapist prescribed. Patients appear by pseudonymous id only."""

    patient_id: Id
    exercises: list[PrescribedExercise] = Field(min_length=1)


_Side = Literal["left", "right"]


class SummaryLine(_Model):
    """One prescription line on one side, as done in this session.

    A session has one per exercise and side it was for (the sides of its prescription line
    still to do when it started) or did.
    """

    exercise: str
    side: _Side
    prescribed_sets: int = Field(ge=0)
    prescribed_reps: int = Field(ge=0)
    """Reps (or holds) per set."""
    prescribed_hold_s: float = 0.0
    """The hold each rep should reach (the line's, else the exercise's dosage); 0 if none."""
    target_range_deg: tuple[float, float] | None = None
    """The target band of the range of motion [low, high] (the line's, else the library's)."""
    tempo_s: tuple[float, float] | None = None
    """Prescribed outward and return seconds; None for holds or without a tempo."""
    sets_done: int = Field(ge=0)
    reps_done: int = Field(ge=0)
    """Reps (or holds) counted on this side in this session."""
    reps_per_set: list[int] = []
    set_indexes: list[int] = []
    """The motion core's index of each of those sets (the events' `set_index`): which
    reps and holds of the session were done on this side."""
    mean_rom_deg: float | None = None
    max_rom_deg: float | None = None
    mean_hold_s: float | None = None
    mean_concentric_s: float | None = None
    """Mean outward phase of the reps (None for holds)."""
    mean_eccentric_s: float | None = None
    """Mean return phase of the reps (None for holds)."""
    adherence_pct: float
    """This line's prescribed reps done in this session, each set counted up to its
    prescription (the fullest sets, as many as prescribed)."""
    quality_pct: float | None = None
    """Reps (or holds) without a form flag and with the prescribed hold reached; None when
    none were done."""
    flags: dict[Flag, int] = {}
    """How many reps and holds of this line carry each flag."""


class Summary(_Model):
    """`sessions/{session_id}/summary` (retained, QoS 1)."""

    session_id: Id
    patient_id: Id | None = None
    sensor_id: Id
    exercise: str
    started_at: datetime
    ended_at: datetime | None = None
    rep_count: int
    hold_count: int
    set_count: int
    reps_per_set: list[int]
    mean_rom_deg: float | None
    mean_hold_s: float | None
    flags: dict[Flag, int]
    last_seq: int
    """Sequence number of the session's last event."""
    progress: str | None = None
    """Against the prescription, e.g. "clamshell, set 2 of 3: 14/20 reps, 3 s holds
    reached on 11"; None without a prescription."""
    adherence_pct: float | None = None
    """This session's adherence: the reps prescribed for it (its `lines`) against those
    done, each set counted up to its prescription; None without a prescription. (Before
    `program_adherence_pct` existed this field carried the program's running total.)"""
    program_adherence_pct: float | None = None
    """The program's running total: the reps of the whole prescription (every line, every
    side) done so far in the sessions that shared it."""
    quality_pct: float | None = None
    """This session's reps (or holds) without a form flag and with the prescribed hold
    reached."""
    lines: list[SummaryLine] = []
    """Per exercise and side this session was for or did, against the prescription."""
    side: Literal["left", "right", "both"] | None = None
    """The side(s) done in this session; None when unknown (no prescription, nothing done)."""
    advice: list[str] = []
    """Progression advice by the exercise library's rules."""
    notes: list[str] = []
    """What did not match the prescription (another exercise, far more reps or range)."""


class _StartSession(_Model):
    command: Literal["start_session"]
    session_id: Id | None = None
    prescription: Prescription | None = None
    """The prescription; when absent, the patient's retained one is used."""
    patient_id: Id | None = None
    sensor_id: Id | None = None

    @model_validator(mode="after")
    def _who(self) -> Self:
        if self.prescription is None and self.patient_id is None:
            raise ValueError("expected a prescription or a patient_id, got neither")
        if (
            self.prescription is not None
            and self.patient_id is not None
            and self.prescription.patient_id != self.patient_id
        ):
            raise ValueError(
                f"patient_id: expected the prescription's {self.prescription.patient_id!r}, "
                f"got {self.patient_id!r}"
            )
        return self


class _StopSession(_Model):
    command: Literal["stop_session"]
    session_id: Id


class _Calibrate(_Model):
    command: Literal["calibrate"]
    sensor_id: Id | None = None


class _ChangeExercise(_Model):
    command: Literal["change_exercise"]
    session_id: Id
    exercise: Id
    variant: Id | None = None


class CommandRequest(_Model):
    """`cmd`: a request.

    The reply goes to the MQTT 5 response topic with the correlation data when the
    request names one, else to `cmd/reply` carrying `correlation_id`.
    """

    request: Annotated[
        _StartSession | _StopSession | _Calibrate | _ChangeExercise,
        Field(discriminator="command"),
    ]
    correlation_id: str | None = Field(default=None, max_length=128)


class CommandReply(_Model):
    """The reply to a command, with the request's correlation data."""

    ok: bool
    command: str | None = None
    session_id: Id | None = None
    error: str | None = None
    correlation_id: str | None = None
    """The request's `correlation_id`, for clients without MQTT 5 correlation data."""
    time: datetime = Field(default_factory=utc_now)
