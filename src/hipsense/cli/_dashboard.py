"""`hipsense dashboard`: serve the reference clinic dashboard (a static page) locally.

The server hands out the page's own files and nothing else (an allow-list, not the
folder: it also holds package.json, node_modules/ and whatever an editor leaves behind),
each with headers that keep the page to itself: a Content-Security-Policy that lets it
run only its own scripts and styles and talk only to the broker it was started with
(and to this server), no MIME sniffing, and no Referer.

The page logs in to the broker with what `/broker.json` gives it: the embedded broker's
account from the gateway's state folder (or the file named by --credentials), with the
broker URL it belongs to, read on each request, never in a URL, never cached. Only the
user who started the server gets it: /broker.json asks for this run's key (random, made
at start, printed in the address's fragment, which browsers never send to a server),
sent back in a request header and compared in constant time. The Host must also name
this server (a page of another site, by DNS rebinding, gets nothing), a browser must say
the request is of the server's own page, and the client must be on this machine unless
--host was set to an address others reach.
"""

import argparse
import functools
import hmac
import http.server
import ipaddress
import json
import re
import secrets
import socket
import sys
import threading
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._errors import HipsenseError
from .._net import is_loopback as _is_loopback

if TYPE_CHECKING:
    from hipsense.mqtt import BrokerCredentials

__all__ = [
    "BROKER_JSON",
    "KEY_FRAGMENT",
    "KEY_HEADER",
    "PAGE_FILES",
    "add_parser",
    "content_security_policy",
    "dashboard_dir",
]

# Every file the page loads (index.html, what it links and the modules app.js imports;
# dashboard/vendor.mjs writes the vendor ones) with its media type, which is sent as
# is: with nosniff, a browser runs a script only when it is labelled as one.
PAGE_FILES: dict[str, str] = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "board.js": "text/javascript; charset=utf-8",
    "patient.js": "text/javascript; charset=utf-8",
    "util.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
    "vendor/mqtt.min.js": "text/javascript; charset=utf-8",
    "vendor/uPlot.iife.min.js": "text/javascript; charset=utf-8",
    "vendor/uPlot.min.css": "text/css; charset=utf-8",
}

# Not a file: the broker account the page logs in with, made on each request.
BROKER_JSON = "broker.json"
# This run's key: in the printed address's fragment as #k=..., which the page takes out
# of its address and sends back to /broker.json in this header. The key is per run, not
# per request: it is never in a URL a browser sends (nor so in a Referer, a log or a
# proxy's), only in the terminal of the user who started the server and in the tab's
# memory and session history, so a reload of the page (which keeps that history entry)
# logs in again. Anyone who could read it there could read the account itself.
KEY_FRAGMENT = "k"
KEY_HEADER = "X-Hipsense-Key"
_KEY_BYTES = 32  # 256 random bits: no one guesses it, however many requests they send
# The page's fetch, of its own origin, as browsers say in Sec-Fetch-Site ("none" would be
# the address typed in, "same-site" or "cross-site" another page). A client without the
# header (no browser, or an old one) must still send the key.
_OWN_FETCH_SITE = "same-origin"
# Bits of a file's mode that let others read or change it: an account in such a file is
# no secret (the embedded broker replaces one with a new account).
_OTHERS = 0o077

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
        "broker's, from the gateway's state folder), never with one in its address. The "
        "printed address holds this run's key (after #, so no request carries it): only a "
        "page opened with it gets the account.",
    )
    p.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to serve on; the broker account goes to clients of this machine "
        "only, unless it is one that others reach (0.0.0.0, say)",
    )
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
        "broker with instead; refused when others may read it (chmod 600)",
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
        key: str,
        remote: bool,
        **kwargs: Any,
    ) -> None:
        # Set before the base class's __init__, which handles the request.
        self.folder = folder
        self.policy = policy
        self.account = account
        self.hosts = hosts
        self.key = key
        self.remote = remote
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
        refused = account_refusal(
            client=str(self.client_address[0]),
            host=self.headers.get("Host", ""),
            fetch_site=self.headers.get("Sec-Fetch-Site"),
            key=self.headers.get(KEY_HEADER),
            hosts=self.hosts,
            expected_key=self.key,
            remote=self.remote,
        )
        if refused is not None:
            self.send_error(403, explain=refused)
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


def account_refusal(
    *,
    client: str,
    host: str,
    fetch_site: str | None,
    key: str | None,
    hosts: set[str],
    expected_key: str,
    remote: bool,
) -> str | None:
    """Why a request for /broker.json gets no account (a reason), or None: it gets it.

    `client` is the peer's address, `host`, `fetch_site` and `key` its Host,
    Sec-Fetch-Site and KEY_HEADER headers (None when missing); `hosts` this server's
    names with their port, `expected_key` this run's key, and `remote` whether --host
    was set to an address others reach (else only this machine's clients are served).
    """
    if not remote and not _is_loopback_client(client):
        return "not a client of this machine"
    if host.lower() not in hosts:
        return "not a name of this server"  # a DNS-rebinding page of another site
    if fetch_site is not None and fetch_site != _OWN_FETCH_SITE:
        return "not a request of this server's page"  # another site's, or a typed address
    # Compared as bytes (headers are Latin-1), in constant time.
    given = (key or "").encode("latin-1", "replace")
    if not key or not hmac.compare_digest(given, expected_key.encode("ascii")):
        return f"no {KEY_HEADER}, or not this run's: open the address the dashboard printed"
    return None


def _is_loopback_client(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped  # ::ffff:127.0.0.1, from a dual-stack socket
    return ip.is_loopback


def _url_host(host: str) -> str:
    """`host` as it goes in a URL or a Host header: an IPv6 literal in brackets."""
    return f"[{host}]" if _is_ipv6(host) else host


def _private_account(path: Path) -> "BrokerCredentials | None":
    """The account in `path`, or None: missing, unreadable, no account, or others may read it."""
    from hipsense.mqtt import read_broker_credentials

    try:
        if path.stat().st_mode & _OTHERS:
            return None
    except OSError:
        return None
    return read_broker_credentials(path)


def _check_credentials_file(path: Path) -> None:
    """Refuse --credentials that holds no account, or that others may read."""
    from hipsense.mqtt import read_broker_credentials

    if read_broker_credentials(path) is None:
        raise HipsenseError(
            f'dashboard: expected --credentials as a JSON file {{"username": ..., '
            f'"password": ...}}, got {path}'
        )
    mode = path.stat().st_mode & 0o777
    if mode & _OTHERS:
        raise HipsenseError(
            f"dashboard: expected --credentials readable by you only (chmod 600 {path}), "
            f"got mode {mode:o}: an account others can read is no secret, give it a new "
            f"password"
        )


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


def _readable_by_others(path: Path) -> bool:
    try:
        return bool(path.stat().st_mode & _OTHERS)
    except OSError:
        return False


class _IPv6Server(http.server.ThreadingHTTPServer):
    address_family = socket.AF_INET6


def _serve(args: argparse.Namespace) -> int:
    from hipsense.mqtt._embedded import ORIGINS_ENV, dashboard_origins

    folder = dashboard_dir()
    if not (folder / "index.html").is_file():
        raise HipsenseError(f"dashboard: expected the page in {folder}, found none")
    policy = content_security_policy(args.broker_ws)
    account_file = _account_file(args)
    if args.credentials is not None:
        _check_credentials_file(Path(args.credentials))
    warned = threading.Event()

    def account() -> dict[str, str]:
        # Read on each request: the page gets the account even when the gateway made it
        # after this server started. With the broker it is for: the page connects to
        # that one, whatever its address says.
        if account_file is None:
            return {}
        found = _private_account(account_file)
        if found is None:
            if _readable_by_others(account_file) and not warned.is_set():
                warned.set()  # once: the page asks again every few seconds
                print(
                    f"hipsense dashboard: {account_file} is readable by others: not handed "
                    f"to the page (the gateway makes a new account when it starts)",
                    file=sys.stderr,
                    flush=True,
                )
            return {}
        return {"broker": args.broker_ws, "username": found.username, "password": found.password}

    hosts: set[str] = set()  # this server's names, once it knows its port
    key = secrets.token_urlsafe(_KEY_BYTES)
    handler = functools.partial(
        _PageHandler,
        folder=folder,
        policy=policy,
        account=account,
        hosts=hosts,
        key=key,
        # Clients of other machines only when asked for, with an address they reach.
        remote=not _is_loopback(args.host),
    )
    server_class = _IPv6Server if _is_ipv6(args.host) else http.server.ThreadingHTTPServer
    try:
        server = server_class((args.host, args.port), handler)
    except OSError as exc:
        raise HipsenseError(
            f"dashboard: expected to serve on {args.host}:{args.port}, got {exc}"
        ) from exc
    host, port = _url_host(str(server.server_address[0])), int(server.server_address[1])
    names = ("127.0.0.1", "localhost", args.host)
    hosts.update(f"{_url_host(name).lower()}:{port}" for name in names)
    query = urllib.parse.urlencode({"broker": args.broker_ws, "prefix": args.prefix})
    fragment = urllib.parse.urlencode({KEY_FRAGMENT: key})
    print(f"hipsense dashboard: http://{host}:{port}/index.html?{query}#{fragment}", flush=True)
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
