"""What a hipsense sensor's firmware does, without the radio: the protocol's behaviour.

Answers the control point, reports its status, and cuts the IMU stream into packets on
its own clock. It keeps a backlog of its last packets across a disconnection and resumes
from it when the host asks (protocol 1.1, section 4.3). Fault injection (loss,
duplicates, malformed packets, stalls) happens here, and every injected fault is counted
so a test can compare the host's telemetry with what really happened.
"""

import time
from collections import deque
from dataclasses import dataclass, field
from functools import cache

import numpy as np
from numpy.typing import NDArray

from hipsense.protocol import (
    PROTOCOL_MINOR,
    ControlResponse,
    ErrorFlag,
    Identify,
    PayloadKind,
    ProtocolError,
    ResultCode,
    SensorStatus,
    SetRanges,
    SetRate,
    StartStreaming,
    StopStreaming,
    TimeSync,
    decode_command,
    encode_status,
)

from .._packetizer import Packetizer

__all__ = ["EmulatedFirmware", "FaultCounts", "sensor_source"]


@cache
def sensor_source(
    seed: int, rate_hz: int, accel_range_g: int, gyro_range_dps: int, reps: int = 8
) -> NDArray[np.int16]:
    """(n, 6) raw counts the emulated sensor plays in a loop: `reps` simulated clamshells.

    Deterministic, so a test can rebuild what the sensor sent from the sample index.
    """
    from hipsense.exercises import load_library

    from .._simulate import simulate
    from .._spec import ImuSpec, ScenarioSpec, SetSpec

    spec = ScenarioSpec(
        name="emulated-sensor",
        exercise="clamshell",
        seed=seed,
        sets=[SetSpec(reps=reps, rest_after_s=5.0)],
        imu=ImuSpec(
            rate_hz=rate_hz,
            accel_range_g=accel_range_g,
            gyro_range_dps=gyro_range_dps,
        ),
    )
    return simulate(spec, load_library()["clamshell"]).raw_counts


_MALFORMED = (
    bytes([0xFF, 0x00, 0x13]),  # too short for a header
    # A header that agrees with its length, holding a zero quaternion: only the
    # samples are wrong (a RAW_QUAT packet of one sample, sequence 0, time 0).
    bytes.fromhex("1161000000000000") + bytes(20),
)
"""What an injected malformed packet is, in turn."""


@dataclass
class FaultCounts:
    """What the emulator did to the stream, for comparison with the host's telemetry."""

    packets_sent: int = 0
    """Packets notified, including duplicates and malformed ones."""
    samples_sent: int = 0
    lost_packets: int = 0
    """Packets built (sequence number used) but never sent."""
    duplicates: int = 0
    malformed: int = 0
    link_drops: int = 0
    stalls: int = 0
    replayed: int = 0
    """Kept packets sent again after a resume."""


@dataclass
class EmulatedFirmware:
    """One sensor's firmware state; times come from its own monotonic clock."""

    seed: int = 0
    att_payload: int = 244
    battery_pct: int = 87
    firmware: tuple[int, int, int] = (1, 2, 0)
    rate_hz: int = 100
    accel_range_g: int = 8
    gyro_range_dps: int = 1000
    kind: PayloadKind = PayloadKind.RAW
    streaming: bool = False
    errors: ErrorFlag = ErrorFlag.CLOCK_UNSYNCED
    backlog_packets: int = 64
    """Packets kept for a resume (protocol 1.1); 0 behaves as a 1.0 sensor."""
    keep_s: float = 600.0
    """How long a stream stays open without a connection."""
    counts: FaultCounts = field(default_factory=FaultCounts)
    _boot_s: float = field(default_factory=time.monotonic)
    _packetizer: Packetizer | None = None
    _next_k: int = 0
    _lose: int = 0
    _duplicate: int = 0
    _malformed: int = 0
    _stall_until_s: float = 0.0
    _last_packet: bytes | None = None
    _ring: deque[tuple[int, bytes]] = field(default_factory=deque)
    _lost_link_s: float | None = None
    _replay: list[bytes] = field(default_factory=list)

    @property
    def period_us(self) -> int:
        """Sample period at the current rate."""
        return 1_000_000 // self.rate_hz

    def now_us(self) -> int:
        """The sensor clock: microseconds since power-up."""
        return int((time.monotonic() - self._boot_s) * 1e6)

    def status(self) -> bytes:
        """The status characteristic's value now."""
        return encode_status(
            SensorStatus(
                protocol_minor=PROTOCOL_MINOR,
                firmware=self.firmware,
                rate_hz=self.rate_hz,
                accel_range_g=self.accel_range_g,
                gyro_range_dps=self.gyro_range_dps,
                kind=int(self.kind),
                streaming=self.streaming,
                battery_pct=self.battery_pct,
                errors=self.errors,
                backlog_packets=self.backlog_packets,
            )
        )

    def command(self, data: bytes) -> ControlResponse:
        """Carry out a control point write; the response is what the sensor indicates."""
        request = data[0] if data else 0
        try:
            cmd = decode_command(data)
        except ProtocolError:
            known = 1 <= request <= 6
            code = ResultCode.INVALID_PARAMETER if known else ResultCode.OPCODE_NOT_SUPPORTED
            return ControlResponse(request, code)
        match cmd:
            case StartStreaming(kind) if kind is not PayloadKind.RAW:
                # This emulated sensor does not fuse orientation itself.
                return ControlResponse(request, ResultCode.INVALID_PARAMETER)
            case StartStreaming(_, resume_seq) if resume_seq is not None and self._kept():
                self._resume(resume_seq)
            case StartStreaming():
                self._start()
            case StopStreaming():
                self.streaming = False
                self._ring.clear()
                self._lost_link_s = None
            case SetRate(rate_hz) if not self.streaming:
                self.rate_hz = rate_hz
            case SetRanges(accel, gyro) if not self.streaming:
                self.accel_range_g, self.gyro_range_dps = accel, gyro
            case SetRate() | SetRanges():
                return ControlResponse(request, ResultCode.NOT_PERMITTED)
            case TimeSync(token):
                self.errors &= ~ErrorFlag.CLOCK_UNSYNCED
                return ControlResponse(request, ResultCode.SUCCESS, token, self.now_us())
            case Identify():
                pass
        return ControlResponse(request, ResultCode.SUCCESS)

    def _kept(self) -> bool:
        """Whether a stream survived a disconnection, with its backlog, to be resumed."""
        if not self.streaming or self._lost_link_s is None:
            return False
        return time.monotonic() - self._lost_link_s <= self.keep_s

    def _resume(self, resume_seq: int) -> None:
        """Send the kept packets from `resume_seq` on, oldest first, then go on live."""
        self._lost_link_s = None
        self._build()
        # Sequence numbers wrap at 65536: "from resume_seq on" is the forward half.
        self._replay = [p for seq, p in self._ring if (seq - resume_seq) & 0xFFFF < 0x8000]
        self.counts.replayed += len(self._replay)

    def _start(self) -> None:
        self._ring.clear()
        self._lost_link_s = None
        seq = self._packetizer.seq if self._packetizer is not None else 0
        self._packetizer = Packetizer(
            kind=PayloadKind.RAW, att_payload=self.att_payload, period_us=self.period_us, seq=seq
        )
        self.kind = PayloadKind.RAW
        # Streaming starts with the next sample: what the sensor sampled while nobody
        # listened is gone, and its clock says how much.
        self._next_k = self.now_us() // self.period_us + 1
        self.streaming = True

    def link_lost(self) -> None:
        """The connection dropped: keep sampling into the backlog, or stop without one.

        Either way the sequence counter and clock carry on.
        """
        if self.backlog_packets == 0:
            self.streaming = False
        elif self.streaming:
            self._lost_link_s = time.monotonic()

    # -- fault injection ------------------------------------------------------------

    def inject(self, *, lose: int = 0, duplicate: int = 0, malformed: int = 0) -> None:
        """Lose, duplicate or garble the next packets."""
        self._lose += lose
        self._duplicate += duplicate
        self._malformed += malformed

    def stall(self, seconds: float) -> None:
        """Stay connected but send nothing (a hung IMU task)."""
        self._stall_until_s = time.monotonic() + seconds
        self.counts.stalls += 1

    # -- the stream -----------------------------------------------------------------

    def _build(self) -> list[bytes]:
        """Full packets of the samples taken since the last call, kept in the backlog."""
        if not self.streaming or self._packetizer is None:
            return []
        p = self._packetizer
        spp = p.samples_per_packet
        k_now = self.now_us() // self.period_us
        n_packets = (k_now - self._next_k + 1) // spp
        if n_packets <= 0:
            return []
        if time.monotonic() < self._stall_until_s:
            self._next_k += n_packets * spp
            return []  # sampled but never sent; the sequence numbers stay unused
        # Packets older than the ring were built and overwritten: their numbers are used.
        dropped = max(0, n_packets - self.backlog_packets) if self.backlog_packets else 0
        self._next_k += dropped * spp
        p.seq += dropped
        n = (n_packets - dropped) * spp
        k = np.arange(self._next_k, self._next_k + n, dtype=np.int64)
        self._next_k += n
        src = sensor_source(self.seed, self.rate_hz, self.accel_range_g, self.gyro_range_dps)
        raw = src[k % src.shape[0]]
        first_seq = p.seq
        built = p.packets(raw, timestamps_us=(k * self.period_us) & 0xFFFFFFFF)
        if self.backlog_packets:
            if self._ring.maxlen != self.backlog_packets:
                self._ring = deque(self._ring, maxlen=self.backlog_packets)
            self._ring.extend(((first_seq + i) & 0xFFFF, pkt) for i, pkt in enumerate(built))
        return built

    def due_packets(self) -> list[bytes]:
        """Packets due now: a resumed backlog first, then full packets of new samples."""
        built = self._build()
        p = self._packetizer
        if self._lost_link_s is not None or p is None:
            return []  # kept for the host's START_STREAMING after the reconnection
        out, self._replay = self._replay, []
        self.counts.samples_sent += len(out) * p.samples_per_packet  # all full packets
        for pkt in built:
            if self._lose > 0:
                self._lose -= 1
                self.counts.lost_packets += 1
                continue
            out.append(pkt)
            self.counts.samples_sent += p.samples_per_packet
            if self._duplicate > 0:
                self._duplicate -= 1
                self.counts.duplicates += 1
                out.append(pkt)
            if self._malformed > 0:
                self._malformed -= 1
                self.counts.malformed += 1
                out.append(_MALFORMED[self.counts.malformed % len(_MALFORMED)])
        self.counts.packets_sent += len(out)
        return out
