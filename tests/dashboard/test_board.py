"""The clinic board in a real browser: two patients live at once, the patient view, alerts.

One mosquitto (with WebSockets), one `hipsense dashboard` and one Chromium for the
module; `hipsense demo` gateways with their own patient ids publish to it, tracked
against a small program of this test (a programs folder of its own). A tile's count must
be the retained summary's at every step (read here from the broker, next to the tile),
and a page opened mid-session must show it at once, from the retained summary alone.
Screenshots go to $HIPSENSE_SCREENSHOTS when it names a folder, else to a temporary one.
"""

import asyncio
import contextlib
import json
import os
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiomqtt
import pytest
import pytest_asyncio

from tests.brokers import Mosquitto, free_port, until
from tests.conftest import require_tool
from tests.dashboard.test_browser import CHROMIUM_ARGS, RECORD_CSP, _dashboard, _hipsense

pytestmark = pytest.mark.asyncio(loop_scope="module")

P = "hipsense/v1"
# Two sets of three clamshells on the right, then the same on both sides in one set:
# short enough for a demo at x10 to end in seconds, with a rest between sets (45 s of
# the simulated patient's, 4.5 s here) in which no count changes.
PROGRAMS = {
    "board-right": 'id = "board-right"\nname = "Board right"\nsource = "tests"\n\n'
    '[[exercises]]\nexercise = "clamshell"\nside = "right"\nsets = 2\nreps = 3\nhold_s = 1\n',
    "board-both": 'id = "board-both"\nname = "Board both"\nsource = "tests"\n\n'
    '[[exercises]]\nexercise = "clamshell"\nside = "both"\nsets = 1\nreps = 3\nhold_s = 1\n',
}


class Board:
    """The module's broker, dashboard address, browser, folders."""

    def __init__(self, broker: Mosquitto, url: str, browser: Any, root: Path, shots: Path) -> None:
        self.broker = broker
        self.url = url
        self.browser = browser
        self.root = root
        self.shots = shots
        self.programs = root / "programs"

    async def page(self) -> Any:
        from playwright.async_api import expect

        page = await self.browser.new_page(viewport={"width": 1280, "height": 1100})
        await page.add_init_script(RECORD_CSP)
        await page.goto(self.url)
        await expect(page.get_by_test_id("broker-state")).to_have_text("broker connected")
        return page

    async def demo(
        self, gateway: str, session: str, patient: str, program: str, speed: str, seed: int = 0
    ) -> asyncio.subprocess.Process:
        return await _hipsense(
            "demo", "--broker", f"mqtt://127.0.0.1:{self.broker.port}",
            "--gateway-id", gateway, "--session-id", session, "--patient", patient,
            "--program", program, "--speed", speed, "--loss", "0", "--seed", str(seed),
            "--state-dir", str(self.root / f"state-{gateway}"),
            env={"HIPSENSE_PROGRAMS_DIR": str(self.programs)},
        )  # fmt: skip


@pytest.fixture(scope="module")
def board_broker(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Mosquitto]:
    ws_port, port = free_port(), free_port()
    config = (
        f"listener {port} 127.0.0.1\nallow_anonymous true\n"
        f"listener {ws_port}\nprotocol websockets\n"
    )
    broker = Mosquitto(
        require_tool("mosquitto"), tmp_path_factory.mktemp("board-broker"), config=config, port=port
    )
    broker.ws_port = ws_port  # type: ignore[attr-defined]
    broker.start()
    yield broker  # type: ignore[misc]
    broker.stop()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def board(
    board_broker: Mosquitto, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Board]:
    chromium = require_tool("chromium")
    from playwright.async_api import async_playwright

    root = tmp_path_factory.mktemp("board")
    (root / "programs").mkdir()
    for name, program in PROGRAMS.items():
        (root / "programs" / f"{name}.toml").write_text(program)
    wanted = os.environ.get("HIPSENSE_SCREENSHOTS")
    shots = Path(wanted) if wanted else root / "screenshots"
    shots.mkdir(parents=True, exist_ok=True)
    server, url = await _dashboard(board_broker.ws_port, root / "state")  # type: ignore[attr-defined]
    try:
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
            yield Board(board_broker, url, browser, root, shots)
            await browser.close()
    finally:
        server.kill()
        await server.wait()
    print(f"\nscreenshots: {shots}")


def expected_count(summary: dict[str, Any]) -> str:
    """The tile's count, as the board writes it from a summary's line under way."""
    lines = summary["lines"]
    line = max(lines, key=lambda x: max(x["set_indexes"], default=-1))
    per_set = line["reps_per_set"]
    return (
        f"set {max(1, line['sets_done'])} of {line['prescribed_sets']} · "
        f"{per_set[-1] if per_set else 0} / {line['prescribed_reps']} reps"
    )


class Summaries:
    """The retained summaries as the broker hands them to a subscriber, latest by session."""

    def __init__(self, client: aiomqtt.Client) -> None:
        self.client = client
        self.latest: dict[str, dict[str, Any]] = {}
        self.all: dict[str, list[dict[str, Any]]] = {}

    async def run(self) -> None:
        await self.client.subscribe(f"{P}/+/sessions/+/summary", qos=1)
        async for m in self.client.messages:
            assert isinstance(m.payload, bytes)
            if m.payload:
                s = json.loads(m.payload)
                self.latest[s["session_id"]] = s
                self.all.setdefault(s["session_id"], []).append(s)


async def tile_matches(page: Any, summaries: Summaries, sid: str, timeout_s: float = 3.0) -> str:
    """Wait until the tile shows the latest summary's count; return that count."""
    tile = page.get_by_test_id(f"tile-{sid}")
    deadline = time.monotonic() + timeout_s
    shown = want = ""
    while time.monotonic() < deadline:
        want = expected_count(summaries.latest[sid])
        shown = await tile.get_by_test_id("tile-count").inner_text()
        if shown == want:
            return shown
        await asyncio.sleep(0.05)
    raise AssertionError(f"tile {sid} shows {shown!r}, the retained summary says {want!r}")


async def test_board_shows_two_patients_live_with_the_retained_counts(board: Board) -> None:
    from playwright.async_api import expect

    page = await board.page()
    async with aiomqtt.Client("127.0.0.1", board.broker.port) as client:
        summaries = Summaries(client)
        reader = asyncio.create_task(summaries.run())
        gateways = [
            await board.demo("gw-ana", "ana-1", "p-ana", "board-right", "10", seed=1),
            await board.demo("gw-ben", "ben-1", "p-ben", "board-right", "10", seed=2),
        ]
        try:
            # Both tiles at once, each with its own patient, exercise and side.
            for sid, patient in (("ana-1", "p-ana"), ("ben-1", "p-ben")):
                tile = page.get_by_test_id(f"tile-{sid}")
                patient_button = tile.get_by_test_id("tile-patient")
                await expect(patient_button).to_have_text(patient, timeout=20_000)
                await expect(tile.get_by_test_id("tile-what")).to_have_text("clamshell · right")
            matched: dict[str, set[str]] = {"ana-1": set(), "ben-1": set()}
            late_page = None
            shot = board.shots / "board-two-patients.png"
            shot.unlink(missing_ok=True)
            while any(g.returncode is None for g in gateways):
                for sid in matched:
                    summary = summaries.latest.get(sid)
                    if summary is not None and summary["ended_at"] is None:
                        matched[sid].add(await tile_matches(page, summaries, sid))
                now = [summaries.latest.get(sid) for sid in matched]
                if not shot.exists() and all(
                    s and s["ended_at"] is None and s["rep_count"] >= 4 for s in now
                ):
                    await page.screenshot(path=str(shot), full_page=True)  # both in set 2
                ana = summaries.latest.get("ana-1")
                if late_page is None and ana and ana["set_count"] == 1 and ana["ended_at"] is None:
                    # Resting between sets (no count changes for seconds): a page opened
                    # now has seen no event, and must show the count at once.
                    late_page = await board.page()
                    late = late_page.get_by_test_id("tile-ana-1")
                    await expect(late.get_by_test_id("tile-count")).to_have_text(
                        expected_count(summaries.latest["ana-1"]), timeout=3_000
                    )
                    await expect(late.get_by_test_id("tile-flags")).to_have_text("-")
                    await expect(late.get_by_test_id("tile-patient")).to_have_text("p-ana")
                await asyncio.sleep(0.2)
                for g in gateways:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(g.wait(), 0.01)
            assert [g.returncode for g in gateways] == [0, 0]
            assert late_page is not None, "the page opened mid-session never ran"
            assert shot.exists(), "the two sessions were never in their second set together"
            for sid, seen in matched.items():
                # Several steps, mid-set ones among them (not only set ends).
                assert len(seen) >= 3, (sid, seen)
                assert any(" · 1 / 3" in s or " · 2 / 3" in s for s in seen), (sid, seen)
            # Ended: off the board, in the finished sessions with their patient.
            for sid, patient in (("ana-1", "p-ana"), ("ben-1", "p-ben")):
                await expect(page.get_by_test_id(f"tile-{sid}")).to_have_count(0, timeout=10_000)
                row = page.get_by_test_id(f"finished-{sid}").locator("td")
                await expect(row.nth(2)).to_have_text(patient)
                await expect(row.nth(4)).to_have_text("6")
            assert await page.evaluate("window.__csp") == []
            await late_page.close()
        finally:
            reader.cancel()
            for g in gateways:
                if g.returncode is None:
                    g.kill()
                    await g.wait()
    await page.close()


async def test_patient_view_shows_trends_over_three_sessions(board: Board) -> None:
    from playwright.async_api import expect

    # Three sessions of one patient, one after another (as fast as the demo goes).
    for n in (1, 2, 3):
        gateway = await board.demo("gw-cid", f"cid-{n}", "p-cid", "board-both", "0", seed=10 + n)
        assert await asyncio.wait_for(gateway.wait(), 60) == 0
    async with aiomqtt.Client("127.0.0.1", board.broker.port) as client:
        summaries = Summaries(client)
        reader = asyncio.create_task(summaries.run())
        await until(lambda: all(f"cid-{n}" in summaries.latest for n in (1, 2, 3)))
        reader.cancel()
    page = await board.page()
    await page.get_by_test_id("patient-p-cid").click()
    await expect(page.get_by_test_id("patient-title")).to_have_text("p-cid: 3 sessions")
    rows = page.locator("#trend tbody tr")
    await expect(rows).to_have_count(6)  # three sessions, left and right
    for n in (1, 2, 3):
        for line in summaries.latest[f"cid-{n}"]["lines"]:
            row = page.get_by_test_id(f"trend-cid-{n}-clamshell-{line['side']}").locator("td")
            await expect(row.nth(0)).to_have_text(str(n))
            await expect(row.nth(6)).to_have_text(f"{line['reps_done']} / 3")
            await expect(row.nth(7)).to_have_text(f"{line['mean_rom_deg']:.1f}")
            await expect(row.nth(10)).to_have_text(f"{line['adherence_pct']:.0f} %")
    for chart in ("adherence", "rom-clamshell", "hold-clamshell"):
        await expect(page.get_by_test_id(f"chart-{chart}").locator("canvas")).to_have_count(1)
    # Left and right, against the target band the summaries name.
    caption = page.get_by_test_id("chart-rom-clamshell").locator("xpath=..")
    target = summaries.latest["cid-3"]["lines"][0]["target_range_deg"]
    await expect(caption).to_contain_text(f"target {target[0]:.0f}-{target[1]:.0f}")
    await expect(caption.locator(".u-legend")).to_contain_text("left")
    await expect(caption.locator(".u-legend")).to_contain_text("right")
    await page.get_by_test_id("patient-charts").scroll_into_view_if_needed()
    await page.screenshot(path=str(board.shots / "patient-view.png"), full_page=True)
    assert await page.evaluate("window.__csp") == []
    await page.close()


async def test_alerts_for_gateway_offline_and_sensor_disconnected(board: Board) -> None:
    from playwright.async_api import expect

    page = await board.page()
    alerts = page.get_by_test_id("alerts")
    # A gateway killed mid-session: the broker publishes its Last Will, "offline".
    gateway = await board.demo("gw-dan", "dan-1", "p-dan", "board-right", "1")
    try:
        await expect(page.get_by_test_id("tile-dan-1")).to_be_visible(timeout=20_000)
        await expect(page.get_by_test_id("alert-gateway-gw-dan")).to_have_count(0)
        gateway.send_signal(signal.SIGKILL)
        await gateway.wait()
        await expect(page.get_by_test_id("alert-gateway-gw-dan")).to_contain_text(
            "Gateway gw-dan is offline", timeout=10_000
        )
    finally:
        if gateway.returncode is None:
            gateway.kill()
            await gateway.wait()
    # A sensor that dropped its link while its gateway is online, battery low.
    async with aiomqtt.Client("127.0.0.1", board.broker.port) as client:
        await client.publish(
            f"{P}/gw-eve/status", json.dumps({"state": "online", "gateway_id": "gw-eve"}),
            qos=1, retain=True,
        )  # fmt: skip
        await client.publish(
            f"{P}/gw-eve/sensors/s-eve/state",
            json.dumps({"sensor_id": "s-eve", "connected": False, "battery_pct": 12.0}),
            qos=1, retain=True,
        )  # fmt: skip
    await expect(page.get_by_test_id("alert-sensor-gw-eve/s-eve")).to_have_text(
        "Sensor s-eve on gw-eve is disconnected"
    )
    await expect(page.get_by_test_id("alert-battery-gw-eve/s-eve")).to_contain_text(
        "battery low (12 %)"
    )
    await expect(alerts).to_be_visible()
    await page.screenshot(path=str(board.shots / "board-alerts.png"), full_page=True)
    await page.close()


async def test_a_page_closed_gets_the_events_of_meanwhile_when_it_is_back(board: Board) -> None:
    # A persistent session: the browser keeps its client id, the broker keeps the QoS 1
    # events published while the page was closed (events are not retained).
    from playwright.async_api import expect

    context = await board.browser.new_context()
    page = await context.new_page()
    await page.goto(board.url)
    await expect(page.get_by_test_id("broker-state")).to_have_text("broker connected")
    client_id = await page.evaluate("localStorage.getItem('hipsenseBoardClientId')")
    await page.close()
    root = f"{P}/gw-fay"
    async with aiomqtt.Client("127.0.0.1", board.broker.port) as client:
        status = {"state": "online", "gateway_id": "gw-fay"}
        await client.publish(f"{root}/status", json.dumps(status), qos=1, retain=True)
        for seq in (0, 1):
            rep = {"kind": "rep", "index": seq, "set_index": 0, "rom_deg": 30.0 + seq,
                   "hold_s": 1.0, "concentric_s": 1.2, "eccentric_s": 1.4,
                   "flags": ["data_gap"] if seq else []}  # fmt: skip
            event = {"id": f"fay-1-{seq}", "session_id": "fay-1", "seq": seq, "event": rep}
            await client.publish(f"{root}/sessions/fay-1/events", json.dumps(event), qos=1)
    back = await context.new_page()
    await back.goto(board.url)
    tile = back.get_by_test_id("tile-fay-1")
    await expect(tile.get_by_test_id("rep-2").locator("td").nth(2)).to_have_text("31.0")
    await expect(tile.get_by_test_id("rep-1").locator("td").nth(2)).to_have_text("30.0")
    assert await back.evaluate("localStorage.getItem('hipsenseBoardClientId')") == client_id
    # The last rep's flag in a clinician's words, and an angle at rest never "-0".
    await expect(tile.get_by_test_id("tile-flags")).to_have_text("sensor signal dropped during it")
    assert "data_gap" not in await tile.inner_text()
    async with aiomqtt.Client("127.0.0.1", board.broker.port) as client:
        frame = {"session_id": "fay-1", "t_s": [9.0, 9.05], "angle_deg": [0.2, -0.3],
                 "off_plane_deg": [0.0, 0.0]}  # fmt: skip
        await client.publish(f"{root}/sessions/fay-1/live", json.dumps(frame))
    await expect(tile.get_by_test_id("tile-angle")).to_have_text("0")
    # The live chart's angle axis, as the page's own module scales it: rest noise of
    # half a degree spans at least 20 deg (no autoscaling to +-0.2), and the target band
    # is always in view.
    spans = await back.evaluate(
        """import('./util.js').then((m) => [m.angleRange(-0.3, 0.2, null),
                                             m.angleRange(-0.3, 0.2, [25, 55])])"""
    )
    (lo, hi), (band_lo, band_hi) = spans
    assert hi - lo >= 20.0 and lo < -0.3 and hi > 0.2
    assert band_lo <= -0.3 and band_hi >= 55.0
    # Another browser (a new profile, a new client id) never had them.
    other = await board.page()
    await expect(other.get_by_test_id("gateway-gw-fay")).to_have_text("online")
    await expect(other.get_by_test_id("tile-fay-1")).to_have_count(0)
    await context.close()
    await other.close()
