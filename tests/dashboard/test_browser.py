"""The clinic dashboard in a real browser (Debian's Chromium, driven by Playwright).

A real mosquitto with a WebSockets listener, `hipsense dashboard` serving the page and
`hipsense demo` as the gateway; the test reads the page as a clinician would.
"""

import asyncio
import os
import sys
from pathlib import Path

import pytest

from tests.brokers import Mosquitto, free_port
from tests.conftest import require_tool

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture
def ws_broker(tmp_path: Path) -> Mosquitto:
    ws_port = free_port()
    port = free_port()
    # mosquitto 2.0 starts a WebSockets listener only next to a plain one.
    config = (
        f"listener {port} 127.0.0.1\nallow_anonymous true\n"
        f"listener {ws_port}\nprotocol websockets\n"
    )
    broker = Mosquitto(require_tool("mosquitto"), tmp_path, config=config, port=port)
    broker.ws_port = ws_port  # type: ignore[attr-defined]
    broker.start()
    yield broker  # type: ignore[misc]
    broker.stop()


async def _hipsense(*args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "hipsense", *args,
        stdout=asyncio.subprocess.PIPE, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip


async def test_dashboard_follows_a_session_in_a_real_browser(
    ws_broker: Mosquitto, tmp_path: Path
) -> None:
    chromium = require_tool("chromium")
    from playwright.async_api import async_playwright, expect

    server = await _hipsense(
        "dashboard", "--port", "0",
        "--broker-ws", f"ws://127.0.0.1:{ws_broker.ws_port}/mqtt",  # type: ignore[attr-defined]
    )  # fmt: skip
    assert server.stdout is not None
    url = (await asyncio.wait_for(server.stdout.readline(), 20)).decode().split(": ", 1)[1]
    gateway = None
    try:
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
            page = await browser.new_page(viewport={"width": 1200, "height": 1000})
            await page.goto(url.strip())
            await expect(page.get_by_test_id("broker-state")).to_have_text("broker connected")

            gateway = await _hipsense(
                "demo", "--broker", f"mqtt://127.0.0.1:{ws_broker.port}",
                "--gateway-id", "gw-dash", "--session-id", "dash-1",
                "--reps", "6", "--sets", "1", "--speed", "6", "--loss", "0",
                "--fault", "too_fast=3", "--state-dir", str(tmp_path / "state"),
            )  # fmt: skip
            await expect(page.get_by_test_id("gateway-gw-dash")).to_have_text(
                "online", timeout=20_000
            )
            # The live session: reps arrive one by one, the flagged one stands out.
            await expect(page.get_by_test_id("rep-count")).to_have_text("4", timeout=60_000)
            flagged = page.get_by_test_id("rep-3")
            await expect(flagged).to_have_class("flagged")
            await expect(flagged).to_contain_text("too_fast")
            await expect(page.get_by_test_id("last-flags")).not_to_have_text("-")
            first = page.get_by_test_id("rep-1")
            hold = await first.locator("td").nth(3).inner_text()
            assert 0.5 <= float(hold) <= 3.0  # clamshell: a pause of about 1 s at the top
            await page.screenshot(path=str(tmp_path / "dashboard-live.png"), full_page=True)

            # The session ends: its retained summary lists it, the gateway goes offline.
            assert await asyncio.wait_for(gateway.wait(), 90) == 0
            finished = page.get_by_test_id("finished-dash-1")
            await expect(finished).to_contain_text("clamshell", timeout=20_000)
            await expect(finished.locator("td").nth(3)).to_have_text("6")
            await expect(page.get_by_test_id("rep-count")).to_have_text("6")
            await expect(page.get_by_test_id("gateway-gw-dash")).to_have_text(
                "gateway offline", timeout=20_000
            )
            await expect(page.get_by_test_id("sensor-sim-1-down")).to_be_visible()
            await page.screenshot(path=str(tmp_path / "dashboard-ended.png"), full_page=True)

            # The broker goes away: the page says so.
            ws_broker.stop()
            await expect(page.get_by_test_id("broker-state")).to_contain_text(
                "broker unreachable", timeout=20_000
            )
            await browser.close()
    finally:
        for proc in (server, gateway):
            if proc is not None and proc.returncode is None:
                proc.kill()
                await proc.wait()
    print(f"\nscreenshots: {tmp_path / 'dashboard-live.png'}, {tmp_path / 'dashboard-ended.png'}")
