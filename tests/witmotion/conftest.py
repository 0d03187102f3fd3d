"""The BlueZ emulator serving an emulated WitMotion unit, with bleak pointed at it."""

from collections.abc import AsyncIterator

import pytest
from dbus_fast.aio import MessageBus

from hipsense_sim.bluez import PrivateBus
from tests.link.conftest import Emulator, private_bus, start_emulator

__all__ = ["WIT", "private_bus"]

WIT = "DF:BE:12:20:70:8C"
REPS = 3
"""Clamshells of the emulated session: about 23 s of streaming at any rate."""


@pytest.fixture(params=[10])
async def witmotion(
    request: pytest.FixtureRequest, private_bus: PrivateBus
) -> AsyncIterator[Emulator]:
    """The emulator with one WitMotion unit saved at the rate given as the parameter."""
    proc = await start_emulator(
        private_bus, "--kind", "witmotion", "--reps", str(REPS), "--rate", str(request.param)
    )
    control = await MessageBus(bus_address=private_bus.address).connect()
    try:
        yield Emulator(control, address=WIT)
    finally:
        control.disconnect()
        proc.terminate()
        await proc.wait()
