"""The WitMotion BLE 5.0 protocol (BWT901BLECL5.0 and its siblings), sans I/O.

What the sources say (WITMOTION/WitBluetooth_BWT901BLE5_0, Python/BWT901BLE5.0_python_sdk
/device_model.py and the Android Bwt901ble.java; rubenmuehlhans/esphome-witmotion,
components/witmotion/witmotion_struct.h):

- one vendor service 0000ffe5-0000-1000-8000-00805f9a34fb (base ...9a34fb, not the
  Bluetooth SIG's ...9b34fb), notify characteristic ffe4, write characteristic ffe9;
- the sensor streams as soon as notifications are on: 20-byte records 0x55 0x61 then
  nine int16 little-endian, acceleration x y z (16 g full scale), angular rate x y z
  (2000 deg/s), angles roll pitch yaw (180 deg); a notification may hold several
  records (esphome-witmotion saw that at high rates), and nothing stamps their time;
- commands are 5 bytes FF AA RR LL HH: write register RR with the int16 HHLL; a write
  takes an unlock (FF AA 69 88 B5) first and a save (FF AA 00 00 00) after, or it is
  lost at power-off; FF AA 27 RR 00 reads registers RR.. and the sensor answers with a
  0x55 0x71 record: RR, 0, then eight int16 registers from RR on;
- register 0x03 is the output rate (a code), 0x64 the battery voltage in 1/100 V.
"""

from dataclasses import dataclass
from typing import Final

import numpy as np
from numpy.typing import NDArray

from hipsense.protocol import GRAVITY_M_S2, ProtocolError

__all__ = [
    "ACCEL_FULL_SCALE_G",
    "ANGLE_FULL_SCALE_DEG",
    "GYRO_FULL_SCALE_DPS",
    "NOTIFY_CHAR_UUID",
    "RATE_CODES",
    "RECORD_SIZE",
    "REG_BATTERY",
    "REG_RATE",
    "SERVICE_UUID",
    "WRITE_CHAR_UUID",
    "Notification",
    "RegisterReply",
    "WitMotionDecoder",
    "WitMotionProtocolError",
    "WitMotionSamples",
    "battery_pct",
    "decode_command",
    "encode_read_register",
    "encode_register_reply",
    "encode_samples",
    "encode_save",
    "encode_set_rate",
    "encode_unlock",
    "encode_write_register",
    "rate_hz_of_code",
]

SERVICE_UUID: Final = "0000ffe5-0000-1000-8000-00805f9a34fb"
NOTIFY_CHAR_UUID: Final = "0000ffe4-0000-1000-8000-00805f9a34fb"
WRITE_CHAR_UUID: Final = "0000ffe9-0000-1000-8000-00805f9a34fb"

RECORD_SIZE: Final = 20
_HEAD: Final = 0x55
_DATA: Final = 0x61
_REGISTERS: Final = 0x71
_CMD: Final = b"\xff\xaa"
_READ: Final = 0x27
_UNLOCK: Final = 0x69
_UNLOCK_KEY: Final = 0xB588
_SAVE: Final = 0x00
REG_RATE: Final = 0x03
REG_BATTERY: Final = 0x64

ACCEL_FULL_SCALE_G: Final = 16.0
GYRO_FULL_SCALE_DPS: Final = 2000.0
ANGLE_FULL_SCALE_DEG: Final = 180.0
_ACC_LSB_M_S2: Final = ACCEL_FULL_SCALE_G * GRAVITY_M_S2 / 32768.0
_GYR_LSB_RAD_S: Final = np.deg2rad(GYRO_FULL_SCALE_DPS) / 32768.0
_ANG_LSB_DEG: Final = ANGLE_FULL_SCALE_DEG / 32768.0

RATE_CODES: Final = {10: 0x06, 20: 0x07, 50: 0x08, 100: 0x09, 200: 0x0A}
"""Output rates (Hz) and their register 0x03 codes (esphome-witmotion's RateArg; the
slower 0.2-5 Hz codes 0x01-0x05 are of no use for counting reps)."""

# Battery volts to percent: WitMotion support's table, as esphome-witmotion has it.
_BATTERY_V: Final = (3.40, 3.50, 3.68, 3.70, 3.73, 3.77, 3.79, 3.82, 3.87, 3.93, 3.97)
_BATTERY_PCT: Final = (5, 10, 15, 20, 30, 40, 50, 60, 75, 90, 100)

F64Array = NDArray[np.float64]


class WitMotionProtocolError(ProtocolError):
    """Bytes that do not follow the WitMotion BLE 5.0 protocol."""

    def __init__(self, what: str, expected: str, found: str) -> None:
        self.what = what
        self.expected = expected
        self.found = found
        super().__init__(f"witmotion {what}: expected {expected}, got {found}")


@dataclass(frozen=True, slots=True, eq=False)
class WitMotionSamples:
    """Samples of 0x61 records, in the units a native raw block has."""

    acc_m_s2: F64Array
    gyr_rad_s: F64Array
    angles_deg: F64Array
    """Roll, pitch, yaw of the sensor's own filter; hipsense fuses its own (unused)."""

    @property
    def count(self) -> int:
        """Number of samples."""
        return int(self.acc_m_s2.shape[0])


@dataclass(frozen=True, slots=True)
class RegisterReply:
    """A 0x71 record: eight registers from `first` on."""

    first: int
    values: tuple[int, ...]


@dataclass(frozen=True, slots=True, eq=False)
class Notification:
    """What one notification completed: samples and register replies."""

    samples: WitMotionSamples
    replies: tuple[RegisterReply, ...]


def _empty() -> WitMotionSamples:
    z = np.empty((0, 3))
    return WitMotionSamples(z, z.copy(), z.copy())


class WitMotionDecoder:
    """Notifications in, samples out; a record split over two notifications is joined.

    Bad bytes raise `WitMotionProtocolError` and the partial record is dropped, so the
    next notification starts clean (a record never starts mid-notification otherwise).
    """

    def __init__(self) -> None:
        self._rest = b""

    def reset(self) -> None:
        """Forget a partial record (a new connection)."""
        self._rest = b""

    def push(self, data: bytes) -> Notification:
        """Decode one notification's bytes."""
        buf = self._rest + bytes(data)
        n = len(buf) // RECORD_SIZE
        self._rest = b""
        rows = np.frombuffer(buf, dtype=np.uint8, count=n * RECORD_SIZE).reshape(n, RECORD_SIZE)
        bad_head = np.flatnonzero(rows[:, 0] != _HEAD)
        if bad_head.shape[0]:
            i = int(bad_head[0])
            raise WitMotionProtocolError(
                f"record {i} of {n}", f"0x{_HEAD:02x} at its start", f"0x{rows[i, 0]:02x}"
            )
        flags = rows[:, 1]
        bad_flag = np.flatnonzero((flags != _DATA) & (flags != _REGISTERS))
        if bad_flag.shape[0]:
            i = int(bad_flag[0])
            raise WitMotionProtocolError(
                f"record {i} of {n}", "flag 0x61 (data) or 0x71 (registers)", f"0x{flags[i]:02x}"
            )
        # A partial record at the end must start like one, or the next notification
        # would be read out of step.
        rest = buf[n * RECORD_SIZE :]
        if rest and rest[0] != _HEAD:
            raise WitMotionProtocolError(
                f"record {n} (partial)", f"0x{_HEAD:02x} at its start", f"0x{rest[0]:02x}"
            )
        if len(rest) >= 2 and rest[1] not in (_DATA, _REGISTERS):
            raise WitMotionProtocolError(
                f"record {n} (partial)", "flag 0x61 (data) or 0x71 (registers)", f"0x{rest[1]:02x}"
            )
        self._rest = rest
        words = rows.view("<i2").reshape(n, RECORD_SIZE // 2)
        data_words = words[flags == _DATA, 1:].astype(np.float64)
        samples = (
            WitMotionSamples(
                acc_m_s2=data_words[:, 0:3] * _ACC_LSB_M_S2,
                gyr_rad_s=data_words[:, 3:6] * _GYR_LSB_RAD_S,
                angles_deg=data_words[:, 6:9] * _ANG_LSB_DEG,
            )
            if data_words.shape[0]
            else _empty()
        )
        reg_rows = np.flatnonzero(flags == _REGISTERS)
        replies = tuple(
            RegisterReply(int(rows[i, 2]), tuple(int(v) for v in words[i, 2:])) for i in reg_rows
        )
        return Notification(samples, replies)


def _command(register: int, value: int) -> bytes:
    if not 0 <= register <= 0xFF:
        raise ValueError(f"register: expected 0..255, got {register}")
    if not -0x8000 <= value <= 0xFFFF:
        raise ValueError(f"register value: expected an int16 or uint16, got {value}")
    return _CMD + bytes([register]) + (value & 0xFFFF).to_bytes(2, "little")


def encode_write_register(register: int, value: int) -> bytes:
    """FF AA RR LL HH: write `value` to `register` (unlock first, save after)."""
    return _command(register, value)


def encode_unlock() -> bytes:
    """FF AA 69 88 B5: allow the next register writes."""
    return _command(_UNLOCK, _UNLOCK_KEY)


def encode_save() -> bytes:
    """FF AA 00 00 00: keep the registers through a power cycle."""
    return _command(_SAVE, 0)


def encode_set_rate(rate_hz: int) -> bytes:
    """FF AA 03 RR 00: output rate; one of `RATE_CODES`."""
    try:
        code = RATE_CODES[rate_hz]
    except KeyError:
        options = ", ".join(str(r) for r in RATE_CODES)
        raise ValueError(f"rate_hz: expected one of {options}, got {rate_hz}") from None
    return _command(REG_RATE, code)


def encode_read_register(register: int) -> bytes:
    """FF AA 27 RR 00: ask for registers RR.. (answered by a 0x71 record)."""
    return _command(_READ, register)


def decode_command(data: bytes) -> tuple[int, int]:
    """A command's (register, value); a read is (0x27, register)."""
    if len(data) != 5:
        raise WitMotionProtocolError("command", "5 bytes", f"{len(data)}")
    if data[:2] != _CMD:
        raise WitMotionProtocolError("command", "FF AA at its start", data[:2].hex(" ").upper())
    return data[2], int.from_bytes(data[3:5], "little")


def rate_hz_of_code(code: int) -> int:
    """The output rate of a register 0x03 code."""
    for rate, c in RATE_CODES.items():
        if c == code:
            return rate
    codes = ", ".join(f"0x{c:02x}" for c in RATE_CODES.values())
    raise WitMotionProtocolError("rate code", f"one of {codes}", f"0x{code:02x}")


def battery_pct(reply: RegisterReply) -> float:
    """Battery percent from a register 0x64 reply (volts by WitMotion's table)."""
    if reply.first != REG_BATTERY:
        raise WitMotionProtocolError(
            "battery reply", f"register 0x{REG_BATTERY:02x}", f"0x{reply.first:02x}"
        )
    volts = reply.values[0] / 100.0
    if not 2.5 <= volts <= 4.5:
        raise WitMotionProtocolError("battery voltage", "2.50..4.50 V", f"{volts:.2f} V")
    pct = 0
    for v, p in zip(_BATTERY_V, _BATTERY_PCT, strict=True):
        if volts >= v:
            pct = p
    return float(pct)


def encode_samples(acc_counts: NDArray[np.int16], gyr_counts: NDArray[np.int16],
                   angle_counts: NDArray[np.int16]) -> bytes:  # fmt: skip
    """0x61 records of (n, 3) int16 counts each (what the sensor sends)."""
    n = acc_counts.shape[0]
    words = np.empty((n, RECORD_SIZE // 2), dtype="<i2")
    words[:, 0] = np.frombuffer(bytes([_HEAD, _DATA]), dtype="<i2")[0]
    words[:, 1:4] = acc_counts
    words[:, 4:7] = gyr_counts
    words[:, 7:10] = angle_counts
    return words.tobytes()


def encode_register_reply(first: int, values: tuple[int, ...]) -> bytes:
    """A 0x71 record of eight registers from `first` on (missing ones are 0)."""
    vals = (list(values) + [0] * 8)[:8]
    body = np.asarray([v if v < 0x8000 else v - 0x10000 for v in vals], dtype="<i2").tobytes()
    return bytes([_HEAD, _REGISTERS, first & 0xFF, 0]) + body
