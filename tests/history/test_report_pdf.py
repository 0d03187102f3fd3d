"""The reports printed to PDF by a real Chromium (Playwright): A4, a sane page count, and
no heading left at a page's foot without what it heads.

Chromium paginates only when it prints, so the page is checked in print media for what
makes that hold: every heading opens (or follows the intro of) a `section` that is not
split across pages (`break-inside: avoid`) and fits on one A4 page at the print width, or,
for a long table, the heading itself may not end a page (`break-after: avoid`). The PDF's
pages are counted from its bytes (`/Type /Page` objects, not `/Pages`).

HIPSENSE_SCREENSHOTS=<folder> keeps the PDFs and a screenshot of the patient report there:
report.pdf (the patient's), session-report.pdf, patient-report.png.
"""

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hipsense.exercises import load_library
from hipsense.history import History, render_patient_report, render_report
from tests.conftest import require_tool
from tests.dashboard.test_browser import CHROMIUM_ARGS
from tests.exports.histories import report_history

_A4_PT = (595.92, 842.88)
"""A4 in PDF points as Chromium writes it (210 x 297 mm)."""
_MM_PX = 96 / 25.4
_CONTENT_PX = (round((210 - 30) * _MM_PX), round((297 - 30) * _MM_PX))
"""An A4 page inside the stylesheet's 15 mm margins, in CSS pixels."""

# For each h2 and h3: its section, whether it and the element after it are in it, and
# the section's break rules and height in print media.
_HEADINGS = """() => [...document.querySelectorAll("h2, h3")].map((h) => {
  const s = h.closest("section");
  const next = h.nextElementSibling;
  const box = s ? s.getBoundingClientRect() : null;
  return {
    text: h.textContent, level: h.tagName,
    section: !!s, long: !!s && s.classList.contains("long"),
    nextInside: !!s && !!next && s.contains(next),
    next: next ? next.tagName : null,
    breakInside: s ? getComputedStyle(s).breakInside : null,
    breakAfter: getComputedStyle(h).breakAfter,
    height: box ? box.height : 0,
  };
})"""


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    chromium = require_tool("chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> Iterator[History]:
    h = report_history(tmp_path_factory.mktemp("pdf") / "history.db")
    yield h
    h.close()


def _shots() -> Path | None:
    folder = os.environ.get("HIPSENSE_SCREENSHOTS")
    if not folder:
        return None
    path = Path(folder)
    path.mkdir(parents=True, exist_ok=True)
    return path


def _print(browser: Any, page_html: str) -> tuple[bytes, list[dict[str, Any]], Any]:
    page = browser.new_page(viewport={"width": _CONTENT_PX[0], "height": _CONTENT_PX[1]})
    page.set_content(page_html)
    page.emulate_media(media="print")
    headings = page.evaluate(_HEADINGS)
    pdf = page.pdf(format="A4", print_background=True)
    return pdf, headings, page


def _pages(pdf: bytes) -> int:
    sizes = {tuple(float(v) for v in m.split()[2:]) for m in
             re.findall(rb"/MediaBox\s*\[([^\]]*)\]", pdf)}  # fmt: skip
    assert sizes and all(abs(w - _A4_PT[0]) < 1 and abs(h - _A4_PT[1]) < 1 for w, h in sizes), (
        f"expected A4 pages (595 x 842 pt), got {sizes}"
    )
    return len(re.findall(rb"/Type\s*/Page\b(?!s)", pdf))


def _assert_no_orphans(headings: list[dict[str, Any]]) -> None:
    assert headings
    for h in headings:
        where = f"{h['level']} {h['text']!r}"
        assert h["section"] and h["nextInside"], f"{where}: not in a section with what it heads"
        if h["long"]:
            assert h["breakAfter"] == "avoid", f"{where}: may end a page"
        else:
            assert h["breakInside"] == "avoid", f"{where}: its section may be split"
            assert h["height"] <= _CONTENT_PX[1], f"{where}: taller than a page ({h['height']})"


def test_the_patient_report_prints_on_a4_with_every_heading_on_its_chart(
    browser: Any, history: History, record_property: Any
) -> None:
    pdf, headings, page = _print(browser, render_patient_report(history.records("p-7")))
    pages = _pages(pdf)
    record_property("pdf_pages", pages)
    h2 = [h["text"] for h in headings if h["level"] == "H2"]
    print(f"patient report: {pages} A4 pages; h2: {h2}")
    assert 3 <= pages <= 12, pages  # six sessions, four series of trend charts
    assert len(h2) == 8
    _assert_no_orphans(headings)
    shots = _shots()
    if shots is not None:
        (shots / "report.pdf").write_bytes(pdf)
        page.emulate_media(media="screen")
        page.set_viewport_size({"width": 1000, "height": 900})
        page.screenshot(path=str(shots / "patient-report.png"), full_page=True)
    page.close()


def test_a_session_report_prints_on_a4_with_every_heading_on_its_chart(
    browser: Any, history: History, record_property: Any
) -> None:
    record = history.load("p7-d0-clam")
    pdf, headings, page = _print(browser, render_report(record, load_library()["clamshell"]))
    page.close()
    pages = _pages(pdf)
    record_property("pdf_pages", pages)
    assert 1 <= pages <= 4, pages
    assert [h["text"] for h in headings] == ["Against the prescription", "Angle over time",
        "Range of motion per rep", "Tempo per rep", "Reps"]  # fmt: skip
    _assert_no_orphans(headings)
    shots = _shots()
    if shots is not None:
        (shots / "session-report.pdf").write_bytes(pdf)
