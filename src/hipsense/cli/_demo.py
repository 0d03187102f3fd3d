"""`hipsense demo`: a simulated session from sensor to broker, printed as it happens."""

import argparse
import asyncio
import math
from pathlib import Path

from ..protocol import SAMPLE_RATES_HZ
from ._history import patient_id
from ._run import add_verbose, view_and_logs

__all__ = ["add_parser"]

_FAULTS = ("too_fast", "too_much_range", "off_plane", "hold_short", "eccentric_fast", "partial")


def _fault(text: str) -> tuple[str, int]:
    kind, _, rep = text.partition("=")
    if kind not in _FAULTS or not rep.isdigit() or int(rep) < 1:
        raise argparse.ArgumentTypeError(
            f"expected KIND=REP with KIND one of {', '.join(_FAULTS)} and REP >= 1, got {text!r}"
        )
    return kind, int(rep)


def add_parser(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Register `demo`."""
    p = sub.add_parser(
        "demo",
        help="run a simulated session end to end: sensor, motion core, MQTT",
        description="Simulate a thigh sensor doing an exercise, stream its native-protocol "
        "packets over a lossy link into the motion core, publish reps, holds and the summary "
        "over MQTT (to an embedded broker unless --broker is given), and print the reps as "
        "they happen.",
    )
    what = p.add_mutually_exclusive_group()
    what.add_argument("--exercise", default="clamshell", help="exercise id (hipsense exercises)")
    what.add_argument(
        "--program",
        help="a program of configs/programs (e.g. hip-core-level-1): each exercise as a "
        "session, tracked against the program",
    )
    p.add_argument("--variant", help="exercise variant, e.g. with-elastic")
    p.add_argument("--reps", type=int, default=10, help="reps (or holds) per set")
    p.add_argument("--sets", type=int, default=2, help="sets of the exercise")
    p.add_argument(
        "--speed",
        type=_speed,
        default=10.0,
        help="times faster than real time (0: as fast as possible)",
    )
    p.add_argument(
        "--broker",
        metavar="URL",
        help="mqtt://host:port or mqtts://...; default: an embedded broker on loopback",
    )
    p.add_argument("--broker-ca", type=Path, help="CA certificate to trust for mqtts://")
    p.add_argument("--state-dir", type=Path, help="outbox and gateway id (default: XDG state)")
    p.add_argument("--gateway-id", help="default: a random id kept in the state folder")
    p.add_argument("--session-id", help="default: a new unique id")
    p.add_argument(
        "--patient",
        type=patient_id,
        metavar="ID",
        help="pseudonymous id of the simulated patient, in the summaries (default: "
        "demo-patient with --program, none without)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the simulated patient")
    p.add_argument("--rate", type=int, default=100, choices=SAMPLE_RATES_HZ, help="Hz")
    p.add_argument("--mtu", type=int, default=247, choices=(23, 247), help="negotiated ATT MTU")
    p.add_argument("--loss", type=float, default=0.01, help="share of packets lost")
    p.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="KIND=REP",
        type=_fault,
        help="a form fault of the simulated patient in every set, e.g. too_fast=3 "
        f"(kinds: {', '.join(_FAULTS)})",
    )
    add_verbose(p)
    p.set_defaults(func=_demo)


def _demo(args: argparse.Namespace) -> int:
    from ..daemon import DemoOptions, run_demo

    options = DemoOptions(
        exercise=args.exercise,
        variant=args.variant,
        reps=args.reps,
        sets=args.sets,
        speed=args.speed if args.speed > 0 else math.inf,
        broker_url=args.broker,
        broker_ca=args.broker_ca,
        state_dir=args.state_dir,
        gateway_id=args.gateway_id,
        session_id=args.session_id,
        patient_id=args.patient,
        seed=args.seed,
        program=args.program,
        faults=tuple(args.fault),
        rate_hz=args.rate,
        mtu=args.mtu,
        loss=args.loss,
    )
    # Warnings only: the demo prints what happens itself; -v adds the service's logs.
    level = "info" if args.verbose else "warning"
    console = view_and_logs(True, "text", level, verbose=args.verbose)
    assert console is not None
    return asyncio.run(run_demo(options, console))


def _speed(text: str) -> float:
    """A replay speed: 0 (as fast as possible) or a positive factor."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (value == 0 or 0 < value < math.inf):
        raise argparse.ArgumentTypeError(
            f"expected 0 (as fast as possible) or a positive number, got {text!r}"
        )
    return value
