"""The pure packages stay pure: importing them loads no network, radio or storage code."""

import json
import subprocess
import sys

import pytest

# What a pure package must not bring in: asyncio and its networking, the MQTT client and
# broker, Bluetooth, SQLite, and hipsense's own edges.
FORBIDDEN = (
    "asyncio",
    "aiomqtt",
    "paho",
    "amqtt",
    "websockets",
    "bleak",
    "dbus_fast",
    "sqlite3",
    "_sqlite3",
    "hipsense.mqtt",
    "hipsense.link",
    "hipsense.daemon",
    "hipsense.history",
)


def _loaded_by(module: str) -> list[str]:
    code = (
        "import importlib, json, sys\n"
        f"importlib.import_module({module!r})\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    ).stdout
    return list(json.loads(out))


@pytest.mark.parametrize(
    "module", ["hipsense.motion", "hipsense.session", "hipsense.domain", "hipsense.protocol"]
)
def test_a_pure_package_loads_no_network_radio_or_storage(module: str) -> None:
    loaded = _loaded_by(module)
    bad = [m for m in loaded if any(m == f or m.startswith(f + ".") for f in FORBIDDEN)]
    assert not bad, f"importing {module} loads {bad}"


def test_the_check_sees_a_forbidden_import() -> None:
    # The same check on a package that is an edge must find its network stack, or the
    # test above could pass by looking at nothing.
    loaded = _loaded_by("hipsense.mqtt")
    assert "aiomqtt" in loaded and "sqlite3" in loaded
