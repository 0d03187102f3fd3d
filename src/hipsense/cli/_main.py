"""Entry point of the `hipsense` command."""

import argparse
import os
import sys
from collections.abc import Sequence

from .._errors import HipsenseError
from .._version import __version__
from . import (
    _analyze,
    _contract,
    _dashboard,
    _demo,
    _exercises,
    _history,
    _run,
    _scan,
    _simulate,
)

__all__ = ["main"]

_DESCRIPTION = """\
hipsense measures home hip-rehab exercises with one IMU strapped to the thigh: it counts
reps, measures range of motion, end-range holds and tempo, flags form errors, and
publishes results over MQTT for clinic dashboards.
"""


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Help that shows each option's default, unless it has none or the text says it."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        default = action.default
        # By identity: a default of 0 (--seed) is shown, one of False (a flag) is not.
        shown = not (
            default is None or default is False or default == [] or default == "==SUPPRESS=="
        )
        if not shown or not action.option_strings or "default" in text:
            return action.help
        # A help with no words of its own ("--sets") still says what the default is.
        return f"{text} (default: %(default)s)" if text else "default: %(default)s"


def _formatted(parser: argparse.ArgumentParser) -> None:
    """`_HelpFormatter` for the parser and every subcommand's, at any depth."""
    parser.formatter_class = _HelpFormatter
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                _formatted(child)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hipsense",
        description=_DESCRIPTION,
        formatter_class=_HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"hipsense {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    _demo.add_parser(sub)
    _run.add_parser(sub)
    _history.add_parsers(sub)
    _dashboard.add_parser(sub)
    _exercises.add_parser(sub)
    _simulate.add_parser(sub)
    _analyze.add_parser(sub)
    _contract.add_parser(sub)
    _scan.add_parser(sub)
    _formatted(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        # A command is required: say which there are, and fail as a usage error does.
        parser.print_help(sys.stderr)
        return 2
    try:
        status: int = args.func(args)
    except HipsenseError as exc:
        print(f"hipsense: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (`hipsense exercises | head`); that is not an error.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    return status
