"""The BlueZ emulator serving an emulated Movella DOT, on a private D-Bus."""

from collections.abc import AsyncIterator

import pytest
from dbus_fast.aio import MessageBus

from hipsense_sim.bluez import PrivateBus
from tests.link.conftest import Emulator, private_bus, start_emulator

__all__ = ["DOT", "SESSION_REPS", "private_bus"]

DOT = "D4:22:CD:00:48:53"
SESSION_REPS = 3
"""Clamshells of the session the whole-session test streams (real time: keep it short)."""


@pytest.fixture
async def dot_emulator(private_bus: PrivateBus) -> AsyncIterator[Emulator]:
    """The emulator with one DOT, its clock 4 s before its 2^32 us wrap."""
    async for emulator in _dot_emulator(private_bus):
        yield emulator


@pytest.fixture
async def dot_session_emulator(private_bus: PrivateBus) -> AsyncIterator[Emulator]:
    """The same, its loop a session of `SESSION_REPS` clamshells."""
    async for emulator in _dot_emulator(private_bus, "--reps", str(SESSION_REPS)):
        yield emulator


async def _dot_emulator(private_bus: PrivateBus, *args: str) -> AsyncIterator[Emulator]:
    proc = await start_emulator(private_bus, "--kind", "movella-dot", *args)
    control = await MessageBus(bus_address=private_bus.address).connect()
    try:
        yield Emulator(control, address=DOT)
    finally:
        control.disconnect()
        proc.terminate()
        await proc.wait()
