"""`hipsense dashboard`'s static server, over real HTTP.

It serves the page's files and nothing else of the folder, answers what it does not
serve with 404 and what no browser sends with 400 (never a traceback), and sends the
headers that keep the page to itself on every answer. It hands the broker account to
its own page only, at /broker.json, never cached.
"""

import argparse
import http.client
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from hipsense._errors import HipsenseError
from hipsense.cli._dashboard import PAGE_FILES, content_security_policy, dashboard_dir

BROKER_WS = "ws://127.0.0.1:9001/mqtt"


class Served:
    """A running `hipsense dashboard` and the file its stderr goes to."""

    def __init__(self, proc: "subprocess.Popen[bytes]", port: int, stderr: Path) -> None:
        self.proc = proc
        self.port = port
        self.stderr = stderr

    def request(
        self, target: str, method: str = "GET", headers: dict[str, str] | None = None
    ) -> tuple[int, http.client.HTTPMessage, bytes]:
        """Status, headers and body; `target` goes into the request line as it is."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        try:
            conn.request(method, target, headers=headers or {})
            resp = conn.getresponse()
            return resp.status, resp.headers, resp.read()
        finally:
            conn.close()


# The embedded broker's account, as a gateway keeps it in its state folder.
ACCOUNT = {"username": "hipsense", "password": "s3cret-of-the-state-folder"}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    folder = tmp_path_factory.mktemp("dashboard")
    stderr = folder / "stderr"
    state = folder / "state"
    state.mkdir(mode=0o700)
    (state / "broker-credentials.json").write_text(json.dumps(ACCOUNT))
    os.chmod(state / "broker-credentials.json", 0o600)
    with stderr.open("wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "hipsense", "dashboard", "--port", "0",
             "--broker-ws", BROKER_WS, "--state-dir", str(state)],
            stdout=subprocess.PIPE, stderr=err,
        )  # fmt: skip
    assert proc.stdout is not None
    url = proc.stdout.readline().decode().split(": ", 1)[1]
    port = int(url.split("://", 1)[1].split("/", 1)[0].rsplit(":", 1)[1])
    try:
        yield Served(proc, port, stderr)
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()


def _assert_page_headers(headers: http.client.HTTPMessage) -> None:
    assert headers["Content-Security-Policy"] == content_security_policy(BROKER_WS)
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] == "no-referrer"


@pytest.mark.parametrize("name", sorted(PAGE_FILES))
def test_serves_the_pages_files_with_their_headers(served: Served, name: str) -> None:
    status, headers, body = served.request(f"/{name}?broker=ws%3A%2F%2Fx&prefix=a%2Fb")
    assert status == 200
    assert body == (dashboard_dir() / name).read_bytes()
    assert headers["Content-Type"] == PAGE_FILES[name]
    _assert_page_headers(headers)


def test_serves_the_page_at_the_root_and_answers_head(served: Served) -> None:
    status, _, body = served.request("/")
    assert status == 200
    assert body == (dashboard_dir() / "index.html").read_bytes()
    status, headers, body = served.request("/app.js", method="HEAD")
    assert (status, body) == (200, b"")
    assert int(headers["Content-Length"]) == (dashboard_dir() / "app.js").stat().st_size


def test_the_page_loads_every_file_it_links_from_the_allow_list() -> None:
    # A file the page links but the server does not serve would break it under the
    # policy's nosniff and 'self' only quietly: check the list against the page.
    html = (dashboard_dir() / "index.html").read_text()
    linked = set(re.findall(r'(?:src|href)="([^"]+)"', html))
    assert linked
    assert linked <= set(PAGE_FILES)
    assert "index.html" in PAGE_FILES


@pytest.mark.parametrize(
    "target",
    [
        "/vendor/",  # a directory: listed before
        "/vendor",
        "/.gitignore",  # a dotfile of the folder
        "/.git/config",
        "/package.json",
        "/package-lock.json",
        "/vendor.mjs",
        "/README.md",
        "/node_modules/mqtt/package.json",
        "/../pyproject.toml",  # traversal
        "/vendor/../app.js",
        "/%2e%2e/README.md",  # escaped traversal: served the folder's README before
        "/%2E%2E/%2e%2e/pyproject.toml",
        "/vendor/%2e%2e/package.json",
        "/..%2fpyproject.toml",
        "//etc/passwd",
        "/app.js/",
        "/index.html/.",
        "/App.js",
        "/broker-credentials.json",
        "/broker.json/",
        "/Broker.json",
        "*",
    ],
)
def test_answers_404_for_anything_else(served: Served, target: str) -> None:
    status, headers, body = served.request(target)
    assert status == 404, body[:300]
    assert b"Directory listing" not in body
    _assert_page_headers(headers)


@pytest.mark.parametrize(
    "target", ["/%00", "/index.html%00", "/%00/../app.js", "/%zz", "/app.js%", "/%ff", "/%0a"]
)
def test_answers_400_for_malformed_paths_never_a_traceback(served: Served, target: str) -> None:
    status, headers, _ = served.request(target)
    assert status == 400
    _assert_page_headers(headers)
    assert b"Traceback" not in served.stderr.read_bytes()
    assert served.proc.poll() is None


def test_other_methods_are_not_served(served: Served) -> None:
    status, headers, _ = served.request("/index.html", method="POST")
    assert status == 501
    _assert_page_headers(headers)


def test_the_policy_names_the_broker_and_nothing_the_url_could_add() -> None:
    policy = content_security_policy("wss://clinic.example:9443/mqtt")
    assert "connect-src 'self' wss://clinic.example:9443;" in policy
    assert "script-src 'self';" in policy
    assert "'unsafe-inline'" not in policy
    assert "'unsafe-eval'" not in policy
    # Only the parsed scheme, host and port reach the header.
    assert "connect-src 'self' ws://x:1;" in content_security_policy(
        "ws://x:1/;script-src 'unsafe-inline'"
    )
    assert "connect-src 'self' ws:;" in content_security_policy("ws://[::1]:9001/mqtt")
    for name in ("127.0.0.1", "localhost"):
        assert (
            "connect-src 'self' ws://127.0.0.1:9001 ws://localhost:9001;"
            in content_security_policy(f"ws://{name}:9001/mqtt")
        )


@pytest.mark.parametrize(
    "broker_ws",
    ["javascript:alert(1)", "http://127.0.0.1:9001/mqtt", "ws://a;b:1/", "ws://x:port/", "ws:///"],
)
def test_refuses_a_broker_the_policy_cannot_name(broker_ws: str) -> None:
    with pytest.raises(HipsenseError, match="expected --broker-ws"):
        content_security_policy(broker_ws)


def test_the_command_refuses_it_before_serving() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "hipsense", "dashboard", "--port", "0",
         "--broker-ws", "ws://x;script-src *:1/"],
        capture_output=True, timeout=10, check=False,
    )  # fmt: skip
    assert (done.returncode, done.stdout) == (1, b"")
    assert b"expected --broker-ws" in done.stderr


def test_hands_its_page_the_broker_account_never_cached(served: Served) -> None:
    for host in ("127.0.0.1", "localhost"):
        status, headers, body = served.request(
            "/broker.json",
            headers={"Host": f"{host}:{served.port}", "Sec-Fetch-Site": "same-origin"},
        )
        assert status == 200
        assert json.loads(body) == ACCOUNT
        assert headers["Content-Type"] == "application/json"
        assert headers["Cache-Control"] == "no-store"
        assert headers["Cross-Origin-Resource-Policy"] == "same-origin"
        _assert_page_headers(headers)
    status, headers, body = served.request("/broker.json", method="HEAD")
    assert (status, body, headers["Cache-Control"]) == (200, b"", "no-store")


@pytest.mark.parametrize(
    "headers",
    [
        {"Host": "evil.example:{port}"},  # DNS rebinding: another site's name for this server
        {"Host": "127.0.0.1:1"},
        {"Host": ""},
        {"Host": "127.0.0.1:{port}", "Sec-Fetch-Site": "cross-site"},
        {"Host": "127.0.0.1:{port}", "Sec-Fetch-Site": "same-site"},  # another port
    ],
)
def test_gives_the_account_to_no_other_page(served: Served, headers: dict[str, str]) -> None:
    sent = {k: v.format(port=served.port) for k, v in headers.items()}
    status, answer, body = served.request("/broker.json", headers=sent)
    assert status == 403
    assert ACCOUNT["password"].encode() not in body
    _assert_page_headers(answer)


def test_the_embedded_brokers_account_goes_to_a_loopback_broker_only(tmp_path: Path) -> None:
    from hipsense.cli._dashboard import _account_file

    def args(broker_ws: str, credentials: Path | None = None) -> argparse.Namespace:
        return argparse.Namespace(broker_ws=broker_ws, state_dir=tmp_path, credentials=credentials)

    own = tmp_path / "broker-credentials.json"
    assert _account_file(args("ws://127.0.0.1:9001/mqtt")) == own
    assert _account_file(args("ws://localhost:9001/mqtt")) == own
    assert _account_file(args("wss://clinic.example:9443/mqtt")) is None
    given = tmp_path / "clinic.json"
    assert _account_file(args("wss://clinic.example:9443/mqtt", given)) == given


def test_reads_the_account_on_each_request(tmp_path: Path) -> None:
    # Started before the gateway ever ran: no account yet, then the one it made.
    state = tmp_path / "state"
    proc = subprocess.Popen(
        [sys.executable, "-m", "hipsense", "dashboard", "--port", "0",
         "--broker-ws", BROKER_WS, "--state-dir", str(state)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    assert proc.stdout is not None
    try:
        url = proc.stdout.readline().decode().split(": ", 1)[1]
        port = int(url.split("://", 1)[1].split("/", 1)[0].rsplit(":", 1)[1])
        served = Served(proc, port, tmp_path / "unused")
        assert json.loads(served.request("/broker.json")[2]) == {}
        state.mkdir()
        (state / "broker-credentials.json").write_text(json.dumps(ACCOUNT))
        assert json.loads(served.request("/broker.json")[2]) == ACCOUNT
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()
