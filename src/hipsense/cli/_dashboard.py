"""`hipsense dashboard`: serve the reference clinic dashboard (a static page) locally.

The server hands out the page's own files and nothing else (an allow-list, not the
folder: it also holds package.json, node_modules/ and whatever an editor leaves behind),
each with headers that keep the page to itself: a Content-Security-Policy that lets it
run only its own scripts and styles and talk only to the broker it was started with
(and to this server), no MIME sniffing, and no Referer.

The page logs in to the broker with what `/broker.json` gives it: the embedded broker's
account from the gateway's state folder (or the file named by --credentials), read on
each request, never in a URL, never cached, and only for a request that names this
server by a loopback name or by --host (so a page of another site, by DNS rebinding,
does not get it).
"""

import argparse
import functools
import http.server
import ipaddress
import json
import re
import sys
import threading
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .._errors import HipsenseError

__all__ = ["BROKER_JSON", "PAGE_FILES", "add_parser", "content_security_policy", "dashboard_dir"]

# Every file the page loads (index.html and what it links; dashboard/vendor.mjs writes
# the vendor ones) with its media type, which is sent as is: with nosniff, a browser
# runs a script only when it is labelled as one.
PAGE_FILES: dict[str, str] = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
    "vendor/mqtt.min.js": "text/javascript; charset=utf-8",
    "vendor/uPlot.iife.min.js": "text/javascript; charset=utf-8",
    "vendor/uPlot.min.css": "text/css; charset=utf-8",
}

# Not a file: the broker account the page logs in with, made on each request.
BROKER_JSON = "broker.json"
# A page of this server sends "same-origin"; "none" is the user typing the address.
_OWN_FETCH_SITES = ("same-origin", "none")

# A %-escape that is not one (such as "%zz" or a lone "%"): no browser sends it.
_BROKEN_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
# A path as browsers send it: printable ASCII (they escape the rest).
_TARGET_CHARS = re.compile(r"[!-~]*")
# What a CSP host-source may hold (no IPv6 literal: the grammar has none).
_CSP_HOST = re.compile(r"[A-Za-z0-9.-]+")


def dashboard_dir() -> Path:
    """The page's folder: the installed copy, or the repository's dashboard/."""
    packaged = Path(__file__).resolve().parent.parent / "_dashboard"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parents[3] / "dashboard"


def add_parser(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Register `dashboard`."""
    p = sub.add_parser(
        "dashboard",
        help="serve the clinic dashboard locally and print its address",
        description="Serve the reference dashboard (dashboard/: a static page that subscribes "
        "to the broker over MQTT-over-WebSockets) on this machine and print its address. "
        "The page may connect to that broker only (its Content-Security-Policy says so), "
        "and logs in with the account this server hands it at /broker.json (the embedded "
        "broker's, from the gateway's state folder), never with one in its address.",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to serve on")
    p.add_argument("--port", type=int, default=8080, help="0: any free port")
    p.add_argument(
        "--broker-ws",
        default="ws://127.0.0.1:9001/mqtt",
        help="the broker's WebSockets URL as the browser reaches it "
        "(the embedded broker's is the default); the only one the page may connect to",
    )
    p.add_argument("--prefix", default="hipsense/v1", help="topic prefix before the gateway id")
    p.add_argument(
        "--state-dir",
        type=Path,
        help="the gateway's state folder, whose embedded-broker account the page logs in "
        "with when --broker-ws is on loopback (default: $HIPSENSE_STATE_DIR or XDG state)",
    )
    p.add_argument(
        "--credentials",
        type=Path,
        help='a JSON file {"username": ..., "password": ...} the page logs in to the '
        "broker with instead (keep it private to you: chmod 600)",
    )
    p.set_defaults(func=_serve)


def content_security_policy(broker_ws: str) -> str:
    """The page's Content-Security-Policy: its own files, and a WebSocket to `broker_ws`.

    Everything the page runs and styles itself with comes from this server (no inline
    script or style, so markup that slipped into the page could not run), and it may
    open a connection to the broker's origin only (and fetch from this server, for
    /broker.json), so a `broker` in the query string cannot send it, or the credentials
    it logs in with, anywhere else.
    """
    parts = urllib.parse.urlsplit(broker_ws)
    host = parts.hostname or ""
    try:
        port = parts.port
    except ValueError:  # not a number, or out of range
        port = -1
    ipv6 = ":" in host and _is_ipv6(host)
    if parts.scheme not in ("ws", "wss") or port == -1 or not (ipv6 or _CSP_HOST.fullmatch(host)):
        raise HipsenseError(
            f"dashboard: expected --broker-ws as ws://host:port/path or wss://..., "
            f"got {broker_ws!r}"
        )
    if ipv6:
        # A policy cannot name an IPv6 literal (its host grammar has none): allow the
        # scheme, no wider.
        broker = f"{parts.scheme}:"
    else:
        # Only the parts checked above reach the header, so nothing in the URL can add
        # a directive to it. The loopback broker goes by either name: the page's own
        # default (no `broker` in the query) takes the host name of its address.
        names = ["127.0.0.1", "localhost"] if host in ("127.0.0.1", "localhost") else [host]
        suffix = "" if port is None else f":{port}"
        broker = " ".join(f"{parts.scheme}://{name}{suffix}" for name in names)
    return "; ".join(
        [
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            "img-src 'self'",
            f"connect-src 'self' {broker}",
            # mqtt.js runs its keepalive timers in a Worker made from a blob of its own,
            # so that a tab in the background (whose timers browsers slow down to a
            # minute) still pings the broker in time.
            "worker-src blob:",
            "object-src 'none'",
            "base-uri 'none'",
            "form-action 'none'",
            "frame-ancestors 'none'",
        ]
    )


def _is_ipv6(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).version == 6
    except ValueError:
        return False


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _page_file(target: str) -> str | None:
    """The allow-listed file (a key of PAGE_FILES, or BROKER_JSON) a target names, or None.

    Only exact names match: a directory, a dotfile, any other file of the folder and
    any path with "..", escaped or not, name none. Raises ValueError for a target no
    browser sends: outside printable ASCII, a broken %-escape, an escape that decodes
    to a control character (such as %00) or to bytes that are not UTF-8.
    """
    raw = urllib.parse.urlsplit(target).path  # the query is the page's business
    if not _TARGET_CHARS.fullmatch(raw) or _BROKEN_ESCAPE.search(raw):
        raise ValueError(f"malformed request target {target!r}")
    path = urllib.parse.unquote(raw, errors="strict")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in path):
        raise ValueError(f"control character in request target {target!r}")
    name = "index.html" if path == "/" else path.removeprefix("/")
    return name if path.startswith("/") and (name in PAGE_FILES or name == BROKER_JSON) else None


class _PageHandler(http.server.BaseHTTPRequestHandler):
    """GET and HEAD of the page's files (PAGE_FILES) and BROKER_JSON; 404 for any other path."""

    server_version = "hipsense-dashboard"
    sys_version = ""  # nobody needs to know the Python version

    def __init__(
        self,
        *args: Any,
        folder: Path,
        policy: str,
        account: Callable[[], dict[str, str]],
        hosts: set[str],
        **kwargs: Any,
    ) -> None:
        # Set before the base class's __init__, which handles the request.
        self.folder = folder
        self.policy = policy
        self.account = account
        self.hosts = hosts
        super().__init__(*args, **kwargs)

    def do_GET(self) -> None:
        """Send the file."""
        self._send(with_body=True)

    def do_HEAD(self) -> None:
        """Send the file's headers."""
        self._send(with_body=False)

    def _send(self, *, with_body: bool) -> None:
        try:
            name = _page_file(self.path)
        except ValueError:
            self.send_error(400)
            return
        if name is None:
            self.send_error(404)
            return
        if name == BROKER_JSON:
            self._send_account(with_body=with_body)
            return
        try:
            body = (self.folder / name).read_bytes()
        except OSError:  # a checkout without its vendor files, say
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", PAGE_FILES[name])
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if with_body:
            self.wfile.write(body)

    def _send_account(self, *, with_body: bool) -> None:
        # Only for this server's own page: a request that names it by another host (a
        # DNS-rebinding page of another site) or that another site's page made.
        if (
            self.headers.get("Host", "").lower() not in self.hosts
            or self.headers.get("Sec-Fetch-Site", "same-origin") not in _OWN_FETCH_SITES
        ):
            self.send_error(403)
            return
        body = json.dumps(self.account()).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("Cross-Origin-Resource-Policy", "same-origin")
        self.end_headers()
        if with_body:
            self.wfile.write(body)

    def end_headers(self) -> None:
        # On every answer, the error pages included.
        self.send_header("Content-Security-Policy", self.policy)
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        self.send_header("X-Frame-Options", "DENY")  # frame-ancestors, for older browsers
        super().end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


def _account_file(args: argparse.Namespace) -> Path | None:
    """The file whose account the page gets: --credentials, else the embedded broker's.

    The embedded broker's only for a broker on loopback: it listens nowhere else, and
    its account must not go to another broker.
    """
    if args.credentials is not None:
        return Path(args.credentials)
    if not _is_loopback(urllib.parse.urlsplit(args.broker_ws).hostname or ""):
        return None
    from hipsense.daemon import default_state_dir
    from hipsense.mqtt import CREDENTIALS_FILE

    return (args.state_dir or default_state_dir()) / CREDENTIALS_FILE


def _serve(args: argparse.Namespace) -> int:
    from hipsense.mqtt import read_broker_credentials
    from hipsense.mqtt._embedded import ORIGINS_ENV, dashboard_origins

    folder = dashboard_dir()
    if not (folder / "index.html").is_file():
        raise HipsenseError(f"dashboard: expected the page in {folder}, found none")
    policy = content_security_policy(args.broker_ws)
    account_file = _account_file(args)
    if args.credentials is not None and read_broker_credentials(args.credentials) is None:
        raise HipsenseError(
            f'dashboard: expected --credentials as a JSON file {{"username": ..., '
            f'"password": ...}}, got {args.credentials}'
        )

    def account() -> dict[str, str]:
        # Read on each request: the page gets the account even when the gateway made it
        # after this server started.
        found = None if account_file is None else read_broker_credentials(account_file)
        return {} if found is None else {"username": found.username, "password": found.password}

    hosts: set[str] = set()  # this server's names, once it knows its port
    handler = functools.partial(
        _PageHandler, folder=folder, policy=policy, account=account, hosts=hosts
    )
    try:
        server = http.server.ThreadingHTTPServer((args.host, args.port), handler)
    except OSError as exc:
        raise HipsenseError(
            f"dashboard: expected to serve on {args.host}:{args.port}, got {exc}"
        ) from exc
    host, port = str(server.server_address[0]), int(server.server_address[1])
    hosts.update(f"{name.lower()}:{port}" for name in ("127.0.0.1", "localhost", args.host))
    query = urllib.parse.urlencode({"broker": args.broker_ws, "prefix": args.prefix})
    print(f"hipsense dashboard: http://{host}:{port}/index.html?{query}", flush=True)
    origin = f"http://{host}:{port}"
    try:
        allowed = origin in dashboard_origins()
    except HipsenseError:  # a malformed variable: the gateway says so when it starts
        allowed = False
    if args.credentials is None and account_file is not None and not allowed:
        print(
            f"hipsense dashboard: the embedded broker takes pages of http://127.0.0.1:8080 "
            f"(or of {ORIGINS_ENV}) only: for this one, start the gateway with "
            f"{ORIGINS_ENV}={origin}",
            file=sys.stderr,
            flush=True,
        )
    thread = threading.Thread(target=server.serve_forever, name="hipsense-dashboard")
    thread.start()
    try:
        thread.join()
    except KeyboardInterrupt:
        pass
    finally:
        server.shutdown()
        thread.join()
    return 0
