"""A real mosquitto broker on a free loopback port, which tests may stop and restart."""

import getpass
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import require_tool


def free_port() -> int:
    """A TCP port nobody listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Mosquitto:
    """One mosquitto process; `stop()` / `start()` keep port and persistence."""

    def __init__(self, binary: str, workdir: Path) -> None:
        self.binary = binary
        self.port = free_port()
        self.conf = workdir / "mosquitto.conf"
        self.conf.write_text(
            f"listener {self.port} 127.0.0.1\n"
            "allow_anonymous true\n"
            # Run as root, mosquitto would switch to user "mosquitto", which cannot write
            # its persistence file here; as anyone else this line changes nothing.
            f"user {getpass.getuser()}\n"
            # Persistence: queued QoS 1 messages of offline subscribers survive a restart.
            "persistence true\n"
            f"persistence_location {workdir}/\n"
            "log_dest none\n"
        )
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """mqtt:// URL of the broker."""
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start and wait until the port accepts connections."""
        self.proc = subprocess.Popen([self.binary, "-c", str(self.conf)])
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            if self.proc.poll() is not None:
                raise RuntimeError(f"mosquitto exited with {self.proc.returncode}")
            time.sleep(0.02)
        raise RuntimeError("mosquitto did not open its port within 10 s")

    def stop(self) -> None:
        """Stop (SIGTERM: mosquitto saves its persistence file)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.proc = None


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[Mosquitto]:
    """A running mosquitto, stopped after the test."""
    broker = Mosquitto(require_tool("mosquitto"), tmp_path)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()
