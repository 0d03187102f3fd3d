"""`hipsense run`: the daemon."""

import argparse
import asyncio
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console

__all__ = ["add_parser", "add_verbose", "view_and_logs"]


def add_parser(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Register `run`."""
    p = sub.add_parser(
        "run",
        help="run the service: sensors -> motion core -> MQTT, until SIGTERM",
        description="Run hipsense as a service. Settings come from a TOML file "
        "(configs/hipsense.example.toml documents every key) and HIPSENSE_* environment "
        "variables, which win (nested keys with '__', e.g. HIPSENSE_BROKER__URL).",
    )
    p.add_argument(
        "--config",
        type=Path,
        default=os.environ.get("HIPSENSE_CONFIG"),
        help="TOML settings file (default: $HIPSENSE_CONFIG)",
    )
    p.add_argument(
        "--live",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="a line per sensor, redrawn in place on a terminal, printed as it changes "
        "elsewhere (default: on when the output is a terminal)",
    )
    add_verbose(p)
    p.set_defaults(func=_run)


def add_verbose(p: argparse.ArgumentParser) -> None:
    """`-v`: the embedded broker's own logs too (kept to warnings otherwise)."""
    p.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="also log what the embedded broker's libraries (amqtt, transitions, websockets) "
        "say below warnings",
    )


def view_and_logs(
    live: bool, log_format: str, log_level: str, *, verbose: bool
) -> "Console | None":
    """Set up logging; return the live view's console (None: no view).

    On a terminal, logs go through the view's console so they scroll above its lines,
    unless stderr goes elsewhere (`2>file`), where they stay.
    """
    from ..daemon import configure_logging, view_console

    console = view_console(sys.stdout) if live else None
    through = console is not None and console.is_terminal and sys.stderr.isatty()
    configure_logging(log_format, log_level, console=console if through else None, verbose=verbose)
    return console


def _run(args: argparse.Namespace) -> int:
    from ..daemon import load_settings, run_daemon

    settings = load_settings(args.config)
    live = sys.stdout.isatty() if args.live is None else args.live
    console = view_and_logs(live, settings.log_format, settings.log_level, verbose=args.verbose)
    return asyncio.run(run_daemon(settings, live=console))
