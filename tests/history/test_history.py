"""The session history and the HTML report a clinician opens."""

import asyncio
import io
import math
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from hipsense.daemon import DemoOptions, run_demo
from hipsense.exercises import load_library
from hipsense.history import History, UnknownSessionError
from hipsense.motion import analyze


def test_store_round_trip(tmp_path: Path) -> None:
    h = History(tmp_path / "h.db")
    h.start("s-1", sensor_id="x", exercise="clamshell", started_at="2026-01-01T10:00:00")
    h.start("s-2", sensor_id="x", exercise="fire-hydrant", started_at="2026-01-02T10:00:00")
    h.add_event("s-1", 0, {"kind": "calibration", "t_s": 1.0})
    h.add_event("s-1", 1, {"kind": "rep", "index": 0})
    h.add_event("s-1", 1, {"kind": "rep", "index": 0})  # a repeat of seq 1 replaces it
    t = np.arange(0, 10, 0.05)
    h.add_trace("s-1", t[:100], np.sin(t[:100]))
    h.add_trace("s-1", t[100:], np.sin(t[100:]))
    h.finish("s-1", {"ended_at": "2026-01-01T10:05:00", "rep_count": 1, "hold_count": 0})
    rec = h.load("s-1")
    assert [e["kind"] for e in rec.events] == ["calibration", "rep"]
    np.testing.assert_allclose(rec.t_s, t, atol=1e-5)
    np.testing.assert_allclose(rec.angle_deg, np.sin(t), atol=1e-6)
    assert rec.summary == {"ended_at": "2026-01-01T10:05:00", "rep_count": 1, "hold_count": 0}
    assert [s["session_id"] for s in h.sessions()] == ["s-2", "s-1"]
    with pytest.raises(UnknownSessionError, match="got 'nope'"):
        h.load("nope")
    h.close()


class _Svg(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.svgs = 0
        self.titles: list[str] = []
        self.points = 0
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "svg":
            self.svgs += 1
        if tag == "polyline":
            self.points = len((dict(attrs)["points"] or "").split())
        self._in_title = tag == "title"

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.titles.append(data)
            self._in_title = False


def test_demo_writes_history_and_a_report(tmp_path: Path) -> None:
    out = io.StringIO()
    options = DemoOptions(
        program="external-rotation", speed=math.inf, loss=0.0, state_dir=tmp_path, seed=2
    )
    assert asyncio.run(run_demo(options, out)) == 0
    reports = re.findall(r"^report: (.+)$", out.getvalue(), re.M)
    assert len(reports) == 5  # one per exercise of the program
    clamshell = Path(reports[0]).read_text()
    page = _Svg()
    page.feed(clamshell)
    assert page.svgs >= 4  # angle, ROM, tempo, adherence
    assert page.points > 1000  # the angle trace, 20 samples/s
    rep_marks = [t for t in page.titles if re.match(r"rep \d+: [\d.]+ deg", t)]
    assert len(rep_marks) == 2 * 40  # 20 a side, on the angle plot and as ROM bars
    assert any(t.startswith("target ") for t in page.titles)  # the ROM target band
    # Every line against the prescription: both sides, not only the last one done.
    for side in ("right", "left"):
        assert f"<td>{side}</td><td>1 of 1</td><td>20 of 20</td>" in clamshell
    assert "adherence" in clamshell
    # The CLI reads the same history.
    env_python = [sys.executable, "-m", "hipsense"]
    listing = subprocess.run(
        [*env_python, "sessions", "--state-dir", str(tmp_path)],
        capture_output=True, text=True, check=True,
    ).stdout.splitlines()  # fmt: skip
    assert len(listing) == 6
    session = Path(reports[0]).stem
    target = tmp_path / "copy.html"
    done = subprocess.run(
        [*env_python, "report", session, "--state-dir", str(tmp_path), "--out", str(target)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert done.stdout.strip() == str(target)
    assert target.read_text() == clamshell


def test_a_session_analysed_again_from_its_raw_samples_gives_the_same_reps(
    tmp_path: Path,
) -> None:
    out = io.StringIO()
    options = DemoOptions(reps=6, sets=1, speed=math.inf, loss=0.02, state_dir=tmp_path, seed=4)
    assert asyncio.run(run_demo(options, out)) == 0
    history = History(tmp_path / "history.db")
    (row,) = history.sessions()
    live = [e for e in history.load(row["session_id"]).events if e["kind"] == "rep"]
    recording = history.load_raw(row["session_id"])
    history.close()
    again = analyze(recording, load_library()["clamshell"])
    # The live session fed the core packet by packet; the re-analysis feeds it the whole
    # recording at once: the motion core gives the same reps either way.
    assert len(live) == 6
    assert [r.rom_deg for r in again.reps] == [r["rom_deg"] for r in live]
    assert [r.flags for r in again.reps] == [tuple(r["flags"]) for r in live]
