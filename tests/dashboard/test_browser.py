"""The clinic dashboard in a real browser (Debian's Chromium, driven by Playwright).

A real mosquitto with a WebSockets listener, `hipsense dashboard` serving the page and
`hipsense demo` as the gateway; the first test reads the page as a clinician would. The
others forge what anyone allowed to publish could: markup and wrong types in every
field, which the page must show as text or "-", never run; and a broker of its own in
the query string, which the page's policy must not let it reach. The last runs the
gateway on its embedded broker, which takes only the dashboard's own pages, logged in
with the account the dashboard server handed them (never in the address) for this run's
key, which the page takes out of its address and no request URL ever carries.
"""

import asyncio
import json
import os
import re
import sys
import urllib.parse
from pathlib import Path
from typing import Any

import aiomqtt
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


# Collects the page's Content-Security-Policy violations: a page that works under its
# policy has none (init scripts run before the page's own, outside its policy).
RECORD_CSP = """
window.__csp = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__csp.push(`${e.violatedDirective} ${e.blockedURI}`);
});
"""


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


async def _hipsense(*args: str, env: dict[str, str] | None = None) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "hipsense", *args,
        stdout=asyncio.subprocess.PIPE, env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
    )  # fmt: skip


async def _dashboard(
    ws_port: int, state_dir: Path, port: int = 0, *more: str, broker_host: str = "127.0.0.1"
) -> tuple[asyncio.subprocess.Process, str]:
    """`hipsense dashboard` for the broker's WebSockets port, and the page's address.

    `state_dir` is the gateway's: the page gets the embedded broker's account kept there
    (none, for mosquitto).
    """
    server = await _hipsense(
        "dashboard", "--port", str(port), "--broker-ws", f"ws://{broker_host}:{ws_port}/mqtt",
        "--state-dir", str(state_dir), *more,
    )  # fmt: skip
    assert server.stdout is not None
    line = (await asyncio.wait_for(server.stdout.readline(), 20)).decode()
    return server, line.split(": ", 1)[1].strip()


async def test_dashboard_follows_a_session_in_a_real_browser(
    ws_broker: Mosquitto, tmp_path: Path
) -> None:
    chromium = require_tool("chromium")
    from playwright.async_api import async_playwright, expect

    server, url = await _dashboard(ws_broker.ws_port, tmp_path / "state")  # type: ignore[attr-defined]
    gateway = None
    try:
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
            page = await browser.new_page(viewport={"width": 1200, "height": 1000})
            await page.add_init_script(RECORD_CSP)
            await page.goto(url)
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
            # The live session's tile: the count of its retained summary, reps arriving
            # one by one, the flagged one standing out in words.
            tile = page.get_by_test_id("tile-dash-1")
            await expect(tile.get_by_test_id("tile-count")).to_have_text(
                "set 1 · 4 reps", timeout=60_000
            )
            flagged = tile.get_by_test_id("rep-3")
            await expect(flagged).to_have_class("flagged")
            await expect(flagged).to_contain_text("moved too fast")
            await expect(tile.get_by_test_id("tile-flags")).not_to_have_text("-")
            await expect(tile.get_by_test_id("tile-where")).to_have_text("dash-1 on gw-dash")
            first = tile.get_by_test_id("rep-1")
            hold = await first.locator("td").nth(3).inner_text()
            assert 0.5 <= float(hold) <= 3.0  # clamshell: a pause of about 1 s at the top
            await page.screenshot(path=str(tmp_path / "dashboard-live.png"), full_page=True)
            # All of it under the server's policy, which it never had to break.
            assert await page.evaluate("window.__csp") == []

            # The session ends: its retained summary lists it, its tile leaves the
            # board, the gateway goes offline and the alert strip says so.
            assert await asyncio.wait_for(gateway.wait(), 90) == 0
            finished = page.get_by_test_id("finished-dash-1")
            await expect(finished).to_contain_text("clamshell", timeout=20_000)
            await expect(finished.locator("td").nth(4)).to_have_text("6")
            await expect(tile).to_have_count(0)
            await expect(page.get_by_test_id("gateway-gw-dash")).to_have_text(
                "gateway offline", timeout=20_000
            )
            await expect(page.get_by_test_id("sensor-sim-1-down")).to_be_visible()
            await expect(page.get_by_test_id("alert-gateway-gw-dash")).to_be_visible()
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


P = "hipsense/v1"
# Markup that would run, or at least leave an element behind, if a message ever reached
# the page as HTML; ids and the window.__pwned it sets give it away.
IMG = "<img id=pwned-img src=x onerror=window.__pwned=1>"
SVG = "<svg id=pwned-svg onload=window.__pwned=2></svg>"
SCRIPT = "<script id=pwned-script>window.__pwned=3</script>"
EVIL = IMG + SVG + SCRIPT
INFINITY = "__infinity__"  # JSON has no Infinity, but 1e400 parses as one
# app.js shows at most MAX_TEXT (120) characters of a message's text: its first ones
# are there, and a cut text is far shorter than the message's.
KEPT_START = 100
CUT_BELOW = 1000


def _payload(value: Any) -> bytes:
    return json.dumps(value).replace(f'"{INFINITY}"', "1e400").encode()


# Real ones first: the page must go on showing them next to the forged ones.
GOOD: list[tuple[str, Any]] = [
    (f"{P}/gw-good/status", {"state": "online", "gateway_id": "gw-good"}),
    (
        f"{P}/gw-good/sensors/s-good/state",
        {"sensor_id": "s-good", "connected": True, "battery_pct": 80,
         "rssi_dbm": -61, "loss_pct": 0.5},
    ),
    (
        f"{P}/gw-good/sessions/good-1/summary",
        {"session_id": "good-1", "sensor_id": "s-good", "exercise": "clamshell",
         "started_at": "2025-06-01T09:50:00Z", "ended_at": "2025-06-01T10:00:00Z",
         "rep_count": 6, "hold_count": 0, "set_count": 1, "reps_per_set": [6],
         "mean_rom_deg": 31.4, "mean_hold_s": None, "flags": {}, "last_seq": 9,
         "progress": "6 of 10 reps", "adherence_pct": 60.0},
    ),
]  # fmt: skip
# Retained before the page opens: the forged summary that once ran in the page, and a
# gateway id of markup.
FORGED: list[tuple[str, Any]] = [
    (
        f"{P}/gw-evil/sessions/evil-1/summary",
        # 60 kB: mosquitto 2.0 passes little more than that on to WebSockets clients.
        {"session_id": EVIL, "exercise": EVIL + "A" * 60_000,
         "ended_at": "2099-01-01T00:00:00Z", "rep_count": IMG,
         "hold_count": {"n": 1, "html": SVG}, "set_count": [SCRIPT], "mean_rom_deg": "31.4",
         "progress": SCRIPT, "adherence_pct": INFINITY, "flags": EVIL},
    ),
    (f"{P}/{IMG}/status", {"state": "online", "gateway_id": IMG}),
]  # fmt: skip
# Retained while the page watches: wrong types and shapes everywhere.
MISSHAPEN: list[tuple[str, Any]] = [
    (f"{P}/gw-evil/status", {"state": {"toString": EVIL}, "gateway_id": [EVIL]}),
    (
        f"{P}/gw-evil/sensors/s-evil/state",
        {"sensor_id": IMG, "connected": "true", "battery_pct": IMG,
         "rssi_dbm": {"v": {"w": [SVG]}}, "loss_pct": INFINITY},
    ),
    (f"{P}/gw-evil/sensors/s-null/state", None),
    (f"{P}/gw-evil/sensors/s-list/state", [IMG, 1]),
    (f"{P}/gw-evil/sessions/evil-2/summary", {"ended_at": {"html": EVIL}, "rep_count": 3}),
    (f"{P}/gw-evil/sessions/evil-3/summary", EVIL),
    (f"{P}/gw-evil/sessions/evil-4/live", {"t_s": EVIL, "angle_deg": EVIL}),
    (f"{P}/gw-evil/sessions/evil-5/events", {"id": "x", "event": EVIL}),
]  # fmt: skip
# Retained while the page watches: the reps and the live angle of a forged session.
LIVE = f"{P}/gw-evil/sessions/evil-live"
WATCHED: list[tuple[str, Any]] = [
    (
        f"{LIVE}/events",
        {"id": "e0", "event": {"kind": "rep", "index": 0, "set_index": IMG, "rom_deg": IMG,
                               "hold_s": "1.5", "concentric_s": None, "eccentric_s": [1],
                               "flags": IMG, "confidence": {"html": SVG}}},
    ),
    (f"{LIVE}/events", {"id": "e1", "event": {"kind": "rep", "index": IMG, "flags": [IMG]}}),
    (f"{LIVE}/events", {"id": "e2", "event": {"kind": "rep", "index": 1.5, "flags": []}}),
    (f"{LIVE}/events", {"id": {"html": IMG}, "event": {"kind": "rep", "index": 7}}),
    (
        f"{LIVE}/events",
        {"id": "e3", "event": {"kind": "rep", "index": 1, "set_index": 0, "rom_deg": 30.0,
                               "hold_s": 1.0, "concentric_s": 1.2, "eccentric_s": 1.4,
                               "flags": [IMG, 7, {"html": SVG}, "too_fast"],
                               "confidence": 0.9}},
    ),
    (f"{LIVE}/live", {"t_s": IMG, "angle_deg": IMG}),
    (f"{LIVE}/live", {"t_s": [0.0, 0.05], "angle_deg": [10.0]}),
    (f"{LIVE}/live", {"t_s": [0.0, "0.05"], "angle_deg": [10.0, IMG]}),
    (f"{LIVE}/live", {"t_s": [0.0, 0.05], "angle_deg": [10.0, 12.0]}),
]  # fmt: skip

# Elements and attributes a payload's markup would have left in the page.
FROM_PAYLOADS = """() => ({
  elements: document.querySelectorAll("[id^=pwned], img, svg, iframe, object, embed").length,
  scripts: document.scripts.length,
  handlers: [...document.querySelectorAll("*")]
    .flatMap((e) => [...e.attributes])
    .filter((a) => a.name.startsWith("on")).length,
  pwned: typeof window.__pwned,
  csp: window.__csp,
})"""
NOTHING_RAN = {"elements": 0, "scripts": 3, "handlers": 0, "pwned": "undefined", "csp": []}


async def test_dashboard_shows_forged_messages_as_text_and_runs_none(
    ws_broker: Mosquitto, tmp_path: Path
) -> None:
    chromium = require_tool("chromium")
    from playwright.async_api import async_playwright, expect

    server, url = await _dashboard(ws_broker.ws_port, tmp_path / "state")  # type: ignore[attr-defined]
    try:
        async with (
            aiomqtt.Client("127.0.0.1", ws_broker.port) as forger,
            async_playwright() as pw,
        ):

            async def publish(messages: list[tuple[str, Any]]) -> None:
                for topic, value in messages:
                    await forger.publish(topic, _payload(value), qos=1, retain=True)

            await publish(GOOD + FORGED)
            browser = await pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
            page = await browser.new_page(viewport={"width": 1200, "height": 1000})
            await page.add_init_script(RECORD_CSP)
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.on("console", lambda m: errors.append(m.text) if "dropped" in m.text else None)
            await page.goto(url)

            # The forged summary and gateway: listed, each field as text or "-".
            finished = page.locator("#finished tbody tr")
            gateways = page.locator("#gateways tbody tr")
            await expect(finished).to_have_count(2)
            await expect(gateways).to_have_count(2)
            assert await page.evaluate(FROM_PAYLOADS) == NOTHING_RAN
            forged = page.get_by_test_id("finished-evil-1").locator("td")
            await expect(forged).to_have_text(
                ["evil-1", "gw-evil", "-", re.compile(f"^{re.escape(EVIL[:KEPT_START])}"),
                 "-", "-", "-", "-", SCRIPT, "-"]
            )  # fmt: skip
            exercise = await forged.nth(3).inner_text()
            assert len(exercise) < CUT_BELOW  # cut, not 60 000 characters across the page
            await expect(gateways.nth(0).locator("td")).to_have_text(
                [IMG, "online", "no sensor yet"]
            )

            # Misshapen messages: shown as "-", or not at all; the real ones as they are.
            await publish(MISSHAPEN)
            await expect(gateways).to_have_count(3)
            await expect(gateways.nth(1).locator("td")).to_have_text(
                ["gw-evil", "gateway offline", IMG, "sensor disconnected", "-", "-", "-"]
            )
            await expect(gateways.nth(2).locator("td")).to_have_text(
                ["gw-good", "online", "s-good", "connected", "80 %", "-61 dBm", "0.5 %"]
            )
            await expect(page.get_by_test_id("finished-good-1").locator("td")).to_have_text(
                ["good-1", "gw-good", "-", "clamshell", "6", "0", "1", "31.4 deg",
                 "6 of 10 reps", "60 %"]
            )  # fmt: skip
            await expect(finished).to_have_count(2)
            await expect(page.locator(".tile")).to_have_count(0)
            assert await page.evaluate(FROM_PAYLOADS) == NOTHING_RAN

            # A forged live session, its reps and angle arriving while the page watches.
            # Its count comes from a summary only, and it has none: events are not
            # counted. The flags in words, a forged one as its text.
            await publish(WATCHED)
            tile = page.get_by_test_id("tile-evil-live")
            await expect(tile.get_by_test_id("tile-angle")).to_have_text("12")
            await expect(tile.get_by_test_id("tile-count")).to_have_text(
                "waiting for the session's summary"
            )
            await expect(tile.get_by_test_id("tile-where")).to_have_text("evil-live on gw-evil")
            await expect(tile.get_by_test_id("rep-1").locator("td")).to_have_text(
                ["1", "-", "-", "-", "-", "-", ""]
            )
            await expect(tile.get_by_test_id("rep-2").locator("td")).to_have_text(
                ["2", "1", "30.0", "1.0", "1.2", "1.4", f"{IMG}, moved too fast"]
            )
            await expect(tile.get_by_test_id("rep-2")).to_have_class("flagged")
            await expect(tile.get_by_test_id("tile-flags")).to_have_text(f"{IMG}, moved too fast")
            assert await page.evaluate(FROM_PAYLOADS) == NOTHING_RAN

            # Opened again, the page gets every retained message at once: the same page.
            await page.reload()
            await expect(finished).to_have_count(2)
            await expect(gateways).to_have_count(3)
            await expect(tile.get_by_test_id("rep-2").locator("td").nth(6)).to_have_text(
                f"{IMG}, moved too fast"
            )
            await expect(tile.get_by_test_id("tile-angle")).to_have_text("12")
            assert await page.evaluate(FROM_PAYLOADS) == NOTHING_RAN
            assert errors == []
            await browser.close()
    finally:
        server.kill()
        await server.wait()


async def test_dashboard_connects_to_its_own_broker_only(
    ws_broker: Mosquitto, tmp_path: Path
) -> None:
    chromium = require_tool("chromium")
    from playwright.async_api import async_playwright, expect

    server, url = await _dashboard(ws_broker.ws_port, tmp_path / "state")  # type: ignore[attr-defined]
    # The same broker at another loopback address: reachable, but not the one the page
    # was served for, so a link could as well name an impostor (and get the credentials).
    other = f"ws://127.0.0.2:{ws_broker.ws_port}/mqtt"  # type: ignore[attr-defined]
    page_url, query = url.split("?", 1)
    params = dict(urllib.parse.parse_qsl(query))
    try:
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
            page = await browser.new_page()
            await page.add_init_script(RECORD_CSP)
            await page.goto(f"{page_url}?{urllib.parse.urlencode({**params, 'broker': other})}")
            # Polled from here: wait_for_function polls by eval in the page, which its
            # policy forbids.
            for _ in range(200):
                if await page.evaluate("window.__csp.length"):
                    break
                await asyncio.sleep(0.05)
            assert await page.evaluate("window.__csp") == [f"connect-src {other}"]
            await expect(page.get_by_test_id("broker-state")).to_contain_text("unreachable")
            await browser.close()
    finally:
        server.kill()
        await server.wait()


async def test_a_link_cannot_send_the_account_to_another_broker(
    ws_broker: Mosquitto, tmp_path: Path
) -> None:
    # For an IPv6 literal the policy can name the scheme only (ws:), so it would let a
    # `broker` in the link reach any broker: the page must connect, with the account, to
    # the broker the account is for (broker.json says which), never to the link's.
    chromium = require_tool("chromium")
    from playwright.async_api import async_playwright, expect

    ws_port = ws_broker.ws_port  # type: ignore[attr-defined]
    password = "for-the-ipv6-broker-only"
    account = tmp_path / "account.json"
    account.write_text(json.dumps({"username": "dashboard", "password": password}))
    account.chmod(0o600)
    server, url = await _dashboard(
        ws_port, tmp_path / "state", 0, "--credentials", str(account), broker_host="[::1]"
    )
    own = f"ws://[::1]:{ws_port}/mqtt"
    # The same mosquitto at another address: it would take the account as well.
    impostor = f"ws://127.0.0.2:{ws_port}/mqtt"
    crafted = url.replace(urllib.parse.quote(own, safe=""), urllib.parse.quote(impostor, safe=""))
    assert crafted != url
    try:
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
            page = await browser.new_page()
            await page.add_init_script(RECORD_CSP)
            told: dict[str, bool] = {}  # socket URL -> whether the password went over it

            def watch(ws: Any) -> None:
                told.setdefault(ws.url, False)

                def sent(payload: str | bytes) -> None:
                    data = payload.encode() if isinstance(payload, str) else payload
                    told[ws.url] = told[ws.url] or password.encode() in data

                ws.on("framesent", sent)

            page.on("websocket", watch)
            warnings: list[str] = []
            page.on("console", lambda m: warnings.append(m.text) if m.type == "warning" else None)
            await page.goto(crafted)
            await expect(page.get_by_test_id("broker-state")).to_have_text("broker connected")
            assert told == {own: True}
            await expect(page.locator("#broker-url")).to_have_text(own)
            assert any(f"ignoring broker={impostor}" in w for w in warnings)
            await browser.close()
    finally:
        server.kill()
        await server.wait()


async def test_dashboard_logs_in_to_the_embedded_broker_with_the_servers_account(
    tmp_path: Path,
) -> None:
    chromium = require_tool("chromium")
    from playwright.async_api import async_playwright, expect

    state = tmp_path / "state"
    page_port, stranger_port = free_port(), free_port()
    # The gateway on its embedded broker, told the dashboard's address.
    gateway = await _hipsense(
        "demo", "--gateway-id", "gw-emb", "--session-id", "emb-1",
        "--reps", "60", "--sets", "1", "--speed", "10", "--loss", "0",
        "--state-dir", str(state),
        env={"HIPSENSE_DASHBOARD_ORIGINS": f"http://127.0.0.1:{page_port}"},
    )  # fmt: skip
    servers: list[asyncio.subprocess.Process] = []
    try:
        assert gateway.stdout is not None
        banner = ""
        while "WebSockets" not in banner:
            banner = (await asyncio.wait_for(gateway.stdout.readline(), 20)).decode()
            assert banner, "the demo ended before naming its broker"
        found = re.search(r"WebSockets ws://127\.0\.0\.1:(\d+)/mqtt", banner)
        assert found is not None, banner
        ws_port = int(found[1])
        password = json.loads((state / "broker-credentials.json").read_text())["password"]

        server, url = await _dashboard(ws_port, state, port=page_port)
        servers.append(server)
        # Another dashboard, on a port the broker was not told of: its page is refused.
        stranger, stranger_url = await _dashboard(ws_port, state, port=stranger_port)
        servers.append(stranger)
        assert password not in url
        assert "user=" not in url
        assert "password=" not in url
        address, fragment = url.split("#", 1)
        key = dict(urllib.parse.parse_qsl(fragment))["k"]
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
            page = await browser.new_page()
            await page.add_init_script(RECORD_CSP)
            requests: list[str] = []
            page.on("request", lambda r: requests.append(r.url))
            sockets: list[str] = []
            page.on("websocket", lambda ws: sockets.append(ws.url))
            async with page.expect_response(lambda r: r.url.endswith("/broker.json")) as got:
                await page.goto(url)
            answer = await got.value
            account = await answer.json()
            assert account["password"] == password
            assert await answer.request.header_value("X-Hipsense-Key") == key
            await expect(page.get_by_test_id("broker-state")).to_have_text(
                "broker connected", timeout=20_000
            )
            # The key is out of the address at once: copied, bookmarked or shared, it
            # gives nobody the account.
            assert page.url == address
            assert await page.evaluate("location.href") == address
            # What the gateway publishes reaches the page: its status, the live angle, reps.
            await expect(page.get_by_test_id("gateway-gw-emb")).to_have_text("online")
            tile = page.get_by_test_id("tile-emb-1")
            await expect(tile.get_by_test_id("tile-angle")).not_to_have_text("-", timeout=30_000)
            await expect(tile.locator("table.reps tbody tr").first).to_be_visible(timeout=60_000)

            # Reloaded, the page logs in again: the tab kept the key (not the address).
            async with page.expect_response(lambda r: r.url.endswith("/broker.json")) as again:
                await page.reload()
            assert (await again.value).status == 200
            await expect(page.get_by_test_id("broker-state")).to_have_text(
                "broker connected", timeout=20_000
            )
            assert page.url == address
            # Neither the account nor the key was in any address, and the page kept them
            # in no storage: localStorage holds the board's MQTT client id only.
            assert requests and sockets
            for secret in (password, key):
                assert all(secret not in u for u in [page.url, *requests, *sockets])
            assert sockets == [f"ws://127.0.0.1:{ws_port}/mqtt"] * 2
            kept = "[Object.keys(localStorage), sessionStorage.length, document.cookie]"
            assert await page.evaluate(kept) == [["hipsenseBoardClientId"], 0, ""]
            client_id = await page.evaluate("localStorage.getItem('hipsenseBoardClientId')")
            assert re.fullmatch(r"hipsense-board-[0-9a-f]{16}", client_id)
            assert await page.evaluate("window.__csp") == []

            # The address without the key (typed, or passed on): no account, so the
            # broker refuses the page.
            keyless = await browser.new_page()
            await keyless.goto(address)
            await expect(keyless.get_by_test_id("broker-state")).to_contain_text(
                "broker refused the dashboard", timeout=20_000
            )
            await expect(keyless.get_by_test_id("gateways")).not_to_contain_text("gw-emb")

            # user= and password= in the address, the old way: ignored and taken out of it.
            old = await browser.new_page()
            warnings: list[str] = []
            old.on("console", lambda m: warnings.append(m.text) if m.type == "warning" else None)
            await old.goto(f"{address}&user=bob&password=hunter2#{fragment}")
            await expect(old.get_by_test_id("broker-state")).to_have_text("broker connected")
            assert "hunter2" not in old.url
            assert old.url == address
            assert any("ignoring user/password" in w for w in warnings)

            # The same page from a dashboard at an origin the broker does not know.
            other = await browser.new_page()
            await other.goto(stranger_url)
            await expect(other.get_by_test_id("broker-state")).to_contain_text(
                "broker unreachable", timeout=20_000
            )
            await expect(other.get_by_test_id("gateways")).not_to_contain_text("gw-emb")
            await browser.close()
    finally:
        for proc in [gateway, *servers]:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
