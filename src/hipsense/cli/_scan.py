"""`hipsense scan`: the hipsense sensors in range."""

import argparse
import asyncio

__all__ = ["add_parser"]


def add_parser(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Register `scan`."""
    p = sub.add_parser(
        "scan",
        help="list nearby hipsense sensors (address, name, signal, battery)",
        description="Scan over Bluetooth Low Energy for sensors that advertise the hipsense "
        "service or a name starting with 'hipsense', strongest signal first.",
    )
    p.add_argument("--timeout", type=float, default=5.0, help="seconds to listen")
    p.add_argument("--adapter", help="Bluetooth adapter, e.g. hci1 (default: the system's)")
    p.set_defaults(func=_scan)


def _scan(args: argparse.Namespace) -> int:
    from ..link import scan

    found = asyncio.run(scan(args.timeout, adapter=args.adapter))
    if not found:
        print(f"no hipsense sensor found in {args.timeout:g} s")
        return 1
    print(f"{'address':<17}  {'name':<20} {'RSSI':>8} {'battery':>8}")
    for s in found:
        battery = "?" if s.battery_pct is None else f"{s.battery_pct} %"
        print(f"{s.address:<17}  {s.name:<20} {s.rssi_dbm:>4} dBm {battery:>8}")
    return 0
