"""The BlueZ emulator serving an emulated Movella DOT, on a private D-Bus."""

from collections.abc import AsyncIterator

import pytest
from dbus_fast.aio import MessageBus

from hipsense_sim.bluez import PrivateBus
from tests.link.conftest import Emulator, private_bus, start_emulator

__all__ = ["DOT", "private_bus"]

DOT = "D4:22:CD:00:48:53"


@pytest.fixture
async def dot_emulator(private_bus: PrivateBus) -> AsyncIterator[Emulator]:
    """The emulator with one DOT, its clock 4 s before its 2^32 us wrap."""
    proc = await start_emulator(private_bus, "--kind", "movella-dot")
    control = await MessageBus(bus_address=private_bus.address).connect()
    try:
        yield Emulator(control, address=DOT)
    finally:
        control.disconnect()
        proc.terminate()
        await proc.wait()
