"""`hipsense dashboard`'s static server, over real HTTP.

It serves the page's files and nothing else of the folder, answers what it does not
serve with 404 and what no browser sends with 400 (never a traceback), and sends the
headers that keep the page to itself on every answer. It hands the broker account to
its own page only, at /broker.json, never cached: to a request with this run's key (in
the printed address's fragment), not to any local user who asks.
"""

import argparse
import contextlib
import http.client
import json
import os
import re
import subprocess
import sys
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest

from hipsense._errors import HipsenseError
from hipsense.cli._dashboard import PAGE_FILES, content_security_policy, dashboard_dir

BROKER_WS = "ws://127.0.0.1:9001/mqtt"
KEY_HEADER = "X-Hipsense-Key"  # spelled out: the page sends it by this name
SHOWN = 300  # bytes of an unexpected answer shown in a failure, enough to tell which


class Served:
    """A running `hipsense dashboard`, the address it printed and the file its stderr goes to."""

    def __init__(
        self, proc: "subprocess.Popen[bytes]", url: str, stderr: Path, host: str = "127.0.0.1"
    ) -> None:
        self.proc = proc
        self.url = url
        parts = urllib.parse.urlsplit(url)
        assert parts.port is not None
        self.port = parts.port
        # This run's key, from the fragment (#k=...) of the printed address.
        self.key = dict(urllib.parse.parse_qsl(parts.fragment)).get("k", "")
        self.stderr = stderr
        self.host = host

    def own(self, **more: str) -> dict[str, str]:
        """The headers of the page's own request for /broker.json, and `more`."""
        return {"Host": f"127.0.0.1:{self.port}", KEY_HEADER: self.key, **more}

    def request(
        self, target: str, method: str = "GET", headers: dict[str, str] | None = None
    ) -> tuple[int, http.client.HTTPMessage, bytes]:
        """Status, headers and body; `target` goes into the request line as it is."""
        conn = http.client.HTTPConnection(self.host, self.port, timeout=5)
        try:
            conn.request(method, target, headers=headers or {})
            resp = conn.getresponse()
            return resp.status, resp.headers, resp.read()
        finally:
            conn.close()


# The embedded broker's account, as a gateway keeps it in its state folder.
ACCOUNT = {"username": "hipsense", "password": "s3cret-of-the-state-folder"}


def _write_account(path: Path, account: dict[str, str] = ACCOUNT, mode: int = 0o600) -> None:
    path.parent.mkdir(mode=0o700, exist_ok=True)
    path.write_text(json.dumps(account))
    os.chmod(path, mode)


@contextlib.contextmanager
def _dashboard(folder: Path, *args: str, host: str = "127.0.0.1") -> Iterator[Served]:
    """`hipsense dashboard --port 0 *args`, until the block ends."""
    stderr = folder / "stderr"
    with stderr.open("wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "hipsense", "dashboard", "--port", "0", *args],
            stdout=subprocess.PIPE, stderr=err,
        )  # fmt: skip
    assert proc.stdout is not None
    try:
        line = proc.stdout.readline().decode()
        assert line.startswith("hipsense dashboard: "), stderr.read_text()
        yield Served(proc, line.split(": ", 1)[1].strip(), stderr, host=host)
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    folder = tmp_path_factory.mktemp("dashboard")
    state = folder / "state"
    _write_account(state / "broker-credentials.json")
    with _dashboard(folder, "--broker-ws", BROKER_WS, "--state-dir", str(state)) as running:
        yield running


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
    # And every module app.js imports, and those import: served, or the page stops.
    modules, todo = set(), ["app.js"]
    while todo:
        name = todo.pop()
        modules.add(name)
        source = (dashboard_dir() / name).read_text()
        imports = re.findall(r'^import [^;]*? from "\./([^"]+)";', source, re.M)
        todo.extend(i for i in imports if i not in modules)
    assert modules >= {"app.js", "board.js", "patient.js", "util.js"}
    assert modules <= set(PAGE_FILES)


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
    assert status == 404, body[:SHOWN]
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
            headers=served.own(Host=f"{host}:{served.port}", **{"Sec-Fetch-Site": "same-origin"}),
        )
        assert status == 200
        # With the broker the account is for: the page connects to that one.
        assert json.loads(body) == {"broker": BROKER_WS, **ACCOUNT}
        assert headers["Content-Type"] == "application/json"
        assert headers["Cache-Control"] == "no-store"
        assert headers["Cross-Origin-Resource-Policy"] == "same-origin"
        _assert_page_headers(headers)
    status, headers, body = served.request("/broker.json", method="HEAD", headers=served.own())
    assert (status, body, headers["Cache-Control"]) == (200, b"", "no-store")


def test_prints_this_runs_key_in_the_fragment_only(served: Served, tmp_path: Path) -> None:
    parts = urllib.parse.urlsplit(served.url)
    assert re.fullmatch(r"k=[A-Za-z0-9_-]{43}", parts.fragment)  # 256 bits, URL-safe
    assert served.key not in parts.path + parts.query
    with _dashboard(tmp_path, "--broker-ws", BROKER_WS, "--state-dir", str(tmp_path)) as other:
        assert other.key != served.key  # one of its own for every run


def test_gives_no_local_user_the_account_without_the_key(served: Served) -> None:
    # Any account of this machine can write the right Host: only the key tells the user
    # who started the server (and saw its address) from the others.
    right_host = {"Host": f"127.0.0.1:{served.port}"}
    for headers in (
        right_host,
        {**right_host, "Sec-Fetch-Site": "same-origin"},
        {**right_host, KEY_HEADER: ""},
        {**right_host, KEY_HEADER: served.key[:-1]},
        {**right_host, KEY_HEADER: served.key + "x"},
        {**right_host, KEY_HEADER: "é" * 43},  # not ASCII: refused, not a traceback
    ):
        for method in ("GET", "HEAD"):
            status, answer, body = served.request("/broker.json", method=method, headers=headers)
            assert status == 403, (headers, body[:SHOWN])
            assert ACCOUNT["password"].encode() not in body
            _assert_page_headers(answer)
    # Not in the query either: the key counts in its header only.
    target = f"/broker.json?k={served.key}"
    assert served.request(target, headers=right_host)[0] == 403
    # With it, a client that is no browser (no Sec-Fetch-Site) gets the account.
    status, _, body = served.request("/broker.json", headers=served.own())
    assert (status, json.loads(body)["password"]) == (200, ACCOUNT["password"])
    assert b"Traceback" not in served.stderr.read_bytes()


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


def test_gives_the_account_to_clients_of_this_machine_only() -> None:
    from hipsense.cli._dashboard import account_refusal

    def refusal(client: str, *, remote: bool = False) -> str | None:
        return account_refusal(
            client=client, host="127.0.0.1:8080", fetch_site="same-origin", key="K",
            hosts={"127.0.0.1:8080"}, expected_key="K", remote=remote,
        )  # fmt: skip

    for client in ("127.0.0.1", "127.0.0.2", "::1", "::ffff:127.0.0.1"):
        assert refusal(client) is None
    for client in ("192.168.1.20", "10.0.0.1", "fe80::1%eth0", "::ffff:192.168.1.20", ""):
        assert refusal(client) == "not a client of this machine"
        # --host set to an address others reach: they may, with the key.
        assert refusal(client, remote=True) is None


def test_serves_an_ipv6_host_by_the_name_browsers_send(tmp_path: Path) -> None:
    # Browsers write an IPv6 literal in brackets, in the address and in Host.
    state = tmp_path / "state"
    _write_account(state / "broker-credentials.json")
    args = ("--host", "::1", "--broker-ws", BROKER_WS, "--state-dir", str(state))
    with _dashboard(tmp_path, *args, host="::1") as served:
        assert served.url.startswith(f"http://[::1]:{served.port}/index.html?")
        for host in (f"[::1]:{served.port}", f"127.0.0.1:{served.port}"):
            status, _, body = served.request("/broker.json", headers=served.own(Host=host))
            assert status == 200, body[:SHOWN]
            assert json.loads(body)["password"] == ACCOUNT["password"]
        refused = served.own(Host=f"::1:{served.port}")  # no browser sends that
        assert served.request("/broker.json", headers=refused)[0] == 403


def test_refuses_credentials_others_can_read(tmp_path: Path) -> None:
    clinic = tmp_path / "clinic.json"
    _write_account(clinic, mode=0o644)
    done = subprocess.run(
        [sys.executable, "-m", "hipsense", "dashboard", "--port", "0",
         "--broker-ws", "wss://clinic.example:9443/mqtt", "--credentials", str(clinic)],
        capture_output=True, timeout=10, check=False,
    )  # fmt: skip
    assert (done.returncode, done.stdout) == (1, b"")
    assert b"readable by you only (chmod 600" in done.stderr
    assert b"mode 644" in done.stderr
    # Private to its user, it is handed out, for its broker.
    os.chmod(clinic, 0o600)
    with _dashboard(
        tmp_path, "--broker-ws", "wss://clinic.example:9443/mqtt", "--credentials", str(clinic)
    ) as served:
        status, _, body = served.request("/broker.json", headers=served.own())
        assert status == 200
        assert json.loads(body) == {"broker": "wss://clinic.example:9443/mqtt", **ACCOUNT}


def test_hands_out_no_embedded_account_others_can_read(tmp_path: Path) -> None:
    # The gateway replaces such a file with a new account when it starts: until then,
    # the old one is no secret, and not handed out.
    state = tmp_path / "state"
    _write_account(state / "broker-credentials.json", mode=0o644)
    with _dashboard(tmp_path, "--broker-ws", BROKER_WS, "--state-dir", str(state)) as served:
        for _ in range(2):
            status, _, body = served.request("/broker.json", headers=served.own())
            assert (status, json.loads(body)) == (200, {})
        os.chmod(state / "broker-credentials.json", 0o600)
        assert json.loads(served.request("/broker.json", headers=served.own())[2]) == {
            "broker": BROKER_WS,
            **ACCOUNT,
        }
        warned = served.stderr.read_text()
        assert warned.count("readable by others: not handed to the page") == 1, warned


def test_reads_the_account_on_each_request(tmp_path: Path) -> None:
    # Started before the gateway ever ran: no account yet, then the one it made.
    state = tmp_path / "state"
    with _dashboard(tmp_path, "--broker-ws", BROKER_WS, "--state-dir", str(state)) as served:
        assert json.loads(served.request("/broker.json", headers=served.own())[2]) == {}
        _write_account(state / "broker-credentials.json")
        assert json.loads(served.request("/broker.json", headers=served.own())[2]) == {
            "broker": BROKER_WS,
            **ACCOUNT,
        }
