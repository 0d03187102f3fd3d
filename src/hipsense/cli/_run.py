"""`hipsense run`: the daemon."""

import argparse
import asyncio
import os
import sys
from pathlib import Path

__all__ = ["add_parser"]


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
        help="draw a live line per sensor (default: when the output is a terminal)",
    )
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from ..daemon import configure_logging, load_settings, run_daemon

    settings = load_settings(args.config)
    live = sys.stdout.isatty() if args.live is None else args.live
    configure_logging(settings.log_format, settings.log_level)
    return asyncio.run(run_daemon(settings, live=sys.stdout if live else None))
