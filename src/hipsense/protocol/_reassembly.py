"""Turn a stream of IMU packets into gap-aware blocks of samples with host timestamps.

Sans-I/O: the caller hands over packet bytes with the host time each arrived (the BLE
notify callback's timestamp) and gets back, in sensor order, `SampleBlock`s, `Gap`s
where samples were lost, and `MalformedPacket`s for bytes that were not a packet.
"""

import heapq
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Literal

import numpy as np
from numpy.typing import NDArray

from ._clock import ClockMapper
from ._constants import PayloadKind
from ._errors import ProtocolError
from ._packet import PacketBatch, StreamFormat, decode_many

__all__ = [
    "Gap",
    "MalformedPacket",
    "ReassemblyStats",
    "SampleBlock",
    "StreamItem",
    "StreamReassembler",
]

_SEQ_MOD: Final = 1 << 16
_TS_MOD: Final = 1 << 32
# A packet this far behind in sequence and in sensor time is a sensor that restarted,
# not a late packet: its clock went back by more than any reordering could explain.
_RESTART_BACKSTEP_US: Final = 1_000_000

F64Array = NDArray[np.float64]
I64Array = NDArray[np.int64]


@dataclass(frozen=True, slots=True, eq=False)
class SampleBlock:
    """Consecutive samples with no loss between them.

    `t_sensor_us` is unwrapped sensor time; `t_host_s` the same instants on the host
    clock. `acc_m_s2` and `gyr_rad_s` are None for quaternion-only packets and `quat` is
    None for raw-only ones. `seq_first` and `seq_last` are unwrapped sequence numbers.
    """

    seq_first: int
    seq_last: int
    kind: PayloadKind
    t_sensor_us: I64Array
    t_host_s: F64Array
    acc_m_s2: F64Array | None
    gyr_rad_s: F64Array | None
    quat: F64Array | None

    @property
    def count(self) -> int:
        """Number of samples."""
        return int(self.t_sensor_us.shape[0])


@dataclass(frozen=True, slots=True)
class Gap:
    """Samples that never arrived, between two delivered samples.

    For `reason == "loss"`, `lost_packets` packets went missing and `lost_samples` is
    what the sensor clock says fitted between the samples either side. For
    `reason == "restart"` the sensor began a new stream (its sequence and clock started
    over); the host clock says how long the gap lasted, and the counts are estimates.
    """

    reason: Literal["loss", "restart"]
    lost_packets: int
    lost_samples: int
    start_host_s: float
    end_host_s: float
    start_sensor_us: int
    end_sensor_us: int

    @property
    def duration_s(self) -> float:
        """Host time between the last sample before and the first sample after the gap."""
        return self.end_host_s - self.start_host_s


@dataclass(frozen=True, slots=True)
class MalformedPacket:
    """Bytes that could not be decoded; the stream goes on without them."""

    host_time_s: float
    error: ProtocolError


StreamItem = SampleBlock | Gap | MalformedPacket


@dataclass(slots=True)
class ReassemblyStats:
    """Counters since the reassembler was made or reset."""

    packets: int = 0
    """Packets handed in, including malformed, duplicate and late ones."""
    malformed: int = 0
    duplicates: int = 0
    reordered: int = 0
    """Packets that arrived after a later one and were put back in place."""
    late: int = 0
    """Packets that arrived after their gap had been declared; dropped."""
    lost_packets: int = 0
    lost_samples: int = 0
    gaps: int = 0
    restarts: int = 0
    samples: int = 0
    """Samples delivered."""

    @property
    def loss_ratio(self) -> float:
        """Lost packets over packets the sensor sent (delivered plus lost)."""
        sent = self.packets - self.malformed - self.duplicates - self.late + self.lost_packets
        return self.lost_packets / sent if sent > 0 else 0.0


@dataclass(slots=True)
class _Pending:
    ts_wrapped: int
    host_s: float
    kind: int
    batch: PacketBatch
    row: int


class StreamReassembler:
    """Order, de-duplicate and time-stamp a sensor's packets; report what was lost.

    Sequence numbers (16 bit) and timestamps (32 bit) are unwrapped. Packets that arrive
    out of order are held until the missing one comes, more than `reorder_window` packets
    are waiting, or the oldest waiting one has waited `reorder_timeout_s` of host time,
    whichever first; then the missing ones are declared lost. A BLE link delivers in
    order, so holding back is for the rare reordering in host stacks and should be short:
    it delays the live stream after every loss. `poll()` applies the timeout while no
    packets arrive. A
    sensor that restarts (its clock jumps back) starts a new stream after a `Gap` with
    reason "restart"; unwrapped sensor time keeps increasing across it.

    Feeding the same packets in batches of any size gives the same samples, gaps and
    statistics; only the split of consecutive samples into `SampleBlock`s may differ.
    """

    def __init__(
        self,
        fmt: StreamFormat,
        *,
        reorder_window: int = 8,
        reorder_timeout_s: float = 0.1,
        clock: ClockMapper | None = None,
    ) -> None:
        if reorder_window < 1:
            raise ValueError(f"reorder_window: expected >= 1, got {reorder_window}")
        if reorder_timeout_s < 0:
            raise ValueError(f"reorder_timeout_s: expected >= 0, got {reorder_timeout_s}")
        self.fmt = fmt
        self.reorder_window = reorder_window
        self.reorder_timeout_s = reorder_timeout_s
        self.clock = clock if clock is not None else ClockMapper()
        self.stats = ReassemblyStats()
        self._clear_stream()
        self._last: _Delivered | None = None

    def reset(self) -> None:
        """Forget the stream and the statistics, as for a new sensor; settings are kept."""
        self.stats = ReassemblyStats()
        self._clear_stream()
        self._last = None
        self.clock.reset()

    def _clear_stream(self) -> None:
        self._recent: deque[int] = deque(maxlen=4 * self.reorder_window + 16)
        self._recent_set: set[int] = set()
        self._heap: list[int] = []
        self._pending: dict[int, _Pending] = {}
        self._next_seq: int | None = None
        self._max_seq: int | None = None
        self._restarting = False

    @property
    def resume_seq(self) -> int | None:
        """Sequence number (0..65535) of the first packet not yet delivered in order.

        What a host asks a 1.1 sensor to resume from after a reconnection; None before
        the first packet.
        """
        return None if self._next_seq is None else self._next_seq & 0xFFFF

    def push(self, packet: bytes | bytearray | memoryview, host_time_s: float) -> list[StreamItem]:
        """Take one packet; return what can be delivered now."""
        return self.push_many([packet], [host_time_s])

    def push_many(
        self,
        packets: Sequence[bytes | bytearray | memoryview],
        host_times_s: Sequence[float] | F64Array,
    ) -> list[StreamItem]:
        """Take a batch of packets with their arrival times; return what can be delivered."""
        if len(packets) != len(host_times_s):
            raise ValueError(
                f"host_times_s: expected {len(packets)} times, got {len(host_times_s)}"
            )
        batch = decode_many(packets, self.fmt)
        out: list[StreamItem] = []
        self.stats.packets += len(packets)
        errors = dict(batch.errors)
        rows = iter(range(batch.packet_count))
        for i in range(len(packets)):
            host_s = float(host_times_s[i])
            if i in errors:
                self.stats.malformed += 1
                out.append(MalformedPacket(host_s, errors[i]))
            else:
                self._accept(batch, next(rows), host_s, out)
        return _merge(out)

    def poll(self, host_time_s: float) -> list[StreamItem]:
        """Deliver held packets whose reorder timeout has passed at `host_time_s`."""
        out: list[StreamItem] = []
        self._release_ready(host_time_s, out)
        return _merge(out)

    def flush(self) -> list[StreamItem]:
        """Deliver every held packet, declaring what is missing between them lost."""
        out: list[StreamItem] = []
        while self._heap:
            self._release_next(out)
        return _merge(out)

    # -- internals ---------------------------------------------------------------------

    def _unwrap_seq(self, seq: int) -> int:
        if self._max_seq is None:
            return seq
        delta = (seq - self._max_seq) % _SEQ_MOD
        if delta >= _SEQ_MOD // 2:
            delta -= _SEQ_MOD
        return self._max_seq + delta

    def _accept(self, batch: PacketBatch, r: int, host_s: float, out: list[StreamItem]) -> None:
        ts_wrapped = int(batch.timestamp_us[r])
        if self._last is not None and self._clock_went_back(ts_wrapped):
            if self._unwrap_seq(int(batch.seq[r])) in self._recent_set:
                self.stats.duplicates += 1
                return
            self._restart(out)
        seq = self._unwrap_seq(int(batch.seq[r]))
        if self._next_seq is not None and seq < self._next_seq:
            if seq in self._recent_set:
                self.stats.duplicates += 1
            else:
                self.stats.late += 1
            return
        if seq in self._pending:
            self.stats.duplicates += 1
            return
        if self._max_seq is not None and seq < self._max_seq:
            self.stats.reordered += 1
        if self._next_seq is None:
            self._next_seq = seq
        self._max_seq = seq if self._max_seq is None else max(self._max_seq, seq)
        self._pending[seq] = _Pending(ts_wrapped, host_s, int(batch.kind[r]), batch, r)
        heapq.heappush(self._heap, seq)
        self._release_ready(host_s, out)

    def _release_ready(self, now_s: float, out: list[StreamItem]) -> None:
        while self._heap and (
            self._heap[0] == self._next_seq
            or len(self._pending) > self.reorder_window
            or now_s - self._pending[self._heap[0]].host_s >= self.reorder_timeout_s
        ):
            self._release_next(out)

    def _clock_went_back(self, ts_wrapped: int) -> bool:
        assert self._last is not None
        back = (self._last.ts_wrapped - ts_wrapped) % _TS_MOD
        return _RESTART_BACKSTEP_US < back < _TS_MOD // 2

    def _restart(self, out: list[StreamItem]) -> None:
        # What the old stream still held is delivered before the new stream begins.
        while self._heap:
            self._release_next(out)
        self.stats.restarts += 1
        self._clear_stream()
        self._restarting = True
        self.clock.reset()

    def _release_next(self, out: list[StreamItem]) -> None:
        seq = heapq.heappop(self._heap)
        p = self._pending.pop(seq)
        assert self._next_seq is not None
        fmt = self.fmt
        b = p.batch
        start, stop = int(b.offsets[p.row]), int(b.offsets[p.row + 1])
        n = stop - start
        last = self._last
        if last is None:
            first_us = p.ts_wrapped
        elif self._restarting:
            # A new sensor clock: place it after the old one by the host time that passed.
            since_us = round((p.host_s - last.host_s) * 1e6) - (n - 1) * fmt.period_us
            first_us = last.sample_us + max(fmt.period_us, since_us)
        else:
            delta = (p.ts_wrapped - last.ts_wrapped) % _TS_MOD
            # Past 71 minutes without a packet the 32-bit clock may have wrapped more than
            # once; the host clock says how many times.
            elapsed_us = (p.host_s - last.host_s) * 1e6
            delta += round((elapsed_us - delta) / _TS_MOD) * _TS_MOD
            first_us = last.first_us + delta
        t_sensor = first_us + np.arange(n, dtype=np.int64) * fmt.period_us
        est = self.clock.observe(int(t_sensor[-1]), p.host_s)
        t_host = est.to_host(t_sensor)

        lost_packets = seq - self._next_seq
        lost_samples = 0
        if last is not None:
            lost_samples = max(0, round((first_us - last.sample_us) / fmt.period_us) - 1)
        # A sensor that stopped streaming while disconnected resumes with the next sequence
        # number but a later clock: no packet is missing, samples are.
        paused = lost_packets == 0 and lost_samples > 0
        if last is not None and (lost_packets > 0 or self._restarting or paused):
            if self._restarting:
                lost_packets = 0
            out.append(
                Gap(
                    reason="restart" if self._restarting else "loss",
                    lost_packets=lost_packets,
                    lost_samples=lost_samples,
                    start_host_s=last.sample_host_s,
                    end_host_s=float(t_host[0]),
                    start_sensor_us=last.sample_us,
                    end_sensor_us=int(first_us),
                )
            )
            self.stats.lost_packets += lost_packets
            self.stats.gaps += 1
            self.stats.lost_samples += lost_samples
        self._restarting = False

        kind = PayloadKind(p.kind)
        out.append(
            SampleBlock(
                seq_first=seq,
                seq_last=seq,
                kind=kind,
                t_sensor_us=t_sensor,
                t_host_s=t_host,
                acc_m_s2=b.acc_m_s2[start:stop] if kind.has_raw else None,
                gyr_rad_s=b.gyr_rad_s[start:stop] if kind.has_raw else None,
                quat=b.quat[start:stop] if kind.has_quat else None,
            )
        )
        self.stats.samples += n
        self._next_seq = seq + 1
        self._last = _Delivered(
            ts_wrapped=p.ts_wrapped,
            first_us=int(first_us),
            host_s=p.host_s,
            sample_us=int(t_sensor[-1]),
            sample_host_s=float(t_host[-1]),
        )
        if len(self._recent) == self._recent.maxlen:
            self._recent_set.discard(self._recent[0])
        self._recent.append(seq)
        self._recent_set.add(seq)


@dataclass(frozen=True, slots=True)
class _Delivered:
    """What the reassembler remembers of the last packet it delivered."""

    ts_wrapped: int
    first_us: int
    host_s: float
    sample_us: int
    sample_host_s: float


def _merge(items: list[StreamItem]) -> list[StreamItem]:
    """Join runs of SampleBlocks of one kind into one block each."""
    merged: list[StreamItem] = []
    run: list[SampleBlock] = []

    def close() -> None:
        if not run:
            return
        if len(run) == 1:
            merged.append(run[0])
        else:
            first = run[0]
            merged.append(
                SampleBlock(
                    seq_first=first.seq_first,
                    seq_last=run[-1].seq_last,
                    kind=first.kind,
                    t_sensor_us=np.concatenate([b.t_sensor_us for b in run]),
                    t_host_s=np.concatenate([b.t_host_s for b in run]),
                    acc_m_s2=_cat([b.acc_m_s2 for b in run]),
                    gyr_rad_s=_cat([b.gyr_rad_s for b in run]),
                    quat=_cat([b.quat for b in run]),
                )
            )
        run.clear()

    for item in items:
        if isinstance(item, SampleBlock):
            if run and (item.kind is not run[-1].kind or item.seq_first != run[-1].seq_last + 1):
                close()
            run.append(item)
        else:
            close()
            merged.append(item)
    close()
    return merged


def _cat(parts: list[F64Array | None]) -> F64Array | None:
    if parts[0] is None:
        return None
    return np.concatenate([p for p in parts if p is not None])
