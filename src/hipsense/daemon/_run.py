"""`hipsense run`: the service (`_service.Service`) built from the daemon's settings."""

from typing import TextIO

from rich.console import Console

from ._config import DaemonSettings
from ._service import Service

__all__ = ["run_daemon"]


async def run_daemon(settings: DaemonSettings, *, live: Console | TextIO | None = None) -> int:
    """Run the service until SIGTERM / SIGINT; draw the terminal view on `live` if given.

    On a terminal the lines are redrawn in place; elsewhere each change is a plain line.
    """
    return await Service(settings, live=live).run()
