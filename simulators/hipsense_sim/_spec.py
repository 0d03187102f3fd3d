"""What to simulate: a scenario, as written in simulators/scenarios/*.toml."""

import tomllib
from pathlib import Path
from typing import Annotated, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "FaultKind",
    "ImuSpec",
    "LinkSpec",
    "NonExerciseKind",
    "NonExerciseSpec",
    "ScenarioSpec",
    "SetSpec",
    "load_scenario",
    "load_suite",
    "suite_dir",
]

FaultKind = Literal[
    "too_fast", "too_much_range", "off_plane", "hold_short", "eccentric_fast", "partial"
]
NonExerciseKind = Literal["adjust-pillow", "reach-phone", "walk", "sit-down", "stand-up", "fidget"]


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SetSpec(_Spec):
    """One set: how many reps (or holds), on which side, and which reps carry faults."""

    reps: Annotated[int, Field(ge=0, le=200)]
    side: Literal["left", "right"] = "right"
    faults: dict[FaultKind, list[int]] = {}
    """Rep indices (0-based, within the set) that carry each fault."""
    rest_after_s: Annotated[float, Field(ge=0, le=600)] = 45.0
    rom_scale: Annotated[float, Field(ge=0.1, le=1.5)] = 1.0
    """Scales this set's ranges (holds: targets), after they are drawn and kept within the
    exercise's target range: 0.4 is a low-amplitude set after a normal one. The ranges of
    injected `partial` and `too_much_range` reps are the faults' own, not scaled."""
    tempo_scale: Annotated[float, Field(ge=0.1, le=3.0)] = 1.0
    """Scales the durations of this set's outward and return phases (holds: moving in and
    out): 0.5 is a set done twice as fast."""
    hold_s: Annotated[float, Field(ge=0, le=600)] | None = None
    """This set's time at end range (holds: the hold); the scenario's when None."""
    rest_between_reps_s: Annotated[float, Field(ge=0, le=600)] | None = None
    """This set's rest between reps; the scenario's when None."""

    @model_validator(mode="after")
    def _faults_agree(self) -> Self:
        both = set(self.faults.get("partial", [])) & set(self.faults.get("too_much_range", []))
        if both:
            raise ValueError(
                f"faults: a rep is either partial or too_much_range, got both on {sorted(both)}"
            )
        return self


class NonExerciseSpec(_Spec):
    """A stretch of ordinary motion that must count as zero reps."""

    kind: NonExerciseKind
    duration_s: Annotated[float, Field(gt=0, le=3600)]
    at: Literal["start", "end", "between-sets"] = "start"


class ImuSpec(_Spec):
    """The sensor model; defaults are a BMI270 / ICM-42688 class IMU on a strap."""

    rate_hz: Literal[25, 50, 100, 200] = 100
    accel_range_g: Literal[2, 4, 8, 16] = 8
    gyro_range_dps: Literal[125, 250, 500, 1000, 2000] = 1000
    gyro_noise_dps_sqrt_hz: Annotated[float, Field(ge=0)] = 0.007
    accel_noise_ug_sqrt_hz: Annotated[float, Field(ge=0)] = 160.0
    noise_bandwidth_hz: Annotated[float, Field(gt=0)] | None = None
    """Bandwidth the noise densities are integrated over; half the rate when None.

    A sensor whose filter is wider than half its output rate aliases more noise into
    each sample (an Xsens MTx: 40 Hz bandwidth at any rate).
    """
    gyro_bias_dps: Annotated[float, Field(ge=0)] = 0.5
    """Standard deviation of the constant gyro bias per axis (turn-on offset)."""
    gyro_bias_xyz_dps: (
        tuple[
            Annotated[float, Field(ge=-10, le=10)],
            Annotated[float, Field(ge=-10, le=10)],
            Annotated[float, Field(ge=-10, le=10)],
        ]
        | None
    ) = None
    """The turn-on bias itself, per sensor axis (deg/s), instead of a random one drawn
    with `gyro_bias_dps`: a sensor known to start with 2-3 deg/s on two axes."""
    gyro_bias_walk_dps_sqrt_s: Annotated[float, Field(ge=0)] = 0.002
    accel_bias_mg: Annotated[float, Field(ge=0)] = 20.0
    scale_error: Annotated[float, Field(ge=0, le=0.05)] = 0.005
    clock_drift_ppm: Annotated[float, Field(ge=-500, le=500)] = 30.0
    sample_jitter_us: Annotated[float, Field(ge=0)] = 50.0
    quaternion: bool = False
    """Also emit the sensor's own fused orientation (qw..qz columns)."""
    noise_free: bool = False
    """No noise, bias, scale error or quantization: for physics tests."""


class LinkSpec(_Spec):
    """Effects of the radio link on the packet stream."""

    mtu: Literal[23, 247] = 247
    loss_ratio: Annotated[float, Field(ge=0, le=0.5)] = 0.0
    burst_length: Annotated[float, Field(ge=1)] = 1.0
    """Mean length of a loss burst, in packets (Gilbert-Elliott)."""
    duplicate_ratio: Annotated[float, Field(ge=0, le=0.2)] = 0.0
    reorder_ratio: Annotated[float, Field(ge=0, le=0.2)] = 0.0
    disconnects: list[tuple[float, float]] = []
    """(start_s, duration_s) of link losses."""
    backlog_s: Annotated[float, Field(ge=0)] = 10.0
    """Seconds of packets the sensor keeps through a disconnection and sends after the
    reconnection, oldest first (the protocol 1.1 backlog); 0 is a sensor without one."""


class ScenarioSpec(_Spec):
    """A simulated session: exercise, sets, variability, faults, sensor and link."""

    name: str = "scenario"
    exercise: str
    variant: str | None = None
    seed: int = 0
    sets: list[SetSpec]
    lead_s: Annotated[float, Field(ge=0)] = 4.0
    """Still time in the start position before the first rep (calibration), and after
    each side switch; 0 is no still start: the first rep begins with the stream."""
    rom_deg: Annotated[float, Field(gt=0)] | None = None
    """Planned range of motion; the exercise's typical range when None."""
    hold_s: Annotated[float, Field(ge=0)] | None = None
    concentric_s: Annotated[float, Field(gt=0)] | None = None
    eccentric_s: Annotated[float, Field(gt=0)] | None = None
    rest_between_reps_s: Annotated[float, Field(ge=0)] = 1.5
    rom_variability: Annotated[float, Field(ge=0, le=0.5)] = 0.15
    tempo_variability: Annotated[float, Field(ge=0, le=0.5)] = 0.25
    fatigue: Annotated[float, Field(ge=0, le=0.5)] = 0.0
    """Share of range lost by the end of a set."""
    hesitation_ratio: Annotated[float, Field(ge=0, le=1)] = 0.0
    long_pause_ratio: Annotated[float, Field(ge=0, le=1)] = 0.0
    tremor_deg: Annotated[float, Field(ge=0, le=3)] = 0.3
    misalignment_deg: Annotated[float, Field(ge=0, le=180)] = 20.0
    rest_sway_deg: Annotated[float, Field(ge=0, le=10)] = 0.0
    """Restless rests: between reps and between sets the resting thigh wanders slowly
    (0.1-0.5 Hz) by up to this many degrees from its resting level, in the movement's
    plane and across it (0: only breathing moves it, `0.3 * tremor_deg`)."""
    rest_drift_deg: Annotated[float, Field(ge=0, le=15)] = 0.0
    """The resting level drifts: over each rest it moves to a new level, a random walk
    (steps of a quarter of this, sd) kept between the start position (0) and this many
    degrees towards the movement; the next rep starts from that level and returns to it.
    A side switch starts again from 0."""
    hold_sag: Annotated[float, Field(ge=0, le=0.5)] = 0.0
    """Holds that sag: over each hold at end range (and each hold of a hold exercise) the
    held angle sinks smoothly by this share of the range it arrived at. The truth's
    `rom_deg` (`target_deg`) is then the median level over the hold, 1 - hold_sag / 2 of
    the arrival level (`arrival_deg`)."""
    derive_faults: bool = False
    """Also label the faults the planned motion has by the flag definitions of
    docs/motion.md, not only the injected ones: `too_fast` (a phase under half its
    prescription, or a peak speed over 1.5 x the exercise's limit), `eccentric_fast`,
    `too_much_range`, `partial` (under 80 % of the target minimum) and `hold_short` (under
    70 % of the prescribed hold, 85 % for holds): for populations whose tempo, range or
    holds are those of a person, not a prescription."""
    non_exercise: list[NonExerciseSpec] = []
    imu: ImuSpec = ImuSpec()
    link: LinkSpec = LinkSpec()


def load_scenario(path: str | Path) -> ScenarioSpec:
    """Read and validate a scenario file."""
    data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    return ScenarioSpec.model_validate(data)


def suite_dir() -> Path:
    """The development suite's folder: the installed copy, or simulators/scenarios."""
    packaged = Path(__file__).resolve().parent / "_scenarios"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parents[1] / "scenarios"


def load_suite(directory: str | Path | None = None) -> list[ScenarioSpec]:
    """Every scenario of a folder (the development suite by default), sorted by file name."""
    folder = Path(directory) if directory is not None else suite_dir()
    return [load_scenario(p) for p in sorted(folder.glob("*.toml"))]
