"""A session report: one self-contained HTML file (inline SVG plots, no scripts, no fetches).

Against the prescription: every line of the summary (each exercise and side), the
session's own adherence and, named apart, the program's so far. Charts on nice ticks,
each with a legend; times in local time; flags in a clinician's words. Prints on A4 with
no heading cut from what it heads (`_charts.CSS`).
"""

import html
from pathlib import Path
from typing import Any

import numpy as np

from hipsense._files import write_private
from hipsense._text import flag_phrase, flags_phrase
from hipsense.exercises import Exercise, load_library

from ._charts import (
    BAND,
    BLUE,
    CSS,
    GREEN,
    GREY,
    ORANGE,
    PURPLE,
    Chart,
    LegendItem,
    hbar_chart,
    local_time,
    nice_ticks,
    section,
)
from ._store import History, SessionRecord

__all__ = ["render_report", "write_report"]

_REP_COLUMNS = ("rep", "set", "side", "range (deg)", "outward (s)", "hold (s)", "return (s)",
                "peak (deg/s)", "flags", "confidence")  # fmt: skip
_HOLD_COLUMNS = ("hold", "set", "side", "time (s)", "angle (deg)", "on target (%)",
                 "stability (deg)", "broken", "flags")  # fmt: skip
_LINE_COLUMNS = ("exercise", "side", "sets", "reps or holds", "range (deg)", "hold (s)",
                 "tempo out / back (s)", "adherence", "quality", "flags")  # fmt: skip


def _head(columns: tuple[str, ...]) -> str:
    return "<thead><tr>" + "".join(f"<th>{c}</th>" for c in columns) + "</tr></thead>"


def _num(v: Any, digits: int = 1, unit: str = "") -> str:
    return "-" if v is None else f"{float(v):.{digits}f}{unit}"


def _sides_of_sets(lines: list[dict[str, Any]]) -> dict[int, str]:
    """The side of each of the core's set indexes, from the summary's lines."""
    return {int(i): str(ln["side"]) for ln in lines for i in ln.get("set_indexes", [])}


def _flag_list(flags: list[str]) -> str:
    return html.escape("; ".join(flag_phrase(f) for f in flags))


def _angle_plot(rec: SessionRecord, reps: list[dict[str, Any]], holds: list[dict[str, Any]]) -> str:
    if rec.t_s.shape[0] < 2:
        return '<p class="muted">No angle trace was stored for this session.</p>'
    t, a = rec.t_s, rec.angle_deg
    finite = a[np.isfinite(a)]
    lo = min(0.0, float(finite.min())) if finite.size else 0.0
    hi = max(10.0, float(finite.max())) if finite.size else 10.0
    legend = [LegendItem("line", BLUE, "hip angle")]
    if any(not r["flags"] for r in reps):
        legend.append(LegendItem("bar", "#cfe3f7", "a rep"))
    if any(r["flags"] for r in reps):
        legend.append(LegendItem("bar", "#f6c48f", "a rep with a flag"))
    if holds:
        legend.append(LegendItem("bar", "#cdeccd", "a hold"))
    chart = Chart(
        nice_ticks(float(t[0]), float(t[-1]), 8),
        nice_ticks(lo, hi),
        "time from the start (s)",
        "angle (deg)",
        legend,
    )
    top, bottom = chart.top, chart.height - chart.bottom
    marks = []
    for r in reps:
        colour = "#f6c48f" if r["flags"] else "#cfe3f7"
        flags = f" ({_flag_list(r['flags'])})" if r["flags"] else ""
        marks.append(
            f'<rect x="{chart.x(r["start_s"]):.1f}" y="{top}" width="'
            f'{max(1.0, chart.x(r["end_s"]) - chart.x(r["start_s"])):.1f}" '
            f'height="{bottom - top}" fill="{colour}"><title>rep {r["index"] + 1}: '
            f"{r['rom_deg']:.1f} deg{flags}</title></rect>"
        )
    marks += [
        f'<rect x="{chart.x(h["start_s"]):.1f}" y="{top}" width="'
        f'{max(1.0, chart.x(h["end_s"]) - chart.x(h["start_s"])):.1f}" height="{bottom - top}" '
        f'fill="#cdeccd"><title>hold {h["index"] + 1}: {h["hold_s"]:.1f} s</title></rect>'
        for h in holds
    ]
    step = max(1, t.shape[0] // 4000)  # a few thousand points draw fine and keep files small
    pts = " ".join(
        f"{chart.x(float(x)):.1f},{chart.y(float(y)):.1f}"
        for x, y in zip(t[::step], np.nan_to_num(a[::step]), strict=True)
    )
    body = (
        "".join(marks)
        + f'<polyline points="{pts}" fill="none" stroke="{BLUE}" '
        + ('stroke-width="1.2"/>')
    )
    return chart.svg(body, "Hip angle over time, with the reps and holds marked")


def _band(chart: Chart, band: tuple[float, float] | None) -> str:
    if band is None:
        return ""
    lo, hi = band
    return (
        f'<rect x="{chart.left}" y="{chart.y(hi):.1f}" width="{chart.plot_width:.1f}" '
        f'height="{chart.y(lo) - chart.y(hi):.1f}" fill="{BAND}"><title>target {lo:g}-{hi:g} '
        "deg</title></rect>"
    )


def _bars_chart(n: int, top: float, xlabel: str, ylabel: str, legend: list[LegendItem]) -> Chart:
    """A chart of one bar per item 1..n (reps, holds)."""
    return Chart(
        nice_ticks(1, n, 10, whole=True),
        nice_ticks(0.0, top),
        xlabel,
        ylabel,
        legend,
        xlim=(0.4, n + 0.6),
    )


def _rom_plot(
    reps: list[dict[str, Any]], band: tuple[float, float] | None, sides: dict[int, str]
) -> str:
    roms = [r["rom_deg"] for r in reps]
    legend = [LegendItem("bar", BLUE, "a rep's range of motion")]
    if any(r["flags"] for r in reps):
        legend.append(LegendItem("bar", ORANGE, "a rep with a flag"))
    if band is not None:
        legend.append(LegendItem("band", BAND, f"target range {band[0]:g}-{band[1]:g} deg"))
    chart = _bars_chart(
        len(reps), max([*roms, band[1] if band else 0.0]), "rep", "range of motion (deg)", legend
    )
    w = chart.plot_width / (len(reps) + 0.2)
    parts = [_band(chart, band)]
    for i, r in enumerate(reps, start=1):
        colour = ORANGE if r["flags"] else BLUE
        side = sides.get(int(r["set_index"]))
        flags = f" ({_flag_list(r['flags'])})" if r["flags"] else ""
        parts.append(
            f'<rect x="{chart.x(i) - w * 0.35:.1f}" y="{chart.y(r["rom_deg"]):.1f}" '
            f'width="{w * 0.7:.1f}" height="{chart.y(0) - chart.y(r["rom_deg"]):.1f}" '
            f'fill="{colour}"><title>rep {i}: {r["rom_deg"]:.1f} deg'
            f"{', ' + side if side else ''}{flags}</title></rect>"
        )
    return chart.svg("".join(parts), "Range of motion per rep against the target range")


def _tempo_plot(reps: list[dict[str, Any]]) -> str:
    totals = [r["concentric_s"] + r["hold_s"] + r["eccentric_s"] for r in reps]
    phases = (("concentric_s", BLUE, "outward"), ("hold_s", GREEN, "hold at the top"),
              ("eccentric_s", PURPLE, "return"))  # fmt: skip
    legend = [LegendItem("bar", c, f"{name} (s)") for _, c, name in phases]
    chart = _bars_chart(len(reps), max(totals), "rep", "seconds", legend)
    w = chart.plot_width / (len(reps) + 0.2)
    parts = []
    for i, r in enumerate(reps, start=1):
        base = 0.0
        for key, colour, name in phases:
            v = r[key]
            parts.append(
                f'<rect x="{chart.x(i) - w * 0.35:.1f}" y="{chart.y(base + v):.1f}" '
                f'width="{w * 0.7:.1f}" height="{chart.y(base) - chart.y(base + v):.1f}" '
                f'fill="{colour}"><title>rep {i} {name}: {v:.2f} s</title></rect>'
            )
            base += v
    return chart.svg("".join(parts), "Tempo per rep: outward, hold at the top, return")


def _hold_plot(holds: list[dict[str, Any]], prescribed_s: float | None) -> str:
    legend = [LegendItem("bar", GREEN, "a hold's time")]
    if any(h["flags"] for h in holds):
        legend.append(LegendItem("bar", ORANGE, "a hold with a flag"))
    if prescribed_s:
        legend.append(LegendItem("dashed", GREY, f"prescribed hold {prescribed_s:g} s"))
    times = [h["hold_s"] for h in holds]
    chart = _bars_chart(len(holds), max([*times, prescribed_s or 0.0]), "hold", "seconds", legend)
    w = chart.plot_width / (len(holds) + 0.2)
    parts = []
    for i, h in enumerate(holds, start=1):
        flags = f" ({_flag_list(h['flags'])})" if h["flags"] else ""
        parts.append(
            f'<rect x="{chart.x(i) - w * 0.35:.1f}" y="{chart.y(h["hold_s"]):.1f}" '
            f'width="{w * 0.7:.1f}" height="{chart.y(0) - chart.y(h["hold_s"]):.1f}" '
            f'fill="{ORANGE if h["flags"] else GREEN}"><title>hold {i}: {h["hold_s"]:.1f} s'
            f"{flags}</title></rect>"
        )
    if prescribed_s:
        y = chart.y(prescribed_s)
        parts.append(
            f'<line x1="{chart.left}" x2="{chart.left + chart.plot_width:.1f}" y1="{y:.1f}" '
            f'y2="{y:.1f}" stroke="{GREY}" stroke-width="2" stroke-dasharray="4 3"/>'
        )
    return chart.svg("".join(parts), "Time of each hold against the prescribed hold")


def _adherence_plot(session_pct: float | None, program_pct: float | None) -> str:
    """The session's adherence and the program's so far, as two bars on 0-100 %."""
    named = [("this session", session_pct, BLUE), ("program so far", program_pct, GREY)]
    bars = [(name, pct, c, f"{name}: {pct:.0f} %") for name, pct, c in named if pct is not None]
    legend = [LegendItem("bar", c, f"adherence, {name}") for name, _, c, _ in bars]
    return hbar_chart(
        bars,
        "adherence (%)",
        legend,
        "Adherence of this session and of the program so far",
        xmax=100.0,
        unit=" %",
    )


def _line_row(ln: dict[str, Any], names: dict[str, str], with_tempo: bool) -> str:
    esc = html.escape
    band = ln.get("target_range_deg")
    rom = _num(ln.get("mean_rom_deg"))
    if band:
        rom += f" (target {band[0]:g}-{band[1]:g})"
    hold = _num(ln.get("mean_hold_s"))
    if ln.get("prescribed_hold_s"):
        hold += f" (of {ln['prescribed_hold_s']:g})"
    tempo = f"{_num(ln.get('mean_concentric_s'))} / {_num(ln.get('mean_eccentric_s'))}"
    if ln.get("tempo_s"):
        tempo += f" (of {ln['tempo_s'][0]:g} / {ln['tempo_s'][1]:g})"
    if ln.get("mean_concentric_s") is None and ln.get("tempo_s") is None:
        tempo = "-"
    cells = [
        esc(names.get(str(ln["exercise"]), str(ln["exercise"]))),
        esc(str(ln["side"])),
        f"{ln['sets_done']} of {ln['prescribed_sets']}",
        f"{ln['reps_done']} of {ln['prescribed_sets'] * ln['prescribed_reps']}",
        rom,
        hold,
        *([tempo] if with_tempo else []),
        _num(ln.get("adherence_pct"), 0, " %"),
        _num(ln.get("quality_pct"), 0, " %"),
        f'<span class="flag">{esc(flags_phrase(ln.get("flags") or {}))}</span>',
    ]
    return "<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>"


def _prescription(s: dict[str, Any], names: dict[str, str]) -> str:
    lines = s.get("lines") or []
    session_pct, program_pct = s.get("adherence_pct"), s.get("program_adherence_pct")
    if not lines and session_pct is None and program_pct is None:
        return ""
    esc = html.escape
    parts = []
    if lines:
        # Holds have no tempo: no column for it (a hold-only session says nothing of tempo).
        tempo = any(ln.get("tempo_s") or ln.get("mean_concentric_s") for ln in lines)
        rows = "".join(_line_row(ln, names, tempo) for ln in lines)
        columns = tuple(c for c in _LINE_COLUMNS if tempo or not c.startswith("tempo"))
        parts.append(
            f'<table>{_head(columns)}{rows}</table><p class="muted">Adherence: the '
            "reps (or holds) prescribed for this session done, each set counted up to its "
            "prescription. Quality: those without a flag and with the prescribed hold "
            "reached.</p>"
        )
    elif s.get("progress"):
        parts.append(f"<p>{esc(s['progress'])}</p>")
    parts.append(_adherence_plot(session_pct, program_pct))
    items = "".join(f"<li>{esc(a)}</li>" for a in s.get("advice", []))
    notes = "".join(f'<li class="note">{esc(n)}</li>' for n in s.get("notes", []))
    if items or notes:
        parts.append(f"<ul>{items}{notes}</ul>")
    return section("Against the prescription", "".join(parts))


def _when(rec: SessionRecord) -> str:
    start = rec.started
    text = local_time(start)
    if rec.ended is not None:
        end = rec.ended.astimezone()
        text += " to " + (
            f"{end:%H:%M}" if end.date() == start.astimezone().date() else local_time(end)
        )
    if rec.interrupted:
        text += " (interrupted: the gateway stopped first)"
    elif not rec.ended_at:
        text += " (not finished)"
    return text


def _kpis(s: dict[str, Any], reps: int, holds: int) -> str:
    kpis: list[tuple[str, object]] = [
        ("reps", s.get("rep_count", reps)),
        ("holds", s.get("hold_count", holds)),
        ("sets", s.get("set_count", "-")),
        ("mean range", f"{s['mean_rom_deg']:.1f} deg" if s.get("mean_rom_deg") else "-"),
        ("mean hold", f"{s['mean_hold_s']:.1f} s" if s.get("mean_hold_s") else "-"),
    ]
    if s.get("adherence_pct") is not None:
        kpis.append(("adherence, this session", f"{s['adherence_pct']:.0f} %"))
    if s.get("program_adherence_pct") is not None:
        kpis.append(("adherence, program so far", f"{s['program_adherence_pct']:.0f} %"))
    if s.get("quality_pct") is not None:
        kpis.append(("quality", f"{s['quality_pct']:.0f} %"))
    return "".join(f'<span class="kpi"><b>{v}</b>{html.escape(k)}</span>' for k, v in kpis)


def _prescribed_hold(lines: list[dict[str, Any]], ex: Exercise | None) -> float | None:
    held = [float(ln["prescribed_hold_s"]) for ln in lines if ln.get("prescribed_hold_s")]
    if held:
        return max(held)
    return ex.dosage.hold_s if ex is not None and ex.dosage.hold_s else None


def render_report(rec: SessionRecord, exercise: Exercise | None = None) -> str:
    """The HTML of one session's report.

    The same record gives the same bytes: made again, it is the one the demo wrote.
    """
    reps = [e for e in rec.events if e["kind"] == "rep"]
    holds = [e for e in rec.events if e["kind"] == "hold"]
    s = rec.summary or {}
    lines: list[dict[str, Any]] = list(s.get("lines") or [])
    sides = _sides_of_sets(lines)
    esc = html.escape
    title = exercise.name if exercise is not None else rec.exercise
    names = {rec.exercise: title}
    bands = [tuple(ln["target_range_deg"]) for ln in lines if ln.get("target_range_deg")]
    band: tuple[float, float] | None = (
        (float(bands[0][0]), float(bands[0][1])) if bands
        else (exercise.rom.target_min_deg, exercise.rom.target_max_deg) if exercise else None
    )  # fmt: skip

    def side(e: dict[str, Any]) -> str:
        return esc(sides.get(int(e["set_index"]), "-"))

    rows = "".join(
        f"<tr><td>{r['index'] + 1}</td><td>{r['set_index'] + 1}</td><td>{side(r)}</td>"
        f"<td>{r['rom_deg']:.1f}</td><td>{r['concentric_s']:.2f}</td><td>{r['hold_s']:.2f}</td>"
        f"<td>{r['eccentric_s']:.2f}</td><td>{r['peak_velocity_dps']:.0f}</td>"
        f'<td class="flag">{_flag_list(r["flags"])}</td><td>{r["confidence"]:.2f}</td></tr>'
        for r in reps
    )
    hold_rows = "".join(
        f"<tr><td>{h['index'] + 1}</td><td>{h['set_index'] + 1}</td><td>{side(h)}</td>"
        f"<td>{h['hold_s']:.1f}</td><td>{h['angle_deg']:.1f}</td><td>{h['on_target_pct']:.0f}</td>"
        f"<td>{h['stability_deg']:.1f}</td><td>{h['broken']}</td>"
        f'<td class="flag">{_flag_list(h["flags"])}</td></tr>'
        for h in holds
    )
    flag_text = flags_phrase(s.get("flags") or {})
    body = [
        _prescription(s, names),
        section("Angle over time", _angle_plot(rec, reps, holds)),
    ]
    if reps:
        body.append(section("Range of motion per rep", _rom_plot(reps, band, sides)))
        body.append(section("Tempo per rep", _tempo_plot(reps)))
    if holds:
        body.append(
            section("Time of each hold", _hold_plot(holds, _prescribed_hold(lines, exercise)))
        )
    if reps:
        body.append(section("Reps", f"<table>{_head(_REP_COLUMNS)}{rows}</table>", long=True))
    if holds:
        body.append(
            section("Holds", f"<table>{_head(_HOLD_COLUMNS)}{hold_rows}</table>", long=True)
        )
    zone = rec.started.astimezone().tzname() or "local"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>hipsense: {esc(title)}</title>
<style>{CSS}</style></head><body>
<h1>{esc(title)}</h1>
<p class="muted">Session {esc(rec.session_id)} · sensor {esc(rec.sensor_id)}
{" · patient " + esc(rec.patient_id) if rec.patient_id else ""} · {esc(_when(rec))}</p>
{_kpis(s, len(reps), len(holds))}
<p>Flags: {esc(flag_text)}</p>
{"".join(body)}
<p class="muted">Made by hipsense. Times are local ({esc(zone)}). Angles are degrees from the
patient's start position about the exercise's movement axis; see the motion documentation
for every field.</p>
</body></html>
"""


def write_report(history: History, session_id: str, path: Path) -> Path:
    """Render a stored session's report to `path` (folders made as needed); return it.

    The file is 0600: health data, as the history is.
    """
    record = history.load(session_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_private(path, render_report(record, load_library().get(record.exercise)))
    return path
