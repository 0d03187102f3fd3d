"""A session report: one self-contained HTML file (inline SVG plots, no scripts, no fetches)."""

import html
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hipsense.exercises import Exercise, load_library

from ._store import History, SessionRecord

__all__ = ["render_report", "write_report"]

_W, _H, _PAD = 860, 240, 44
_CSS = """
body{font:15px/1.45 system-ui,sans-serif;margin:2em auto;max-width:900px;color:#222}
h1{font-size:1.5em;margin-bottom:.2em} h2{font-size:1.15em;margin-top:1.6em}
.muted{color:#666} table{border-collapse:collapse;width:100%;font-size:13px}
td,th{border-bottom:1px solid #ddd;padding:3px 6px;text-align:right}
th:first-child,td:first-child{text-align:left} .flag{color:#b35900}
.kpi{display:inline-block;margin:0 1.6em .6em 0} .kpi b{display:block;font-size:1.6em}
svg{background:#fafafa;border:1px solid #eee} .note{color:#b35900}
"""


_REP_HEAD = "<tr>" + "".join(
    f"<th>{h}</th>"
    for h in ("rep", "set", "range (deg)", "outward (s)", "hold (s)", "return (s)",
              "peak (deg/s)", "flags", "confidence")
) + "</tr>"  # fmt: skip
_HOLD_HEAD = "<tr>" + "".join(
    f"<th>{h}</th>"
    for h in ("hold", "time (s)", "angle (deg)", "on target (%)", "stability (deg)", "broken",
              "flags")
) + "</tr>"  # fmt: skip


@dataclass(frozen=True)
class _Axes:
    """Maps data to SVG pixels inside the padded plot area."""

    x0: float
    x1: float
    y0: float
    y1: float

    def x(self, v: float) -> float:
        return _PAD + (v - self.x0) / ((self.x1 - self.x0) or 1.0) * (_W - 2 * _PAD)

    def y(self, v: float) -> float:
        return _H - _PAD + (self.y0 - v) / ((self.y1 - self.y0) or 1.0) * (_H - 2 * _PAD)

    def frame(self, xlabel: str, ylabel: str, yticks: int = 4) -> str:
        parts = [
            f'<line x1="{_PAD}" y1="{_H - _PAD}" x2="{_W - _PAD}" y2="{_H - _PAD}" stroke="#999"/>',
            f'<line x1="{_PAD}" y1="{_PAD}" x2="{_PAD}" y2="{_H - _PAD}" stroke="#999"/>',
            f'<text x="{_W / 2}" y="{_H - 8}" text-anchor="middle" font-size="12">{xlabel}</text>',
            f'<text x="12" y="{_H / 2}" font-size="12" transform="rotate(-90 12 {_H / 2})" '
            f'text-anchor="middle">{ylabel}</text>',
        ]
        parts += [
            f'<text x="{_PAD - 6}" y="{self.y(v) + 4:.1f}" font-size="11" '
            f'text-anchor="end">{v:.0f}</text>'
            for v in np.linspace(self.y0, self.y1, yticks + 1)
        ]
        parts += [
            f'<text x="{self.x(v):.1f}" y="{_H - _PAD + 16}" font-size="11" '
            f'text-anchor="middle">{v:.0f}</text>'
            for v in np.linspace(self.x0, self.x1, 6)
        ]
        return "".join(parts)


def _svg(body: str, title: str) -> str:
    return (
        f'<svg viewBox="0 0 {_W} {_H}" width="100%" role="img" aria-label="{html.escape(title)}">'
        f"<title>{html.escape(title)}</title>{body}</svg>"
    )


def _angle_plot(rec: SessionRecord, reps: list[dict[str, Any]], holds: list[dict[str, Any]]) -> str:
    if rec.t_s.shape[0] < 2:
        return '<p class="muted">No angle trace was stored for this session.</p>'
    t, a = rec.t_s, rec.angle_deg
    lo, hi = min(0.0, float(np.nanmin(a))), max(10.0, float(np.nanmax(a)))
    ax = _Axes(float(t[0]), float(t[-1]), np.floor(lo / 10) * 10, np.ceil(hi / 10) * 10)
    marks = []
    for r in reps:
        colour = "#f6c48f" if r["flags"] else "#cfe3f7"
        marks.append(
            f'<rect x="{ax.x(r["start_s"]):.1f}" y="{_PAD}" width="'
            f'{max(1.0, ax.x(r["end_s"]) - ax.x(r["start_s"])):.1f}" height="{_H - 2 * _PAD}" '
            f'fill="{colour}"><title>rep {r["index"] + 1}: {r["rom_deg"]:.1f} deg'
            f"{' ' + ', '.join(r['flags']) if r['flags'] else ''}</title></rect>"
        )
    marks += [
        f'<rect x="{ax.x(h["start_s"]):.1f}" y="{_PAD}" width="'
        f'{max(1.0, ax.x(h["end_s"]) - ax.x(h["start_s"])):.1f}" height="{_H - 2 * _PAD}" '
        f'fill="#cdeccd"><title>hold {h["index"] + 1}: {h["hold_s"]:.1f} s</title></rect>'
        for h in holds
    ]
    step = max(1, t.shape[0] // 4000)  # a few thousand points draw fine and keep files small
    pts = " ".join(
        f"{ax.x(float(x)):.1f},{ax.y(float(y)):.1f}"
        for x, y in zip(t[::step], np.nan_to_num(a[::step]), strict=True)
    )
    body = (
        "".join(marks)
        + ax.frame("time (s)", "angle (deg)")
        + f'<polyline points="{pts}" fill="none" stroke="#1f5fa8" stroke-width="1.2"/>'
    )
    return _svg(body, "Angle over time; reps blue (orange when flagged), holds green")


def _rom_plot(reps: list[dict[str, Any]], ex: Exercise | None) -> str:
    if not reps:
        return '<p class="muted">No reps.</p>'
    roms = [r["rom_deg"] for r in reps]
    top = max([*roms, ex.rom.target_max_deg if ex else 0.0]) * 1.15
    ax = _Axes(0, len(reps), 0, np.ceil(top / 10) * 10)
    parts = []
    if ex is not None:
        parts.append(
            f'<rect x="{_PAD}" y="{ax.y(ex.rom.target_max_deg):.1f}" width="{_W - 2 * _PAD}" '
            f'height="{ax.y(ex.rom.target_min_deg) - ax.y(ex.rom.target_max_deg):.1f}" '
            f'fill="#e3f2e3"><title>target {ex.rom.target_min_deg:g}-{ex.rom.target_max_deg:g} '
            f"deg</title></rect>"
        )
    w = (_W - 2 * _PAD) / len(reps)
    for i, r in enumerate(reps):
        colour = "#d9822b" if r["flags"] else "#1f5fa8"
        parts.append(
            f'<rect x="{ax.x(i) + w * 0.15:.1f}" y="{ax.y(r["rom_deg"]):.1f}" '
            f'width="{w * 0.7:.1f}" '
            f'height="{ax.y(0) - ax.y(r["rom_deg"]):.1f}" fill="{colour}"><title>rep {i + 1}: '
            f"{r['rom_deg']:.1f} deg</title></rect>"
        )
    return _svg(
        "".join(parts) + ax.frame("rep", "range of motion (deg)"),
        "Range of motion per rep against the target band",
    )


def _tempo_plot(reps: list[dict[str, Any]]) -> str:
    if not reps:
        return ""
    totals = [r["concentric_s"] + r["hold_s"] + r["eccentric_s"] for r in reps]
    ax = _Axes(0, len(reps), 0, np.ceil(max(totals) + 0.5))
    w = (_W - 2 * _PAD) / len(reps)
    parts = []
    for i, r in enumerate(reps):
        base = 0.0
        for key, colour in (
            ("concentric_s", "#1f5fa8"),
            ("hold_s", "#6fb86f"),
            ("eccentric_s", "#9b6bc2"),
        ):
            v = r[key]
            parts.append(
                f'<rect x="{ax.x(i) + w * 0.15:.1f}" y="{ax.y(base + v):.1f}" '
                f'width="{w * 0.7:.1f}" '
                f'height="{ax.y(base) - ax.y(base + v):.1f}" fill="{colour}"><title>rep {i + 1} '
                f"{key[:-2]}: {v:.2f} s</title></rect>"
            )
            base += v
    legend = (
        f'<text x="{_W - _PAD}" y="{_PAD - 10}" font-size="12" text-anchor="end">'
        '<tspan fill="#1f5fa8">outward</tspan> · <tspan fill="#6fb86f">hold</tspan> · '
        '<tspan fill="#9b6bc2">return</tspan></text>'
    )
    return _svg("".join(parts) + legend + ax.frame("rep", "seconds"), "Tempo per rep")


def render_report(rec: SessionRecord, exercise: Exercise | None = None) -> str:
    """The HTML of one session's report."""
    reps = [e for e in rec.events if e["kind"] == "rep"]
    holds = [e for e in rec.events if e["kind"] == "hold"]
    s = rec.summary or {}
    esc = html.escape
    title = exercise.name if exercise is not None else rec.exercise
    kpis = [
        ("reps", s.get("rep_count", len(reps))),
        ("holds", s.get("hold_count", len(holds))),
        ("sets", s.get("set_count", "-")),
        ("mean range", f"{s['mean_rom_deg']:.1f} deg" if s.get("mean_rom_deg") else "-"),
        ("mean hold", f"{s['mean_hold_s']:.1f} s" if s.get("mean_hold_s") else "-"),
    ]
    if s.get("adherence_pct") is not None:
        kpis.append(("adherence", f"{s['adherence_pct']:.0f} %"))
    if s.get("quality_pct") is not None:
        kpis.append(("quality", f"{s['quality_pct']:.0f} %"))
    rows = "".join(
        f"<tr><td>{r['index'] + 1}</td><td>{r['set_index'] + 1}</td><td>{r['rom_deg']:.1f}</td>"
        f"<td>{r['concentric_s']:.2f}</td><td>{r['hold_s']:.2f}</td><td>{r['eccentric_s']:.2f}</td>"
        f'<td>{r["peak_velocity_dps"]:.0f}</td><td class="flag">{esc(", ".join(r["flags"]))}</td>'
        f"<td>{r['confidence']:.2f}</td></tr>"
        for r in reps
    )
    hold_rows = "".join(
        f"<tr><td>{h['index'] + 1}</td><td>{h['hold_s']:.1f}</td><td>{h['angle_deg']:.1f}</td>"
        f"<td>{h['on_target_pct']:.0f}</td><td>{h['stability_deg']:.1f}</td><td>{h['broken']}</td>"
        f'<td class="flag">{esc(", ".join(h["flags"]))}</td></tr>'
        for h in holds
    )
    prescription = ""
    if s.get("progress"):
        items = "".join(f"<li>{esc(a)}</li>" for a in s.get("advice", []))
        notes = "".join(f'<li class="note">{esc(n)}</li>' for n in s.get("notes", []))
        pct = float(s.get("adherence_pct") or 0.0)
        prescription = (
            f"<h2>Against the prescription</h2><p>{esc(s['progress'])}</p>"
            f'<svg viewBox="0 0 {_W} 30" width="100%"><rect x="0" y="5" width="{_W}" height="20" '
            f'fill="#eee"/><rect x="0" y="5" width="{_W * min(pct, 100) / 100:.1f}" height="20" '
            f'fill="#6fb86f"/><text x="8" y="20" font-size="13">adherence {pct:.0f} %</text></svg>'
            + (f"<ul>{items}{notes}</ul>" if items or notes else "")
        )
    flags = s.get("flags") or {}
    flag_text = ", ".join(f"{k}: {v}" for k, v in flags.items()) or "none"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>hipsense: {esc(title)}</title>
<style>{_CSS}</style></head><body>
<h1>{esc(title)}</h1>
<p class="muted">Session {esc(rec.session_id)} · sensor {esc(rec.sensor_id)}
{" · patient " + esc(rec.patient_id) if rec.patient_id else ""} · {esc(rec.started_at)}
{" to " + esc(rec.ended_at) if rec.ended_at else " (not finished)"}</p>
{"".join(f'<span class="kpi"><b>{v}</b>{k}</span>' for k, v in kpis)}
<p>Flags: {esc(flag_text)}</p>
{prescription}
<h2>Angle over time</h2>{_angle_plot(rec, reps, holds)}
<h2>Range of motion per rep</h2>{_rom_plot(reps, exercise)}
<h2>Tempo per rep</h2>{_tempo_plot(reps)}
{f"<h2>Reps</h2><table>{_REP_HEAD}{rows}</table>" if reps else ""}
{f"<h2>Holds</h2><table>{_HOLD_HEAD}{hold_rows}</table>" if holds else ""}
<p class="muted">Made by hipsense. Angles are degrees from the patient's start position about
the exercise's movement axis; see the motion documentation for every field.</p>
</body></html>
"""


def write_report(history: History, session_id: str, path: Path) -> Path:
    """Render a stored session's report to `path` (folders made as needed); return it."""
    record = history.load(session_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_report(record, load_library().get(record.exercise)), encoding="utf-8")
    return path
