"""What the motion core reports: reps, holds, sets, calibrations."""

import enum
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["Flag", "HoldEvent", "RepEvent", "SetEvent"]


class Flag(enum.StrEnum):
    """Form errors and data problems a rep or hold can carry."""

    TOO_FAST = "too_fast"
    TOO_MUCH_RANGE = "too_much_range"
    PARTIAL = "partial"
    OFF_PLANE = "off_plane"
    HOLD_SHORT = "hold_short"
    ECCENTRIC_FAST = "eccentric_fast"
    DATA_GAP = "data_gap"


@dataclass(frozen=True)
class RepEvent:
    """One repetition: timing, range, tempo, form."""

    index: int
    set_index: int
    start_s: float
    peak_s: float
    end_s: float
    rom_deg: float
    """Excursion from the start angle to the end-range level."""
    concentric_s: float
    hold_s: float
    """Time at end range: from arriving there to leaving it."""
    eccentric_s: float
    rest_before_s: float | None
    peak_velocity_dps: float
    smoothness: float
    """Log dimensionless jerk of the rep (-ln of it, closer to 0 is smoother; minimum-jerk
    movements score about -6 to -7)."""
    max_off_plane_deg: float
    flags: tuple[Flag, ...]
    confidence: float
    top_s: float = 0.0
    """Arrival at end range."""
    hold_end_s: float = 0.0
    """Departure from end range."""
    recovered: bool = False
    """Measured late: made before the reference was known, released with it."""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        d = asdict(self)
        d["flags"] = [str(f) for f in self.flags]
        return d


@dataclass(frozen=True)
class HoldEvent:
    """One held position (isometric hold or stretch)."""

    index: int
    set_index: int
    start_s: float
    end_s: float
    hold_s: float
    angle_deg: float
    """Median angle held, from the start position."""
    on_target_pct: float
    """Share of the hold spent within the tolerance band around the held angle."""
    stability_deg: float
    """Standard deviation of the angle during the hold."""
    broken: int
    """Times the angle left the band for more than half a second."""
    flags: tuple[Flag, ...]
    confidence: float
    enter_s: float = 0.0
    exit_s: float = 0.0
    recovered: bool = False
    """Measured late: made before the reference was known, released with it."""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        d = asdict(self)
        d["flags"] = [str(f) for f in self.flags]
        return d


@dataclass(frozen=True)
class SetEvent:
    """Reps or holds grouped by rest or repositioning."""

    index: int
    start_s: float
    end_s: float
    reps: int
    holds: int
    rep_indices: tuple[int, ...] = field(default=())
    hold_indices: tuple[int, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)
