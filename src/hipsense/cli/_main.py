"""Entry point of the `hipsense` command."""

import argparse
import os
import sys
import time
from collections.abc import Sequence

import numpy as np

from .._errors import HipsenseError
from .._version import __version__
from ..protocol import (
    DEFAULT_ATT_PAYLOAD,
    MAX_ATT_PAYLOAD,
    SAMPLE_RATES_HZ,
    Gap,
    MalformedPacket,
    SampleBlock,
    StreamFormat,
    StreamReassembler,
)
from . import _analyze, _contract, _exercises, _simulate

__all__ = ["main"]

_DESCRIPTION = """\
hipsense measures home hip-rehab exercises with one IMU strapped to the thigh: it counts
reps, measures range of motion, end-range holds and tempo, flags form errors, and
publishes results over MQTT for clinic dashboards.
"""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hipsense",
        description=_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"hipsense {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    demo = sub.add_parser(
        "demo",
        help="stream a simulated sensor through the protocol decoder and print it",
        description="Simulate a thigh sensor doing clamshells, send its samples as native "
        "protocol packets over a lossy link, decode and reassemble them, and print one line "
        "per second of sensor time.",
    )
    demo.add_argument("--seconds", type=float, default=30.0, help="sensor time to simulate")
    demo.add_argument(
        "--speed",
        type=float,
        default=10.0,
        help="times faster than real time (0: as fast as possible)",
    )
    demo.add_argument(
        "--rate", type=int, default=100, choices=SAMPLE_RATES_HZ, help="sample rate in Hz"
    )
    demo.add_argument(
        "--mtu",
        type=int,
        default=247,
        choices=(23, 247),
        help="negotiated ATT MTU: 23 sends one sample per packet",
    )
    demo.add_argument("--loss", type=float, default=0.01, help="share of packets dropped")
    demo.add_argument("--seed", type=int, default=0)
    demo.set_defaults(func=_demo)
    _exercises.add_parser(sub)
    _simulate.add_parser(sub)
    _analyze.add_parser(sub)
    _contract.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
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


def _demo(args: argparse.Namespace) -> int:
    # Imported here: the simulators are only needed by the commands that simulate.
    from hipsense_sim import DemoSensor

    fmt = StreamFormat(rate_hz=args.rate)
    att = DEFAULT_ATT_PAYLOAD if args.mtu == 23 else MAX_ATT_PAYLOAD
    sensor = DemoSensor(fmt=fmt, seed=args.seed, att_payload=att, drop_ratio=args.loss)
    reassembler = StreamReassembler(fmt)
    print(
        f"simulated thigh sensor: clamshells, {fmt.rate_hz} Hz, MTU {args.mtu}, "
        f"{args.loss:.0%} packet loss, speed x{args.speed:g}"
    )
    print(
        f"{'time_s':>7} {'samples':>7} {'acc_x':>7} {'acc_y':>7} {'acc_z':>7} "
        f"{'gyr_x':>7} {'gyr_y':>7} {'gyr_z':>7}   (m/s^2, deg/s; means over 1 s)"
    )
    start = time.monotonic()
    sent_s = 0.0
    step = 1.0 / fmt.rate_hz
    while sent_s < args.seconds:
        packets = sensor.packets(fmt.rate_hz)  # one second of samples
        sent_s += 1.0
        if args.speed > 0:
            time.sleep(max(0.0, start + sent_s / args.speed - time.monotonic()))
        # Arrival times on the simulated host clock: spread over the second just sent.
        arrivals = sent_s - 1.0 + step + np.linspace(0.0, 1.0 - step, len(packets)) + 0.015
        items = reassembler.push_many(packets, arrivals)
        _print_second(items)
    _print_second(reassembler.flush())
    s = reassembler.stats
    print(
        f"link: {s.packets} packets, {s.lost_packets} lost ({s.loss_ratio:.1%}) in "
        f"{s.gaps} gaps, {s.duplicates} duplicates, {s.malformed} malformed; "
        f"{s.samples} samples delivered"
    )
    return 0


def _print_second(items: list[SampleBlock | Gap | MalformedPacket]) -> None:
    blocks = [i for i in items if isinstance(i, SampleBlock) and i.acc_m_s2 is not None]
    for item in items:
        if isinstance(item, Gap):
            print(
                f"  gap at {item.start_host_s:7.2f} s: {item.lost_samples} samples lost "
                f"({item.reason})"
            )
        elif isinstance(item, MalformedPacket):
            print(f"  malformed packet: {item.error}")
    if not blocks:
        return
    t = np.concatenate([b.t_host_s for b in blocks])
    acc = np.concatenate([b.acc_m_s2 for b in blocks if b.acc_m_s2 is not None])
    gyr = np.rad2deg(np.concatenate([b.gyr_rad_s for b in blocks if b.gyr_rad_s is not None]))
    a, g = acc.mean(axis=0), gyr.mean(axis=0)
    print(
        f"{t[-1]:7.2f} {len(t):7d} {a[0]:7.2f} {a[1]:7.2f} {a[2]:7.2f} "
        f"{g[0]:7.1f} {g[1]:7.1f} {g[2]:7.1f}"
    )
