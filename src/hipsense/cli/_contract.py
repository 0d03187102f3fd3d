"""`hipsense contract`: check or rewrite the MQTT contract files in docs/."""

import argparse
from pathlib import Path

__all__ = ["add_parser"]


def add_parser(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Register `contract`."""
    p = sub.add_parser(
        "contract",
        help="check (or --write) docs/schemas/ and docs/asyncapi.yaml",
        description="The MQTT contract (JSON Schemas and the AsyncAPI document) is "
        "generated from the payload models. Without --write, exit 1 when the files in "
        "DOCS differ from the models.",
    )
    p.add_argument("--docs", type=Path, default=Path("docs"), help="docs folder (default: docs)")
    p.add_argument("--write", action="store_true", help="rewrite the files")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    # Imported here: the models pull in pydantic, the motion core and aiomqtt, which
    # every other command would otherwise pay for at start-up.
    from ..mqtt._contract import stale, write

    if args.write:
        for path in write(args.docs):
            print(f"wrote {path}")
        return 0
    out_of_date = stale(args.docs)
    for path in out_of_date:
        print(f"out of date: {path} (run: hipsense contract --write)")
    if not out_of_date:
        print("the MQTT contract in docs/ matches the models")
    return 1 if out_of_date else 0
