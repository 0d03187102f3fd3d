"""`hipsense dashboard`: serve the reference clinic dashboard (a static page) locally."""

import argparse
import functools
import http.server
import threading
import urllib.parse
from pathlib import Path

from .._errors import HipsenseError

__all__ = ["add_parser", "dashboard_dir"]


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
        "to the broker over MQTT-over-WebSockets) on this machine and print its address.",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to serve on")
    p.add_argument("--port", type=int, default=8080, help="0: any free port")
    p.add_argument(
        "--broker-ws",
        default="ws://127.0.0.1:9001/mqtt",
        help="the broker's WebSockets URL as the browser reaches it "
        "(the embedded broker's is the default)",
    )
    p.add_argument("--prefix", default="hipsense/v1", help="topic prefix before the gateway id")
    p.set_defaults(func=_serve)


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


def _serve(args: argparse.Namespace) -> int:
    folder = dashboard_dir()
    if not (folder / "index.html").is_file():
        raise HipsenseError(f"dashboard: expected the page in {folder}, found none")
    handler = functools.partial(_Quiet, directory=str(folder))
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
