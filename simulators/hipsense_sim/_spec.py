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
    """Still time in the start position before the first rep (calibration)."""
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
    non_exercise: list[NonExerciseSpec] = []
    imu: ImuSpec = ImuSpec()
    link: LinkSpec = LinkSpec()


def load_scenario(path: str | Path) -> ScenarioSpec:
    """Read and validate a scenario file."""
    data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    return ScenarioSpec.model_validate(data)


def suite_dir() -> Path:
    """The development suite's folder, simulators/scenarios."""
    return Path(__file__).resolve().parents[1] / "scenarios"


def load_suite(directory: str | Path | None = None) -> list[ScenarioSpec]:
    """Every scenario of a folder (the development suite by default), sorted by file name."""
    folder = Path(directory) if directory is not None else suite_dir()
    return [load_scenario(p) for p in sorted(folder.glob("*.toml"))]
