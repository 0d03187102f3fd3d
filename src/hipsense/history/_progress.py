"""A patient's progress over sessions and days, from the history's records. Pure.

Built from the stored summaries' `lines` (one per exercise and side a session was for or
did): per exercise and side, a point per session (range of motion, holds, tempo,
quality, adherence against the target band); an adherence calendar by local date; left
against right per exercise; the latest progression advice and its reasons. A summary
from before `lines` existed still gives a point, on the side the history kept (or
none). The patient report, the dashboard's patient view and the exports read it.
"""

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from typing import Any

from ._store import SessionRecord

__all__ = [
    "Advice",
    "CalendarDay",
    "PatientProgress",
    "ProgressPoint",
    "ProgressSeries",
    "SideComparison",
    "SideFigures",
    "patient_progress",
]


@dataclass(frozen=True)
class ProgressPoint:
    """One session's figures for one exercise and side."""

    session_id: str
    started_at: datetime
    """When the session started (aware)."""
    mean_rom_deg: float | None
    max_rom_deg: float | None
    mean_hold_s: float | None
    mean_concentric_s: float | None
    mean_eccentric_s: float | None
    quality_pct: float | None
    adherence_pct: float | None
    """This line's adherence in this session (None: no prescription known)."""
    reps_done: int
    sets_done: int
    target_range_deg: tuple[float, float] | None
    """The target band of the range of motion in that session."""
    prescribed_sets: int | None = None
    prescribed_reps: int | None = None
    prescribed_hold_s: float | None = None
    tempo_s: tuple[float, float] | None = None
    """Prescribed outward and return seconds, if any."""
    flags: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able (times as ISO strings)."""
        d = asdict(self)
        d["started_at"] = self.started_at.isoformat()
        for key in ("target_range_deg", "tempo_s"):
            d[key] = None if d[key] is None else list(d[key])
        return d


@dataclass(frozen=True)
class ProgressSeries:
    """One exercise on one side over sessions, oldest first."""

    exercise: str
    side: str | None
    """"left" or "right"; None when the session did not say (no prescription)."""
    points: list[ProgressPoint]

    def to_dict(self) -> dict[str, Any]:
        """JSON-able."""
        return {
            "exercise": self.exercise,
            "side": self.side,
            "points": [p.to_dict() for p in self.points],
        }


@dataclass(frozen=True)
class CalendarDay:
    """One local date with sessions."""

    date: date
    sessions: list[str]
    """The session ids of that day, oldest first."""
    adherence_pct: float | None
    """The reps prescribed for that day's sessions against those done (each set up to its
    prescription); None when no session of the day had a prescription."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-able."""
        return {
            "date": self.date.isoformat(),
            "sessions": list(self.sessions),
            "adherence_pct": self.adherence_pct,
        }


@dataclass(frozen=True)
class SideFigures:
    """One side of one exercise: its latest session and the mean over sessions."""

    sessions: int
    latest_rom_deg: float | None
    mean_rom_deg: float | None
    latest_hold_s: float | None
    mean_hold_s: float | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-able."""
        return asdict(self)


@dataclass(frozen=True)
class SideComparison:
    """Left against right for one exercise done on both."""

    exercise: str
    left: SideFigures
    right: SideFigures
    rom_difference_deg: float | None
    """Mean range of motion, left minus right (None unless both sides have one)."""
    hold_difference_s: float | None
    """Mean hold, left minus right."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-able."""
        return {
            "exercise": self.exercise,
            "left": self.left.to_dict(),
            "right": self.right.to_dict(),
            "rom_difference_deg": self.rom_difference_deg,
            "hold_difference_s": self.hold_difference_s,
        }


@dataclass(frozen=True)
class Advice:
    """The latest progression advice for one exercise, and why."""

    exercise: str
    advice: str
    """What to do, e.g. "ready to move on to deep-hip-lateral-rotator-level-2"."""
    reasons: str
    """Why, e.g. "20 correct, at least 10 needed"."""
    session_id: str
    """The session whose summary gave it."""
    started_at: datetime

    def to_dict(self) -> dict[str, Any]:
        """JSON-able."""
        d = asdict(self)
        d["started_at"] = self.started_at.isoformat()
        return d


@dataclass(frozen=True)
class PatientProgress:
    """Everything `patient_progress` works out of a patient's sessions."""

    patient_id: str | None
    sessions: int
    first: datetime | None
    last: datetime | None
    series: list[ProgressSeries]
    """Per exercise and side, in the order first done."""
    calendar: list[CalendarDay]
    """Per local date with sessions, oldest first."""
    sides: list[SideComparison]
    """Per exercise with points on both sides."""
    advice: list[Advice]

    def series_for(self, exercise: str, side: str | None) -> ProgressSeries | None:
        """The series of one exercise and side, if it has one."""
        return next((s for s in self.series if (s.exercise, s.side) == (exercise, side)), None)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able."""
        return {
            "patient_id": self.patient_id,
            "sessions": self.sessions,
            "first": None if self.first is None else self.first.isoformat(),
            "last": None if self.last is None else self.last.isoformat(),
            "series": [s.to_dict() for s in self.series],
            "calendar": [d.to_dict() for d in self.calendar],
            "sides": [c.to_dict() for c in self.sides],
            "advice": [a.to_dict() for a in self.advice],
        }


def patient_progress(records: Iterable[SessionRecord]) -> PatientProgress:
    """A patient's progress from their session records (any order; sorted by start).

    Sessions without a summary yet (running, or left open) are left out of the figures.
    """
    done = sorted((r for r in records if r.summary is not None), key=lambda r: r.started)
    series: dict[tuple[str, str | None], list[ProgressPoint]] = {}
    days: dict[date, list[SessionRecord]] = {}
    advice: dict[str, Advice] = {}
    for r in done:
        assert r.summary is not None
        for key, point in _points(r, r.summary):
            series.setdefault(key, []).append(point)
        days.setdefault(r.started.astimezone().date(), []).append(r)
        for a in _advice(r, r.summary):
            advice[a.exercise] = a
    out = [ProgressSeries(ex, side, pts) for (ex, side), pts in series.items()]
    patients = {r.patient_id for r in done}
    return PatientProgress(
        patient_id=patients.pop() if len(patients) == 1 else None,
        sessions=len(done),
        first=done[0].started if done else None,
        last=done[-1].started if done else None,
        series=out,
        calendar=[_day(d, rs) for d, rs in sorted(days.items())],
        sides=_sides(out),
        advice=sorted(advice.values(), key=lambda a: a.exercise),
    )


def _range(v: Any) -> tuple[float, float] | None:
    return None if v is None else (float(v[0]), float(v[1]))


def _points(
    r: SessionRecord, s: dict[str, Any]
) -> list[tuple[tuple[str, str | None], ProgressPoint]]:
    lines = s.get("lines") or []
    started = r.started
    if not lines:
        # A summary from before lines, or without a prescription: the session as a whole.
        side = r.side if r.side in ("left", "right") else None
        reps = int(s.get("rep_count") or 0) + int(s.get("hold_count") or 0)
        point = ProgressPoint(
            session_id=r.session_id,
            started_at=started,
            mean_rom_deg=s.get("mean_rom_deg"),
            max_rom_deg=None,
            mean_hold_s=s.get("mean_hold_s"),
            mean_concentric_s=None,
            mean_eccentric_s=None,
            quality_pct=s.get("quality_pct"),
            adherence_pct=s.get("adherence_pct"),
            reps_done=reps,
            sets_done=int(s.get("set_count") or 0),
            target_range_deg=None,
            flags=dict(s.get("flags") or {}),
        )
        return [((r.exercise, side), point)]
    out: list[tuple[tuple[str, str | None], ProgressPoint]] = []
    for ln in lines:
        point = ProgressPoint(
            session_id=r.session_id,
            started_at=started,
            mean_rom_deg=ln.get("mean_rom_deg"),
            max_rom_deg=ln.get("max_rom_deg"),
            mean_hold_s=ln.get("mean_hold_s"),
            mean_concentric_s=ln.get("mean_concentric_s"),
            mean_eccentric_s=ln.get("mean_eccentric_s"),
            quality_pct=ln.get("quality_pct"),
            adherence_pct=ln.get("adherence_pct"),
            reps_done=int(ln.get("reps_done", 0)),
            sets_done=int(ln.get("sets_done", 0)),
            target_range_deg=_range(ln.get("target_range_deg")),
            prescribed_sets=ln.get("prescribed_sets"),
            prescribed_reps=ln.get("prescribed_reps"),
            prescribed_hold_s=ln.get("prescribed_hold_s"),
            tempo_s=_range(ln.get("tempo_s")),
            flags=dict(ln.get("flags") or {}),
        )
        out.append(((str(ln["exercise"]), str(ln["side"])), point))
    return out


def _prescribed_done(line: dict[str, Any]) -> tuple[int, int]:
    """A summary line's reps prescribed and prescribed reps done (the tracker's count)."""
    sets, reps = int(line.get("prescribed_sets", 0)), int(line.get("prescribed_reps", 0))
    fullest = sorted((int(n) for n in line.get("reps_per_set", [])), reverse=True)[:sets]
    return sets * reps, sum(min(n, reps) for n in fullest)


def _day(d: date, records: list[SessionRecord]) -> CalendarDay:
    prescribed = done = 0
    means: list[float] = []
    for r in records:
        assert r.summary is not None
        lines = r.summary.get("lines") or []
        for ln in lines:
            p, k = _prescribed_done(ln)
            prescribed, done = prescribed + p, done + k
        if not lines and r.summary.get("adherence_pct") is not None:
            means.append(float(r.summary["adherence_pct"]))
    if prescribed:
        pct: float | None = round(100.0 * done / prescribed, 1)
    else:
        pct = round(sum(means) / len(means), 1) if means else None
    return CalendarDay(d, [r.session_id for r in records], pct)


def _mean(values: list[float]) -> float | None:
    return round(sum(values) / len(values), 2) if values else None


def _figures(points: list[ProgressPoint]) -> SideFigures:
    roms = [p.mean_rom_deg for p in points if p.mean_rom_deg is not None]
    holds = [p.mean_hold_s for p in points if p.mean_hold_s is not None]
    return SideFigures(
        sessions=len(points),
        latest_rom_deg=roms[-1] if roms else None,
        mean_rom_deg=_mean(roms),
        latest_hold_s=holds[-1] if holds else None,
        mean_hold_s=_mean(holds),
    )


def _sides(series: list[ProgressSeries]) -> list[SideComparison]:
    out = []
    for ex in dict.fromkeys(s.exercise for s in series):
        by_side = {s.side: s.points for s in series if s.exercise == ex}
        left_pts = [p for p in by_side.get("left", []) if p.reps_done]
        right_pts = [p for p in by_side.get("right", []) if p.reps_done]
        if not left_pts or not right_pts:
            continue
        left, right = _figures(left_pts), _figures(right_pts)
        out.append(
            SideComparison(
                exercise=ex,
                left=left,
                right=right,
                rom_difference_deg=_difference(left.mean_rom_deg, right.mean_rom_deg),
                hold_difference_s=_difference(left.mean_hold_s, right.mean_hold_s),
            )
        )
    return out


def _difference(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else round(a - b, 2)


def _advice(r: SessionRecord, s: dict[str, Any]) -> list[Advice]:
    out = []
    for text in s.get("advice") or []:
        # The tracker's words: "{exercise}: {why}: {what to do}".
        exercise, _, rest = str(text).partition(": ")
        reasons, _, advice = rest.rpartition(": ")
        out.append(
            Advice(
                exercise=exercise,
                advice=advice or rest,
                reasons=reasons,
                session_id=r.session_id,
                started_at=r.started,
            )
        )
    return out
