"""What a sensor link reports about itself: the numbers behind `sensors/{id}/state`."""

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from hipsense.protocol import ReassemblyStats

__all__ = ["LinkTelemetry"]


@dataclass
class LinkTelemetry:
    """Counters and readings of one sensor link, updated by the link as it runs."""

    sensor_id: str
    rate_hz: int
    connected: bool = False
    reconnects: int = 0
    """Connections made after the first."""
    queue_overflows: int = 0
    """Notifications dropped because the consumer fell behind."""
    stalls: int = 0
    """Times the stream stopped without a disconnect and the link was restarted."""
    rssi_dbm: float | None = None
    battery_pct: float | None = None
    packets_per_s: float = 0.0
    """Packets received per second, over the last few seconds."""
    error: str | None = None
    """Why the link is down for good (no Bluetooth adapter, another protocol version):
    retrying cannot help. None while it works, or fails in ways that may heal."""
    stream: ReassemblyStats | None = None
    """Packet counts of the reassembler: loss, gaps, duplicates, malformed."""
    kind: str = "hipsense"
    """The sensor kind (`hipsense.sensor_kinds`)."""
    timing: Literal["sensor", "host"] = "sensor"
    """Where sample times come from: the sensor's clock, or their arrival at the host
    (a sensor whose packets carry no timestamp, such as a WitMotion)."""
    delivered_rate_hz: float | None = None
    """Samples per second that really arrive, when the link measures it (a WitMotion
    delivers less than its configured rate)."""
    rate_window_s: float = 2.0
    _arrivals: deque[float] = field(default_factory=deque, repr=False)

    def note_arrivals(self, times_s: Sequence[float]) -> None:
        """Packets arrived at these times (ascending): update `packets_per_s`."""
        if not times_s:
            return
        self._arrivals.extend(times_s)
        while self._arrivals and self._arrivals[0] < times_s[-1] - self.rate_window_s:
            self._arrivals.popleft()
        self.packets_per_s = len(self._arrivals) / self.rate_window_s

    @property
    def loss_pct(self) -> float:
        """Packets lost over packets sent, in percent."""
        return 0.0 if self.stream is None else 100.0 * self.stream.loss_ratio
