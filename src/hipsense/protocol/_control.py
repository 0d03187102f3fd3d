"""Control point commands and responses, and the status characteristic.

The control point follows the pattern of the Bluetooth SIG's own control points (Fitness
Machine, Cycling Power): the host writes `opcode, parameters` with response, and the
sensor answers with an indication `0x80, request opcode, result code, parameters`.
"""

import enum
import struct
from dataclasses import dataclass
from typing import Final

from ._constants import (
    ACCEL_RANGES_G,
    GYRO_RANGES_DPS,
    PROTOCOL_MAJOR,
    SAMPLE_RATES_HZ,
    ErrorFlag,
    PayloadKind,
)
from ._errors import (
    ControlPointError,
    PacketTooLongError,
    PacketTooShortError,
    UnknownPayloadKindError,
    UnsupportedSettingError,
    UnsupportedVersionError,
)

__all__ = [
    "BATTERY_UNKNOWN",
    "STATUS_SIZE",
    "ControlCommand",
    "ControlResponse",
    "Identify",
    "Opcode",
    "ResultCode",
    "SensorStatus",
    "SetRanges",
    "SetRate",
    "StartStreaming",
    "StopStreaming",
    "TimeSync",
    "decode_command",
    "decode_response",
    "decode_status",
    "encode_command",
    "encode_response",
    "encode_status",
]


class Opcode(enum.IntEnum):
    """Control point operation codes."""

    START_STREAMING = 0x01
    STOP_STREAMING = 0x02
    SET_RATE = 0x03
    SET_RANGES = 0x04
    TIME_SYNC = 0x05
    IDENTIFY = 0x06
    RESPONSE = 0x80


class ResultCode(enum.IntEnum):
    """Result of a control point command, as indicated by the sensor."""

    SUCCESS = 0x01
    OPCODE_NOT_SUPPORTED = 0x02
    INVALID_PARAMETER = 0x03
    OPERATION_FAILED = 0x04
    NOT_PERMITTED = 0x05


@dataclass(frozen=True, slots=True)
class StartStreaming:
    """Start notifying IMU data packets of `kind`.

    With `resume_seq` (protocol 1.1) the host asks a sensor that kept a backlog across a
    disconnection to send its kept packets from that sequence number on, oldest first,
    before live ones. A sensor with nothing to resume starts a new stream as without it.
    """

    kind: PayloadKind = PayloadKind.RAW
    resume_seq: int | None = None

    def __post_init__(self) -> None:
        if self.resume_seq is not None and not 0 <= self.resume_seq <= 0xFFFF:
            raise ControlPointError("resume_seq", "0..65535", str(self.resume_seq))


@dataclass(frozen=True, slots=True)
class StopStreaming:
    """Stop notifying IMU data packets."""


@dataclass(frozen=True, slots=True)
class SetRate:
    """Set the sample rate; refused with NOT_PERMITTED while streaming."""

    rate_hz: int

    def __post_init__(self) -> None:
        if self.rate_hz not in SAMPLE_RATES_HZ:
            raise UnsupportedSettingError("rate_hz", SAMPLE_RATES_HZ, self.rate_hz)


@dataclass(frozen=True, slots=True)
class SetRanges:
    """Set accelerometer and gyroscope full scale; refused with NOT_PERMITTED while streaming."""

    accel_range_g: int
    gyro_range_dps: int

    def __post_init__(self) -> None:
        if self.accel_range_g not in ACCEL_RANGES_G:
            raise UnsupportedSettingError("accel_range_g", ACCEL_RANGES_G, self.accel_range_g)
        if self.gyro_range_dps not in GYRO_RANGES_DPS:
            raise UnsupportedSettingError("gyro_range_dps", GYRO_RANGES_DPS, self.gyro_range_dps)


@dataclass(frozen=True, slots=True)
class TimeSync:
    """Ask the sensor for its clock; it echoes `token` with its time in the response."""

    token: int

    def __post_init__(self) -> None:
        if not 0 <= self.token <= 0xFFFFFFFF:
            raise ControlPointError("token", "0..4294967295", str(self.token))


@dataclass(frozen=True, slots=True)
class Identify:
    """Blink or buzz for `duration_s` seconds so a patient can tell which sensor is which."""

    duration_s: int = 3

    def __post_init__(self) -> None:
        if not 1 <= self.duration_s <= 255:
            raise ControlPointError("duration_s", "1..255", str(self.duration_s))


ControlCommand = StartStreaming | StopStreaming | SetRate | SetRanges | TimeSync | Identify

_CMD_SIZE: Final = {
    Opcode.START_STREAMING: 2,
    Opcode.STOP_STREAMING: 1,
    Opcode.SET_RATE: 3,
    Opcode.SET_RANGES: 4,
    Opcode.TIME_SYNC: 5,
    Opcode.IDENTIFY: 2,
}
# START_STREAMING with the resume sequence number of protocol 1.1.
_START_RESUME_SIZE: Final = 4


def encode_command(cmd: ControlCommand) -> bytes:
    """Bytes the host writes to the control point."""
    match cmd:
        case StartStreaming(kind, None):
            return struct.pack("<BB", Opcode.START_STREAMING, kind)
        case StartStreaming(kind, resume_seq):
            return struct.pack("<BBH", Opcode.START_STREAMING, kind, resume_seq)
        case StopStreaming():
            return struct.pack("<B", Opcode.STOP_STREAMING)
        case SetRate(rate_hz):
            return struct.pack("<BH", Opcode.SET_RATE, rate_hz)
        case SetRanges(accel_range_g, gyro_range_dps):
            return struct.pack("<BBH", Opcode.SET_RANGES, accel_range_g, gyro_range_dps)
        case TimeSync(token):
            return struct.pack("<BI", Opcode.TIME_SYNC, token)
        case Identify(duration_s):
            return struct.pack("<BB", Opcode.IDENTIFY, duration_s)


def decode_command(data: bytes | bytearray | memoryview) -> ControlCommand:
    """Parse a control point write, as a sensor (or the sensor emulator) does.

    Raises `ControlPointError` for an unknown opcode, `PacketTooShortError` or
    `PacketTooLongError` for a wrong length, and `UnsupportedSettingError` or
    `UnknownPayloadKindError` for a parameter out of range.
    """
    buf = bytes(data)
    if not buf:
        raise PacketTooShortError("control point command", 1, 0)
    try:
        op = Opcode(buf[0])
    except ValueError:
        known = ", ".join(f"0x{o:02x}" for o in _CMD_SIZE)
        raise ControlPointError("opcode", f"one of {known}", f"0x{buf[0]:02x}") from None
    if op is Opcode.RESPONSE:
        raise ControlPointError("opcode", "a command", "0x80 (a response)")
    size = _CMD_SIZE[op]
    if op is Opcode.START_STREAMING and len(buf) == _START_RESUME_SIZE:
        size = _START_RESUME_SIZE
    if len(buf) < size:
        raise PacketTooShortError(f"{op.name} command", size, len(buf))
    if len(buf) > size:
        raise PacketTooLongError(f"{op.name} command", size, len(buf))
    match op:
        case Opcode.START_STREAMING:
            kinds = tuple(int(k) for k in PayloadKind)
            if buf[1] not in kinds:
                raise UnknownPayloadKindError(kinds, buf[1])
            resume = struct.unpack_from("<H", buf, 2)[0] if size == _START_RESUME_SIZE else None
            return StartStreaming(PayloadKind(buf[1]), resume)
        case Opcode.STOP_STREAMING:
            return StopStreaming()
        case Opcode.SET_RATE:
            return SetRate(struct.unpack_from("<H", buf, 1)[0])
        case Opcode.SET_RANGES:
            g, dps = struct.unpack_from("<BH", buf, 1)
            return SetRanges(g, dps)
        case Opcode.TIME_SYNC:
            return TimeSync(struct.unpack_from("<I", buf, 1)[0])
        case _:
            if buf[1] == 0:
                raise ControlPointError("duration_s", "1..255", "0")
            return Identify(buf[1])


@dataclass(frozen=True, slots=True)
class ControlResponse:
    """The sensor's indication answering a control point write.

    For TIME_SYNC with SUCCESS, `sync_token` echoes the request and `sensor_time_us` is
    the sensor clock when the command arrived; both are None otherwise.
    """

    request: int
    result: ResultCode
    sync_token: int | None = None
    sensor_time_us: int | None = None

    @property
    def ok(self) -> bool:
        """True when the command succeeded."""
        return self.result is ResultCode.SUCCESS


def encode_response(resp: ControlResponse) -> bytes:
    """Bytes the sensor indicates on the control point."""
    head = struct.pack("<BBB", Opcode.RESPONSE, resp.request, resp.result)
    if resp.sync_token is not None and resp.sensor_time_us is not None:
        return head + struct.pack("<II", resp.sync_token, resp.sensor_time_us & 0xFFFFFFFF)
    return head


def decode_response(data: bytes | bytearray | memoryview) -> ControlResponse:
    """Parse a control point indication."""
    buf = bytes(data)
    if len(buf) < 3:
        raise PacketTooShortError("control point response", 3, len(buf))
    if buf[0] != Opcode.RESPONSE:
        raise ControlPointError("response opcode", "0x80", f"0x{buf[0]:02x}")
    try:
        result = ResultCode(buf[2])
    except ValueError:
        known = ", ".join(str(int(r)) for r in ResultCode)
        raise ControlPointError("result code", f"one of {known}", str(buf[2])) from None
    is_sync = buf[1] == Opcode.TIME_SYNC and result is ResultCode.SUCCESS
    size = 11 if is_sync else 3
    if len(buf) < size:
        raise PacketTooShortError(f"response to opcode 0x{buf[1]:02x}", size, len(buf))
    if len(buf) > size:
        raise PacketTooLongError(f"response to opcode 0x{buf[1]:02x}", size, len(buf))
    if is_sync:
        token, t_us = struct.unpack_from("<II", buf, 3)
        return ControlResponse(buf[1], result, token, t_us)
    return ControlResponse(buf[1], result)


_STATUS: Final = struct.Struct("<BBBBHBHBBBH")
STATUS_SIZE: Final = _STATUS.size
"""Bytes of the status characteristic in protocol 1.0; newer minors may append more."""
# Appended in 1.1: how many packets the sensor keeps for a resume (0: none).
_STATUS_1_1: Final = struct.Struct("<H")
BATTERY_UNKNOWN: Final = 0xFF


@dataclass(frozen=True, slots=True)
class SensorStatus:
    """The status characteristic: versions, configuration, battery and errors.

    Rates and ranges are kept as sent: a sensor of a newer minor version may report a
    default this host does not offer, and the host overwrites it before streaming.
    """

    protocol_minor: int
    firmware: tuple[int, int, int]
    rate_hz: int
    accel_range_g: int
    gyro_range_dps: int
    kind: int
    streaming: bool
    battery_pct: int | None
    errors: ErrorFlag
    protocol_major: int = PROTOCOL_MAJOR
    backlog_packets: int = 0
    """Packets the sensor keeps across a disconnection for a resume (1.1; 0: none)."""

    @property
    def firmware_version(self) -> str:
        """Firmware version as `major.minor.patch`."""
        return ".".join(str(v) for v in self.firmware)


def encode_status(status: SensorStatus) -> bytes:
    """Bytes of the status characteristic."""
    battery = BATTERY_UNKNOWN if status.battery_pct is None else status.battery_pct
    # A 1.0 status has no backlog field; from 1.1 on it is always there.
    tail = _STATUS_1_1.pack(status.backlog_packets) if status.protocol_minor >= 1 else b""
    return (
        _STATUS.pack(
            (status.protocol_major << 4) | status.protocol_minor,
            *status.firmware,
            status.rate_hz,
            status.accel_range_g,
            status.gyro_range_dps,
            status.kind,
            1 if status.streaming else 0,
            battery,
            int(status.errors),
        )
        + tail
    )


def decode_status(data: bytes | bytearray | memoryview) -> SensorStatus:
    """Parse the status characteristic.

    Bytes past the 1.0 layout are ignored (a newer minor version may append fields); a
    different major version raises `UnsupportedVersionError`.
    """
    buf = bytes(data)
    if len(buf) < STATUS_SIZE:
        raise PacketTooShortError("status", STATUS_SIZE, len(buf))
    if buf[0] >> 4 != PROTOCOL_MAJOR:
        raise UnsupportedVersionError(PROTOCOL_MAJOR, buf[0] >> 4, buf[0] & 0x0F)
    (ver, fw_major, fw_minor, fw_patch, rate, g, dps, kind, state, battery, errs) = (
        _STATUS.unpack_from(buf)
    )
    if battery != BATTERY_UNKNOWN and battery > 100:
        raise ControlPointError("battery_pct", "0..100 or 255 (unknown)", str(battery))
    backlog = 0
    if ver & 0x0F >= 1 and len(buf) >= STATUS_SIZE + _STATUS_1_1.size:
        backlog = _STATUS_1_1.unpack_from(buf, STATUS_SIZE)[0]
    # Unknown error bits from a newer minor version are kept, not refused.
    return SensorStatus(
        protocol_minor=ver & 0x0F,
        firmware=(fw_major, fw_minor, fw_patch),
        rate_hz=rate,
        accel_range_g=g,
        gyro_range_dps=dps,
        kind=kind,
        streaming=bool(state & 0x01),
        battery_pct=None if battery == BATTERY_UNKNOWN else battery,
        errors=ErrorFlag(errs),
        protocol_major=ver >> 4,
        backlog_packets=backlog,
    )
