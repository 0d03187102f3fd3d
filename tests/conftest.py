"""Shared fixtures: paths, and tools the tests need from the system."""

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.brokers import Mosquitto

ROOT = Path(__file__).resolve().parent.parent
VECTORS = ROOT / "firmware_protocol" / "vectors"


def require_tool(name: str) -> str:
    """Path of a system tool; a missing tool skips locally but fails in CI.

    The README's test command installs every tool the suite needs, so in CI a missing
    one is a broken set-up, never a reason to skip.
    """
    # Daemons such as mosquitto live in /usr/sbin, not always on a user's PATH.
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
    if path is None:
        message = f"{name} is not installed (the README's test command installs it)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[Mosquitto]:
    """A real mosquitto on a free loopback port, stopped after the test."""
    broker = Mosquitto(require_tool("mosquitto"), tmp_path)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()
