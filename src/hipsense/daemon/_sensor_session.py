"""What `sensors/{sensor_id}/session` says of a session, kept from its events (pure)."""

from typing import Literal

from hipsense.motion import Calibration, HoldEvent, MotionEvent, RepEvent, SetEvent
from hipsense.mqtt import SensorSession

__all__ = ["SessionStatus"]

State = Literal["calibrating", "exercising", "resting", "ended"]


class SessionStatus:
    """The current state of one session, updated by its events.

    `update` returns a new `SensorSession` only when something it shows changed, so a
    burst of events (a backlog recovered at once) is one message, not one each.
    """

    def __init__(self, *, sensor_id: str, session_id: str, exercise: str) -> None:
        self.sensor_id = sensor_id
        self.session_id = session_id
        self.exercise = exercise
        self.state: State = "calibrating"
        self.set_index = 0
        self.set_reps = 0
        self.rep_count = 0
        self.hold_count = 0
        self.last_rom_deg: float | None = None

    def message(self) -> SensorSession:
        """The retained message for the session now."""
        return SensorSession(
            sensor_id=self.sensor_id,
            session_id=self.session_id,
            state=self.state,
            exercise=self.exercise,
            set_index=self.set_index,
            set_reps=self.set_reps,
            rep_count=self.rep_count,
            hold_count=self.hold_count,
            last_rom_deg=None if self.last_rom_deg is None else round(self.last_rom_deg, 1),
        )

    def _shown(self) -> tuple[object, ...]:
        return (
            self.state,
            self.set_index,
            self.set_reps,
            self.rep_count,
            self.hold_count,
            self.last_rom_deg,
        )

    def update(self, events: list[MotionEvent]) -> SensorSession | None:
        """Take a batch of events; the new message if what it shows changed."""
        before = self._shown()
        for ev in events:
            if isinstance(ev, RepEvent):
                self.rep_count += 1
                self.last_rom_deg = float(ev.rom_deg)
                # Reps recovered from the backlog may belong to a set already closed.
                if ev.set_index >= self.set_index:
                    if ev.set_index > self.set_index:
                        self.set_index, self.set_reps = ev.set_index, 0
                    self.set_reps += 1
                self.state = "exercising"
            elif isinstance(ev, HoldEvent):
                self.hold_count += 1
                if ev.set_index > self.set_index:
                    self.set_index, self.set_reps = ev.set_index, 0
                self.state = "exercising"
            elif isinstance(ev, SetEvent):
                if ev.index >= self.set_index:
                    self.set_index, self.set_reps = ev.index + 1, 0
                self.state = "resting"
            elif isinstance(ev, Calibration) and self.state == "calibrating":
                self.state = "exercising"
        return self.message() if self._shown() != before else None

    def end(self) -> SensorSession:
        """The message once the session is over."""
        self.state = "ended"
        return self.message()
