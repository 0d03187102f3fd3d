"""What the reports share: the stylesheet, inline SVG charts, times as people read them.

Charts are on nice ticks (1-2-5 x 10^n steps) on both axes, each with a legend saying
what its marks mean. Pure; no scripts, no fetches.
"""

import html
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime

__all__ = [
    "BAND",
    "BLUE",
    "CSS",
    "GREEN",
    "GREY",
    "ORANGE",
    "PURPLE",
    "Chart",
    "LegendItem",
    "hbar_chart",
    "local_date",
    "local_time",
    "nice_ticks",
    "polyline",
    "section",
]

BLUE, ORANGE, GREEN, PURPLE, GREY = "#1f5fa8", "#d9822b", "#4f9f4f", "#8a5bb5", "#8c8c8c"
BAND = "#dcefdc"
"""The target band's fill."""

CSS = """
body{font:15px/1.45 system-ui,sans-serif;margin:2em auto;max-width:900px;color:#222}
h1{font-size:1.5em;margin-bottom:.2em} h2{font-size:1.15em;margin:1.4em 0 .4em}
h3{font-size:1em;margin:1em 0 .3em}
.muted{color:#666} table{border-collapse:collapse;width:100%;font-size:13px}
td,th{border-bottom:1px solid #ddd;padding:3px 6px;text-align:right}
th:first-child,td:first-child{text-align:left} .flag{color:#b35900}
.kpi{display:inline-block;margin:0 1.6em .6em 0} .kpi b{display:block;font-size:1.6em}
svg{background:#fafafa;border:1px solid #eee;display:block} .note{color:#b35900}
table.calendar th{text-align:center}
table.calendar td{text-align:center;width:14%;height:3.2em;border:1px solid #ddd}
table.calendar td.none{background:#fff;color:#bbb} table.calendar .pct{font-weight:bold}
section,figure{break-inside:avoid;page-break-inside:avoid;margin:0}
section.long{break-inside:auto;page-break-inside:auto}
h1,h2,h3{break-after:avoid;page-break-after:avoid}
tr{break-inside:avoid} thead{display:table-header-group}
@page{size:A4;margin:15mm}
@media print{
body{margin:0;max-width:none;font-size:12px}
svg{border:none}
a{color:inherit;text-decoration:none}
}
"""
"""Both reports' stylesheet. For print (A4, 15 mm margins): a section (a heading and its
chart or short table) is never split across pages, and no heading ends a page; a long
table may run on, its header row repeated."""

_CHAR_PX = 6.6
"""About how wide a character of the 12 px legend font is: where the next item goes."""


def nice_ticks(lo: float, hi: float, most: int = 6, *, whole: bool = False) -> list[float]:
    """Ticks covering [lo, hi] on a 1-2-5 x 10^n step, at most `most` of them.

    `whole`: steps of at least 1 (counts, rep numbers, days). [3, 68] gives 0, 20, ..., 80.
    """
    if not (math.isfinite(lo) and math.isfinite(hi)):
        lo, hi = 0.0, 1.0
    lo, hi = min(lo, hi), max(lo, hi)
    if hi - lo < 1e-9:
        lo, hi = (lo - 1, hi + 1) if lo else (0.0, 1.0)
    raw = (hi - lo) / max(1, most - 1)
    exp = math.floor(math.log10(raw))
    for k in range(exp, exp + 3):
        for m in (1, 2, 5):
            step = m * 10.0**k
            if whole and step < 1:
                continue
            first, last = math.floor(lo / step + 1e-9), math.ceil(hi / step - 1e-9)
            if last - first + 1 <= most:
                return [_clean(i * step) for i in range(first, last + 1)]
    raise AssertionError("unreachable: a step 10^2 above the raw one always fits")


def _clean(v: float) -> float:
    # 0.1 * 3 is 0.30000000000000004: a tick is the number it reads as.
    return float(f"{v:.10g}") + 0.0  # + 0.0 turns -0.0 into 0.0


def _tick_label(v: float, ticks: Sequence[float]) -> str:
    step = abs(ticks[1] - ticks[0]) if len(ticks) > 1 else 1.0
    digits = max(0, -math.floor(math.log10(step) + 1e-9))
    return f"{v:.{digits}f}"


@dataclass(frozen=True)
class LegendItem:
    """One kind of mark and what it means."""

    kind: str
    """"bar", "band", "line", "dashed" or "dot"."""
    colour: str
    text: str


@dataclass(frozen=True)
class Chart:
    """A plot area on nice ticks, mapped to SVG pixels, with a legend above it."""

    xticks: list[float]
    yticks: list[float]
    xlabel: str
    ylabel: str
    legend: list[LegendItem]
    height: int = 240
    width: int = 860
    xtick_text: Callable[[float], str] | None = None
    """How an x tick reads (dates); default: the number."""
    xlim: tuple[float, float] | None = None
    """The x range when it is not the ticks' (bars centred on whole numbers 1..n); ticks
    outside it are left out."""
    left: int = 58
    right: int = 18
    bottom: int = 42
    _rows: list[list[tuple[float, LegendItem]]] = field(default_factory=list, init=False)

    def __post_init__(self) -> None:
        x = float(self.left)
        row: list[tuple[float, LegendItem]] = []
        for item in self.legend:
            w = 26 + _CHAR_PX * len(item.text) + 18
            if row and x + w > self.width - self.right:
                self._rows.append(row)
                row, x = [], float(self.left)
            row.append((x, item))
            x += w
        if row:
            self._rows.append(row)

    @property
    def top(self) -> int:
        """Room above the plot area: a row per legend line."""
        return 14 + 18 * max(1, len(self._rows))

    def x(self, v: float) -> float:
        """The pixel of an x value."""
        x0, x1 = self.xlim or (self.xticks[0], self.xticks[-1])
        return self.left + (v - x0) / ((x1 - x0) or 1.0) * (self.width - self.left - self.right)

    def y(self, v: float) -> float:
        """The pixel of a y value."""
        y0, y1 = self.yticks[0], self.yticks[-1]
        return (
            self.height
            - self.bottom
            - (v - y0) / ((y1 - y0) or 1.0) * (self.height - self.bottom - self.top)
        )

    @property
    def plot_width(self) -> float:
        """Width of the plot area in pixels."""
        return float(self.width - self.left - self.right)

    def svg(self, body: str, title: str, *, ycategories: Sequence[str] = ()) -> str:
        """The chart: grid, `body` (marks drawn in this chart's pixels), axes, legend.

        `ycategories`: a category axis (bars across), labelled in place of y ticks.
        """
        w, h, b, t = self.width, self.height, self.bottom, self.top
        left, right = self.left, self.right
        parts = []
        if not ycategories:
            parts += [
                f'<line x1="{left}" x2="{w - right}" y1="{self.y(v):.1f}" y2="{self.y(v):.1f}" '
                'stroke="#e6e6e6"/>'
                for v in self.yticks
            ]
        parts.append(body)
        parts += [
            f'<line x1="{left}" y1="{h - b}" x2="{w - right}" y2="{h - b}" stroke="#999"/>',
            f'<line x1="{left}" y1="{t}" x2="{left}" y2="{h - b}" stroke="#999"/>',
            f'<text x="{(left + w - right) / 2}" y="{h - 6}" text-anchor="middle" '
            f'font-size="12">{html.escape(self.xlabel)}</text>',
            f'<text x="13" y="{(t + h - b) / 2}" font-size="12" text-anchor="middle" '
            f'transform="rotate(-90 13 {(t + h - b) / 2})">{html.escape(self.ylabel)}</text>',
        ]
        if not ycategories:
            parts += [
                f'<text class="tick y" data-value="{v:g}" x="{left - 6}" y="{self.y(v) + 4:.1f}" '
                f'font-size="11" text-anchor="end">{_tick_label(v, self.yticks)}</text>'
                for v in self.yticks
            ]
        label = self.xtick_text or (lambda v: _tick_label(v, self.xticks))
        parts += [
            f'<line x1="{self.x(v):.1f}" x2="{self.x(v):.1f}" y1="{h - b}" y2="{h - b + 4}" '
            f'stroke="#999"/><text class="tick x" data-value="{v:g}" x="{self.x(v):.1f}" '
            f'y="{h - b + 17}" font-size="11" text-anchor="middle">{html.escape(label(v))}</text>'
            for v in self.xticks
            if self.xlim is None or self.xlim[0] <= v <= self.xlim[1]
        ]
        parts.append(self._legend())
        return (
            f'<svg class="chart" viewBox="0 0 {w} {h}" width="100%" role="img" '
            f'aria-label="{html.escape(title)}"><title>{html.escape(title)}</title>'
            + "".join(parts)
            + "</svg>"
        )

    def _legend(self) -> str:
        out = ['<g class="legend" font-size="12">']
        for r, row in enumerate(self._rows):
            y = 16 + 18 * r
            for x, item in row:
                out.append(f'<g class="item">{_swatch(item, x, y)}<text x="{x + 24:.1f}" '
                           f'y="{y + 4}">{html.escape(item.text)}</text></g>')  # fmt: skip
        out.append("</g>")
        return "".join(out)


def _swatch(item: LegendItem, x: float, y: float) -> str:
    c = item.colour
    if item.kind == "bar":
        return f'<rect x="{x:.1f}" y="{y - 6}" width="18" height="12" fill="{c}"/>'
    if item.kind == "band":
        return f'<rect x="{x:.1f}" y="{y - 6}" width="18" height="12" fill="{c}" stroke="#9cc79c"/>'
    if item.kind == "dot":
        return f'<circle cx="{x + 9:.1f}" cy="{y}" r="4" fill="{c}"/>'
    dash = ' stroke-dasharray="4 3"' if item.kind == "dashed" else ""
    return (
        f'<line x1="{x:.1f}" x2="{x + 18:.1f}" y1="{y}" y2="{y}" stroke="{c}" '
        f'stroke-width="2"{dash}/>'
    )


def hbar_chart(
    bars: Sequence[tuple[str, float, str, str]],
    xlabel: str,
    legend: list[LegendItem],
    title: str,
    *,
    xmax: float | None = None,
    unit: str = "",
) -> str:
    """Bars across, one per (label, value, colour, tooltip), on nice x ticks from 0.

    Each is labelled at its left, its value at its end; the axis runs to `xmax` if given.
    """
    top = xmax if xmax is not None else max([v for _, v, _, _ in bars] or [1.0])
    width = max([len(label) for label, _, _, _ in bars] or [4])
    chart = Chart(
        nice_ticks(0.0, top), [0.0, float(len(bars))], xlabel, "", legend,
        height=64 + 26 * len(bars), left=int(24 + _CHAR_PX * width),
    )  # fmt: skip
    parts = []
    right = chart.left + chart.plot_width
    for k, (label, v, colour, tip) in enumerate(bars):
        y, end = chart.y(len(bars) - k) + 4, chart.x(min(v, chart.xticks[-1]))
        # A bar reaching the edge has its figure inside it: past its end is the margin.
        inside = end > right - 60
        anchor = 'fill="#fff" text-anchor="end"' if inside else 'fill="#222"'
        figure = f"{v:.0f}" if v >= 20 else f"{v:.1f}"  # 9.5 s is not 10 s
        parts.append(
            f'<rect x="{chart.left}" y="{y:.1f}" width="{max(0.0, end - chart.left):.1f}" '
            f'height="17" fill="{colour}"><title>{html.escape(tip)}</title></rect>'
            f'<text x="{chart.left - 6}" y="{y + 13:.1f}" font-size="12" text-anchor="end">'
            f"{html.escape(label)}</text>"
            f'<text x="{end - 4 if inside else end + 4:.1f}" y="{y + 13:.1f}" font-size="12" '
            f"{anchor}>{figure}{unit}</text>"
        )
    return chart.svg("".join(parts), title, ycategories=[b[0] for b in bars])


def polyline(
    chart: Chart,
    points: Sequence[tuple[float, float | None]],
    colour: str,
    tips: Sequence[str],
    *,
    dashed: bool = False,
    dots: bool = True,
) -> str:
    """A line through (x, y) points (broken where y is None), a dot on each with its tip."""
    runs: list[list[str]] = [[]]
    for x, y in points:
        if y is None:
            runs.append([])
        else:
            runs[-1].append(f"{chart.x(x):.1f},{chart.y(y):.1f}")
    dash = ' stroke-dasharray="5 4"' if dashed else ""
    out = [
        f'<polyline points="{" ".join(r)}" fill="none" stroke="{colour}" stroke-width="2"{dash}/>'
        for r in runs
        if len(r) > 1
    ]
    if dots:
        out += [
            f'<circle cx="{chart.x(x):.1f}" cy="{chart.y(y):.1f}" r="4" fill="{colour}">'
            f"<title>{html.escape(tip)}</title></circle>"
            for (x, y), tip in zip(points, tips, strict=True)
            if y is not None
        ]
    return "".join(out)


def section(heading: str, content: str, *, long: bool = False, level: int = 2) -> str:
    """A heading and what it heads, kept on one page in print.

    `long`: a table that may run on to the next page, its heading kept with its start.
    """
    cls = ' class="long"' if long else ""
    return f"<section{cls}><h{level}>{html.escape(heading)}</h{level}>{content}</section>"


def local_time(t: datetime) -> str:
    """An aware time in this machine's time zone, to the minute: "2 Dec 2026, 15:04 CET"."""
    local = t.astimezone()
    return f"{local.day} {local:%b %Y, %H:%M} {local.tzname() or ''}".rstrip()


def local_date(d: date | datetime) -> str:
    """A date as a clinician reads it: "2 Dec 2026" (an aware time: its local date)."""
    if isinstance(d, datetime):
        d = d.astimezone().date()
    return f"{d.day} {d:%b %Y}"
