"""The interface every sensor link implements: BLE, simulated, or a future one."""

from collections.abc import AsyncIterator
from types import TracebackType
from typing import Protocol, Self

from hipsense.protocol import Gap, MalformedPacket, SampleBlock, StreamFormat

from ._telemetry import LinkTelemetry

__all__ = ["SensorLink", "StreamItem"]

StreamItem = SampleBlock | Gap | MalformedPacket
"""What a link yields: decoded samples, a gap it could not fill, or a bad packet."""


class SensorLink(Protocol):
    """`async with link:` connects; `async for item in link.items():` streams.

    The stream ends when the link is closed or the sensor's stream ends for good
    (a simulated session that is over). Gaps are yielded, never hidden: after a
    reconnect the first item is a `Gap` covering the time without samples.
    """

    @property
    def sensor_id(self) -> str:
        """Stable id of the sensor (pseudonymous: no patient data)."""
        ...

    @property
    def fmt(self) -> StreamFormat:
        """The stream's rate and ranges."""
        ...

    @property
    def telemetry(self) -> LinkTelemetry:
        """Live counters of the link."""
        ...

    def items(self) -> AsyncIterator[StreamItem]:
        """Decoded stream items in order."""
        ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...
