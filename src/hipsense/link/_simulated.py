"""A simulated sensor link in the same process: no radio, no D-Bus.

It sends a simulated session's native-protocol packets as a sensor would, with the
loss, duplicates and disconnects of its scenario, through the same reassembler as
the BLE link. For demos, benchmarks and tests of everything after the link.
"""

import asyncio
import math
from collections.abc import AsyncIterator
from types import TracebackType
from typing import TYPE_CHECKING, Self

from hipsense.protocol import StreamFormat, StreamReassembler

from ._base import StreamItem
from ._telemetry import LinkTelemetry

if TYPE_CHECKING:
    from hipsense_sim import SimulationResult

__all__ = ["SimulatedLink"]


class SimulatedLink:
    """Stream `result`'s packets at `speed` x real time (`math.inf`: at once).

    Stream time starts at 0 with the session; `t_host_s` of the samples is on that axis.
    """

    def __init__(
        self,
        result: "SimulationResult",
        *,
        sensor_id: str = "sim-1",
        speed: float = 1.0,
        battery_pct: float = 87.0,
        rssi_dbm: float = -58.0,
    ) -> None:
        if not speed > 0:
            raise ValueError(f"speed: expected > 0, got {speed}")
        imu = result.spec.imu
        self._result = result
        self._fmt = StreamFormat(
            rate_hz=imu.rate_hz, accel_range_g=imu.accel_range_g, gyro_range_dps=imu.gyro_range_dps
        )
        self._sensor_id = sensor_id
        self.speed = speed
        self._reassembler = StreamReassembler(self._fmt)
        self._telemetry = LinkTelemetry(
            sensor_id,
            self._fmt.rate_hz,
            battery_pct=battery_pct,
            rssi_dbm=rssi_dbm,
            stream=self._reassembler.stats,
        )

    @property
    def sensor_id(self) -> str:
        """The simulated sensor's id."""
        return self._sensor_id

    @property
    def fmt(self) -> StreamFormat:
        """Rate and ranges of the simulated IMU."""
        return self._fmt

    @property
    def telemetry(self) -> LinkTelemetry:
        """Counters of the simulated link."""
        return self._telemetry

    @property
    def duration_s(self) -> float:
        """Stream time of the whole session."""
        return float(self._result.recording.duration_s)

    async def __aenter__(self) -> Self:
        self._telemetry.connected = True
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._telemetry.connected = False

    async def items(self) -> AsyncIterator[StreamItem]:
        """The session's stream items, paced by `speed`."""
        async for arrival_s, packet in self._result.packets(self.speed):
            self._telemetry.note_arrivals((arrival_s,))
            for item in self._reassembler.push(packet, arrival_s):
                yield item
            if not math.isfinite(self.speed):
                await asyncio.sleep(0)
        for item in self._reassembler.flush():
            yield item
        self._telemetry.connected = False
