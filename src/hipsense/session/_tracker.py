"""A session against its prescription: sets x reps x hold, adherence, quality, advice.

Pure and synchronous, fed the motion core's events. It reports what happened in the
prescription's words ("set 2 of 3: 14/20 reps, 3 s holds reached on 11"), scores
adherence and quality, gives progression advice by the exercise library's rules (the
seeds' "after 10 correct level I holds, move to level II"), and says when what the
patient did does not look like what was prescribed instead of forcing it to fit.
"""

from dataclasses import dataclass, field

import numpy as np

from hipsense.domain import PrescribedExercise, Prescription
from hipsense.exercises import Exercise, ExerciseKind, ExerciseLibrary
from hipsense.motion import Flag, HoldEvent, MotionEvent, RepEvent, SetEvent

__all__ = ["ExerciseProgress", "PrescriptionTracker", "SetProgress", "SideDone"]

_HOLD_TOLERANCE_S = 0.5
"""A hold this much short of the prescription still counts as reached (timing noise)."""
_TEMPO_TOLERANCE = 0.35
"""A phase within this share of its prescribed time (or 0.5 s) keeps the tempo."""
_FORM_FLAGS = frozenset(
    {
        Flag.TOO_FAST,
        Flag.TOO_MUCH_RANGE,
        Flag.PARTIAL,
        Flag.OFF_PLANE,
        Flag.HOLD_SHORT,
        Flag.ECCENTRIC_FAST,
    }
)


@dataclass
class SetProgress:
    """One set as done."""

    side: str = "right"
    core_index: int | None = None
    """The motion core's index of this set (reps carry it)."""
    reps: int = 0
    holds_reached: int = 0
    correct: int = 0
    """Reps (or holds) without a form flag and with the prescribed hold reached."""
    tempo_kept: int = 0
    """Reps whose outward and return times were within the prescribed tempo's tolerance."""
    rom_deg: list[float] = field(default_factory=list)
    hold_s: list[float] = field(default_factory=list)
    """Hold of each rep or hold."""
    concentric_s: list[float] = field(default_factory=list)
    eccentric_s: list[float] = field(default_factory=list)
    flags: dict[Flag, int] = field(default_factory=dict)
    """How many of its reps (or holds) carry each flag."""
    session_id: str | None = None
    """The session it was done in (`PrescriptionTracker.begin`)."""


@dataclass
class ExerciseProgress:
    """One prescription line and the sets done of it."""

    line: PrescribedExercise
    exercise: Exercise
    sets: list[SetProgress] = field(default_factory=list)
    side_index: int = 0
    round_start: int = 0
    """Where in `sets` the line's current round began: a line done in full and then done
    again (the next day's session, on a gateway that kept its tracker) starts anew, right
    side first, its sets numbered from 1."""

    @property
    def sides(self) -> list[str]:
        """The sides prescribed, in the order they are done ("both": right, then left)."""
        return ["right", "left"] if self.line.side == "both" else [self.line.side]

    @property
    def side(self) -> str:
        """The side being done now."""
        return self.sides[self.side_index]

    def sets_on(self, side: str) -> list[SetProgress]:
        """The sets with reps done on one side."""
        return [s for s in self.sets if s.side == side and s.reps]

    def round_sets_on(self, side: str) -> list[SetProgress]:
        """The sets with reps done on one side in the current round."""
        return [s for s in self.sets[self.round_start :] if s.side == side and s.reps]

    @property
    def done(self) -> bool:
        """Every side has its prescribed sets in the current round."""
        return all(len(self.round_sets_on(side)) >= self.line.sets for side in self.sides)

    @property
    def hold_s(self) -> float:
        """The prescribed hold: the line's, else the exercise's dosage."""
        return self.line.hold_s or self.exercise.dosage.hold_s

    @property
    def tempo_s(self) -> tuple[float, float] | None:
        """Prescribed outward and return seconds: the line's, else the exercise's dosage."""
        if self.line.tempo_s is not None:
            return self.line.tempo_s
        t = self.exercise.dosage.tempo
        if t.concentric_s is not None and t.eccentric_s is not None:
            return (t.concentric_s, t.eccentric_s)
        return None

    @property
    def reps_done(self) -> int:
        """Reps (or holds) counted, over all sets."""
        return sum(s.reps for s in self.sets)

    @property
    def correct(self) -> int:
        """Correct reps (or holds) over all sets."""
        return sum(s.correct for s in self.sets)


@dataclass(frozen=True)
class SideDone:
    """One prescription line on one side, as done in one session (a summary's line)."""

    progress: ExerciseProgress
    side: str
    sets: list[SetProgress]
    """The sets with reps done on this side in the session, in order."""

    @property
    def prescribed(self) -> int:
        """Reps (or holds) prescribed on this side."""
        return self.progress.line.sets * self.progress.line.reps

    @property
    def done(self) -> int:
        """Prescribed reps done: the fullest sets, as many as prescribed, each up to its reps."""
        line = self.progress.line
        return sum(min(s.reps, line.reps) for s in _fullest(self.sets, line.sets))

    @property
    def reps(self) -> int:
        """Reps (or holds) counted, whether prescribed or not."""
        return sum(s.reps for s in self.sets)

    @property
    def correct(self) -> int:
        """Reps (or holds) without a form flag and with the prescribed hold reached."""
        return sum(s.correct for s in self.sets)


class PrescriptionTracker:
    """`add(event)` for each motion event of the exercise being done; read the results."""

    def __init__(self, prescription: Prescription, library: ExerciseLibrary) -> None:
        self.prescription = prescription
        self.lines = [
            ExerciseProgress(line, library[line.exercise]) for line in prescription.exercises
        ]
        self.current = 0
        self.notes: list[str] = []
        """Things that did not match the prescription, in the order they were seen."""
        self.completed: list[str] = []
        """The progress line of each set as it closed, in order."""
        self.session_id: str | None = None
        """The session being done (`begin`); the sets done are marked with it."""
        self._session_for: dict[str, dict[int, list[str]]] = {}
        """Per session, the lines (by index) and sides it was for when it began."""

    @property
    def line(self) -> ExerciseProgress:
        """The prescription line being done."""
        return self.lines[self.current]

    def select(self, exercise_id: str) -> bool:
        """The patient moves on to `exercise_id`; False (and a note) if not prescribed."""
        for i, p in enumerate(self.lines):
            if p.exercise.id == exercise_id and p.reps_done == 0:
                self.current = i
                return True
        for i, p in enumerate(self.lines):
            if p.exercise.id == exercise_id:
                self.current = i
                return True
        self.notes.append(f"{exercise_id} was done but is not in the prescription")
        return False

    def begin(self, session_id: str) -> None:
        """A session starts on the line selected: what follows is done in it.

        The session is for the sides of that line still to do. A line already done in
        full (the program done again, on a gateway that kept its tracker) starts a new
        round: the session is for all its sides, right first, as the first time.
        """
        self.session_id = session_id
        p = self.line
        if p.done:
            # Done again: a new round, from the first side (an open empty set joins it).
            open_empty = bool(p.sets) and not p.sets[-1].reps
            p.round_start = len(p.sets) - open_empty
            p.side_index = 0
            if open_empty:
                p.sets[-1].side = p.side
        todo = [side for side in p.sides if len(p.round_sets_on(side)) < p.line.sets]
        self._session_for[session_id] = {self.current: todo}

    def _open_set(self) -> SetProgress:
        line = self.line
        last = line.sets[-1] if line.sets else None
        if last is not None and last.reps and last.session_id != self.session_id:
            # A set the last session left open (it ended without the core's set end).
            self._close_set(line)
            last = line.sets[-1]
        if last is None:
            line.sets.append(last := SetProgress(side=line.side))
        if not last.reps:
            last.session_id = self.session_id
        return last

    def add(self, event: MotionEvent) -> str | None:
        """Count one event; return a progress line when a rep, hold or set ends."""
        line = self.line
        if isinstance(event, RepEvent | HoldEvent):
            s = self._open_set()
            if s.reps and s.core_index is not None and event.set_index != s.core_index:
                # The core may report a set's end after the next set's first rep.
                self._close_set(line)
                s = self._open_set()
            s.core_index = event.set_index
            s.reps += 1
            reached = event.hold_s >= line.hold_s - _HOLD_TOLERANCE_S if line.hold_s else True
            s.holds_reached += reached
            s.correct += reached and not (_FORM_FLAGS & set(event.flags))
            s.hold_s.append(event.hold_s)
            for f in event.flags:
                s.flags[f] = s.flags.get(f, 0) + 1
            if isinstance(event, RepEvent):
                s.rom_deg.append(event.rom_deg)
                s.concentric_s.append(event.concentric_s)
                s.eccentric_s.append(event.eccentric_s)
                if (tempo := line.tempo_s) is not None:
                    s.tempo_kept += _kept(event.concentric_s, tempo[0]) and _kept(
                        event.eccentric_s, tempo[1]
                    )
            return self.status()
        if isinstance(event, SetEvent):
            last = line.sets[-1] if line.sets else None
            if last is None or last.reps == 0 or last.core_index != event.index:
                return None  # empty, or closed already when the next set's first rep came
            return self._close_set(line)
        return None

    def _close_set(self, line: ExerciseProgress) -> str:
        done = line.sets[-1]
        self._check_set(line, done, len(line.round_sets_on(done.side)))
        text = self.status()
        self.completed.append(text)
        # The prescription's order: once a side has its sets, the next set is the other.
        on_side = len(line.round_sets_on(line.side))
        if on_side >= line.line.sets and line.side_index + 1 < len(line.sides):
            line.side_index += 1
        line.sets.append(SetProgress(side=line.side))
        return text

    def _check_set(self, line: ExerciseProgress, s: SetProgress, number: int) -> None:
        """Say so when a set does not look like the prescribed exercise."""
        name = line.exercise.id
        if s.reps > 1.5 * line.line.reps + 2:
            self.notes.append(
                f"{name} {s.side} side set {number}: {s.reps} reps where {line.line.reps} "
                "were prescribed"
            )
        if number > line.line.sets:
            self.notes.append(
                f"{name} {s.side} side: set {number} done where {line.line.sets} were prescribed"
            )
        rom = line.exercise.rom
        lo, hi = line.line.range_deg or (rom.target_min_deg, rom.target_max_deg)
        if len(s.rom_deg) >= 3:
            median = float(np.median(s.rom_deg))
            if median > 1.5 * hi + 5.0 or median < 0.5 * lo:
                self.notes.append(
                    f"{name} {s.side} side set {number}: range of motion {median:.0f} deg, where "
                    f"{lo:g}-{hi:g} deg is expected: another exercise, or the sensor moved?"
                )

    def status(self) -> str:
        """The progress line of the current set."""
        line = self.line
        s = line.sets[-1] if line.sets else SetProgress(side=line.side)
        what = "holds" if line.exercise.kind is ExerciseKind.HOLD else "reps"
        number = len(line.round_sets_on(s.side)) + (0 if s.reps else 1)
        side = f", {s.side} side" if line.line.side == "both" else ""
        text = (
            f"{line.exercise.id}{side}, set {max(1, number)} of {line.line.sets}: "
            f"{s.reps}/{line.line.reps} {what}"
        )
        if line.hold_s:
            text += f", {line.hold_s:g} s holds reached on {s.holds_reached}"
        if line.tempo_s is not None and line.exercise.kind is not ExerciseKind.HOLD:
            out, back = line.tempo_s
            text += f", {out:g}/{back:g} s tempo kept on {s.tempo_kept}"
        return text

    def adherence(self) -> float:
        """Share of the prescribed reps done, each set counted up to its prescription.

        Per side, the fullest sets count (as many as prescribed), so a stray one-rep
        "set" (a movement while turning over) does not hide a full set done after it.
        """
        prescribed = sum(p.line.sets * p.line.reps * len(p.sides) for p in self.lines)
        done = sum(
            min(s.reps, p.line.reps)
            for p in self.lines
            for side in p.sides
            for s in _fullest(p.sets_on(side), p.line.sets)
        )
        return done / prescribed if prescribed else 0.0

    def session_lines(self, session_id: str) -> list[SideDone]:
        """What one session was for or did, per line and side, in the prescription's order.

        A line's side is in it when the session began with that side still to do, or did
        reps on it.
        """
        began = self._session_for.get(session_id, {})
        out = []
        for i, p in enumerate(self.lines):
            for side in p.sides:
                sets = [s for s in p.sets_on(side) if s.session_id == session_id]
                if sets or side in began.get(i, ()):
                    out.append(SideDone(p, side, sets))
        return out

    def session_sides(self, session_id: str) -> str | None:
        """The side(s) a session is for or did: "left", "right", "both", or None (none)."""
        sides = {d.side for d in self.session_lines(session_id)}
        return (sides.pop() if len(sides) == 1 else "both") if sides else None

    def session_adherence(self, session_id: str) -> float | None:
        """Share of the reps prescribed for one session done in it (None: it was for none)."""
        lines = self.session_lines(session_id)
        prescribed = sum(d.prescribed for d in lines)
        return sum(d.done for d in lines) / prescribed if prescribed else None

    def session_quality(self, session_id: str) -> float | None:
        """Share of one session's reps that were correct (None: none were done)."""
        lines = self.session_lines(session_id)
        reps = sum(d.reps for d in lines)
        return sum(d.correct for d in lines) / reps if reps else None

    def quality(self) -> float | None:
        """Share of the reps done that were correct (no form flag, hold reached)."""
        reps = sum(p.reps_done for p in self.lines)
        return sum(p.correct for p in self.lines) / reps if reps else None

    def advice(self) -> list[str]:
        """Progression by the library's rules, e.g. after 10 correct level I holds, level II."""
        out = []
        for p in self.lines:
            ex = p.exercise
            after = ex.progression_after_reps
            if ex.progression_next and after and p.correct >= after:
                out.append(
                    f"{ex.id}: {p.correct} correct, at least {after} needed: ready to move "
                    f"on to {ex.progression_next}"
                )
        return out


def _fullest(sets: list[SetProgress], n: int) -> list[SetProgress]:
    """The `n` sets with the most reps (a stray one-rep "set" does not hide a full one)."""
    return sorted(sets, key=lambda s: -s.reps)[:n]


def _kept(measured_s: float, prescribed_s: float) -> bool:
    return abs(measured_s - prescribed_s) <= max(0.5, _TEMPO_TOLERANCE * prescribed_s)
