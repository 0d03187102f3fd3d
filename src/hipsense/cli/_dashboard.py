"""`hipsense dashboard`: serve the reference clinic dashboard (a static page) locally.

The server hands out the page's own files and nothing else (an allow-list, not the
folder: it also holds package.json, node_modules/ and whatever an editor leaves behind),
each with headers that keep the page to itself: a Content-Security-Policy that lets it
run only its own scripts and styles and talk only to the broker it was started with,
no MIME sniffing, and no Referer (the page's address may carry broker credentials).
"""

import argparse
import functools
import http.server
import ipaddress
import re
import threading
import urllib.parse
from pathlib import Path
from typing import Any

from .._errors import HipsenseError

__all__ = ["PAGE_FILES", "add_parser", "content_security_policy", "dashboard_dir"]

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
        "The page may connect to that broker only (its Content-Security-Policy says so).",
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
    p.set_defaults(func=_serve)


def content_security_policy(broker_ws: str) -> str:
    """The page's Content-Security-Policy: its own files, and a WebSocket to `broker_ws`.

    Everything the page runs and styles itself with comes from this server (no inline
    script or style, so markup that slipped into the page could not run), and it may
    open a connection to the broker's origin only, so a `broker` in the query string
    cannot send it, or the credentials next to it, anywhere else.
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
            f"connect-src {broker}",
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


def _page_file(target: str) -> str | None:
    """The allow-listed file (a key of PAGE_FILES) a request target names, or None.

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
    return name if path.startswith("/") and name in PAGE_FILES else None


class _PageHandler(http.server.BaseHTTPRequestHandler):
    """GET and HEAD of the page's files (PAGE_FILES); 404 for any other path."""

    server_version = "hipsense-dashboard"
    sys_version = ""  # nobody needs to know the Python version

    def __init__(self, *args: Any, folder: Path, policy: str, **kwargs: Any) -> None:
        # Set before the base class's __init__, which handles the request.
        self.folder = folder
        self.policy = policy
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

    def end_headers(self) -> None:
        # On every answer, the error pages included.
        self.send_header("Content-Security-Policy", self.policy)
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        self.send_header("X-Frame-Options", "DENY")  # frame-ancestors, for older browsers
        super().end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


def _serve(args: argparse.Namespace) -> int:
    folder = dashboard_dir()
    if not (folder / "index.html").is_file():
        raise HipsenseError(f"dashboard: expected the page in {folder}, found none")
    handler = functools.partial(
        _PageHandler, folder=folder, policy=content_security_policy(args.broker_ws)
    )
    try:
        server = http.server.ThreadingHTTPServer((args.host, args.port), handler)
    except OSError as exc:
        raise HipsenseError(
            f"dashboard: expected to serve on {args.host}:{args.port}, got {exc}"
        ) from exc
    host, port = str(server.server_address[0]), int(server.server_address[1])
    query = urllib.parse.urlencode({"broker": args.broker_ws, "prefix": args.prefix})
    print(f"hipsense dashboard: http://{host}:{port}/index.html?{query}", flush=True)
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
