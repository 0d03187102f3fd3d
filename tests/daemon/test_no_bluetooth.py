"""A machine with no Bluetooth stack: one clear error and a state that says so, no retries.

Real bleak, against a real D-Bus with no BlueZ on it, and against no D-Bus at all.
"""

import asyncio
import os
import sys
from pathlib import Path

import pytest

from hipsense_sim.bluez import PrivateBus
from tests.brokers import Mosquitto, Subscriber, running
from tests.conftest import require_tool


async def _run(
    mosquitto: Mosquitto, tmp_path: Path, bus_address: str, kind: str = "hipsense"
) -> tuple[int, str, list]:
    config = tmp_path / "hipsense.toml"
    config.write_text(
        f'state_dir = "{tmp_path / "state"}"\ngateway_id = "gw-nobt"\n'
        f'[broker]\nurl = "{mosquitto.url}"\n'
        '[[sensors]]\nid = "right-thigh"\nble = "C0:FF:EE:00:48:53"\n'
        f'kind = "{kind}"\n'
    )
    sub = Subscriber(mosquitto.port, "hipsense/v1/gw-nobt/#")
    async with running(sub):
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "hipsense", "run", "--config", str(config), "--no-live",
            stderr=asyncio.subprocess.PIPE,
            env=dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS=bus_address),
        )  # fmt: skip
        # It ends by itself: nothing to wait for when there is no Bluetooth.
        _, err = await asyncio.wait_for(proc.communicate(), 60)
        await asyncio.sleep(0.5)
    assert proc.returncode is not None
    return proc.returncode, err.decode(), sub.on("/state")


@pytest.mark.parametrize(
    ("stack", "kind"),
    [
        ("no D-Bus", "hipsense"),
        ("no BlueZ", "hipsense"),
        ("no BlueZ", "witmotion"),
        ("no D-Bus", "movella-dot"),
    ],
)
async def test_run_without_bluetooth_stops_with_one_clear_error(
    stack: str, kind: str, mosquitto: Mosquitto, tmp_path: Path
) -> None:
    # Every kind of BLE sensor: the same clear stop, whichever link it has.
    if stack == "no D-Bus":
        status, err, states = await _run(
            mosquitto, tmp_path, f"unix:path={tmp_path / 'no-such-bus'}", kind
        )
        missing = "no D-Bus system bus"
    else:
        with PrivateBus(require_tool("dbus-daemon")) as bus:  # a bus, but no org.bluez
            status, err, states = await _run(mosquitto, tmp_path, bus.address, kind)
        missing = "no BlueZ on the system bus"
    assert status == 1
    assert f"expected a working Bluetooth adapter, got {missing}" in err
    assert "retrying in" not in err  # it does not heal: not retried
    # The sensor's retained state says why; no empty session was recorded for it.
    assert states and states[-1]["connected"] is False
    assert missing in states[-1]["error"]
    assert "no session recorded" in err and "0 reps" not in err
