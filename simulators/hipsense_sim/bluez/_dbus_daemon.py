"""A private D-Bus daemon, so an emulated BlueZ needs no root and touches no real bus."""

import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from types import TracebackType
from typing import Self

__all__ = ["PrivateBus"]

# Permissive: everyone may own any name and send anything. Only for tests and demos.
_CONFIG = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>custom</type>
  <listen>unix:path={socket}</listen>
  <auth>EXTERNAL</auth>
  <limit name="max_incoming_bytes">1000000000</limit>
  <limit name="max_outgoing_bytes">1000000000</limit>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_type="method_return"/>
    <allow send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="signal"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow send_destination="*"/>
  </policy>
</busconfig>
"""


class PrivateBus:
    """`with PrivateBus() as bus:` runs `dbus-daemon` on a socket of its own.

    Point bleak at it with `DBUS_SYSTEM_BUS_ADDRESS=bus.address`.
    """

    def __init__(self, binary: str | None = None) -> None:
        found = (
            binary or shutil.which("dbus-daemon") or shutil.which("dbus-daemon", path="/usr/bin")
        )
        if found is None:
            raise FileNotFoundError("dbus-daemon is not installed (Debian package dbus)")
        self.binary = found
        self._dir: tempfile.TemporaryDirectory[str] | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self.address = ""

    def __enter__(self) -> Self:
        self._dir = tempfile.TemporaryDirectory(prefix="hipsense-dbus-")
        folder = Path(self._dir.name)
        socket = folder / "bus"
        conf = folder / "bus.conf"
        conf.write_text(_CONFIG.format(socket=socket))
        self._proc = subprocess.Popen(
            [self.binary, f"--config-file={conf}", "--nofork", "--print-address=1"],
            stdout=subprocess.PIPE,
        )
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline().decode().strip()
        if not line:
            self.close()
            raise RuntimeError("dbus-daemon did not start")
        self.address = line
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Stop the daemon and remove its socket."""
        if self._proc is not None:
            self._proc.terminate()
            self._proc.wait(10)
            if self._proc.stdout is not None:
                self._proc.stdout.close()
            self._proc = None
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None

    def env(self) -> dict[str, str]:
        """The environment of a process that should use this bus as its system bus."""
        return {**os.environ, "DBUS_SYSTEM_BUS_ADDRESS": self.address}
