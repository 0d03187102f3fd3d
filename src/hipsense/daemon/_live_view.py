"""The terminal view of `hipsense run` and `hipsense demo`: a line per sensor, in place.

Sensor, exercise, count against the prescription, the current angle as a bar against
the target range, the hold countdown at end range, and the last rep's flags. Each line
is laid out for the terminal's width (columns narrow, then text is cut with "…"), so it
never wraps; Rich's `Live` redraws the lines in place, and whatever is printed through
the same `Console` (logs, the demo's reps) scrolls above them.

When the output is not a terminal there is no redrawing: a sensor's line is printed,
plain, when something a reader cares about changes (its count, its flags, its link),
not each time the angle moves.
"""

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TextIO

import numpy as np
from rich.console import Console, ConsoleOptions, RenderResult
from rich.live import Live
from rich.text import Text

from hipsense.session import SessionPipeline

__all__ = [
    "HoldClock",
    "LiveView",
    "SensorView",
    "fit",
    "fit_count",
    "render_line",
    "view_console",
    "view_of",
]

ELLIPSIS = "…"

_FULL = {"id": 12, "exercise": 24, "count": 34, "bar": 18}
"""Column widths when the terminal is wide enough (the bar includes its two `|`)."""

_SHRINK = (
    ("exercise", 14),
    ("count", 22),
    ("bar", 10),
    ("exercise", 10),
    ("count", 16),
    ("id", 10),
    ("bar", 8),
)
"""The order columns give up width in, and how far, when the terminal is narrow."""

_ANGLE_W = 7  # "123 deg"
_HOLD_W = 11  # "hold 12.3 s"
_LAST_MIN = 10
"""Room the last rep's flags are given before the other columns stop shrinking."""


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

    @property
    def news(self) -> tuple[object, ...]:
        """What a plain (non-terminal) view prints a new line for when it changes."""
        return (self.exercise, self.count, self.last_flags, self.connected)


def fit(text: str, width: int) -> str:
    """`text` cut to `width` characters, with "…" as the last one when it was cut."""
    if width <= 0:
        return ""
    if len(text) <= width:
        return text
    return text[: width - 1] + ELLIPSIS


def fit_count(text: str, width: int) -> str:
    """A count cut to `width` from its start: what was done ("4/10 reps") is at its end.

    "right side, set 1 of 2: 4/10 reps" loses the side first, then its start to "…".
    """
    parts = text.split(", ")
    while len(parts) > 1 and len(", ".join(parts)) > width:
        parts.pop(0)
    text = ", ".join(parts)
    if width <= 0:
        return ""
    return text if len(text) <= width else ELLIPSIS + text[len(text) - width + 1 :]


def _widths(width: int | None) -> dict[str, int]:
    """Column widths for a line of at most `width` characters (None: no limit)."""
    cols = dict(_FULL)
    if width is None:
        return cols
    # id, exercise, count, bar, angle + 4 single spaces, then "  hold" and "  last".
    fixed = _ANGLE_W + 4 + 2 + _HOLD_W + 2
    for name, least in _SHRINK:
        if sum(cols.values()) + fixed + _LAST_MIN <= width:
            break
        excess = sum(cols.values()) + fixed + _LAST_MIN - width
        cols[name] = max(least, cols[name] - excess)
    return cols


def render_line(v: SensorView, width: int | None = None) -> str:
    """One sensor's status line, at most `width` characters.

    None: the full layout, nothing cut (a plain line, which may be as long as it needs).
    """
    w = _widths(width)
    cut, count = (fit, fit_count) if width is not None else (_whole, _whole)
    sensor, exercise = cut(v.sensor_id, w["id"]), cut(v.exercise, w["exercise"])
    head = f"{sensor:<{w['id']}} {exercise:<{w['exercise']}}"
    if not v.connected:
        line = f"{head} sensor disconnected"
    else:
        inner = w["bar"] - 2
        if v.angle_deg is None or not np.isfinite(v.angle_deg):
            bar, angle = "|" + " " * inner + "|", "  - deg"
        else:
            share = min(1.0, max(0.0, v.angle_deg / max(v.target_max_deg, 1.0)))
            filled = round(inner * share)
            bar = "|" + "#" * filled + "-" * (inner - filled) + "|"
            angle = f"{v.angle_deg:3.0f} deg"
        hold = f"hold {v.hold_left_s:4.1f} s" if v.hold_left_s is not None else ""
        line = (
            f"{head} {count(v.count, w['count']):<{w['count']}} {bar} {angle:>{_ANGLE_W}}"
            f"  {hold:<{_HOLD_W}}  "
        )
        flags = ", ".join(v.last_flags)
        labelled = f"last: {flags}"
        room = None if width is None else width - len(line)
        # Narrow, the flags go without their label before they are cut.
        last = labelled if room is None or len(labelled) <= room else flags
        line = (line + last if flags else line).rstrip()
    return line if width is None else fit(line, width)


def _whole(text: str, _: int) -> str:
    return text  # plain lines are whole


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


Row = SensorView | str
"""A sensor's view, or a line of its own (e.g. "sim-1  connecting...")."""


class _Rows:
    """The live area: laid out at render time, for the width the terminal has then."""

    def __init__(self, rows: Sequence[Row]) -> None:
        self.rows = rows

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        for row in self.rows:
            line = render_line(row, options.max_width) if isinstance(row, SensorView) else row
            yield Text(fit(line, options.max_width), no_wrap=True, overflow="ellipsis")


def view_console(out: TextIO) -> Console:
    """The console the view draws on and logs go through (plain when `out` is no terminal)."""
    # Colour and markup stay off: the lines are data, and a "[x]" in a log is not markup.
    return Console(file=out, highlight=False, markup=False, emoji=False, color_system=None)


class LiveView:
    """A line per sensor, redrawn in place on a terminal; printed plain elsewhere.

    `rows()` is called each period. Print other output through `console` (`print`):
    on a terminal it scrolls above the lines, elsewhere it is a plain line.
    """

    def __init__(
        self,
        rows: Callable[[], Sequence[Row]],
        console: Console,
        *,
        period_s: float = 0.25,
    ) -> None:
        self.rows = rows
        self.console = console
        self.period_s = period_s
        self._said: dict[str, tuple[object, ...]] = {}
        """What the plain view last printed, by sensor."""

    @property
    def terminal(self) -> bool:
        """Whether the lines are redrawn in place (the console is a terminal)."""
        return self.console.is_terminal

    def print(self, text: str) -> None:
        """A line above the live area (or a plain line)."""
        self.console.print(Text(text), soft_wrap=not self.terminal)

    async def run(self) -> None:
        """Draw until cancelled; cancelled, draw once more (the sessions' last state)."""
        if not self.terminal:
            try:
                while True:
                    self._print_news()
                    await asyncio.sleep(self.period_s)
            finally:
                self._print_news()
        with Live(
            _Rows(()),
            console=self.console,
            auto_refresh=False,  # refreshed from this task: no thread of its own
            redirect_stdout=False,
            redirect_stderr=False,
            vertical_overflow="ellipsis",
        ) as live:
            try:
                while True:
                    live.update(_Rows(list(self.rows())), refresh=True)
                    await asyncio.sleep(self.period_s)
            finally:
                live.update(_Rows(list(self.rows())), refresh=True)

    def _print_news(self) -> None:
        for row in self.rows():
            key, news = (row, ()) if isinstance(row, str) else (row.sensor_id, row.news)
            if self._said.get(key) != news:
                self._said[key] = news
                text = render_line(row) if isinstance(row, SensorView) else row
                self.console.print(Text(text), soft_wrap=True)
