"""Logging of `hipsense run` and `hipsense demo`: readable text or JSON lines.

With the terminal view on, logs go through the view's console (Rich's `RichHandler`),
so they scroll above the live lines instead of tearing them. The embedded broker's
libraries say a lot at INFO (a line per MQTT state-machine callback); they are kept to
warnings unless asked for (`--verbose`).
"""

import json
import logging
import sys
from datetime import UTC, datetime
from typing import TextIO

from rich.console import Console
from rich.logging import RichHandler
from rich.text import Text

__all__ = ["CHATTY_LOGGERS", "configure_logging"]

CHATTY_LOGGERS = ("amqtt", "transitions", "websockets")
"""The embedded broker (amqtt), its state machines (transitions) and its WebSockets
listener: kept to warnings unless `verbose`."""


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return json.dumps(entry)


class _ConsoleLineHandler(logging.Handler):
    """Formatted records as whole lines through a console (JSON beside a live view)."""

    def __init__(self, console: Console) -> None:
        super().__init__()
        self.console = console

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.console.print(Text(self.format(record)), soft_wrap=True)
        except Exception:
            self.handleError(record)


def configure_logging(
    fmt: str,
    level: str,
    stream: TextIO = sys.stderr,
    *,
    console: Console | None = None,
    verbose: bool = False,
) -> None:
    """Structured logs: one JSON object a line (`json`) or readable text.

    `console`: the live view's console, to log through (above the live lines) instead of
    writing to `stream`. `verbose`: the broker's libraries log at `level` too.
    """
    handler: logging.Handler
    if console is not None and fmt != "json":
        handler = RichHandler(
            console=console,
            show_path=False,
            markup=False,
            rich_tracebacks=False,
            log_time_format="%H:%M:%S",
        )
        handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
    elif console is not None:
        handler = _ConsoleLineHandler(console)
        handler.setFormatter(_JsonFormatter())
    else:
        handler = logging.StreamHandler(stream)
        handler.setFormatter(
            _JsonFormatter()
            if fmt == "json"
            else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
        )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in CHATTY_LOGGERS:
        logging.getLogger(name).setLevel(logging.NOTSET if verbose else logging.WARNING)
