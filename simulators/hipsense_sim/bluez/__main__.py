"""`python -m hipsense_sim.bluez --bus ADDRESS [--kind K] [--sensor AA:BB:..=name ...]`."""

import argparse
import asyncio
import functools
import sys
from collections.abc import Callable

from ._emulator import BluezEmulator, DeviceFactory, EmulatedSensor
from ._movella_dot import EmulatedDot
from ._witmotion import WitMotionSensor


def _witmotion(args: argparse.Namespace) -> DeviceFactory:
    return functools.partial(
        WitMotionSensor, reps=args.reps, shortfall=args.shortfall, rate_hz=args.rate
    )


KINDS: dict[str, tuple[str, Callable[[argparse.Namespace], DeviceFactory]]] = {
    "hipsense": ("C0:FF:EE:00:48:53=hipsense-4853", lambda _args: EmulatedSensor),
    "witmotion": ("DF:BE:12:20:70:8C=WT901BLE68", _witmotion),
    "movella-dot": (
        "D4:22:CD:00:48:53=Xsens DOT",
        lambda args: functools.partial(EmulatedDot, reps=args.reps),
    ),
}
"""Each kind: the sensor it emulates when no --sensor is given, and its device factory."""


def main() -> int:
    """Run the emulator until killed; print "ready" once it owns org.bluez."""
    p = argparse.ArgumentParser(prog="python -m hipsense_sim.bluez", description=__doc__)
    p.add_argument("--bus", help="D-Bus address (default: the system bus)")
    p.add_argument("--kind", choices=tuple(KINDS), default="hipsense",
                   help="what the emulated sensors are (default hipsense)")  # fmt: skip
    p.add_argument(
        "--sensor",
        action="append",
        metavar="[KIND:]ADDRESS=NAME",
        help="an emulated sensor (repeatable), of --kind unless KIND is given; "
        "default one of --kind",
    )
    p.add_argument("--mtu", type=int, choices=(23, 247), default=247)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--reps",
        type=int,
        default=8,
        help="witmotion, movella-dot: clamshells of the session it plays in a loop",
    )
    p.add_argument("--shortfall", type=float, default=0.03,
                   help="witmotion: share of the configured rate not delivered")  # fmt: skip
    p.add_argument("--rate", type=int, choices=(10, 20, 50, 100, 200), default=10,
                   help="witmotion: the rate it was saved with (out of the box 10 Hz)")  # fmt: skip
    args = p.parse_args()
    default, device = KINDS[args.kind]
    sensors: list[tuple[str, str, DeviceFactory]] = []
    for spec in args.sensor or [default]:
        kind, _, rest = spec.partition(":")
        factory = device(args)
        if kind in KINDS:
            factory, spec = KINDS[kind][1](args), rest
        address, _, name = spec.partition("=")
        sensors.append((address, name, factory))
    emulator = BluezEmulator(
        args.bus,
        sensors,
        mtu=args.mtu,
        seed=args.seed,
        device=device(args),
    )

    async def run() -> None:
        ready = asyncio.Event()
        task = asyncio.create_task(emulator.run(ready))
        waiter = asyncio.create_task(ready.wait())
        await asyncio.wait([task, waiter], return_when=asyncio.FIRST_COMPLETED)
        if ready.is_set():
            print("ready", flush=True)
        await task

    try:
        asyncio.run(run())
    except KeyboardInterrupt:
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
