"""`hipsense scan`: the sensors in range that hipsense reads, of every kind."""

import argparse
import asyncio

__all__ = ["add_parser"]


def add_parser(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Register `scan`."""
    p = sub.add_parser(
        "scan",
        help="list nearby sensors (address, kind, name, signal, battery)",
        description="Scan over Bluetooth Low Energy for the sensors hipsense reads: native "
        "hipsense sensors (the hipsense service or a name starting with 'hipsense') and "
        "WitMotion BLE 5.0 units (their ffe5 service or a name starting with WT), strongest signal "
        "first. The kind column is what to put in a sensor's `kind` setting.",
    )
    p.add_argument("--timeout", type=float, default=5.0, help="seconds to listen")
    p.add_argument("--adapter", help="Bluetooth adapter, e.g. hci1 (default: the system's)")
    p.set_defaults(func=_scan)


def _scan(args: argparse.Namespace) -> int:
    from ..link import scan

    found = asyncio.run(scan(args.timeout, adapter=args.adapter))
    if not found:
        print(f"no sensor found in {args.timeout:g} s")
        return 1
    print(f"{'address':<17}  {'kind':<11} {'name':<20} {'RSSI':>8} {'battery':>8}")
    for s in found:
        battery = "?" if s.battery_pct is None else f"{s.battery_pct} %"
        print(f"{s.address:<17}  {s.kind:<11} {s.name:<20} {s.rssi_dbm:>4} dBm {battery:>8}")
    return 0
