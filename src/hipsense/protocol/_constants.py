"""Numbers and identifiers fixed by firmware_protocol/PROTOCOL.md.

Every value here has a twin in firmware_protocol/hipsense_protocol.h; the vector tests
check that both sides encode the same bytes.
"""

import enum
import math
from typing import Final

__all__ = [
    "ACCEL_RANGES_G",
    "BATTERY_LEVEL_CHAR_UUID",
    "BATTERY_SERVICE_UUID",
    "CONTROL_POINT_CHAR_UUID",
    "DEFAULT_ATT_PAYLOAD",
    "DEVICE_INFORMATION_SERVICE_UUID",
    "FIRMWARE_REVISION_CHAR_UUID",
    "GRAVITY_M_S2",
    "GYRO_RANGES_DPS",
    "HEADER_SIZE",
    "IMU_DATA_CHAR_UUID",
    "MANUFACTURER_NAME_CHAR_UUID",
    "MAX_ATT_PAYLOAD",
    "MAX_SAMPLES_PER_PACKET",
    "MODEL_NUMBER_CHAR_UUID",
    "PROTOCOL_MAJOR",
    "PROTOCOL_MINOR",
    "QUAT_Q14_ONE",
    "SAMPLE_RATES_HZ",
    "SERIAL_NUMBER_CHAR_UUID",
    "SERVICE_UUID",
    "STATUS_CHAR_UUID",
    "ErrorFlag",
    "PayloadKind",
    "accel_lsb_m_s2",
    "gyro_lsb_rad_s",
    "max_samples_per_packet",
    "uuid16",
]

PROTOCOL_MAJOR: Final = 1
"""Major protocol version this host implements; a different major is refused."""
PROTOCOL_MINOR: Final = 1
"""Minor protocol version this host was written against; newer minors are accepted."""


def _hipsense_uuid(short: int) -> str:
    # "hipsense-v01" in ASCII fills the last 12 bytes, so the UUIDs are recognisable in
    # a sniffer trace and will not collide with an assigned or random UUID by chance.
    return f"4853{short:04x}-6869-7073-656e-73652d763031"


def uuid16(short: int) -> str:
    """Expand a Bluetooth SIG 16-bit UUID to its 128-bit text form."""
    return f"0000{short:04x}-0000-1000-8000-00805f9b34fb"


SERVICE_UUID: Final = _hipsense_uuid(0x0000)
"""The hipsense primary service; sensors advertise it."""
IMU_DATA_CHAR_UUID: Final = _hipsense_uuid(0x0001)
"""Notify: batched IMU samples."""
CONTROL_POINT_CHAR_UUID: Final = _hipsense_uuid(0x0002)
"""Write with response, indicate: commands and their results."""
STATUS_CHAR_UUID: Final = _hipsense_uuid(0x0003)
"""Read, notify: versions, configuration, battery and error flags."""

BATTERY_SERVICE_UUID: Final = uuid16(0x180F)
BATTERY_LEVEL_CHAR_UUID: Final = uuid16(0x2A19)
DEVICE_INFORMATION_SERVICE_UUID: Final = uuid16(0x180A)
MANUFACTURER_NAME_CHAR_UUID: Final = uuid16(0x2A29)
MODEL_NUMBER_CHAR_UUID: Final = uuid16(0x2A24)
SERIAL_NUMBER_CHAR_UUID: Final = uuid16(0x2A25)
FIRMWARE_REVISION_CHAR_UUID: Final = uuid16(0x2A26)

HEADER_SIZE: Final = 8
"""Bytes of the IMU packet header."""
DEFAULT_ATT_PAYLOAD: Final = 20
"""ATT payload at the default MTU of 23 (MTU minus the 3-byte ATT header)."""
MAX_ATT_PAYLOAD: Final = 244
"""Largest IMU packet: the ATT payload at MTU 247, which fits one LE data PDU."""
MAX_SAMPLES_PER_PACKET: Final = 31
"""The header's 5-bit count field cannot say more."""

SAMPLE_RATES_HZ: Final = (25, 50, 100, 200)
ACCEL_RANGES_G: Final = (2, 4, 8, 16)
GYRO_RANGES_DPS: Final = (125, 250, 500, 1000, 2000)
GRAVITY_M_S2: Final = 9.80665
QUAT_Q14_ONE: Final = 1 << 14
_DEG = math.pi / 180.0


class PayloadKind(enum.IntEnum):
    """What each sample of an IMU packet carries."""

    RAW = 1
    """Accelerometer then gyroscope, x y z each, int16 scaled by the configured ranges."""
    QUAT = 2
    """Unit quaternion w x y z, int16 Q14 (16384 is 1.0)."""
    RAW_QUAT = 3
    """RAW followed by QUAT in each sample."""

    @property
    def sample_size(self) -> int:
        """Bytes per sample."""
        return {PayloadKind.RAW: 12, PayloadKind.QUAT: 8, PayloadKind.RAW_QUAT: 20}[self]

    @property
    def has_raw(self) -> bool:
        """True when samples carry accelerometer and gyroscope values."""
        return self is not PayloadKind.QUAT

    @property
    def has_quat(self) -> bool:
        """True when samples carry a quaternion."""
        return self is not PayloadKind.RAW


def max_samples_per_packet(kind: PayloadKind, att_payload: int) -> int:
    """Most samples of `kind` that fit an ATT payload of `att_payload` bytes.

    Zero means the kind does not fit at all (RAW_QUAT at the default MTU of 23).
    """
    usable = min(att_payload, MAX_ATT_PAYLOAD) - HEADER_SIZE
    return max(0, min(MAX_SAMPLES_PER_PACKET, usable // kind.sample_size))


class ErrorFlag(enum.IntFlag):
    """Bits of the status characteristic's error field."""

    NONE = 0
    IMU_FAULT = 1 << 0
    """The IMU stopped answering or failed its self-test."""
    FIFO_OVERFLOW = 1 << 1
    """Samples were lost on the sensor before they could be sent."""
    LOW_BATTERY = 1 << 2
    """Battery below 10 %."""
    CLOCK_UNSYNCED = 1 << 3
    """No time sync since power-up."""
    CONFIG_REJECTED = 1 << 4
    """The last configuration write was refused; the previous one stays in force."""


def accel_lsb_m_s2(range_g: int) -> float:
    """Metres per second squared of one accelerometer count at a full scale of `range_g`."""
    return range_g * GRAVITY_M_S2 / 32768.0


def gyro_lsb_rad_s(range_dps: int) -> float:
    """Radians per second of one gyroscope count at a full scale of `range_dps`."""
    return range_dps * _DEG / 32768.0
