"""Turn a stream of IMU packets into gap-aware blocks of samples with host timestamps.

Sans-I/O: the caller hands over packet bytes with the host time each arrived (the BLE
notify callback's timestamp) and gets back, in sensor order, `SampleBlock`s, `Gap`s
where samples were lost, and `MalformedPacket`s for bytes that were not a packet. A link
tells of each (re)connection with `reconnected()`.

How a packet is judged
----------------------
A packet carries two counters of its sensor's life, the 16-bit sequence number and the
32-bit microsecond clock of its first sample, and arrives at a host time. Alone, neither
counter says much: both wrap (the clock every 71.6 min, the sequence every 3.4 h at MTU
247 and 100 Hz, every 5.5 min at MTU 23 and 200 Hz), so a clock that "went back" may be a
wrap, a pause or a restart. Judged together with the host clock they say it all. In the
order they are applied:

1. Duplicate or late. A packet behind the next expected one is stale: a duplicate when
   the reassembler remembers a packet of that number and clock (the last 4096 packets
   delivered, or more, of this stream and of the one before a restart), late when its
   number lies in a gap already declared and its clock fits there (exactly, where the
   sensor streamed through the gap). It is dropped and counted, and makes no gap, no
   restart and no data.
2. Continuation. The sequence number taken forward from the next expected one says how
   many packets are missing before this one; each held a sample at least, which sets
   the earliest the packet's clock can read. The host clock sets the latest: no sample
   arrives before it was taken, so the clock cannot be ahead of the clock mapping
   (`ClockMapper`) at the arrival time, give or take a second and 1000 ppm of drift over
   the time since the last packet. Of the packet's clock readings unwrapped by any
   number of 2^32 µs, the latest not past that bound is the one; the packet continues
   the stream when it is not before the earliest. This is what unwraps the clock over
   pauses of hours, and what sizes a loss or a pause from the sensor clock, exactly.
3. Restart. Power-up resets both counters, and a restarted sensor sends nothing until a
   host writes START_STREAMING (protocol section 4.3), which happens only once the link
   is up again: so when the link reports reconnections, only the first packets after
   one can start a new stream. A restart is the verdict for a packet that does not
   continue the stream and whose clock fits in the host time since the sensor was last
   heard (a clock reset at power-up reads no more than that). After a reconnection a
   packet must also be explained to continue the stream: either the sequence advanced as
   the clock did (the sensor streamed on, into its backlog or into the void), or it was
   sampled after the reconnection (the stream had stopped and was started again). When
   the link says the sensor powered up, its next packet starts a new stream, unless it
   is a duplicate or exactly the next packet of the old one.
4. Clock step. A packet whose number follows but whose clock fits neither (the clock
   stepped, forward or back) is delivered where its number puts it, missing packets
   counted full, so sensor time never runs backwards; the next packet's clock is judged
   against both the old reference and the stepped one, whichever it continues. A packet
   far ahead in sequence with such a clock is rejected.

Host times come from the clock mapping and are kept increasing: a sample mapped no later
than the one before it is put half a period after it.

Why the protocol needs no boot counter
--------------------------------------
Rule 3 asks the restart question only at a reconnection, and there sequence, clock and
host time leave one ambiguity: a sensor that powered up just as its old clock would have
wrapped (within a second, or the drift over a longer outage, of the time the new
connection took to start streaming) reads a clock the old one could have read. Of
restarts sampled at uptimes up to a day after outages of 0.3 s to 20 min, 2 in 10,000
fall there.
For those the status read at every connection already carries a boot bit:
`CLOCK_UNSYNCED` means "no TIME_SYNC since power-up" (section 5) and the BLE link sends
TIME_SYNC on every connection, so the bit set at a connection means the sensor powered
up since the last one; the link passes it as `reconnected(..., sensor_restarted=True)`.
A boot counter or session nonce would add only the case of another host syncing the
sensor between two of this host's connections. Without `reconnected()` calls (a caller
that does not report its connections) restarts are still recognised, but the ambiguity
covers the whole outage: 1.6 % of those restarts pass for pauses.
"""

import heapq
import math
from bisect import bisect_left, insort
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Literal

import numpy as np
from numpy.typing import NDArray

from ._clock import ClockMapper
from ._constants import MAX_SAMPLES_PER_PACKET, PayloadKind
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
_AHEAD_S: Final = 1.0
"""How far a packet's clock may run ahead of the host clock mapping (latency jitter)."""
_DRIFT: Final = 1e-3
"""Clock rate uncertainty when the mapping is extrapolated: twice the largest skew fitted."""
_LATENCY_S: Final = 1.0
"""The longest a packet is taken to have spent between the sensor and its host timestamp."""
_HISTORY: Final = 4096
"""Delivered packets remembered (between this and twice as many) to recognise stale ones."""

F64Array = NDArray[np.float64]
I64Array = NDArray[np.int64]
Stale = Literal["duplicate", "late"]


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
    what the sensor clock says fitted between the samples either side; a pause (the
    sensor stopped streaming and started again, its sequence going on) is a loss of no
    packets. For `reason == "restart"` the sensor began a new stream (its sequence and
    clock started over); the host clock says how long the gap lasted, and the counts are
    estimates.
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
    """Packets handed in, including malformed, duplicate, late and rejected ones."""
    malformed: int = 0
    duplicates: int = 0
    reordered: int = 0
    """Packets that arrived after a later one and were put back in place."""
    late: int = 0
    """Packets that arrived after their gap had been declared; dropped."""
    rejected: int = 0
    """Packets whose sequence number and clock fit neither the stream nor a restart."""
    clock_steps: int = 0
    """Packets whose clock disagreed with their sequence number; placed by the latter."""
    lost_packets: int = 0
    lost_samples: int = 0
    gaps: int = 0
    restarts: int = 0
    samples: int = 0
    """Samples delivered."""

    @property
    def loss_ratio(self) -> float:
        """Lost packets over packets the sensor sent (delivered plus lost)."""
        dropped = self.malformed + self.duplicates + self.late + self.rejected
        sent = self.packets - dropped + self.lost_packets
        return self.lost_packets / sent if sent > 0 else 0.0


@dataclass(slots=True)
class _Pending:
    ts_wrapped: int
    host_s: float
    kind: int
    n: int
    batch: PacketBatch
    row: int
    fitted: tuple[int, int] | None = None
    """(last delivered sequence number, sensor time) as judged on arrival."""


@dataclass(frozen=True, slots=True)
class _Delivered:
    """What the reassembler remembers of the last packet it delivered."""

    seq: int
    ts_wrapped: int
    n: int
    first_us: int
    host_s: float
    sample_us: int
    sample_host_s: float


@dataclass(slots=True)
class _Reconnect:
    """Reconnections reported since the last packet that continued the stream."""

    first_s: float
    sensor_restarted: bool | None


class _History:
    """Sequence number and clock of the packets one stream delivered, the newest ones."""

    __slots__ = ("first_us", "full", "last_us", "seq", "trimmed", "ts")

    def __init__(self) -> None:
        self.full = 1
        """The most samples a packet held."""
        self.seq: list[int] = []
        self.ts: list[int] = []
        self.first_us: list[int] = []
        self.last_us: list[int] = []
        self.trimmed = False
        """Whether packets older than the first kept ones were forgotten."""

    def add(self, seq: int, ts_wrapped: int, first_us: int, last_us: int, period_us: int) -> None:
        self.full = max(self.full, (last_us - first_us) // period_us + 1)
        self.seq.append(seq)
        self.ts.append(ts_wrapped)
        self.first_us.append(first_us)
        self.last_us.append(last_us)
        if len(self.seq) > 2 * _HISTORY:
            for column in (self.seq, self.ts, self.first_us, self.last_us):
                del column[:_HISTORY]
            self.trimmed = True

    def delivered(self, seq: int) -> bool:
        i = bisect_left(self.seq, seq)
        return i < len(self.seq) and self.seq[i] == seq


def _latest(ref_ts: int, ref_us: int, ts_wrapped: int, hi_us: int) -> int:
    """The unwrapping of `ts_wrapped` against a reference reading, latest not after hi."""
    c0 = ref_us + (ts_wrapped - ref_ts) % _TS_MOD
    return c0 + (hi_us - c0) // _TS_MOD * _TS_MOD


class StreamReassembler:
    """Order, de-duplicate and time-stamp a sensor's packets; report what was lost.

    Sequence numbers (16 bit) and timestamps (32 bit) are unwrapped. Packets that arrive
    out of order are held until the missing one comes, more than `reorder_window` packets
    are waiting, or the oldest waiting one has waited `reorder_timeout_s` of host time,
    whichever first; then the missing ones are declared lost. A BLE link delivers in
    order, so holding back is for the rare reordering in host stacks and should be short:
    it delays the live stream after every loss. `poll()` applies the timeout while no
    packets arrive. A sensor that restarts starts a new stream after a `Gap` with reason
    "restart"; unwrapped sensor time and host time keep increasing across it. The module
    docstring says how restarts, losses, pauses and stale packets are told apart.

    A link that calls `reconnected()` at each connection has restarts looked for only
    after one; without such calls any packet may reveal one.

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
        self._notified = False
        self._forget()

    def reset(self) -> None:
        """Forget the stream and the statistics, as for a new sensor; settings are kept."""
        self.stats = ReassemblyStats()
        self._forget()
        self.clock.reset()

    def _forget(self) -> None:
        self._clear_stream()
        self._previous: _History | None = None
        self._last: _Delivered | None = None
        self._markers: list[tuple[float, bool | None]] = []
        self._reconnect: _Reconnect | None = None

    def _clear_stream(self) -> None:
        self._history = _History()
        self._heap: list[int] = []
        self._pending: dict[int, _Pending] = {}
        self._next_seq: int | None = None
        self._max_seq: int | None = None
        self._anchor: tuple[int, int] | None = None
        """Raw and unwrapped clock of the last packet whose clock agreed with the stream."""
        self._heard_s = -math.inf
        """Host time of the newest packet of this stream, stale ones included."""
        self._restarting = False

    @property
    def resume_seq(self) -> int | None:
        """Sequence number (0..65535) of the first packet not yet delivered in order.

        What a host asks a 1.1 sensor to resume from after a reconnection; None before
        the first packet.
        """
        return None if self._next_seq is None else self._next_seq & 0xFFFF

    def reconnected(self, host_time_s: float, *, sensor_restarted: bool | None = None) -> None:
        """The link connected again at `host_time_s`; packets from then on are judged so.

        Call it before the packets of the new connection arrive and with a time between
        the last packet of the old connection and the first of the new one (packets of
        the old connection may still be pushed afterwards). `sensor_restarted` is what
        the sensor says: True when it has powered up since the last connection (the
        status flag `CLOCK_UNSYNCED` after a TIME_SYNC on every connection), False when
        it says it has not, None when it says nothing.
        """
        self._notified = True
        insort(self._markers, (host_time_s, sensor_restarted), key=lambda m: m[0])

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

    # -- judging a packet --------------------------------------------------------------

    def _accept(self, batch: PacketBatch, r: int, host_s: float, out: list[StreamItem]) -> None:
        seq16 = int(batch.seq[r])
        ts = int(batch.timestamp_us[r])
        n = int(batch.offsets[r + 1] - batch.offsets[r])
        pkt = _Pending(ts, host_s, int(batch.kind[r]), n, batch, r)
        self._take_markers(host_s)
        if self._next_seq is None or self._last is None:
            self._begin(seq16, pkt, out)
            return
        rc = self._reconnect
        m = (seq16 - self._next_seq) % _SEQ_MOD
        seq = self._next_seq + m
        held = self._pending.get(seq)
        if held is not None and held.ts_wrapped == ts:
            self._drop("duplicate", host_s)
            return
        stale = self._stale(self._history, seq16, ts, n, in_connection=rc is None)
        if rc is not None and rc.sensor_restarted:
            # The sensor says it powered up: a new stream, unless this is a packet seen
            # before or the very next one of the old stream.
            last = self._last
            if stale == "duplicate":
                self._drop(stale, host_s)
            elif m == 0 and ts == (last.ts_wrapped + last.n * self.fmt.period_us) % _TS_MOD:
                self._hold(seq, pkt, out)
            else:
                self._restart(out)
                self._begin(seq16, pkt, out)
            return
        if stale is not None:
            self._drop(stale, host_s)
            return
        u = self._fit(m, ts, n, host_s)
        if u is not None:
            pkt.fitted = (self._last.seq, u)
        may_restart = rc is not None or not self._notified
        if u is not None and (
            rc is None or rc.sensor_restarted is False or self._explained(u, m, rc)
        ):
            self._hold(seq, pkt, out)
        elif may_restart and self._restart_fits(ts, n, host_s):
            self._restart(out)
            self._begin(seq16, pkt, out)
        elif u is not None:
            self._hold(seq, pkt, out)
        elif self._previous is not None and (
            old := self._stale(self._previous, seq16, ts, n, in_connection=False)
        ):
            self.stats.duplicates += old == "duplicate"
            self.stats.late += old == "late"
        elif m >= _SEQ_MOD // 2:
            behind = self._next_seq + m - _SEQ_MOD
            self._drop("duplicate" if self._history.delivered(behind) else "late", host_s)
        elif m <= self.reorder_window:
            self._hold(seq, pkt, out)  # its clock stepped: placed by its number on release
        else:
            self.stats.rejected += 1

    def _take_markers(self, host_s: float) -> None:
        while self._markers and self._markers[0][0] <= host_s:
            at, said = self._markers.pop(0)
            rc = self._reconnect
            if rc is None:
                self._reconnect = _Reconnect(at, said)
            elif said or rc.sensor_restarted:
                rc.sensor_restarted = True  # a power-up at any of the reconnections
            elif said is None:
                rc.sensor_restarted = None

    def _drop(self, why: Stale, host_s: float) -> None:
        if why == "duplicate":
            self.stats.duplicates += 1
        else:
            self.stats.late += 1
        self._heard_s = max(self._heard_s, host_s)

    def _stale(
        self, h: _History, seq16: int, ts: int, n: int, *, in_connection: bool
    ) -> Stale | None:
        """Whether the packet is one of `h`'s stream already delivered or declared lost.

        A duplicate has a remembered packet's number and clock; a late packet a number
        inside a declared gap and a clock that fits in it. Before the first packet kept,
        only a few packets just before a stream's very first are recognised (a stream
        whose first packets came in reversed), and only within a connection.
        """
        if not h.seq:
            return None
        back = (h.seq[-1] + 1 - seq16) % _SEQ_MOD
        if back == 0 or back > _SEQ_MOD // 2:
            return None
        s = h.seq[-1] + 1 - back
        i = bisect_left(h.seq, s)
        if i < len(h.seq) and h.seq[i] == s:
            return "duplicate" if h.ts[i] == ts else None
        period = self.fmt.period_us
        hi = h.first_us[i] - (h.seq[i] - s - 1 + n) * period
        if i == 0:
            ahead = h.seq[0] - s
            if h.trimmed or not in_connection or ahead > self.reorder_window:
                return None
            lo = h.first_us[0] - ahead * MAX_SAMPLES_PER_PACKET * period
        else:
            a = i - 1
            lo = h.last_us[a] + (s - h.seq[a]) * period
            missing = h.seq[i] - h.seq[a] - 1
            if (
                abs(h.first_us[i] - h.last_us[a] - period - missing * h.full * period)
                <= period // 2
            ):
                # The sensor streamed on through the gap: the packet has its place in it.
                lo = h.last_us[a] + (1 + (s - h.seq[a] - 1) * h.full) * period - period // 2
                hi = lo + period
        u = _latest(h.ts[i], h.first_us[i], ts, hi)
        return "late" if u >= lo else None

    def _hi_us(self, host_s: float, n: int) -> int:
        """The latest clock reading the first of `n` samples arriving at `host_s` can have."""
        est = self.clock.estimate
        last = self._last
        assert last is not None
        if est is None:
            return last.sample_us + _TS_MOD // 2
        since_s = max(0.0, host_s - last.host_s)
        ahead_s = (host_s - est.offset_s) / (1.0 + est.skew) + _AHEAD_S + _DRIFT * since_s
        return math.floor(ahead_s * 1e6) - (n - 1) * self.fmt.period_us

    def _fit(self, m: int, ts: int, n: int, host_s: float) -> int | None:
        """Sensor time of the packet's first sample, if its clock fits the stream.

        The stream being the last delivered packet, then `m` missing ones. Tried against
        the last packet whose clock agreed with the stream, then against the last
        delivered one (whose clock may have stepped).
        """
        last = self._last
        assert last is not None
        lo = last.sample_us + (m + 1) * self.fmt.period_us
        hi = self._hi_us(host_s, n)
        refs = [(last.ts_wrapped, last.first_us)]
        if self._anchor is not None and self._anchor != refs[0]:
            refs.insert(0, self._anchor)
        for ref_ts, ref_us in refs:
            u = _latest(ref_ts, ref_us, ts, hi)
            if u >= lo:
                return u
        return None

    def _explained(self, u: int, m: int, rc: _Reconnect) -> bool:
        """Whether a packet after a reconnection continues the stream as a sensor would.

        Either the sequence advanced as the clock did (it streamed on) or the packet was
        sampled after the reconnection (the stream was started again).
        """
        last = self._last
        est = self.clock.estimate
        assert last is not None
        period = self.fmt.period_us
        uncovered = u - (last.sample_us + period)
        full = self._history.full
        if abs(uncovered - m * full * period) <= full * period // 2:
            return True
        if est is None:
            return True
        slack_s = _AHEAD_S + _DRIFT * max(0.0, rc.first_s - last.host_s)
        since_us = ((rc.first_s - est.offset_s) / (1.0 + est.skew) - slack_s) * 1e6
        return u >= since_us

    def _restart_fits(self, ts: int, n: int, host_s: float) -> bool:
        """Whether a clock started at power-up can read `ts` at this packet.

        The sensor was alive when it sent the newest packet heard, at most `_LATENCY_S`
        before that packet's arrival; a clock reset since then reads no more than the
        host time that passed.
        """
        room_us = (host_s - self._heard_s + _LATENCY_S) * 1e6 * (1.0 + _DRIFT)
        return room_us >= _TS_MOD or ts + (n - 1) * self.fmt.period_us <= room_us

    # -- holding and releasing ---------------------------------------------------------

    def _begin(self, seq16: int, pkt: _Pending, out: list[StreamItem]) -> None:
        """The first packet of a stream."""
        self._reconnect = None
        self._next_seq = self._max_seq = seq16
        self._hold(seq16, pkt, out)

    def _hold(self, seq: int, pkt: _Pending, out: list[StreamItem]) -> None:
        self._reconnect = None
        self._heard_s = max(self._heard_s, pkt.host_s)
        if seq in self._pending:
            self.stats.duplicates += 1
            return
        if self._max_seq is not None and seq < self._max_seq:
            self.stats.reordered += 1
        self._max_seq = seq if self._max_seq is None else max(self._max_seq, seq)
        self._pending[seq] = pkt
        heapq.heappush(self._heap, seq)
        self._release_ready(pkt.host_s, out)

    def _release_ready(self, now_s: float, out: list[StreamItem]) -> None:
        while self._heap and (
            self._heap[0] == self._next_seq
            or len(self._pending) > self.reorder_window
            or now_s - self._pending[self._heap[0]].host_s >= self.reorder_timeout_s
        ):
            self._release_next(out)

    def _restart(self, out: list[StreamItem]) -> None:
        # What the old stream still held is delivered before the new stream begins.
        while self._heap:
            self._release_next(out)
        self.stats.restarts += 1
        self._previous = self._history
        self._clear_stream()
        self._restarting = True
        self.clock.reset()

    def _place(self, lost_packets: int, p: _Pending) -> int:
        """Sensor time of the released packet's first sample."""
        last = self._last
        period = self.fmt.period_us
        if last is None:
            first_us = p.ts_wrapped
        elif self._restarting:
            # A new sensor clock: place it after the old one by the host time that passed
            # between the arrivals, less this packet's span; by the mapped time of the last
            # sample if that packet came late (a replayed backlog).
            before_s = min(last.host_s, last.sample_host_s + self.clock.late_s)
            since_us = round((p.host_s - before_s) * 1e6) - (p.n - 1) * period
            first_us = last.sample_us + max(period, since_us)
        else:
            if p.fitted is not None and p.fitted[0] == last.seq:
                fitted: int | None = p.fitted[1]  # nothing was released since it came
            else:
                fitted = self._fit(lost_packets, p.ts_wrapped, p.n, p.host_s)
            if fitted is None:
                # The clock stepped: the sequence number says where the packet goes,
                # missing packets counted full.
                self.stats.clock_steps += 1
                return last.sample_us + (1 + lost_packets * self._history.full) * period
            first_us = fitted
        self._anchor = (p.ts_wrapped, first_us)
        return first_us

    def _release_next(self, out: list[StreamItem]) -> None:
        seq = heapq.heappop(self._heap)
        p = self._pending.pop(seq)
        assert self._next_seq is not None
        fmt = self.fmt
        b = p.batch
        start, stop = int(b.offsets[p.row]), int(b.offsets[p.row + 1])
        n = stop - start
        last = self._last
        lost_packets = seq - self._next_seq
        first_us = self._place(lost_packets, p)
        t_sensor = first_us + np.arange(n, dtype=np.int64) * fmt.period_us
        est = self.clock.observe(int(t_sensor[-1]), p.host_s)
        t_host = est.to_host(t_sensor)

        lost_samples = 0
        if last is not None:
            # Host time never runs backwards, even when the mapping just moved earlier.
            floor = last.sample_host_s + np.arange(1, n + 1) * (0.5e-6 * fmt.period_us)
            t_host = np.maximum(t_host, floor)
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
            seq=seq,
            ts_wrapped=p.ts_wrapped,
            n=n,
            first_us=int(first_us),
            host_s=p.host_s,
            sample_us=int(t_sensor[-1]),
            sample_host_s=float(t_host[-1]),
        )
        self._history.add(seq, p.ts_wrapped, int(first_us), int(t_sensor[-1]), fmt.period_us)


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
