"""The BlueZ emulator on a private dbus-daemon, with bleak pointed at it."""

import asyncio
import json
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import pytest
from dbus_fast import Message, MessageType
from dbus_fast.aio import MessageBus

from hipsense_sim.bluez import CONTROL_PATH, PrivateBus
from tests.conftest import require_tool

SENSOR = "C0:FF:EE:00:48:53"


@dataclass
class Emulator:
    """A running emulator and a way to inject faults into it."""

    bus: MessageBus
    address: str = SENSOR

    async def call(self, member: str, signature: str, *args: object) -> list[object]:
        reply = await self.bus.call(
            Message(
                destination="org.bluez",
                path=CONTROL_PATH,
                interface="org.hipsense.Emulator1",
                member=member,
                signature=signature,
                body=[self.address, *args],
            )
        )
        assert reply is not None
        assert reply.message_type is MessageType.METHOD_RETURN, reply.body
        return list(reply.body)

    async def drop_link(self, down_s: float) -> None:
        await self.call("DropLink", "sd", down_s)

    async def stall(self, seconds: float) -> None:
        await self.call("Stall", "sd", seconds)

    async def inject(self, *, lose: int = 0, duplicate: int = 0, malformed: int = 0) -> None:
        await self.call("Inject", "suuu", lose, duplicate, malformed)

    async def burst(self, packets: int) -> None:
        await self.call("Burst", "su", packets)

    async def set_backlog(self, packets: int) -> None:
        await self.call("SetBacklog", "su", packets)

    async def counts(self) -> dict[str, int]:
        (text,) = await self.call("Counts", "s")
        return dict(json.loads(str(text)))


@pytest.fixture
def private_bus(monkeypatch: pytest.MonkeyPatch) -> Iterator[PrivateBus]:
    with PrivateBus(require_tool("dbus-daemon")) as bus:
        monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", bus.address)
        yield bus


async def start_emulator(bus: PrivateBus, *args: str) -> asyncio.subprocess.Process:
    """`python -m hipsense_sim.bluez` on the private bus, once it owns org.bluez."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "hipsense_sim.bluez", "--bus", bus.address, *args,
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), 30)
    assert line.strip() == b"ready", line
    return proc


@pytest.fixture(params=[247])
async def emulator(
    request: pytest.FixtureRequest, private_bus: PrivateBus
) -> AsyncIterator[Emulator]:
    """The emulator with one sensor at the MTU given as the parameter."""
    proc = await start_emulator(private_bus, "--mtu", str(request.param))
    control = await MessageBus(bus_address=private_bus.address).connect()
    try:
        yield Emulator(control)
    finally:
        control.disconnect()
        proc.terminate()
        await proc.wait()
