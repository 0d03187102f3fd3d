"""What a sensor link reports about itself: the numbers behind `sensors/{id}/state`."""

from dataclasses import dataclass

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
    stream: ReassemblyStats | None = None
    """Packet counts of the reassembler: loss, gaps, duplicates, malformed."""

    @property
    def loss_pct(self) -> float:
        """Packets lost over packets sent, in percent."""
        return 0.0 if self.stream is None else 100.0 * self.stream.loss_ratio
