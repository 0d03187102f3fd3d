"""`python -m hipsense_sim.bluez --bus ADDRESS [--sensor AA:BB:..=name ...] [--mtu 247]`."""

import argparse
import asyncio
import sys

from ._emulator import BluezEmulator

_DEFAULT = "C0:FF:EE:00:48:53=hipsense-4853"


def main() -> int:
    """Run the emulator until killed; print "ready" once it owns org.bluez."""
    p = argparse.ArgumentParser(prog="python -m hipsense_sim.bluez", description=__doc__)
    p.add_argument("--bus", help="D-Bus address (default: the system bus)")
    p.add_argument(
        "--sensor",
        action="append",
        metavar="ADDRESS=NAME",
        help="an emulated sensor (repeatable); default one, hipsense-4853",
    )
    p.add_argument("--mtu", type=int, choices=(23, 247), default=247)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--kind", choices=("hipsense", "movella-dot"), default="hipsense")
    args = p.parse_args()
    default = "D4:22:CD:00:48:53=Xsens DOT" if args.kind == "movella-dot" else _DEFAULT
    sensors = [tuple(s.split("=", 1)) for s in args.sensor or [default]]
    emulator = BluezEmulator(
        args.bus, [(a, n) for a, n in sensors], mtu=args.mtu, seed=args.seed, kind=args.kind
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
