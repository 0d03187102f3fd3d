"""The terminal view of `hipsense run`: a line per sensor, redrawn a few times a second.

Sensor, exercise, count against the prescription, the current angle as a bar against
the target range, the hold countdown at end range, and the last rep's flags.
"""

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import TextIO

import numpy as np

from hipsense.session import SessionPipeline

__all__ = ["HoldClock", "SensorView", "redraw", "render_line", "view_of"]

_BAR = 16


@dataclass(frozen=True)
class SensorView:
    """What the line shows for one sensor."""

    sensor_id: str
    exercise: str
    count: str
    """e.g. "set 1 of 3: 14/20 reps" from the tracker, else "14 reps"."""
    angle_deg: float | None
    target_max_deg: float
    hold_left_s: float | None
    """Seconds still to hold at end range; None when not holding."""
    last_flags: tuple[str, ...]
    connected: bool


def render_line(v: SensorView) -> str:
    """One sensor's status line."""
    if not v.connected:
        return f"{v.sensor_id:<12} {v.exercise:<24} sensor disconnected"
    if v.angle_deg is None or not np.isfinite(v.angle_deg):
        bar, angle = "|" + " " * _BAR + "|", "  - deg"
    else:
        share = min(1.0, max(0.0, v.angle_deg / max(v.target_max_deg, 1.0)))
        filled = round(_BAR * share)
        bar = "|" + "#" * filled + "-" * (_BAR - filled) + "|"
        angle = f"{v.angle_deg:3.0f} deg"
    hold = f"hold {v.hold_left_s:4.1f} s" if v.hold_left_s is not None else " " * 11
    last = ("last: " + ", ".join(v.last_flags)) if v.last_flags else ""
    return (
        f"{v.sensor_id:<12} {v.exercise:<24} {v.count:<26} {bar} {angle}  {hold}  {last}".rstrip()
    )


class HoldClock:
    """Counts down a prescribed hold while the angle stays near end range."""

    def __init__(self, hold_s: float, end_range_deg: float) -> None:
        self.hold_s = hold_s
        self.end_range_deg = end_range_deg
        self._since_s: float | None = None

    def update(self, t_s: float, angle_deg: float | None) -> float | None:
        """Seconds left at `t_s`, or None when not at end range (or nothing to hold)."""
        if self.hold_s <= 0 or angle_deg is None or angle_deg < 0.8 * self.end_range_deg:
            self._since_s = None
            return None
        if self._since_s is None:
            self._since_s = t_s
        return max(0.0, self.hold_s - (t_s - self._since_s))


def view_of(
    sensor_id: str, pipeline: SessionPipeline, clock: HoldClock, *, connected: bool
) -> SensorView:
    """The view of one running session."""
    a = pipeline.core.last_angles
    angle = float(a.primary_deg[-1]) if a.t_s.shape[0] else None
    hold_left = clock.update(float(a.t_s[-1]), angle) if a.t_s.shape[0] else None
    reps = pipeline.tally.reps
    targets = pipeline.core.targets
    count = pipeline.progress.split(", ", 1)[-1] if pipeline.progress else f"{len(reps)} reps"
    return SensorView(
        sensor_id=sensor_id,
        exercise=pipeline.exercise_id,
        count=count,
        angle_deg=angle,
        target_max_deg=targets.target_max_deg,
        hold_left_s=hold_left,
        last_flags=tuple(str(f) for f in reps[-1].flags) if reps else (),
        connected=connected,
    )


async def redraw(lines: Callable[[], list[str]], out: TextIO, period_s: float = 0.25) -> None:
    """Redraw the lines in place until cancelled (ANSI: cursor up, clear line).

    Cancelled, it draws them once more: the view ends on the session's last state, not
    on the one up to a period before it.
    """
    drawn = 0

    def draw() -> None:
        nonlocal drawn
        text = lines()
        if drawn:
            out.write(f"\x1b[{drawn}F")
        for line in text:
            out.write("\x1b[2K" + line + "\n")
        out.flush()
        drawn = len(text)

    try:
        while True:
            draw()
            await asyncio.sleep(period_s)
    finally:
        draw()
