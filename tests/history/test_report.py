"""The session report as a clinician reads it, on screen and printed (issue 29).

Every line against the prescription, the session's adherence apart from the program's,
charts on nice ticks with a legend each, local times, flags in words, no tempo for holds,
and a print stylesheet that keeps headings with what they head.
"""

import itertools
import math
import re
import time
from collections.abc import Iterator
from dataclasses import replace
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from hipsense._text import FLAG_PHRASES, flag_phrase
from hipsense.cli import main
from hipsense.exercises import load_library
from hipsense.history import (
    History,
    SessionRecord,
    render_patient_report,
    render_report,
    write_report,
)
from hipsense.history._charts import nice_ticks
from hipsense.motion import Flag
from tests.exports.histories import report_history


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> Iterator[History]:
    h = report_history(tmp_path_factory.mktemp("report") / "history.db")
    yield h
    h.close()


def _report(history: History, session_id: str) -> str:
    record = history.load(session_id)
    return render_report(record, load_library().get(record.exercise))


class _Page(HTMLParser):
    """The text a reader sees (not the stylesheet), the headings, each chart's ticks and
    legend."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text: list[str] = []
        self.h2: list[str] = []
        self.charts: list[dict[str, list[str]]] = []
        self._in: list[str] = []
        self._tick: tuple[str, str] | None = None
        self._legend = 0
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        self._in.append(tag)
        if tag == "svg" and a.get("class") == "chart":
            self.charts.append({"x": [], "y": [], "legend": [], "title": [a["aria-label"] or ""]})
        cls = (a.get("class") or "").split()
        if tag == "text" and "tick" in cls:
            self.charts[-1][cls[1]].append(a["data-value"] or "")
        if tag == "g" and "legend" in cls:
            self._legend = len(self._in)

    def handle_endtag(self, tag: str) -> None:
        if self._legend == len(self._in):
            self._legend = 0
        self._in.pop()

    def handle_data(self, data: str) -> None:
        if "style" in self._in:
            return
        self.text.append(data)
        if self._in and self._in[-1] == "h2":
            self.h2.append(data)
        if self._legend and self._in[-1] == "text":
            self.charts[-1]["legend"].append(data)

    @property
    def visible(self) -> str:
        return " ".join(self.text)


def test_every_line_against_the_prescription_is_shown(history: History) -> None:
    # A session on both sides: right then left. Both lines show, with their own figures,
    # not only the last side done.
    page = _Page(_report(history, "p7-d0-clam"))
    text = page.visible
    assert "Against the prescription" in page.h2
    rows = re.findall(r"Clamshell, knees at 45 degrees (right|left) 1 of 1 5 of 5 (\d+\.\d)", text)
    assert rows == [("right", "38.0"), ("left", "30.0")]


def test_the_session_s_adherence_and_the_program_s_so_far_are_apart(history: History) -> None:
    # Day 1's hold session: 4 of 6 holds on the left, so 10 of 12 this session; the
    # program so far has 10 of 10 clamshells and those 10 of 12 holds: 20 of 22.
    record = history.load("p7-d0-hold")
    assert record.summary is not None
    assert record.summary["adherence_pct"] == pytest.approx(83.3, abs=0.1)
    text = _Page(_report(history, "p7-d0-hold")).visible
    assert "83 % adherence, this session" in text
    assert "91 % adherence, program so far" in text
    assert re.search(r"this session\s+83 %", text)  # the chart's bars, named
    assert re.search(r"program so far\s+91 %", text)
    assert "adherence " + "100 %" not in text


def _is_nice_step(step: float) -> bool:
    mantissa = step / 10 ** math.floor(math.log10(step))
    return any(math.isclose(mantissa, m) for m in (1, 2, 5))


def _assert_nice(values: list[str], where: str) -> None:
    ticks = [float(v) for v in values]
    assert len(ticks) >= 2, where
    steps = {round(b - a, 9) for a, b in itertools.pairwise(ticks)}
    assert len(steps) == 1, (where, ticks)
    step = steps.pop()
    assert step > 0 and _is_nice_step(step), (where, ticks)
    assert all(math.isclose(t / step, round(t / step), abs_tol=1e-6) for t in ticks), ticks


def test_ticks_are_nice_numbers_on_every_chart_and_axis(history: History) -> None:
    assert nice_ticks(3, 68) == [0, 20, 40, 60, 80]  # never 3, 35, 68
    assert nice_ticks(0, 100) == [0, 20, 40, 60, 80, 100]
    assert nice_ticks(0, 0.37) == [0, 0.1, 0.2, 0.3, 0.4]
    assert nice_ticks(1, 4, whole=True) == [1, 2, 3, 4]
    charts = 0
    for sid in ("p7-d0-clam", "p7-d2-hold"):
        for chart in _Page(_report(history, sid)).charts:
            charts += 1
            _assert_nice(chart["x"], f"{sid} {chart['title']} x")
            if "Adherence" not in chart["title"][0]:  # its y axis is two named bars
                _assert_nice(chart["y"], f"{sid} {chart['title']} y")
    assert charts == 4 + 2  # adherence, angle, range, tempo; adherence, holds (no trace)


def test_every_chart_has_a_legend_saying_what_its_marks_mean(history: History) -> None:
    legends = {
        c["title"][0]: c["legend"]
        for sid in ("p7-d0-clam", "p7-d2-hold")
        for c in _Page(_report(history, sid)).charts
    }
    assert all(legends.values()), legends
    rom = legends["Range of motion per rep against the target range"]
    assert rom == ["a rep's range of motion", "a rep with a flag", "target range 25-55 deg"]
    assert legends["Tempo per rep: outward, hold at the top, return"] == [
        "outward (s)", "hold at the top (s)", "return (s)"
    ]  # fmt: skip
    assert legends["Time of each hold against the prescribed hold"] == [
        "a hold's time", "prescribed hold 10 s"
    ]  # fmt: skip
    assert "hip angle" in legends["Hip angle over time, with the reps and holds marked"]


@pytest.fixture
def berlin(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("TZ", "Europe/Berlin")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_times_are_local_to_the_minute_with_the_zone_named(history: History, berlin: None) -> None:
    record = history.load("p7-d0-clam")
    record = replace(
        record, started_at="2026-03-02T09:00:07.123456+00:00",
        ended_at="2026-03-02T09:06:59.987654+00:00",
    )  # fmt: skip
    text = _Page(render_report(record)).visible
    assert "2 Mar 2026, 10:00 CET to 10:06" in text
    assert "Times are local (CET)" in text
    assert not re.search(r"\d\d:\d\d:\d\d|\.\d{6}|T\d\d:", text), "seconds or ISO times shown"


def _flagged(flag: Flag) -> SessionRecord:
    rep = {
        "kind": "rep", "index": 0, "set_index": 0, "start_s": 1.0, "end_s": 4.0,
        "rom_deg": 30.0, "concentric_s": 1.5, "hold_s": 0.5, "eccentric_s": 1.0,
        "peak_velocity_dps": 40.0, "confidence": 0.9, "flags": [str(flag)],
    }  # fmt: skip
    hold = {
        "kind": "hold", "index": 0, "set_index": 1, "start_s": 6.0, "end_s": 12.0,
        "hold_s": 6.0, "angle_deg": 20.0, "on_target_pct": 90.0, "stability_deg": 0.5,
        "broken": 0, "flags": [str(flag)],
    }  # fmt: skip
    summary = {"rep_count": 1, "hold_count": 1, "flags": {str(flag): 2}}
    return SessionRecord(
        session_id="s-1", sensor_id="x", patient_id="p-1", exercise="clamshell",
        started_at="2026-03-02T09:00:00+00:00", ended_at=None, summary=summary,
        events=[rep, hold], t_s=np.arange(0, 14, 0.05), angle_deg=np.zeros(280),
    )  # fmt: skip


@pytest.mark.parametrize("flag", list(Flag))
def test_every_flag_reads_in_a_clinician_s_words(flag: Flag) -> None:
    assert str(flag) in FLAG_PHRASES  # a new Flag needs its words
    text = _Page(render_report(_flagged(flag))).visible
    words = flag_phrase(flag)
    # The summary's count, the rep's and the hold's rows, their marks on the charts.
    assert f"Flags: {words} (2)" in text
    assert text.count(words) >= 4, text
    assert not re.search(rf"\b{flag}\b", text), f"{flag} shown as its code word"
    assert "_" not in words and str(flag).replace("_", " ") != words


def test_a_hold_only_session_has_no_tempo(history: History) -> None:
    page = _Page(_report(history, "p7-d2-hold"))
    assert page.h2 == ["Against the prescription", "Angle over time", "Time of each hold",
                       "Holds"]  # fmt: skip
    assert "tempo" not in page.visible.lower()
    assert "Tempo per rep" in _Page(_report(history, "p7-d2-clam")).h2


def test_the_print_stylesheet_keeps_headings_with_their_charts(history: History) -> None:
    text = _report(history, "p7-d0-clam")
    css = re.search(r"<style>(.*?)</style>", text, re.S)
    assert css is not None
    compact = css[1].replace(" ", "")
    assert "@page{size:A4;margin:15mm}" in compact
    assert re.search(r"section,figure\{break-inside:avoid", compact)
    assert re.search(r"h1,h2,h3\{break-after:avoid", compact)
    # Every heading opens a section: what it heads is in the same unbreakable box.
    assert text.count("<h2>") == len(re.findall(r"<section(?: class=\"long\")?><h2>", text))
    assert "<script" not in text and "http" not in text  # self-contained: nothing fetched


def test_the_report_file_is_readable_by_its_owner_only(history: History, tmp_path: Path) -> None:
    path = write_report(history, "p7-d1-clam", tmp_path / "r" / "s.html")
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.read_text().startswith("<!doctype html>")


# The patient report: patient p-7's three days, both sides of two exercises.

_SERIES = [
    "Clamshell, knees at 45 degrees: right side",
    "Clamshell, knees at 45 degrees: left side",
    "Deep hip lateral rotator, variation 2, level I: isometric: right side",
    "Deep hip lateral rotator, variation 2, level I: isometric: left side",
]


@pytest.fixture(scope="module")
def patient_page(history: History) -> str:
    return render_patient_report(history.records("p-7"))


def test_the_patient_report_has_a_trend_per_exercise_and_side(patient_page: str) -> None:
    page = _Page(patient_page)
    assert page.h2 == ["Adherence by day", *_SERIES, "Left against right",
                       "Progression advice", "Sessions"]  # fmt: skip
    titles = [c["title"][0] for c in page.charts]
    # Reps: range of motion, hold, tempo, quality; holds: hold and quality; then the sides.
    per_series = [t for t in titles if "over sessions" in t]
    assert len(per_series) == 2 * 4 + 2 * 2
    rom = next(c for c in page.charts if c["title"][0].startswith("Range of motion over"))
    assert rom["legend"] == ["mean range of motion", "largest range of the session",
                             "target range 25-55 deg"]  # fmt: skip
    assert "target 25-55 deg" in page.visible  # the band itself
    for chart in page.charts:
        assert chart["legend"], chart["title"]
        _assert_nice(chart["x"], chart["title"][0])
        if "left and right" not in chart["title"][0]:  # bars across: named, not ticked
            _assert_nice(chart["y"], chart["title"][0])
    # Dates on the x axes: local, day by day (whole days: 1-2-5 steps too).
    assert "2 Mar" in page.visible and "4 Mar" in page.visible
    assert "2 Mar 2026 to 4 Mar 2026" in page.visible


def test_the_patient_report_calendar_has_each_day_and_session(patient_page: str) -> None:
    text = _Page(patient_page).visible
    cells = re.findall(r'<td style="background:[^"]+">(.*?)</td>', patient_page)
    assert len(cells) == 3  # Monday 2 to Wednesday 4 March; the rest of the week blank
    # Day 1: 10 of 10 clamshells, 10 of 12 holds: 20 of 22; each session its own.
    assert re.search(r"2 Mar.*91 %.*Clamshell, knees at 45 degrees: 100 %.*: 83 %", cells[0])
    assert all("100 %" in c for c in cells[1:])
    assert patient_page.count('<td class="none">') == 4
    assert "Adherence by day" in text


def test_the_patient_report_compares_left_and_right_and_gives_the_advice(
    patient_page: str,
) -> None:
    text = _Page(patient_page).visible
    # Clamshell: right 36-44 deg over the days, left 28-40: left minus right, in degrees.
    assert re.search(r"Clamshell, knees at 45 degrees 3 / 3 3\d\.\d deg / 4\d\.\d deg -\d+\.\d "
                     "deg", text), text  # fmt: skip
    assert "Mean range of motion, left and right" in text
    assert "Clamshell, knees at 45 degrees, left" in text
    assert re.search(
        r"Deep hip lateral rotator, variation 2, level I: isometric : ready to move on to "
        r"deep-hip-lateral-rotator-level-2\.\s+Why: 12 correct, at least 10 needed \(session "
        r"of 3 Mar 2026\)",
        text,
    ), text
    assert "<script" not in patient_page and "http" not in patient_page
    assert "@page{size:A4;margin:15mm}" in patient_page


def test_hipsense_report_patient_writes_it_owner_only(
    history: History, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state = tmp_path / "state"
    state.mkdir()
    report_history(state / "history.db").close()
    assert main(["report", "--patient", "p-7", "--state-dir", str(state)]) == 0
    path = state / "reports" / "patient-p-7.html"
    assert capsys.readouterr().out.strip() == str(path)
    assert path.stat().st_mode & 0o777 == 0o600
    assert "Patient p-7: progress" in path.read_text()
    out = tmp_path / "since.html"
    argv = ["report", "--patient", "p-7", "--since", "2026-03-04", "--state-dir", str(state)]
    assert main([*argv, "--out", str(out)]) == 0
    assert "2 sessions on 1 day, 4 Mar 2026" in out.read_text()
    capsys.readouterr()
    # A missing patient is an error saying what was expected; nothing is written.
    assert main(["report", "--patient", "p-9", "--state-dir", str(state)]) == 1
    assert "expected finished sessions of 'p-9'" in capsys.readouterr().err
    assert not (state / "reports" / "patient-p-9.html").exists()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "expected a SESSION or --patient P, got neither"),
        (["s-1", "--patient", "p-7"], "expected a SESSION or --patient P, got both"),
        (["s-1", "--since", "2026-03-01"], "--since goes with --patient"),
        (["--patient", "Jane Doe"], "expected a pseudonymous patient id"),
    ],
)
def test_hipsense_report_needs_one_session_or_one_patient(
    argv: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as done:
        main(["report", *argv, "--state-dir", str(tmp_path)])
    assert done.value.code == 2
    assert message in capsys.readouterr().err
