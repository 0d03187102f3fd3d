"""Reconnect time of the BLE link after link loss, with real bleak and the emulated BlueZ.

Starts a private dbus-daemon and the BlueZ emulator, streams from one sensor at 100 Hz,
drops the radio link `--drops` times, and prints the time from the drop to the first
samples after it (median, p90, max), with the link's telemetry against what the
emulator did. Run: .venv/bin/python benchmarks/ble_reconnect.py [--drops 20] [--mtu 247]
"""

import argparse
import asyncio
import json
import os
import statistics
import sys
import time

from dbus_fast import Message
from dbus_fast.aio import MessageBus

from hipsense.link import BleLink, BleLinkSettings
from hipsense.protocol import Gap, SampleBlock
from hipsense_sim.bluez import CONTROL_PATH, PrivateBus

SENSOR = "C0:FF:EE:00:48:53"


async def control(bus: MessageBus, member: str, signature: str, *args: object) -> list[object]:
    reply = await bus.call(
        Message(
            destination="org.bluez",
            path=CONTROL_PATH,
            interface="org.hipsense.Emulator1",
            member=member,
            signature=signature,
            body=[SENSOR, *args],
        )
    )
    assert reply is not None
    return list(reply.body)


async def run(drops: int, mtu: int, address: str) -> None:
    emu = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "hipsense_sim.bluez", "--bus", address, "--mtu", str(mtu),
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert emu.stdout is not None
    await emu.stdout.readline()
    bus = await MessageBus(bus_address=address).connect()
    samples = 0
    gaps: list[Gap] = []
    times: list[float] = []
    settings = BleLinkSettings(backoff_base_s=0.1, backoff_max_s=1.0)
    try:
        async with BleLink(SENSOR, settings=settings) as link:

            async def consume() -> None:
                nonlocal samples
                async for item in link.items():
                    if isinstance(item, SampleBlock):
                        samples += item.count
                    elif isinstance(item, Gap):
                        gaps.append(item)

            task = asyncio.create_task(consume())
            while samples < 200:  # noqa: ASYNC110 -- a benchmark polls what it measures
                await asyncio.sleep(0.05)
            for _ in range(drops):
                await asyncio.sleep(1.0)
                before = samples
                t0 = time.monotonic()
                await control(bus, "DropLink", "sd", 0.0)
                while samples <= before + 19:  # noqa: ASYNC110
                    await asyncio.sleep(0.005)
                # The first samples after the drop, measured where the consumer sees them.
                times.append(time.monotonic() - t0)
            await asyncio.sleep(1.0)
            telemetry = link.telemetry
        await task
        (text,) = await control(bus, "Counts", "s")
        counts = json.loads(str(text))
    finally:
        bus.disconnect()
        emu.terminate()
        await emu.wait()
    stream = telemetry.stream
    assert stream is not None
    times.sort()
    print(f"BLE link, MTU {mtu}, 100 Hz, {drops} link drops (real bleak, emulated BlueZ)")
    print(
        f"  reconnect, drop -> samples flowing: median {statistics.median(times) * 1e3:.0f} ms, "
        f"p90 {times[int(0.9 * (len(times) - 1))] * 1e3:.0f} ms, max {times[-1] * 1e3:.0f} ms"
    )
    print(
        f"  link telemetry: reconnects {telemetry.reconnects}, gaps {stream.gaps}, lost samples "
        f"{stream.lost_samples}, lost packets {stream.lost_packets}, duplicates "
        f"{stream.duplicates}, malformed {stream.malformed}, queue overflows "
        f"{telemetry.queue_overflows}"
    )
    print(
        f"  emulator: link drops {counts['link_drops']}, packets sent {counts['packets_sent']}, "
        f"injected loss {counts['lost_packets']}, duplicates {counts['duplicates']}, "
        f"kept packets resent after a reconnect {counts['replayed']}; "
        f"samples received {samples}"
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--drops", type=int, default=20)
    p.add_argument("--mtu", type=int, choices=(23, 247), default=247)
    args = p.parse_args()
    with PrivateBus() as bus:
        os.environ["DBUS_SYSTEM_BUS_ADDRESS"] = bus.address
        asyncio.run(run(args.drops, args.mtu, bus.address))


if __name__ == "__main__":
    main()
