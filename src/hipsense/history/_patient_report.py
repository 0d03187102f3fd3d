"""A patient's report: their progress over sessions as one self-contained HTML file.

From `patient_progress`: per exercise and side, trend charts over sessions (range of
motion against the target band, hold time, tempo outward and back, quality and
adherence); an adherence calendar (per day, and each session of the day); left against
right; the progression advice and why. Dates are local. The same stylesheet as the
session report: on A4, no heading is cut from what it heads. No scripts, no fetches.
"""

import html
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from pathlib import Path

from hipsense._errors import HipsenseError
from hipsense._files import write_private
from hipsense._text import counted
from hipsense.exercises import ExerciseLibrary, load_library

from ._charts import (
    BAND,
    BLUE,
    CSS,
    GREY,
    ORANGE,
    PURPLE,
    Chart,
    LegendItem,
    hbar_chart,
    local_date,
    local_time,
    nice_ticks,
    polyline,
    section,
)
from ._progress import PatientProgress, ProgressPoint, ProgressSeries, patient_progress
from ._store import History, SessionRecord

__all__ = ["NoSessionsError", "render_patient_report", "write_patient_report"]

_HEIGHT = 210
"""Trend charts are lower than a session's: four a series, two series a page or so."""


class NoSessionsError(HipsenseError):
    """A patient report asked for with no finished session to report on."""

    def __init__(self, patient_id: str, since: date | datetime | None) -> None:
        after = "" if since is None else f" since {since}"
        super().__init__(
            f"--patient: expected finished sessions of {patient_id!r}{after} in the history, "
            "found none (hipsense sessions lists them)"
        )


class _Days:
    """Session times as days since the first session's local midnight: the x axis."""

    def __init__(self, first: datetime) -> None:
        self.origin = datetime.combine(first.astimezone().date(), datetime.min.time()).astimezone()

    def at(self, t: datetime) -> float:
        return (t.astimezone() - self.origin).total_seconds() / 86400.0

    def label(self, v: float) -> str:
        d = (self.origin + timedelta(days=v)).date()
        return f"{d.day} {d:%b}"

    def chart(self, points: list[ProgressPoint], yticks: list[float], ylabel: str,
              legend: list[LegendItem]) -> Chart:  # fmt: skip
        xs = [self.at(p.started_at) for p in points]
        return Chart(
            nice_ticks(0.0, max(1.0, max(xs)), 8, whole=True),
            yticks,
            "date of the session",
            ylabel,
            legend,
            height=_HEIGHT,
            xtick_text=self.label,
        )


def _tip(p: ProgressPoint, what: str) -> str:
    return f"{local_time(p.started_at)}: {what}"


def _rom_chart(days: _Days, pts: list[ProgressPoint]) -> str | None:
    if all(p.mean_rom_deg is None for p in pts):
        return None
    bands = [p.target_range_deg for p in pts if p.target_range_deg is not None]
    band = bands[-1] if bands else None
    top = max([p.max_rom_deg or p.mean_rom_deg or 0.0 for p in pts] + [band[1] if band else 0])
    legend = [LegendItem("line", BLUE, "mean range of motion"),
              LegendItem("dot", ORANGE, "largest range of the session")]  # fmt: skip
    if band is not None:
        legend.append(LegendItem("band", BAND, f"target range {band[0]:g}-{band[1]:g} deg"))
    chart = days.chart(pts, nice_ticks(0.0, top), "range of motion (deg)", legend)
    body = ""
    if band is not None:
        body += (
            f'<rect x="{chart.left}" y="{chart.y(band[1]):.1f}" width="{chart.plot_width:.1f}" '
            f'height="{chart.y(band[0]) - chart.y(band[1]):.1f}" fill="{BAND}"><title>target '
            f"{band[0]:g}-{band[1]:g} deg</title></rect>"
        )
    xs = [days.at(p.started_at) for p in pts]
    body += polyline(chart, list(zip(xs, [p.mean_rom_deg for p in pts], strict=True)), BLUE,
                     [_tip(p, f"mean {p.mean_rom_deg} deg") for p in pts])  # fmt: skip
    body += polyline(chart, list(zip(xs, [p.max_rom_deg for p in pts], strict=True)), ORANGE,
                     [_tip(p, f"largest {p.max_rom_deg} deg") for p in pts], dots=True)  # fmt: skip
    return chart.svg(body, "Range of motion over sessions against the target range")


def _hold_chart(days: _Days, pts: list[ProgressPoint]) -> str | None:
    if all(p.mean_hold_s is None for p in pts):
        return None
    prescribed = [p.prescribed_hold_s for p in pts if p.prescribed_hold_s]
    top = max([p.mean_hold_s or 0.0 for p in pts] + prescribed)
    legend = [LegendItem("line", BLUE, "mean hold")]
    if prescribed:
        legend.append(LegendItem("dashed", GREY, "prescribed hold"))
    chart = days.chart(pts, nice_ticks(0.0, top), "seconds", legend)
    xs = [days.at(p.started_at) for p in pts]
    body = polyline(chart, list(zip(xs, [p.mean_hold_s for p in pts], strict=True)), BLUE,
                    [_tip(p, f"mean hold {p.mean_hold_s} s") for p in pts])  # fmt: skip
    if prescribed:
        body += polyline(
            chart,
            list(zip(xs, [p.prescribed_hold_s or None for p in pts], strict=True)),
            GREY,
            [_tip(p, f"prescribed {p.prescribed_hold_s} s") for p in pts],
            dashed=True,
            dots=False,
        )
    return chart.svg(body, "Hold time over sessions against the prescribed hold")


def _tempo_chart(days: _Days, pts: list[ProgressPoint]) -> str | None:
    if all(p.mean_concentric_s is None and p.mean_eccentric_s is None for p in pts):
        return None
    prescribed = [p.tempo_s for p in pts if p.tempo_s is not None]
    top = max(
        [p.mean_concentric_s or 0.0 for p in pts]
        + [p.mean_eccentric_s or 0.0 for p in pts]
        + [max(t) for t in prescribed]
    )
    legend = [LegendItem("line", BLUE, "outward"), LegendItem("line", PURPLE, "return")]
    if prescribed:
        legend += [LegendItem("dashed", BLUE, "prescribed outward"),
                   LegendItem("dashed", PURPLE, "prescribed return")]  # fmt: skip
    chart = days.chart(pts, nice_ticks(0.0, top), "seconds", legend)
    xs = [days.at(p.started_at) for p in pts]
    body = ""
    for k, (colour, name) in enumerate(((BLUE, "outward"), (PURPLE, "return"))):
        means = [p.mean_concentric_s if k == 0 else p.mean_eccentric_s for p in pts]
        tips = [_tip(p, f"{name} {m} s") for p, m in zip(pts, means, strict=True)]
        body += polyline(chart, list(zip(xs, means, strict=True)), colour, tips)
        if prescribed:
            wanted = [None if p.tempo_s is None else p.tempo_s[k] for p in pts]
            body += polyline(chart, list(zip(xs, wanted, strict=True)), colour,
                             ["" for _ in pts], dashed=True, dots=False)  # fmt: skip
    return chart.svg(body, "Tempo over sessions: outward and return, against the prescription")


def _quality_chart(days: _Days, pts: list[ProgressPoint]) -> str | None:
    if all(p.quality_pct is None and p.adherence_pct is None for p in pts):
        return None
    legend = [LegendItem("line", BLUE, "quality (no flag, hold reached)"),
              LegendItem("line", GREY, "adherence of the session")]  # fmt: skip
    chart = days.chart(pts, nice_ticks(0.0, 100.0), "%", legend)
    xs = [days.at(p.started_at) for p in pts]
    body = polyline(chart, list(zip(xs, [p.quality_pct for p in pts], strict=True)), BLUE,
                    [_tip(p, f"quality {p.quality_pct} %") for p in pts])  # fmt: skip
    body += polyline(chart, list(zip(xs, [p.adherence_pct for p in pts], strict=True)), GREY,
                     [_tip(p, f"adherence {p.adherence_pct} %") for p in pts])  # fmt: skip
    return chart.svg(body, "Quality and adherence over sessions")


def _name(exercise: str, library: ExerciseLibrary) -> str:
    ex = library.get(exercise)
    return ex.name if ex is not None else exercise


def _series(s: ProgressSeries, days: _Days, library: ExerciseLibrary) -> str:
    name = _name(s.exercise, library)
    heading = f"{name}: {s.side} side" if s.side else f"{name} (side not known)"
    pts = s.points
    done = sum(p.reps_done for p in pts)
    first, last = local_date(pts[0].started_at), local_date(pts[-1].started_at)
    intro = (
        f'<p class="muted">{len(pts)} sessions, {first} to {last}; {done} reps or holds done.</p>'
    )
    charts = [
        ("Range of motion", _rom_chart(days, pts)),
        ("Hold time", _hold_chart(days, pts)),
        ("Tempo", _tempo_chart(days, pts)),
        ("Quality and adherence", _quality_chart(days, pts)),
    ]
    shown = [(h, svg) for h, svg in charts if svg is not None]
    if not shown:
        return section(heading, intro + '<p class="muted">Nothing measured.</p>')
    # The series' heading goes with its first chart: never alone at a page's foot.
    (h0, svg0), rest = shown[0], shown[1:]
    out = (
        f"<section><h2>{html.escape(heading)}</h2>{intro}<h3>{html.escape(h0)}</h3>{svg0}</section>"
    )
    return out + "".join(section(h, svg, level=3) for h, svg in rest)


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{v:.0f} %"


def _calendar(progress: PatientProgress, records: Sequence[SessionRecord],
              library: ExerciseLibrary) -> str:  # fmt: skip
    by_id = {r.session_id: r for r in records}
    days = {d.date: d for d in progress.calendar}
    first, last = min(days), max(days)
    monday = first - timedelta(days=first.weekday())
    rows = []
    d = monday
    while d <= last:
        cells = []
        for _ in range(7):
            day = days.get(d)
            if day is None:
                cells.append(f'<td class="none">{d.day} {d:%b}</td>')
            else:
                sessions = []
                for sid in day.sessions:
                    rec = by_id.get(sid)
                    s = (rec.summary or {}) if rec else {}
                    what = _name(rec.exercise, library) if rec else sid
                    sessions.append(
                        f'<div class="muted">{html.escape(what)}: '
                        f"{_pct(s.get('adherence_pct'))}</div>"
                    )
                shade = _shade(day.adherence_pct)
                cells.append(
                    f'<td style="background:{shade}"><div>{d.day} {d:%b}</div>'
                    f'<div class="pct">{_pct(day.adherence_pct)}</div>{"".join(sessions)}</td>'
                )
            d += timedelta(days=1)
        rows.append("<tr>" + "".join(cells) + "</tr>")
    head = "".join(f"<th>{n}</th>" for n in ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"))
    key = (
        '<p class="muted">Each day: its adherence (the reps and holds prescribed for that '
        "day's sessions done), then each session's own. Greener is closer to 100 %; a "
        "blank day had no session.</p>"
    )
    return section(
        "Adherence by day",
        f'<table class="calendar"><thead><tr>{head}</tr></thead>{"".join(rows)}</table>{key}',
    )


def _shade(pct: float | None) -> str:
    """A day's colour: white at 0 %, green at 100 % (grey when not known)."""
    if pct is None:
        return "#f0f0f0"
    k = max(0.0, min(pct, 100.0)) / 100.0
    r, g, b = (int(255 + (t - 255) * k) for t in (150, 210, 150))
    return f"#{r:02x}{g:02x}{b:02x}"


def _sessions_table(records: Sequence[SessionRecord], library: ExerciseLibrary) -> str:
    rows = []
    for r in records:
        s = r.summary or {}
        rows.append(
            f"<tr><td>{html.escape(local_time(r.started))}</td>"
            f"<td>{html.escape(_name(r.exercise, library))}</td>"
            f"<td>{html.escape(r.side or '-')}</td><td>{s.get('rep_count', 0)}</td>"
            f"<td>{s.get('hold_count', 0)}</td><td>{_pct(s.get('adherence_pct'))}</td>"
            f"<td>{_pct(s.get('quality_pct'))}</td><td>{_pct(s.get('program_adherence_pct'))}</td>"
            "</tr>"
        )
    head = "".join(
        f"<th>{h}</th>"
        for h in ("started", "exercise", "side", "reps", "holds", "adherence, this session",
                  "quality", "adherence, program so far")
    )  # fmt: skip
    return section(
        "Sessions", f"<table><thead><tr>{head}</tr></thead>{''.join(rows)}</table>", long=True
    )


def _num(v: float | None, unit: str) -> str:
    return "-" if v is None else f"{v:.1f} {unit}"


def _sides(progress: PatientProgress, library: ExerciseLibrary) -> str:
    if not progress.sides:
        return section(
            "Left against right",
            '<p class="muted">No exercise was done on both sides yet.</p>',
        )
    rows = [
        f"<tr><td>{html.escape(_name(c.exercise, library))}</td>"
        f"<td>{c.left.sessions} / {c.right.sessions}</td>"
        f"<td>{_num(c.left.mean_rom_deg, 'deg')} / {_num(c.right.mean_rom_deg, 'deg')}</td>"
        f"<td>{_num(c.rom_difference_deg, 'deg')}</td>"
        f"<td>{_num(c.left.mean_hold_s, 's')} / {_num(c.right.mean_hold_s, 's')}</td>"
        f"<td>{_num(c.hold_difference_s, 's')}</td></tr>"
        for c in progress.sides
    ]
    head = "".join(
        f"<th>{h}</th>"
        for h in ("exercise", "sessions left / right", "mean range left / right",
                  "range, left minus right", "mean hold left / right", "hold, left minus right")
    )  # fmt: skip
    out = section("Left against right", f"<table><thead><tr>{head}</tr></thead>{''.join(rows)}"
                  "</table>")  # fmt: skip
    legend = [LegendItem("bar", BLUE, "left"), LegendItem("bar", ORANGE, "right")]
    for heading, unit, key in (
        ("Mean range of motion, left and right", " deg", "mean_rom_deg"),
        ("Mean hold, left and right", " s", "mean_hold_s"),
    ):
        bars = []
        for c in progress.sides:
            name = _name(c.exercise, library)
            for side, figures, colour in (("left", c.left, BLUE), ("right", c.right, ORANGE)):
                v: float | None = getattr(figures, key)
                if v is not None:
                    bars.append((f"{name}, {side}", v, colour, f"{name}, {side}: {v}{unit}"))
        if bars:
            axis = "degrees" if unit == " deg" else "seconds"
            svg = hbar_chart(bars, axis, legend, heading, unit=unit)
            out += section(heading, svg, level=3)
    return out


def _advice(progress: PatientProgress, library: ExerciseLibrary) -> str:
    if not progress.advice:
        return section("Progression advice", '<p class="muted">No progression advice yet.</p>')
    items = "".join(
        f"<li><b>{html.escape(_name(a.exercise, library))}</b>: {html.escape(a.advice)}. "
        f'<span class="muted">Why: {html.escape(a.reasons or "-")} (session of '
        f"{html.escape(local_date(a.started_at))}).</span></li>"
        for a in progress.advice
    )
    return section("Progression advice", f"<ul>{items}</ul>")


def render_patient_report(
    records: Sequence[SessionRecord],
    *,
    library: ExerciseLibrary | None = None,
    now: datetime | None = None,
    since: date | datetime | None = None,
) -> str:
    """The HTML of one patient's report from their session records (any order).

    `now`: when it was made (shown at its foot); `since`: the filter the records were
    read with, said in the heading. Sessions not finished are left out.
    """
    library = library if library is not None else load_library()
    done = sorted((r for r in records if r.summary is not None), key=lambda r: r.started)
    progress = patient_progress(done)
    esc = html.escape
    who = progress.patient_id or "several patients"
    made = local_time(now or datetime.now().astimezone())
    if progress.first is None or progress.last is None:
        body = '<p class="muted">No finished sessions.</p>'
        span = "no sessions"
    else:
        days = _Days(progress.first)
        span = (
            f"{counted(progress.sessions, 'session')} on "
            f"{counted(len(progress.calendar), 'day')}, "
            f"{local_date(progress.first)} to {local_date(progress.last)}"
        )
        body = (
            _calendar(progress, done, library)
            + "".join(_series(s, days, library) for s in progress.series)
            + _sides(progress, library)
            + _advice(progress, library)
            + _sessions_table(done, library)
        )
    after = "" if since is None else f" (sessions since {since})"
    zone = made.rsplit(" ", 1)[-1]
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>hipsense: patient {esc(who)}</title>
<style>{CSS}</style></head><body>
<h1>Patient {esc(who)}: progress</h1>
<p class="muted">{esc(span)}{esc(after)}. Made {esc(made)}; times are local ({esc(zone)}).</p>
{body}
<p class="muted">Made by hipsense. Adherence: the reps (or holds) prescribed done, each set
counted up to its prescription. Quality: reps and holds without a flag and with the
prescribed hold reached. Angles are degrees from the patient's start position about the
exercise's movement axis.</p>
</body></html>
"""


def write_patient_report(
    history: History, patient_id: str, path: Path, since: date | datetime | None = None
) -> Path:
    """Render a patient's report (sessions since `since`) to `path`; return it.

    Folders are made as needed; the file is 0600 (health data, as the history is).
    `NoSessionsError` when the patient has no finished session (since then).
    """
    records = [r for r in history.records(patient_id, since) if r.summary is not None]
    if not records:
        raise NoSessionsError(patient_id, since)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_private(path, render_patient_report(records, since=since))
    return path
