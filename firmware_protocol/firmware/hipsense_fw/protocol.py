"""Constants and byte layouts of the hipsense sensor protocol 1.1 (PROTOCOL.md).

Encoders write with `struct` into caller buffers where a packet is built often (the IMU
data packet), and return new bytes where it is rare (responses, status).
"""

import struct

try:
    from micropython import const
except ImportError:  # CPython, in the host tests

    def const(value):
        """Stand-in for MicroPython's compile-time constant marker."""
        return value


PROTOCOL_MAJOR = const(1)
PROTOCOL_MINOR = const(1)
VERSION_BYTE = const(0x11)

SERVICE_UUID = "48530000-6869-7073-656e-73652d763031"
IMU_DATA_UUID = "48530001-6869-7073-656e-73652d763031"
CONTROL_POINT_UUID = "48530002-6869-7073-656e-73652d763031"
STATUS_UUID = "48530003-6869-7073-656e-73652d763031"

HEADER_SIZE = const(8)
DEFAULT_ATT_PAYLOAD = const(20)
MAX_ATT_PAYLOAD = const(244)
MAX_SAMPLES = const(31)

KIND_RAW = const(1)
KIND_QUAT = const(2)
KIND_RAW_QUAT = const(3)

RATES_HZ = (25, 50, 100, 200)
ACCEL_RANGES_G = (2, 4, 8, 16)
GYRO_RANGES_DPS = (125, 250, 500, 1000, 2000)

OP_START_STREAMING = const(0x01)
OP_STOP_STREAMING = const(0x02)
OP_SET_RATE = const(0x03)
OP_SET_RANGES = const(0x04)
OP_TIME_SYNC = const(0x05)
OP_IDENTIFY = const(0x06)
OP_RESPONSE = const(0x80)

RESULT_SUCCESS = const(0x01)
RESULT_OPCODE_NOT_SUPPORTED = const(0x02)
RESULT_INVALID_PARAMETER = const(0x03)
RESULT_OPERATION_FAILED = const(0x04)
RESULT_NOT_PERMITTED = const(0x05)

ERR_IMU_FAULT = const(1 << 0)
ERR_FIFO_OVERFLOW = const(1 << 1)
ERR_LOW_BATTERY = const(1 << 2)
ERR_CLOCK_UNSYNCED = const(1 << 3)
ERR_CONFIG_REJECTED = const(1 << 4)

STATUS_SIZE = const(16)
BATTERY_UNKNOWN = const(0xFF)
LOW_BATTERY_PCT = const(10)

# Command lengths by opcode; START_STREAMING may also carry resume_seq (4 bytes, 1.1).
_COMMAND_SIZES = (0, 2, 1, 3, 4, 5, 2)
_HEADER = "<BBHI"
_STATUS = "<BBBBHBHBBBHH"


def sample_size(kind):
    """Bytes per sample of a payload kind; 0 for a reserved kind."""
    if kind == KIND_RAW:
        return 12
    if kind == KIND_QUAT:
        return 8
    if kind == KIND_RAW_QUAT:
        return 20
    return 0


def has_raw(kind):
    """Whether samples of `kind` carry accelerometer and gyroscope counts."""
    return kind in (KIND_RAW, KIND_RAW_QUAT)


def has_quat(kind):
    """Whether samples of `kind` carry a Q14 quaternion."""
    return kind in (KIND_QUAT, KIND_RAW_QUAT)


def max_samples(kind, att_payload):
    """Most samples of `kind` in one packet of at most `att_payload` bytes (0: none fits)."""
    size = sample_size(kind)
    att_payload = min(att_payload, MAX_ATT_PAYLOAD)
    if size == 0 or att_payload <= HEADER_SIZE:
        return 0
    return min((att_payload - HEADER_SIZE) // size, MAX_SAMPLES)


def pack_header(buf, kind, count, seq, timestamp_us):
    """Write a packet header into `buf`; sequence and clock are wrapped to their widths."""
    struct.pack_into(
        _HEADER, buf, 0, VERSION_BYTE, (kind << 5) | count, seq & 0xFFFF, timestamp_us & 0xFFFFFFFF
    )


def pack_sample(buf, offset, kind, raw, quat):
    """Write one sample at `offset`: `raw` is (ax, ay, az, gx, gy, gz), `quat` (w, x, y, z).

    Returns the offset after it.
    """
    if has_raw(kind):
        struct.pack_into("<6h", buf, offset, *raw)
        offset += 12
    if has_quat(kind):
        struct.pack_into("<4h", buf, offset, *quat)
        offset += 8
    return offset


def encode_packet(kind, seq, timestamp_us, raw=None, quat=None):
    """One IMU data packet of the samples given (lists of tuples), as bytes.

    Raises ValueError when the samples do not make a packet (wrong count or kind).
    """
    samples = raw if has_raw(kind) else quat
    size = sample_size(kind)
    if size == 0 or samples is None:
        raise ValueError("kind: expected 1, 2 or 3 with its samples")
    count = len(samples)
    if not 1 <= count <= MAX_SAMPLES or HEADER_SIZE + count * size > MAX_ATT_PAYLOAD:
        raise ValueError("samples: expected a count that fits 244 bytes")
    buf = bytearray(HEADER_SIZE + count * size)
    pack_header(buf, kind, count, seq, timestamp_us)
    offset = HEADER_SIZE
    for i in range(count):
        offset = pack_sample(
            buf,
            offset,
            kind,
            raw[i] if raw is not None else None,
            quat[i] if quat is not None else None,
        )
    return bytes(buf)


class Command:
    """A parsed control point write; fields the opcode does not use stay None."""

    def __init__(self, opcode):
        self.opcode = opcode
        self.kind = None
        self.resume_seq = None
        self.rate_hz = None
        self.accel_range_g = None
        self.gyro_range_dps = None
        self.token = None
        self.duration_s = None


def parse_command(data):
    """Parse a control point write: (result code, Command).

    The result is RESULT_SUCCESS when the command is well formed and its values are
    offered; whether the sensor can carry it out now is the state machine's to say.
    """
    opcode = data[0] if len(data) else 0
    cmd = Command(opcode)
    if opcode == 0 or opcode > OP_IDENTIFY:
        return RESULT_OPCODE_NOT_SUPPORTED, cmd
    resume = opcode == OP_START_STREAMING and len(data) == 4
    if len(data) != _COMMAND_SIZES[opcode] and not resume:
        return RESULT_INVALID_PARAMETER, cmd
    ok = True
    if opcode == OP_START_STREAMING:
        cmd.kind = data[1]
        if resume:
            cmd.resume_seq = struct.unpack_from("<H", data, 2)[0]
        ok = sample_size(cmd.kind) != 0
    elif opcode == OP_SET_RATE:
        cmd.rate_hz = struct.unpack_from("<H", data, 1)[0]
        ok = cmd.rate_hz in RATES_HZ
    elif opcode == OP_SET_RANGES:
        cmd.accel_range_g, cmd.gyro_range_dps = struct.unpack_from("<BH", data, 1)
        ok = cmd.accel_range_g in ACCEL_RANGES_G and cmd.gyro_range_dps in GYRO_RANGES_DPS
    elif opcode == OP_TIME_SYNC:
        cmd.token = struct.unpack_from("<I", data, 1)[0]
    elif opcode == OP_IDENTIFY:
        cmd.duration_s = data[1]
        ok = cmd.duration_s != 0
    return (RESULT_SUCCESS if ok else RESULT_INVALID_PARAMETER), cmd


def encode_response(request, result, token=None, sensor_time_us=0):
    """The control point indication; `token` given adds the TIME_SYNC fields."""
    if token is None:
        return bytes((OP_RESPONSE, request, result))
    return struct.pack(
        "<BBBII", OP_RESPONSE, request, result, token & 0xFFFFFFFF, sensor_time_us & 0xFFFFFFFF
    )


def encode_status(
    firmware,
    rate_hz,
    accel_range_g,
    gyro_range_dps,
    kind,
    streaming,
    battery_pct,
    errors,
    backlog_packets,
    version=VERSION_BYTE,
):
    """The status characteristic value: 16 bytes, or 14 when `version` says minor 0."""
    data = struct.pack(
        _STATUS,
        version,
        firmware[0],
        firmware[1],
        firmware[2],
        rate_hz,
        accel_range_g,
        gyro_range_dps,
        kind,
        1 if streaming else 0,
        battery_pct,
        errors,
        backlog_packets,
    )
    return data if version & 0x0F else data[:14]
