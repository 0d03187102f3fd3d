"""IMU data packets: bytes in, numpy arrays in SI units out, and back.

Layout (little-endian, firmware_protocol/PROTOCOL.md section "IMU data packet"):

    offset size  field
    0      1     version       major << 4 | minor
    1      1     kind_count    payload kind << 5 | sample count (1..31)
    2      2     seq           packet sequence number, wraps at 2**16
    4      4     timestamp_us  sensor time of the first sample, wraps at 2**32
    8      n*s   samples       n samples of s bytes (12 RAW, 8 QUAT, 20 RAW_QUAT)

Decoding never loops over samples in Python: one `np.frombuffer` view per packet, or per
group of equal-length packets in `decode_many`.
"""

import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, NamedTuple

import numpy as np
from numpy.typing import NDArray

from ._constants import (
    ACCEL_RANGES_G,
    GYRO_RANGES_DPS,
    HEADER_SIZE,
    MAX_ATT_PAYLOAD,
    MAX_SAMPLES_PER_PACKET,
    PROTOCOL_MAJOR,
    PROTOCOL_MINOR,
    QUAT_Q14_ONE,
    SAMPLE_RATES_HZ,
    PayloadKind,
    accel_lsb_m_s2,
    gyro_lsb_rad_s,
)
from ._errors import (
    InvalidSampleError,
    PacketTooLongError,
    PacketTooShortError,
    ProtocolError,
    SampleCountMismatchError,
    TruncatedSampleBlockError,
    UnknownPayloadKindError,
    UnsupportedSettingError,
    UnsupportedVersionError,
)

__all__ = [
    "ImuPacket",
    "PacketBatch",
    "StreamFormat",
    "decode",
    "decode_many",
    "encode",
    "quantize_quat",
    "quantize_raw",
]

_HEADER: Final = struct.Struct("<BBHI")
_KINDS: Final = tuple(int(k) for k in PayloadKind)
# A decoded quaternion must be a unit quaternion up to Q14 rounding and a firmware's
# own normalisation slack; anything further off is corruption, not rounding.
_QUAT_NORM_MIN: Final = 0.9
_QUAT_NORM_MAX: Final = 1.1
_EMPTY_F64: Final = np.empty((0, 3), dtype=np.float64)

F64Array = NDArray[np.float64]
I64Array = NDArray[np.int64]
I16Array = NDArray[np.int16]


@dataclass(frozen=True, slots=True)
class StreamFormat:
    """The sensor configuration a packet stream was produced with.

    The packets do not carry it: the host sets it through the control point and reads it
    back from the status characteristic, and needs it to scale raw counts to SI units.
    """

    rate_hz: int = 100
    accel_range_g: int = 8
    gyro_range_dps: int = 1000

    def __post_init__(self) -> None:
        if self.rate_hz not in SAMPLE_RATES_HZ:
            raise UnsupportedSettingError("rate_hz", SAMPLE_RATES_HZ, self.rate_hz)
        if self.accel_range_g not in ACCEL_RANGES_G:
            raise UnsupportedSettingError("accel_range_g", ACCEL_RANGES_G, self.accel_range_g)
        if self.gyro_range_dps not in GYRO_RANGES_DPS:
            raise UnsupportedSettingError("gyro_range_dps", GYRO_RANGES_DPS, self.gyro_range_dps)

    @property
    def period_us(self) -> int:
        """Nominal sample period in sensor microseconds (exact for every offered rate)."""
        return 1_000_000 // self.rate_hz

    @property
    def accel_lsb_m_s2(self) -> float:
        """Acceleration of one accelerometer count."""
        return accel_lsb_m_s2(self.accel_range_g)

    @property
    def gyro_lsb_rad_s(self) -> float:
        """Angular rate of one gyroscope count."""
        return gyro_lsb_rad_s(self.gyro_range_dps)


@dataclass(frozen=True, slots=True, eq=False)
class ImuPacket:
    """One decoded IMU data packet.

    `t_us` holds each sample's sensor time: the header's wrapped `timestamp_us` plus
    whole sample periods, so it may pass 2**32 at the end of a packet that starts just
    before the wrap. Arrays absent from the payload kind are None.
    """

    version_minor: int
    kind: PayloadKind
    seq: int
    timestamp_us: int
    t_us: I64Array
    acc_m_s2: F64Array | None
    gyr_rad_s: F64Array | None
    quat: F64Array | None

    @property
    def count(self) -> int:
        """Number of samples in the packet."""
        return int(self.t_us.shape[0])


@dataclass(frozen=True, slots=True, eq=False)
class PacketBatch:
    """Many packets decoded at once, in the order given.

    Per-packet arrays have one row per decoded packet; per-sample arrays are the packets'
    samples concatenated, packet `i` owning rows `offsets[i]:offsets[i + 1]`. Where a
    packet's kind lacks raw or quaternion data, its rows hold NaN. Packets that failed to
    decode are listed in `errors` by their index in the input and are not in the arrays.
    """

    index: I64Array
    seq: NDArray[np.uint16]
    timestamp_us: NDArray[np.uint32]
    kind: NDArray[np.uint8]
    offsets: I64Array
    t_us: I64Array
    acc_m_s2: F64Array
    gyr_rad_s: F64Array
    quat: F64Array
    errors: tuple[tuple[int, ProtocolError], ...]

    @property
    def packet_count(self) -> int:
        """Number of packets decoded without error."""
        return int(self.seq.shape[0])

    @property
    def sample_count(self) -> int:
        """Number of samples across the decoded packets."""
        return int(self.t_us.shape[0])


def _check_header(version: int, kind_count: int, length: int) -> tuple[PayloadKind, int]:
    """Validate header bytes against the packet length; return (kind, count)."""
    major = version >> 4
    if major != PROTOCOL_MAJOR:
        raise UnsupportedVersionError(PROTOCOL_MAJOR, major, version & 0x0F)
    kind_code = kind_count >> 5
    if kind_code not in _KINDS:
        raise UnknownPayloadKindError(_KINDS, kind_code)
    kind = PayloadKind(kind_code)
    count = kind_count & 0x1F
    block = length - HEADER_SIZE
    if block == 0:
        raise PacketTooShortError(
            f"IMU packet of kind {kind.name}", HEADER_SIZE + kind.sample_size, length
        )
    if block % kind.sample_size:
        raise TruncatedSampleBlockError(kind.sample_size, block)
    if count != block // kind.sample_size:
        raise SampleCountMismatchError(count, block // kind.sample_size)
    return kind, count


def _check_length(length: int) -> None:
    if length < HEADER_SIZE:
        raise PacketTooShortError("IMU packet", HEADER_SIZE, length)
    if length > MAX_ATT_PAYLOAD:
        raise PacketTooLongError("IMU packet", MAX_ATT_PAYLOAD, length)


def _scale_quat(q14: NDArray[np.int16], first_index: int = 0) -> F64Array:
    """Q14 counts to unit quaternions, refusing ones too far from unit norm."""
    q = q14.astype(np.float64) * (1.0 / QUAT_Q14_ONE)
    norm = np.sqrt(np.einsum("ij,ij->i", q, q))
    bad = (norm < _QUAT_NORM_MIN) | (norm > _QUAT_NORM_MAX)
    if bad.any():
        i = int(np.argmax(bad))
        raise InvalidSampleError(
            first_index + i,
            f"a unit quaternion (norm {_QUAT_NORM_MIN}..{_QUAT_NORM_MAX})",
            f"norm {norm[i]:.4f}",
        )
    q /= norm[:, None]
    return q


def decode(data: bytes | bytearray | memoryview, fmt: StreamFormat) -> ImuPacket:
    """Decode one IMU data packet.

    Raises a `ProtocolError` subclass, and nothing else, for any input that is not a
    valid packet: too short or too long, unknown major version or payload kind, a sample
    block that is not whole, a count that disagrees with the length, or a quaternion
    that is not a unit quaternion.
    """
    buf = bytes(data)
    _check_length(len(buf))
    version, kind_count, seq, ts = _HEADER.unpack_from(buf)
    kind, count = _check_header(version, kind_count, len(buf))
    samples = np.frombuffer(buf, dtype="<i2", offset=HEADER_SIZE).reshape(count, -1)
    acc = gyr = quat = None
    if kind.has_raw:
        acc = samples[:, 0:3] * fmt.accel_lsb_m_s2
        gyr = samples[:, 3:6] * fmt.gyro_lsb_rad_s
    if kind.has_quat:
        quat = _scale_quat(samples[:, -4:])
    t_us = ts + np.arange(count, dtype=np.int64) * fmt.period_us
    return ImuPacket(version & 0x0F, kind, seq, ts, t_us, acc, gyr, quat)


class _Group(NamedTuple):
    """Packets of one length and kind: their input positions and bytes, one row each."""

    idx: I64Array
    rows: NDArray[np.uint8]
    kind: PayloadKind


def decode_many(
    packets: Sequence[bytes | bytearray | memoryview], fmt: StreamFormat
) -> PacketBatch:
    """Decode a batch of packets, vectorised across packets of equal length.

    A notification queue drained in one go is the typical input. Malformed packets do not
    spoil the batch: they are reported in `PacketBatch.errors` with the same exception
    `decode` raises for them.
    """
    errors: list[tuple[int, ProtocolError]] = []
    groups: list[_Group] = []
    for idx, rows in _split_by_length(packets, errors):
        good = np.zeros(len(idx), dtype=bool)
        for group, mask in _split_by_kind(idx, rows):
            good |= mask
            groups.append(group)
        if not good.all():
            _scalar_errors(rows[~good], idx[~good], fmt, errors)
    decoded: list[tuple[_Group, F64Array | None]] = []
    for group in groups:
        quat = None
        if group.kind.has_quat:
            group, quat = _unit_quats(group, fmt, errors)
            if not len(group.idx):
                continue  # every packet of the group held a bad quaternion
        decoded.append((group, quat))
    errors.sort(key=lambda e: e[0])
    return _assemble(decoded, tuple(errors), fmt)


def _split_by_length(
    packets: Sequence[bytes | bytearray | memoryview], errors: list[tuple[int, ProtocolError]]
) -> list[tuple[I64Array, NDArray[np.uint8]]]:
    by_length: dict[int, list[int]] = {}
    for i, p in enumerate(packets):
        by_length.setdefault(len(p), []).append(i)
    out = []
    for length, positions in by_length.items():
        try:
            _check_length(length)
        except ProtocolError as exc:
            errors.extend((i, exc) for i in positions)
            continue
        flat = np.frombuffer(b"".join(packets[i] for i in positions), dtype=np.uint8)
        out.append((np.asarray(positions, dtype=np.int64), flat.reshape(len(positions), length)))
    return out


def _split_by_kind(
    idx: I64Array, rows: NDArray[np.uint8]
) -> list[tuple[_Group, NDArray[np.bool_]]]:
    """Packets whose header agrees with their length, grouped by kind, with their rows."""
    length = rows.shape[1]
    out = []
    for kind in PayloadKind:
        block = length - HEADER_SIZE
        if block == 0 or block % kind.sample_size:
            continue
        kind_count = (int(kind) << 5) | (block // kind.sample_size)
        ok = ((rows[:, 0] >> 4) == PROTOCOL_MAJOR) & (rows[:, 1] == kind_count)
        if ok.all():
            out.append((_Group(idx, rows, kind), ok))
        elif ok.any():
            out.append((_Group(idx[ok], rows[ok], kind), ok))
    return out


def _scalar_errors(
    rows: NDArray[np.uint8],
    idx: I64Array,
    fmt: StreamFormat,
    errors: list[tuple[int, ProtocolError]],
) -> None:
    # The rare path: let the scalar decoder name exactly what is wrong with each packet.
    for row, i in zip(rows, idx, strict=True):
        try:
            decode(row.tobytes(), fmt)
        except ProtocolError as exc:
            errors.append((int(i), exc))


def _unit_quats(
    group: _Group, fmt: StreamFormat, errors: list[tuple[int, ProtocolError]]
) -> tuple[_Group, F64Array]:
    """Unit quaternions of a group; packets holding a bad one are moved to `errors`."""
    n_pkt = len(group.idx)
    words = np.ascontiguousarray(group.rows[:, HEADER_SIZE:]).view("<i2")
    q = words.reshape(n_pkt, -1, group.kind.sample_size // 2)[:, :, -4:] * (1.0 / QUAT_Q14_ONE)
    norm = np.sqrt(np.einsum("pnj,pnj->pn", q, q))
    bad = ((norm < _QUAT_NORM_MIN) | (norm > _QUAT_NORM_MAX)).any(axis=1)
    if bad.any():
        _scalar_errors(group.rows[bad], group.idx[bad], fmt, errors)
        keep = ~bad
        group = _Group(group.idx[keep], group.rows[keep], group.kind)
        q, norm = q[keep], norm[keep]
    return group, np.asarray((q / norm[:, :, None]).reshape(-1, 4), dtype=np.float64)


def _assemble(
    decoded: list[tuple[_Group, F64Array | None]],
    errors: tuple[tuple[int, ProtocolError], ...],
    fmt: StreamFormat,
) -> PacketBatch:
    seq_parts, ts_parts, kind_parts, count_parts, idx_parts = [], [], [], [], []
    acc_parts, gyr_parts, quat_parts = [], [], []
    for group, quat in decoded:
        n_pkt = len(group.idx)
        count = (group.rows.shape[1] - HEADER_SIZE) // group.kind.sample_size
        header = np.ascontiguousarray(group.rows[:, :HEADER_SIZE])
        seq_parts.append(header[:, 2:4].copy().view("<u2").reshape(n_pkt))
        ts_parts.append(header[:, 4:8].copy().view("<u4").reshape(n_pkt))
        kind_parts.append(np.full(n_pkt, int(group.kind), dtype=np.uint8))
        count_parts.append(np.full(n_pkt, count, dtype=np.int64))
        idx_parts.append(group.idx)
        n = n_pkt * count
        if group.kind.has_raw:
            raw = np.ascontiguousarray(group.rows[:, HEADER_SIZE:]).view("<i2").reshape(n, -1)
            acc_parts.append(raw[:, 0:3] * fmt.accel_lsb_m_s2)
            gyr_parts.append(raw[:, 3:6] * fmt.gyro_lsb_rad_s)
        else:
            acc_parts.append(np.full((n, 3), np.nan))
            gyr_parts.append(np.full((n, 3), np.nan))
        quat_parts.append(quat if quat is not None else np.full((n, 4), np.nan))
    if not decoded:
        return _empty_batch(errors)

    index = np.concatenate(idx_parts)
    seq, ts = np.concatenate(seq_parts), np.concatenate(ts_parts)
    kinds, counts = np.concatenate(kind_parts), np.concatenate(count_parts)
    acc, gyr = np.concatenate(acc_parts), np.concatenate(gyr_parts)
    quat_all = np.concatenate(quat_parts)
    if len(decoded) > 1:
        # Groups were decoded one after another; put packets back in input order and
        # carry each packet's block of sample rows along.
        order = np.argsort(index, kind="stable")
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        sample_order = np.concatenate([np.arange(starts[p], starts[p] + counts[p]) for p in order])
        index, seq, ts, kinds, counts = (
            index[order],
            seq[order],
            ts[order],
            kinds[order],
            counts[order],
        )
        acc, gyr, quat_all = acc[sample_order], gyr[sample_order], quat_all[sample_order]

    offsets = np.zeros(len(seq) + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    within = np.arange(offsets[-1], dtype=np.int64) - np.repeat(offsets[:-1], counts)
    t_us = np.repeat(ts.astype(np.int64), counts) + within * fmt.period_us
    return PacketBatch(
        index=index,
        seq=seq,
        timestamp_us=ts,
        kind=kinds,
        offsets=offsets,
        t_us=t_us,
        acc_m_s2=acc,
        gyr_rad_s=gyr,
        quat=quat_all,
        errors=errors,
    )


def _empty_batch(errors: tuple[tuple[int, ProtocolError], ...]) -> PacketBatch:
    return PacketBatch(
        index=np.empty(0, np.int64),
        seq=np.empty(0, np.uint16),
        timestamp_us=np.empty(0, np.uint32),
        kind=np.empty(0, np.uint8),
        offsets=np.zeros(1, np.int64),
        t_us=np.empty(0, np.int64),
        acc_m_s2=_EMPTY_F64.copy(),
        gyr_rad_s=_EMPTY_F64.copy(),
        quat=np.empty((0, 4), np.float64),
        errors=errors,
    )


def encode(
    kind: PayloadKind,
    seq: int,
    timestamp_us: int,
    *,
    raw: NDArray[np.integer] | None = None,
    quat_q14: NDArray[np.integer] | None = None,
    version_minor: int = PROTOCOL_MINOR,
) -> bytes:
    """Encode one IMU data packet from integer counts.

    `raw` is (n, 6) accelerometer then gyroscope counts and `quat_q14` is (n, 4) w x y z
    in Q14, as `kind` requires. `seq` and `timestamp_us` are wrapped to 16 and 32 bits
    here, so callers may pass running counters. Raises ValueError for arrays that do not
    fit the kind or a packet longer than the protocol allows.
    """
    parts: list[NDArray[np.integer]] = []
    n: int | None = None
    for name, arr, wanted, width in (
        ("raw", raw, kind.has_raw, 6),
        ("quat_q14", quat_q14, kind.has_quat, 4),
    ):
        if not wanted:
            if arr is not None:
                raise ValueError(f"{name}: expected None for kind {kind.name}, got an array")
            continue
        if arr is None:
            raise ValueError(f"{name}: expected an (n, {width}) array for kind {kind.name}")
        a = np.asarray(arr)
        if a.ndim != 2 or a.shape[1] != width:
            raise ValueError(f"{name}: expected shape (n, {width}), got {a.shape}")
        if a.size and (a.min() < -32768 or a.max() > 32767):
            raise ValueError(f"{name}: expected int16 counts, got values outside -32768..32767")
        if n is not None and a.shape[0] != n:
            raise ValueError(f"{name}: expected {n} rows like raw, got {a.shape[0]}")
        n = a.shape[0]
        parts.append(a)
    assert n is not None
    if not 1 <= n <= MAX_SAMPLES_PER_PACKET:
        raise ValueError(f"sample count: expected 1..{MAX_SAMPLES_PER_PACKET}, got {n}")
    length = HEADER_SIZE + n * kind.sample_size
    if length > MAX_ATT_PAYLOAD:
        raise ValueError(f"packet length: expected at most {MAX_ATT_PAYLOAD} bytes, got {length}")
    if not 0 <= version_minor <= 15:
        raise ValueError(f"version_minor: expected 0..15, got {version_minor}")
    header = _HEADER.pack(
        (PROTOCOL_MAJOR << 4) | version_minor,
        (int(kind) << 5) | n,
        seq & 0xFFFF,
        timestamp_us & 0xFFFFFFFF,
    )
    body = np.concatenate(parts, axis=1).astype("<i2") if len(parts) > 1 else parts[0].astype("<i2")
    return header + body.tobytes()


def quantize_raw(acc_m_s2: F64Array, gyr_rad_s: F64Array, fmt: StreamFormat) -> I16Array:
    """SI values to (n, 6) int16 counts, rounded and saturated at full scale as an IMU does."""
    acc = np.rint(np.asarray(acc_m_s2) / fmt.accel_lsb_m_s2)
    gyr = np.rint(np.asarray(gyr_rad_s) / fmt.gyro_lsb_rad_s)
    counts = np.clip(np.concatenate([acc, gyr], axis=1), -32768, 32767)
    return np.asarray(counts, dtype=np.int16)


def quantize_quat(quat: F64Array) -> I16Array:
    """Unit quaternions (n, 4) w x y z to Q14 counts."""
    q = np.asarray(quat, dtype=np.float64)
    q = q / np.linalg.norm(q, axis=1, keepdims=True)
    return np.asarray(np.clip(np.rint(q * QUAT_Q14_ONE), -32768, 32767), dtype=np.int16)
