"""What an exercise is, as the motion core and the simulators need to know it.

Every exercise in configs/exercises/ is one TOML file validated by `Exercise`. Angles are
degrees, times seconds. The thigh frame is anatomical and right-handed: x distal along the
femur (hip to knee), y anterior, z = x * y, which is lateral on the right leg and medial
on the left. Axes are written for the right leg; `Exercise.axis_for` mirrors them.
"""

import enum
import re
from typing import Annotated, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .._errors import HipsenseError

__all__ = [
    "BodyPosition",
    "Contraction",
    "Dosage",
    "Exercise",
    "ExerciseError",
    "ExerciseKind",
    "FormCheck",
    "FormCue",
    "Movement",
    "RangeOfMotion",
    "SensorThigh",
    "Tempo",
    "Variant",
]


class ExerciseError(HipsenseError, ValueError):
    """An exercise file that does not load, or an exercise or variant id it does not have."""


_KEBAB = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BodyPosition(enum.StrEnum):
    """How the patient lies, sits or stands; it sets gravity in the thigh frame."""

    SIDE_LYING = "side-lying"
    PRONE = "prone"
    SUPINE = "supine"
    SEATED = "seated"
    QUADRUPED = "quadruped"
    STANDING = "standing"


class Movement(enum.StrEnum):
    """The hip movement the exercise trains."""

    INTERNAL_ROTATION = "internal-rotation"
    EXTERNAL_ROTATION = "external-rotation"
    ABDUCTION = "abduction"
    FLEXION = "flexion"
    EXTENSION = "extension"
    HOLD = "hold"
    """A position held still: isometric contractions and stretches."""


class Contraction(enum.StrEnum):
    """The seeds' levels: how the muscle works."""

    ISOMETRIC = "isometric"
    ECCENTRIC = "eccentric"
    CONCENTRIC = "concentric"
    COMBINED = "combined"
    DYNAMIC = "dynamic"
    """Concentric out, eccentric back: an ordinary rep."""
    STRETCH = "stretch"


class ExerciseKind(enum.StrEnum):
    """What the motion core segments: repetitions, or one long hold per set."""

    REPS = "reps"
    HOLD = "hold"


class SensorThigh(enum.StrEnum):
    """Which thigh carries the sensor."""

    WORKING = "working"
    """The thigh of the leg that moves (or stretches)."""
    STANCE = "stance"
    """The supporting leg, for standing exercises where it does the work."""


class FormCheck(enum.StrEnum):
    """The flags the motion core can raise for a rep or a hold."""

    TOO_FAST = "too_fast"
    TOO_MUCH_RANGE = "too_much_range"
    PARTIAL = "partial"
    OFF_PLANE = "off_plane"
    HOLD_SHORT = "hold_short"
    ECCENTRIC_FAST = "eccentric_fast"


class FormCue(_Strict):
    """A cue from the seed text that the sensor can check, and how."""

    check: FormCheck
    cue: Annotated[str, Field(min_length=3)]
    """The seed's words, e.g. "Move in a controlled manner without momentum"."""
    limit: float | None = None
    """The threshold in the check's unit: deg/s for too_fast (peak angular velocity), deg
    for off_plane, a fraction of the target for partial, seconds for eccentric_fast; None
    uses the range or dosage of the exercise (too_much_range, hold_short)."""


class RangeOfMotion(_Strict):
    """Range of motion of the primary angle, degrees from the neutral start position."""

    typical_deg: Annotated[float, Field(gt=0, le=150)]
    target_min_deg: Annotated[float, Field(gt=0, le=150)]
    target_max_deg: Annotated[float, Field(gt=0, le=160)]

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if not self.target_min_deg <= self.typical_deg <= self.target_max_deg:
            raise ValueError(
                "expected target_min_deg <= typical_deg <= target_max_deg, got "
                f"{self.target_min_deg} <= {self.typical_deg} <= {self.target_max_deg}"
            )
        return self


class Tempo(_Strict):
    """Seconds for the concentric and eccentric phases; None where the seed sets none."""

    concentric_s: Annotated[float, Field(gt=0, le=30)] | None = None
    eccentric_s: Annotated[float, Field(gt=0, le=30)] | None = None


class Dosage(_Strict):
    """Sets x reps x hold x tempo, as the seed prescribes.

    Ranges in the seed ("20 to 30 times", "hold 3-5 seconds") keep both ends: `reps` and
    `hold_s` are the lower end (what counts as done), `reps_max` and `hold_max_s` the
    upper. A hold exercise has `reps` holds of `hold_s` each per set.
    """

    sets: Annotated[int, Field(ge=1, le=10)] = 1
    reps: Annotated[int, Field(ge=1, le=100)]
    reps_max: Annotated[int, Field(ge=1, le=100)] | None = None
    hold_s: Annotated[float, Field(ge=0, le=300)] = 0.0
    hold_max_s: Annotated[float, Field(ge=0, le=300)] | None = None
    tempo: Tempo = Tempo()
    rest_between_sets_s: Annotated[float, Field(ge=0, le=600)] = 60.0
    resistance: Literal["none", "elastic", "weight"] = "none"
    per_side: bool = True
    """Done on both legs (the sensor moves to the other thigh between sides)."""

    @model_validator(mode="after")
    def _ranges(self) -> Self:
        if self.reps_max is not None and self.reps_max < self.reps:
            raise ValueError(f"expected reps_max >= reps ({self.reps}), got {self.reps_max}")
        if self.hold_max_s is not None and self.hold_max_s < self.hold_s:
            raise ValueError(
                f"expected hold_max_s >= hold_s ({self.hold_s}), got {self.hold_max_s}"
            )
        return self

    def describe(self, kind: ExerciseKind = ExerciseKind.REPS) -> str:
        """Human wording, e.g. "3 x 20, hold 3-5 s, elastic" or "hold 30-60 s"."""
        hold = f"{self.hold_s:g}" + (f"-{self.hold_max_s:g}" if self.hold_max_s else "")
        reps = f"{self.reps}" + (f"-{self.reps_max}" if self.reps_max else "")
        sets = f"{self.sets} sets of " if self.sets > 1 else ""
        if kind is ExerciseKind.HOLD:
            text = f"hold {hold} s" if self.reps == 1 else f"{reps} holds of {hold} s"
            text = sets + text
        else:
            text = f"{sets}{reps} reps"
            if self.hold_s or self.hold_max_s:
                text += f", hold {hold} s"
        if self.tempo.concentric_s:
            text += f", concentric {self.tempo.concentric_s:g} s"
        if self.tempo.eccentric_s:
            text += f", eccentric {self.tempo.eccentric_s:g} s"
        if self.resistance != "none":
            text += f", {self.resistance}"
        if self.per_side:
            text += ", each side"
        return text


class Variant(_Strict):
    """A variation with its own dosage (e.g. "with elastic: hold 3 s, 20 reps")."""

    id: str
    name: str
    dosage: Dosage

    @field_validator("id")
    @classmethod
    def _kebab(cls, v: str) -> str:
        if not _KEBAB.match(v):
            raise ValueError(f"expected a kebab-case id like 'with-elastic', got {v!r}")
        return v


class Exercise(_Strict):
    """One exercise of the library."""

    id: str
    name: str
    source: str
    """Where in the seeds the exercise comes from."""
    kind: ExerciseKind
    body_position: BodyPosition
    sensor_thigh: SensorThigh = SensorThigh.WORKING
    lying_on_working_side: bool = False
    """Side-lying with the working leg underneath (the seed's bottom-leg exercises)."""
    movement: Movement
    contraction: Contraction
    level: Annotated[int, Field(ge=1, le=4)] | None = None
    family: str | None = None
    """Exercises that are levels of one progression share a family."""
    progression_next: str | None = None
    """The id of the next level, reached by `progression_after_reps` correct reps."""
    progression_after_reps: Annotated[int, Field(ge=1)] | None = None
    hip_flexion_deg: Annotated[float, Field(ge=-30, le=130)]
    """Hip flexion of the start position: 0 lying straight or standing, 90 seated."""
    knee_flexion_deg: Annotated[float, Field(ge=0, le=150)]
    hip_rotation_deg: Annotated[float, Field(ge=-90, le=90)] = 0.0
    """Hip external rotation of the start position (negative: internal), about the
    femur: lying prone with the bent leg's ankle resting on the other calf is about 80,
    the thigh's front then facing out to the side instead of down."""
    axis_thigh: tuple[float, float, float]
    """Rotation axis of the movement in the thigh frame, for the right leg, pointing so
    that a positive rotation is the working direction; mirrored for the left leg."""
    outward_phase: Literal["concentric", "eccentric"] = "concentric"
    """The phase that moves away from the start position. Lifting against gravity is
    concentric; a step-down's lowering or a controlled drop is eccentric."""
    rom: RangeOfMotion
    dosage: Dosage
    variants: tuple[Variant, ...] = ()
    cues: tuple[FormCue, ...] = ()
    instructions: tuple[str, ...] = ()

    @field_validator("id", "family", "progression_next")
    @classmethod
    def _kebab(cls, v: str | None) -> str | None:
        if v is not None and not _KEBAB.match(v):
            raise ValueError(f"expected a kebab-case id like 'fire-hydrant', got {v!r}")
        return v

    @field_validator("axis_thigh")
    @classmethod
    def _unit(cls, v: tuple[float, float, float]) -> tuple[float, float, float]:
        norm = sum(c * c for c in v) ** 0.5
        if not 0.5 < norm < 2.0:
            raise ValueError(f"expected a direction of length about 1, got length {norm:.3f}")
        return (v[0] / norm, v[1] / norm, v[2] / norm)

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.kind is ExerciseKind.HOLD and self.dosage.hold_s <= 0:
            raise ValueError("a hold exercise needs dosage.hold_s > 0")
        if (self.progression_next is None) != (self.progression_after_reps is None):
            raise ValueError("progression_next and progression_after_reps go together")
        ids = [v.id for v in self.variants]
        if len(ids) != len(set(ids)):
            raise ValueError(f"variant ids must be unique, got {ids}")
        return self

    def axis_for(self, side: Literal["left", "right"]) -> tuple[float, float, float]:
        """The movement axis in the thigh frame of `side`, positive in the working direction.

        Mirroring the body across its sagittal plane keeps x and y of the thigh frame and
        flips z; an axis of rotation is a pseudovector, so it becomes (-x, -y, z).
        """
        x, y, z = self.axis_thigh
        return (x, y, z) if side == "right" else (-x, -y, z)

    def variant(self, variant_id: str | None) -> Dosage:
        """The dosage of a variant, or the exercise's own for None."""
        if variant_id is None:
            return self.dosage
        for v in self.variants:
            if v.id == variant_id:
                return v.dosage
        known = ", ".join(v.id for v in self.variants) or "none"
        raise ExerciseError(f"variant of {self.id}: expected one of {known}, got {variant_id!r}")

    def cue(self, check: FormCheck) -> FormCue | None:
        """The cue behind a check, if the exercise has one."""
        return next((c for c in self.cues if c.check is check), None)
