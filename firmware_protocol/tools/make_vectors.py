"""Write the golden test vectors in firmware_protocol/vectors/.

The bytes are built here with `struct` straight from PROTOCOL.md, not with the hipsense
encoder, so the vector tests compare two independent implementations (this one and the
Python package) plus the C header. Decoded SI values are plain arithmetic on the counts.

Vectors are golden: change them only with a protocol change, and review the diff.
    python firmware_protocol/tools/make_vectors.py
"""

import json
import math
import struct
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parent.parent / "vectors"
G = 9.80665
SIZES = {1: 12, 2: 8, 3: 20}


def _header(kind: int, count: int, seq: int, ts: int, minor: int = 1) -> bytes:
    return struct.pack("<BBHI", (1 << 4) | minor, (kind << 5) | count, seq, ts)


def _packet(
    name: str,
    description: str,
    *,
    kind: int,
    seq: int,
    ts: int,
    raw: list[list[int]] | None = None,
    quat: list[list[int]] | None = None,
    rate_hz: int = 100,
    accel_range_g: int = 8,
    gyro_range_dps: int = 1000,
    minor: int = 1,
) -> dict[str, Any]:
    count = len(raw if raw is not None else quat or [])
    body = b""
    for i in range(count):
        if raw is not None:
            body += struct.pack("<6h", *raw[i])
        if quat is not None:
            body += struct.pack("<4h", *quat[i])
    data = _header(kind, count, seq, ts, minor) + body
    period = 1_000_000 // rate_hz
    decoded: dict[str, Any] = {"t_us": [ts + i * period for i in range(count)]}
    if raw is not None:
        a, w = accel_range_g * G / 32768, gyro_range_dps * math.pi / 180 / 32768
        decoded["acc_m_s2"] = [[v * a for v in s[:3]] for s in raw]
        decoded["gyr_rad_s"] = [[v * w for v in s[3:]] for s in raw]
    if quat is not None:
        unit = []
        for s in quat:
            q = [v / 16384 for v in s]
            n = math.sqrt(sum(c * c for c in q))
            unit.append([c / n for c in q])
        decoded["quat"] = unit
    return {
        "name": name,
        "description": description,
        "format": {
            "rate_hz": rate_hz,
            "accel_range_g": accel_range_g,
            "gyro_range_dps": gyro_range_dps,
        },
        "version_minor": minor,
        "kind": kind,
        "seq": seq,
        "timestamp_us": ts,
        "raw": raw,
        "quat_q14": quat,
        "length": len(data),
        "hex": data.hex(),
        "decoded": decoded,
    }


def _raw(n: int, start: int) -> list[list[int]]:
    # Deterministic, sign-mixed values that exercise both bytes of every int16.
    return [[((start + 7919 * i + 104729 * k) % 65536) - 32768 for k in range(6)] for i in range(n)]


def _quat(n: int, start: int) -> list[list[int]]:
    out = []
    for i in range(n):
        angle = 0.05 * (start + i)
        axis = (0.6, -0.48, 0.64)  # unit length
        c, s = math.cos(angle / 2), math.sin(angle / 2)
        q = (c, s * axis[0], s * axis[1], s * axis[2])
        out.append([round(v * 16384) for v in q])
    return out


def imu_packets() -> list[dict[str, Any]]:
    """Valid IMU data packets, including the edge cases."""
    return [
        _packet(
            "raw_1_sample_mtu23",
            "smallest RAW packet; fills the 20-byte default ATT payload",
            kind=1,
            seq=0,
            ts=0,
            raw=[[100, -200, 4096, 1, -1, 0]],
        ),
        _packet(
            "quat_1_sample_mtu23",
            "one quaternion at the default MTU",
            kind=2,
            seq=1,
            ts=10_000,
            quat=[[16384, 0, 0, 0]],
        ),
        _packet(
            "raw_19_samples_mtu247",
            "largest RAW packet: 236 of 244 bytes",
            kind=1,
            seq=1234,
            ts=123_456_789,
            raw=_raw(19, 1),
        ),
        _packet(
            "quat_29_samples_mtu247",
            "largest QUAT packet: 240 of 244 bytes",
            kind=2,
            seq=40_000,
            ts=987_654_321,
            quat=_quat(29, 3),
        ),
        _packet(
            "raw_quat_11_samples_mtu247",
            "largest RAW_QUAT packet: 228 of 244 bytes",
            kind=3,
            seq=7,
            ts=5_000_000,
            raw=_raw(11, 99),
            quat=_quat(11, 40),
        ),
        _packet(
            "raw_quat_1_sample",
            "smallest RAW_QUAT packet (needs MTU >= 31)",
            kind=3,
            seq=8,
            ts=5_010_000,
            raw=_raw(1, 5),
            quat=[[0, 16384, 0, 0]],
        ),
        _packet(
            "full_scale_16g_2000dps",
            "every axis at its negative and positive limit",
            kind=1,
            seq=300,
            ts=42,
            accel_range_g=16,
            gyro_range_dps=2000,
            raw=[
                [-32768, 32767, -32768, 32767, -32768, 32767],
                [32767, -32768, 32767, -32768, 32767, -32768],
            ],
        ),
        _packet(
            "full_scale_2g_125dps",
            "the finest ranges",
            kind=1,
            seq=301,
            ts=43,
            accel_range_g=2,
            gyro_range_dps=125,
            raw=[[16384, -16384, 32767, 1, -1, -32768]],
        ),
        _packet(
            "seq_last_before_wrap",
            "sequence number 65535; the next packet is 0",
            kind=1,
            seq=65535,
            ts=1_000_000,
            raw=_raw(2, 17),
        ),
        _packet(
            "seq_first_after_wrap",
            "sequence number 0 right after 65535",
            kind=1,
            seq=0,
            ts=1_020_000,
            raw=_raw(2, 19),
        ),
        _packet(
            "timestamp_wraps_inside_packet",
            "first sample 30 ms before the 32-bit wrap; per-sample times run past 2^32",
            kind=1,
            seq=99,
            ts=2**32 - 30_000,
            raw=_raw(5, 23),
        ),
        _packet(
            "timestamp_max", "timestamp 0xFFFFFFFF", kind=2, seq=100, ts=2**32 - 1, quat=_quat(1, 0)
        ),
        _packet(
            "rate_25hz",
            "25 Hz stream: 40 ms between samples",
            kind=1,
            seq=5,
            ts=40_000,
            rate_hz=25,
            raw=_raw(4, 31),
        ),
        _packet(
            "rate_200hz",
            "200 Hz stream: 5 ms between samples",
            kind=1,
            seq=6,
            ts=5_000,
            rate_hz=200,
            raw=_raw(3, 37),
        ),
        _packet(
            "negative_quaternion",
            "q and -q are the same rotation; sent as measured",
            kind=2,
            seq=9,
            ts=90_000,
            quat=[[-16384, 0, 0, 0], [-11585, 0, -11585, 0]],
        ),
        _packet(
            "newer_minor_version",
            "protocol 1.3: a 1.1 host must accept it",
            kind=1,
            seq=10,
            ts=100_000,
            raw=_raw(1, 41),
            minor=3,
        ),
        _packet(
            "older_minor_version",
            "protocol 1.0 (packets did not change in 1.1): a 1.1 host must accept it",
            kind=1,
            seq=11,
            ts=110_000,
            raw=_raw(1, 42),
            minor=0,
        ),
    ]


def invalid_packets() -> list[dict[str, Any]]:
    """Bytes a host must refuse, with the ProtocolError subclass it must raise."""
    good = bytes.fromhex(imu_packets()[2]["hex"])

    def entry(name: str, description: str, data: bytes, error: str) -> dict[str, Any]:
        return {"name": name, "description": description, "hex": data.hex(), "error": error}

    one_raw = struct.pack("<6h", 1, 2, 3, 4, 5, 6)
    return [
        entry("empty", "no bytes at all", b"", "PacketTooShortError"),
        entry("header_cut", "7 of the 8 header bytes", good[:7], "PacketTooShortError"),
        entry(
            "header_only",
            "a valid header and no sample",
            _header(1, 0, 0, 0),
            "PacketTooShortError",
        ),
        entry(
            "longer_than_mtu247",
            "245 bytes: more than any ATT payload we allow",
            _header(1, 19, 0, 0) + bytes(237),
            "PacketTooLongError",
        ),
        entry(
            "major_version_2", "protocol 2.0", bytes([0x20]) + good[1:], "UnsupportedVersionError"
        ),
        entry(
            "major_version_0", "protocol 0.1", bytes([0x01]) + good[1:], "UnsupportedVersionError"
        ),
        entry(
            "kind_0",
            "payload kind 0 is reserved",
            _header(0, 1, 0, 0) + one_raw,
            "UnknownPayloadKindError",
        ),
        entry(
            "kind_7",
            "payload kind 7 is undefined",
            _header(7, 1, 0, 0) + one_raw,
            "UnknownPayloadKindError",
        ),
        entry(
            "truncated_sample",
            "last RAW sample cut by one byte",
            good[:-1],
            "TruncatedSampleBlockError",
        ),
        entry(
            "stray_byte",
            "one byte after the last sample",
            _header(1, 1, 0, 0) + one_raw + b"\x00",
            "TruncatedSampleBlockError",
        ),
        entry(
            "count_too_high",
            "header says 2 samples, length holds 1",
            _header(1, 2, 0, 0) + one_raw,
            "SampleCountMismatchError",
        ),
        entry(
            "count_zero",
            "header says 0 samples, length holds 1",
            _header(1, 0, 0, 0) + one_raw,
            "SampleCountMismatchError",
        ),
        entry(
            "zero_quaternion",
            "a quaternion of all zeros is no rotation",
            _header(2, 1, 0, 0) + struct.pack("<4h", 0, 0, 0, 0),
            "InvalidSampleError",
        ),
        entry(
            "quaternion_norm_2",
            "norm 2: not a unit quaternion",
            _header(2, 1, 0, 0) + struct.pack("<4h", 32767, 0, 0, 0),
            "InvalidSampleError",
        ),
    ]


def control_point() -> dict[str, list[dict[str, Any]]]:
    """Commands the host writes and responses the sensor indicates."""

    def cmd(name: str, data: bytes, fields: dict[str, int], result: int = 1) -> dict[str, Any]:
        return {"name": name, "hex": data.hex(), "fields": fields, "result": result}

    commands = [
        cmd("start_raw", bytes([0x01, 1]), {"opcode": 1, "kind": 1}),
        cmd("start_raw_quat", bytes([0x01, 3]), {"opcode": 1, "kind": 3}),
        cmd(
            "start_raw_resume_0x1234",
            struct.pack("<BBH", 0x01, 1, 0x1234),
            {"opcode": 1, "kind": 1, "resume_seq": 0x1234},
        ),
        cmd("stop", bytes([0x02]), {"opcode": 2}),
        cmd("set_rate_25", struct.pack("<BH", 0x03, 25), {"opcode": 3, "rate_hz": 25}),
        cmd("set_rate_200", struct.pack("<BH", 0x03, 200), {"opcode": 3, "rate_hz": 200}),
        cmd(
            "set_ranges_8g_1000dps",
            struct.pack("<BBH", 0x04, 8, 1000),
            {"opcode": 4, "accel_range_g": 8, "gyro_range_dps": 1000},
        ),
        cmd(
            "set_ranges_16g_2000dps",
            struct.pack("<BBH", 0x04, 16, 2000),
            {"opcode": 4, "accel_range_g": 16, "gyro_range_dps": 2000},
        ),
        cmd("time_sync", struct.pack("<BI", 0x05, 0xDEADBEEF), {"opcode": 5, "token": 0xDEADBEEF}),
        cmd("identify_5s", bytes([0x06, 5]), {"opcode": 6, "duration_s": 5}),
        cmd("bad_opcode", bytes([0x07]), {"opcode": 7}, result=2),
        cmd("bad_rate_30", struct.pack("<BH", 0x03, 30), {"opcode": 3}, result=3),
        cmd("bad_kind_4", bytes([0x01, 4]), {"opcode": 1}, result=3),
        cmd("bad_length_stop", bytes([0x02, 0]), {"opcode": 2}, result=3),
        cmd("bad_length_start_3", bytes([0x01, 1, 0]), {"opcode": 1}, result=3),
        cmd("bad_ranges_3g", struct.pack("<BBH", 0x04, 3, 1000), {"opcode": 4}, result=3),
        cmd("bad_identify_0s", bytes([0x06, 0]), {"opcode": 6}, result=3),
    ]

    def resp(
        name: str, request: int, result: int, sync: tuple[int, int] | None = None
    ) -> dict[str, Any]:
        data = bytes([0x80, request, result])
        if sync is not None:
            data += struct.pack("<II", *sync)
        return {
            "name": name,
            "hex": data.hex(),
            "request": request,
            "result": result,
            "sync_token": None if sync is None else sync[0],
            "sensor_time_us": None if sync is None else sync[1],
        }

    responses = [
        resp("start_ok", 0x01, 1),
        resp("set_rate_not_permitted_while_streaming", 0x03, 5),
        resp("unknown_opcode", 0x07, 2),
        resp("time_sync_ok", 0x05, 1, (0xDEADBEEF, 3_000_000_123)),
        resp("time_sync_failed", 0x05, 4),
    ]
    return {"commands": commands, "responses": responses}


def status() -> list[dict[str, Any]]:
    """Status characteristic values."""

    def st(name: str, **f: int) -> dict[str, Any]:
        data = struct.pack(
            "<BBBBHBHBBBH",
            f["version"],
            f["fw_major"],
            f["fw_minor"],
            f["fw_patch"],
            f["rate_hz"],
            f["accel_range_g"],
            f["gyro_range_dps"],
            f["kind"],
            f["state"],
            f["battery_pct"],
            f["errors"],
        )
        if f["version"] & 0x0F >= 1:
            data += struct.pack("<H", f["backlog_packets"])  # appended in 1.1
        return {"name": name, "hex": data.hex(), "fields": f}

    return [
        st(
            "idle_default",
            version=0x10,
            fw_major=1,
            fw_minor=0,
            fw_patch=0,
            rate_hz=100,
            accel_range_g=8,
            gyro_range_dps=1000,
            kind=1,
            state=0,
            battery_pct=100,
            errors=8,
        ),
        st(
            "streaming_low_battery",
            version=0x10,
            fw_major=2,
            fw_minor=4,
            fw_patch=17,
            rate_hz=200,
            accel_range_g=16,
            gyro_range_dps=2000,
            kind=3,
            state=1,
            battery_pct=7,
            errors=0b110,
        ),
        st(
            "battery_unknown",
            version=0x11,
            fw_major=0,
            fw_minor=9,
            fw_patch=255,
            rate_hz=25,
            accel_range_g=2,
            gyro_range_dps=125,
            kind=2,
            state=1,
            battery_pct=255,
            errors=0,
            backlog_packets=0,
        ),
        st(
            "streaming_keeps_64_packets",
            version=0x11,
            fw_major=1,
            fw_minor=3,
            fw_patch=0,
            rate_hz=100,
            accel_range_g=8,
            gyro_range_dps=1000,
            kind=1,
            state=1,
            battery_pct=87,
            errors=0,
            backlog_packets=64,
        ),
    ]


def main() -> None:
    """Write every vector file."""
    OUT.mkdir(exist_ok=True)
    files = {
        "imu_packets.json": imu_packets(),
        "invalid_packets.json": invalid_packets(),
        "control_point.json": control_point(),
        "status.json": status(),
    }
    for name, content in files.items():
        text = json.dumps({"protocol": "1.1", "vectors": content}, indent=1) + "\n"
        (OUT / name).write_text(text)
        print(f"wrote {OUT / name}")


if __name__ == "__main__":
    main()
