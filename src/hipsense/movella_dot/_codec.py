"""The Movella (Xsens) DOT's BLE protocol, sans I/O: bytes in, numpy arrays out.

From the Movella DOT BLE Services Specification (XD0506P, now "Movella DOT BLE Service
Specification"): every UUID is `1517xxxx-4947-11e9-8646-d663bd873d93`. The configuration
service (0x1000) holds device information (0x1001, read) and device control (0x1002,
read/write: identify, power, device tag, output rate, filter profile); the measurement
service (0x2000) holds its control (0x2001: type, start/stop, payload mode) and three
notify characteristics for long (0x2002, 63 bytes), medium (0x2003, 40 bytes) and short
(0x2004, 20 bytes) payloads; the battery service (0x3000) holds level and charging
(0x3001). Values are little-endian; measurement fields are float32.

A DOT sends one sample per notification, stamped with its own clock (SampleTimeFine):
microseconds since power-up, uint32, wrapping every 71.6 minutes. `DotTimeline` unwraps
it, maps it to host time with the project's `ClockMapper`, and turns what the timestamps
say is missing into `Gap`s.
"""

import enum
import itertools
import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Final

import numpy as np
from numpy.typing import NDArray

from hipsense.protocol import (
    ClockMapper,
    Gap,
    PayloadKind,
    ProtocolError,
    ReassemblyStats,
    SampleBlock,
    StreamFormat,
)

__all__ = [
    "BATTERY_CHAR_UUID",
    "BATTERY_SERVICE_UUID",
    "CONFIGURATION_SERVICE_UUID",
    "DEVICE_CONTROL_CHAR_UUID",
    "DEVICE_CONTROL_SIZE",
    "DEVICE_INFO_CHAR_UUID",
    "DEVICE_REPORT_CHAR_UUID",
    "DOT_ACCEL_RANGE_G",
    "DOT_GYRO_RANGE_DPS",
    "LONG_PAYLOAD_CHAR_UUID",
    "MEASUREMENT_CONTROL_CHAR_UUID",
    "MEASUREMENT_SERVICE_UUID",
    "MEDIUM_PAYLOAD_CHAR_UUID",
    "OUTPUT_RATES_HZ",
    "SHORT_PAYLOAD_CHAR_UUID",
    "VISIT_OUTPUT_RATE",
    "XSENS_COMPANY_ID",
    "DeviceControl",
    "DotBattery",
    "DotDeviceInfo",
    "DotFieldError",
    "DotLengthError",
    "DotProtocolError",
    "DotSamples",
    "DotSettingError",
    "DotStreamFormat",
    "DotTimeline",
    "MeasurementControl",
    "PayloadMode",
    "decode_battery",
    "decode_device_control",
    "decode_device_info",
    "decode_many",
    "decode_measurement",
    "decode_measurement_control",
    "dot_uuid",
    "encode_battery",
    "encode_device_control",
    "encode_measurement",
    "encode_measurement_control",
    "encode_set_output_rate",
]


def dot_uuid(short: int) -> str:
    """The 128-bit text form of a DOT characteristic or service number (0x1001...)."""
    return f"1517{short:04x}-4947-11e9-8646-d663bd873d93"


CONFIGURATION_SERVICE_UUID: Final = dot_uuid(0x1000)
DEVICE_INFO_CHAR_UUID: Final = dot_uuid(0x1001)
DEVICE_CONTROL_CHAR_UUID: Final = dot_uuid(0x1002)
DEVICE_REPORT_CHAR_UUID: Final = dot_uuid(0x1004)
MEASUREMENT_SERVICE_UUID: Final = dot_uuid(0x2000)
MEASUREMENT_CONTROL_CHAR_UUID: Final = dot_uuid(0x2001)
LONG_PAYLOAD_CHAR_UUID: Final = dot_uuid(0x2002)
MEDIUM_PAYLOAD_CHAR_UUID: Final = dot_uuid(0x2003)
SHORT_PAYLOAD_CHAR_UUID: Final = dot_uuid(0x2004)
BATTERY_SERVICE_UUID: Final = dot_uuid(0x3000)
BATTERY_CHAR_UUID: Final = dot_uuid(0x3001)

XSENS_COMPANY_ID: Final = 0x0886
"""Bluetooth SIG company identifier of Xsens Technologies, in DOT advertisements."""
OUTPUT_RATES_HZ: Final = (1, 4, 10, 12, 15, 20, 30, 60)
"""Real-time streaming rates; 120 Hz exists for on-sensor recording only."""
DOT_ACCEL_RANGE_G: Final = 16
DOT_GYRO_RANGE_DPS: Final = 2000
VISIT_OUTPUT_RATE: Final = 0x10
"""Device control's visit index bit: "apply the output rate field of this write"."""
DEVICE_CONTROL_SIZE: Final = 32
_DEVICE_CONTROL_MIN: Final = 27  # up to and with the filter profile index
_DEVICE_INFO_MIN: Final = 28
_MEASUREMENT_TYPE: Final = 0x01
_US_PER_S: Final = 1_000_000
_WRAP: Final = 1 << 32
_DEG: Final = math.pi / 180.0
_QUAT_NORM_MIN: Final = 0.9
_QUAT_NORM_MAX: Final = 1.1
_ACC_MAX_M_S2: Final = 2.0 * DOT_ACCEL_RANGE_G * 9.80665
_GYR_MAX_DPS: Final = 2.0 * DOT_GYRO_RANGE_DPS

F64Array = NDArray[np.float64]
I64Array = NDArray[np.int64]
U32Array = NDArray[np.uint32]


class DotProtocolError(ProtocolError):
    """Bytes that do not follow the Movella DOT BLE protocol."""


class DotLengthError(DotProtocolError):
    """A value whose length is none of those its characteristic and mode allow."""

    def __init__(self, what: str, expected: str, actual: int) -> None:
        self.what = what
        self.actual = actual
        super().__init__(f"{what}: expected {expected} bytes, got {actual}")


class DotFieldError(DotProtocolError):
    """A field whose value cannot be what the protocol says it is."""

    def __init__(self, field_name: str, expected: str, actual: str) -> None:
        self.field = field_name
        super().__init__(f"{field_name}: expected {expected}, got {actual}")


class DotSettingError(DotProtocolError, ValueError):
    """A rate or payload mode the DOT does not offer for real-time streaming."""

    def __init__(self, setting: str, allowed: Sequence[int], actual: int) -> None:
        self.setting = setting
        self.allowed = tuple(allowed)
        self.actual = actual
        options = ", ".join(str(v) for v in allowed)
        super().__init__(f"{setting}: expected one of {options}, got {actual}")


class PayloadMode(enum.IntEnum):
    """Measurement payload modes this host decodes (the specification's numbers)."""

    RATE_QUANTITIES = 21
    """Medium payload: timestamp, acceleration (m/s^2), angular velocity (deg/s)."""
    CUSTOM_MODE_5 = 26
    """Long payload: timestamp, orientation quaternion w x y z, acceleration, angular
    velocity."""

    @property
    def size(self) -> int:
        """Bytes of one sample in this mode."""
        return 28 if self is PayloadMode.RATE_QUANTITIES else 44

    @property
    def char_size(self) -> int:
        """Length of the characteristic that carries it (the sample, zero-padded)."""
        return 40 if self is PayloadMode.RATE_QUANTITIES else 63

    @property
    def char_uuid(self) -> str:
        """The notify characteristic of this mode."""
        if self is PayloadMode.RATE_QUANTITIES:
            return MEDIUM_PAYLOAD_CHAR_UUID
        return LONG_PAYLOAD_CHAR_UUID

    @property
    def kind(self) -> PayloadKind:
        """What a `SampleBlock` of this mode carries."""
        return PayloadKind.RAW if self is PayloadMode.RATE_QUANTITIES else PayloadKind.RAW_QUAT

    @property
    def dtype(self) -> np.dtype[np.void]:
        """The little-endian layout of one sample."""
        fields: list[tuple[str, str, tuple[int, ...]] | tuple[str, str]] = [("t_us", "<u4")]
        if self is PayloadMode.CUSTOM_MODE_5:
            fields.append(("quat", "<f4", (4,)))
        fields += [("acc", "<f4", (3,)), ("gyr", "<f4", (3,))]
        return np.dtype(fields)


def _check_mode(mode: int) -> PayloadMode:
    try:
        return PayloadMode(mode)
    except ValueError:
        raise DotSettingError("payload mode", tuple(PayloadMode), mode) from None


@dataclass(frozen=True, slots=True)
class DotStreamFormat(StreamFormat):
    """A DOT's stream: its output rate and its fixed ranges (+-16 g, +-2000 deg/s).

    A `StreamFormat` for whoever reads `link.fmt`, checked against the DOT's rates
    instead of the native protocol's.
    """

    rate_hz: int = 60
    accel_range_g: int = DOT_ACCEL_RANGE_G
    gyro_range_dps: int = DOT_GYRO_RANGE_DPS

    def __post_init__(self) -> None:
        if self.rate_hz not in OUTPUT_RATES_HZ:
            raise DotSettingError("output rate (Hz)", OUTPUT_RATES_HZ, self.rate_hz)
        if (self.accel_range_g, self.gyro_range_dps) != (DOT_ACCEL_RANGE_G, DOT_GYRO_RANGE_DPS):
            raise DotSettingError("ranges (g, deg/s)", (16, 2000), self.accel_range_g)

    @property
    def period_us(self) -> int:
        """Nominal sample period in microseconds (rounded: 16667 at 60 Hz)."""
        return round(_US_PER_S / self.rate_hz)


# -- measurement control (0x2001) --------------------------------------------------


@dataclass(frozen=True, slots=True)
class MeasurementControl:
    """The measurement control characteristic: whether it measures, and in which mode."""

    streaming: bool
    mode: int


def encode_measurement_control(start: bool, mode: PayloadMode) -> bytes:
    """The write that starts (or stops) real-time streaming in `mode`."""
    return bytes((_MEASUREMENT_TYPE, 1 if start else 0, int(_check_mode(mode))))


def decode_measurement_control(data: bytes | bytearray) -> MeasurementControl:
    """Read or written value of the measurement control characteristic."""
    if len(data) != 3:
        raise DotLengthError("measurement control", "3", len(data))
    if data[0] != _MEASUREMENT_TYPE:
        raise DotFieldError("measurement control type", "1 (measurement)", str(data[0]))
    if data[1] > 1:
        raise DotFieldError("measurement control action", "0 (stop) or 1 (start)", str(data[1]))
    return MeasurementControl(streaming=data[1] == 1, mode=data[2])


# -- device control (0x1002) -------------------------------------------------------

_DC: Final = struct.Struct("<BBB4sB16sHB5s")


@dataclass(frozen=True, slots=True)
class DeviceControl:
    """The device control characteristic; a write applies the fields `visit_index` names."""

    visit_index: int
    identifying: int
    power_options: int
    power_saving_timeouts: bytes
    tag: str
    output_rate_hz: int
    filter_profile_index: int
    reserved: bytes = field(default=bytes(5))


def decode_device_control(data: bytes | bytearray) -> DeviceControl:
    """The device control characteristic as read (32 bytes)."""
    n = len(data)
    if not _DEVICE_CONTROL_MIN <= n <= DEVICE_CONTROL_SIZE:
        raise DotLengthError("device control", f"{_DEVICE_CONTROL_MIN}..{DEVICE_CONTROL_SIZE}", n)
    vi, ident, power, timeouts, tag_len, tag, rate, filt, reserved = _DC.unpack(
        bytes(data).ljust(DEVICE_CONTROL_SIZE, b"\0")
    )
    if tag_len > 16:
        raise DotFieldError("device tag length", "0..16", str(tag_len))
    return DeviceControl(
        visit_index=vi,
        identifying=ident,
        power_options=power,
        power_saving_timeouts=timeouts,
        tag=tag[:tag_len].decode("utf-8", errors="replace"),
        output_rate_hz=rate,
        filter_profile_index=filt,
        reserved=reserved,
    )


def encode_device_control(dc: DeviceControl) -> bytes:
    """The 32 bytes of a device control value."""
    tag = dc.tag.encode()
    if len(tag) > 16:
        raise DotFieldError("device tag", "at most 16 bytes", f"{len(tag)} bytes")
    return _DC.pack(
        dc.visit_index, dc.identifying, dc.power_options, dc.power_saving_timeouts.ljust(4, b"\0"),
        len(tag), tag.ljust(16, b"\0"), dc.output_rate_hz, dc.filter_profile_index,
        dc.reserved.ljust(5, b"\0")[:5],
    )  # fmt: skip


def encode_set_output_rate(current: DeviceControl, rate_hz: int) -> bytes:
    """The device control write that sets the output rate and leaves the rest alone."""
    if rate_hz not in OUTPUT_RATES_HZ:
        raise DotSettingError("output rate (Hz)", OUTPUT_RATES_HZ, rate_hz)
    return encode_device_control(
        replace(current, visit_index=VISIT_OUTPUT_RATE, output_rate_hz=rate_hz)
    )


# -- device information (0x1001) and battery (0x3001) -------------------------------


@dataclass(frozen=True, slots=True)
class DotDeviceInfo:
    """What the device information characteristic says about the sensor."""

    address: str
    firmware: tuple[int, int, int]
    serial: str


def decode_device_info(data: bytes | bytearray) -> DotDeviceInfo:
    """Device information: address (reversed), firmware version, build date, serial."""
    if len(data) < _DEVICE_INFO_MIN:
        raise DotLengthError("device information", f"at least {_DEVICE_INFO_MIN}", len(data))
    address = ":".join(f"{b:02X}" for b in reversed(data[0:6]))
    serial = int.from_bytes(data[20:28], "little")
    return DotDeviceInfo(address, (data[6], data[7], data[8]), f"{serial:x}")


@dataclass(frozen=True, slots=True)
class DotBattery:
    """Battery level and whether it is charging."""

    level_pct: int
    charging: bool


def decode_battery(data: bytes | bytearray) -> DotBattery:
    """The battery characteristic: level in percent, then a charging flag."""
    if len(data) != 2:
        raise DotLengthError("battery", "2", len(data))
    if data[0] > 100:
        raise DotFieldError("battery level", "0..100 %", f"{data[0]} %")
    if data[1] > 1:
        raise DotFieldError("battery charging flag", "0 or 1", str(data[1]))
    return DotBattery(data[0], data[1] == 1)


def encode_battery(battery: DotBattery) -> bytes:
    """The battery characteristic's value."""
    return bytes((battery.level_pct, int(battery.charging)))


# -- measurements -------------------------------------------------------------------


@dataclass(frozen=True, slots=True, eq=False)
class DotSamples:
    """Decoded measurement notifications, one sample each, in arrival order.

    `t_us` is the DOT's wrapped clock; `index` says which notification of the batch
    each sample came from. Units are those of `SampleBlock`: m/s^2 and rad/s.
    """

    index: NDArray[np.intp]
    t_us: U32Array
    acc_m_s2: F64Array
    gyr_rad_s: F64Array
    quat: F64Array | None

    @property
    def count(self) -> int:
        """Number of samples."""
        return int(self.t_us.shape[0])


def _lengths_ok(mode: PayloadMode) -> str:
    return f"{mode.size} or {mode.char_size} ({mode.name})"


def decode_many(
    payloads: Sequence[bytes | bytearray], mode: PayloadMode
) -> tuple[DotSamples, list[tuple[int, DotProtocolError]]]:
    """Decode a batch of notifications at once; bad ones are returned as errors.

    A notification is the sample alone or the sample zero-padded to its
    characteristic's length. Samples with a non-finite or out-of-range value, or a
    quaternion far from unit norm, are refused.
    """
    mode = _check_mode(mode)
    size = mode.size
    errors: list[tuple[int, DotProtocolError]] = []
    good: list[int] = []
    for i, p in enumerate(payloads):
        if len(p) == size or len(p) == mode.char_size:
            good.append(i)
        else:
            errors.append((i, DotLengthError("measurement", _lengths_ok(mode), len(p))))
    rec = np.frombuffer(b"".join(bytes(payloads[i][:size]) for i in good), dtype=mode.dtype)
    acc = rec["acc"].astype(np.float64)
    gyr = rec["gyr"].astype(np.float64)
    bad = ~(np.isfinite(acc).all(axis=1) & np.isfinite(gyr).all(axis=1))
    with np.errstate(invalid="ignore"):
        bad |= (np.abs(acc) > _ACC_MAX_M_S2).any(axis=1) | (np.abs(gyr) > _GYR_MAX_DPS).any(axis=1)
    quat: F64Array | None = None
    norm: F64Array | None = None
    if mode is PayloadMode.CUSTOM_MODE_5:
        quat = rec["quat"].astype(np.float64)
        with np.errstate(invalid="ignore", over="ignore"):
            norm = np.sqrt(np.einsum("ij,ij->i", quat, quat))
            bad |= ~((norm >= _QUAT_NORM_MIN) & (norm <= _QUAT_NORM_MAX))
    index = np.asarray(good, dtype=np.intp)
    for j in np.flatnonzero(bad):
        what = (
            f"acceleration {acc[j].tolist()} m/s^2, angular velocity {gyr[j].tolist()} deg/s"
            if norm is None or _QUAT_NORM_MIN <= norm[j] <= _QUAT_NORM_MAX
            else f"quaternion norm {norm[j]:.4f}"
        )
        errors.append(
            (
                int(index[j]),
                DotFieldError(
                    "measurement sample",
                    f"finite values within +-{_ACC_MAX_M_S2:.0f} m/s^2 and +-{_GYR_MAX_DPS:.0f} "
                    f"deg/s, a unit quaternion ({_QUAT_NORM_MIN}..{_QUAT_NORM_MAX})",
                    what,
                ),
            )
        )
    keep = ~bad
    if quat is not None and norm is not None:
        quat = quat[keep] / norm[keep, None]
    errors.sort(key=lambda e: e[0])
    samples = DotSamples(
        index=index[keep],
        t_us=np.ascontiguousarray(rec["t_us"][keep]),
        acc_m_s2=acc[keep],
        gyr_rad_s=gyr[keep] * _DEG,
        quat=quat,
    )
    return samples, errors


def decode_measurement(data: bytes | bytearray, mode: PayloadMode) -> DotSamples:
    """Decode one notification; raises a `DotProtocolError` for anything else."""
    samples, errors = decode_many([data], mode)
    if errors:
        raise errors[0][1]
    return samples


def encode_measurement(
    mode: PayloadMode,
    t_us: NDArray[np.integer] | Sequence[int],
    acc_m_s2: F64Array,
    gyr_rad_s: F64Array,
    quat: F64Array | None = None,
    *,
    padded: bool = True,
) -> list[bytes]:
    """Notifications of these samples, as a DOT sends them (for emulators and tests)."""
    mode = _check_mode(mode)
    t = np.asarray(t_us, dtype=np.int64)
    rec = np.zeros(t.shape[0], dtype=mode.dtype)
    rec["t_us"] = (t % _WRAP).astype(np.uint32)
    rec["acc"] = acc_m_s2
    rec["gyr"] = np.asarray(gyr_rad_s) / _DEG
    if mode is PayloadMode.CUSTOM_MODE_5:
        if quat is None:
            raise DotFieldError("quaternion", f"one per sample for {mode.name}", "none")
        rec["quat"] = quat
    raw = rec.tobytes()
    pad = bytes(mode.char_size - mode.size) if padded else b""
    return [raw[i * mode.size : (i + 1) * mode.size] + pad for i in range(t.shape[0])]


# -- sensor time to host time ---------------------------------------------------------

_RESTART_TOLERANCE_S: Final = 1.0
_DRIFT: Final = 1e-3


class DotTimeline:
    """Decoded samples in, `SampleBlock`s and `Gap`s out, on the host clock.

    Sans-I/O and stateful: `push()` takes the samples of notifications with their host
    arrival times; `reconnected()` is told of each new connection. Within a connection
    the clock is unwrapped by its steps (a DOT sends in order); across a reconnection
    by the host time that passed, so any number of wraps during an outage is handled.
    A clock that does not fit the host time (it powered up since) starts a new stream:
    a `Gap` of reason "restart". Samples that repeat or go back are dropped and counted.
    """

    def __init__(self, fmt: DotStreamFormat, *, clock: ClockMapper | None = None) -> None:
        self.fmt = fmt
        self.clock = clock if clock is not None else ClockMapper()
        self.stats = ReassemblyStats()
        self._last_us: int | None = None
        self._last_wrapped = 0
        self._last_host_s = 0.0
        self._last_sample_host_s = -math.inf
        self._reconnected_s: float | None = None
        self._seq = 0

    def reset(self) -> None:
        """Forget the stream (a new sensor)."""
        self.clock.reset()
        self.stats = ReassemblyStats()
        self._last_us = None
        self._last_wrapped = 0
        self._last_host_s = 0.0
        self._reconnected_s = None
        self._last_sample_host_s = -math.inf
        self._seq = 0

    def reconnected(self, host_s: float) -> None:
        """A new connection: the next sample is placed by the host time since the last."""
        self._reconnected_s = host_s

    def note_malformed(self, count: int = 1) -> None:
        """Notifications that could not be decoded (they count as packets handed in)."""
        self.stats.packets += count
        self.stats.malformed += count

    def push(self, samples: DotSamples, host_s: F64Array) -> list[SampleBlock | Gap]:
        """Samples and the host arrival time of each; the blocks and gaps they make."""
        n = samples.count
        self.stats.packets += n
        if n == 0:
            return []
        wrapped = samples.t_us.astype(np.int64)
        steps = np.diff(wrapped) % _WRAP
        steps = np.where(steps >= _WRAP // 2, steps - _WRAP, steps)
        out: list[SampleBlock | Gap] = []
        restart = False
        first = int(wrapped[0])
        if self._last_us is None:
            u0 = first
        elif self._reconnected_s is not None:
            u0, restart = self._after_reconnect(first, float(host_s[0]))
        else:
            step = (first - self._last_wrapped) % _WRAP
            u0 = self._last_us + (step - _WRAP if step >= _WRAP // 2 else step)
        self._reconnected_s = None
        u = u0 + np.concatenate(([0], np.cumsum(steps)))
        floor = -math.inf if self._last_us is None or restart else self._last_us
        before = np.maximum.accumulate(np.concatenate(([floor], u)))[:-1]
        keep = u > before
        dropped = int(n - np.count_nonzero(keep))
        self.stats.duplicates += dropped
        if not keep.any():
            return []
        u, host_s = u[keep], np.asarray(host_s, dtype=np.float64)[keep]
        acc, gyr = samples.acc_m_s2[keep], samples.gyr_rad_s[keep]
        quat = None if samples.quat is None else samples.quat[keep]
        if restart:
            self.clock.reset()
            self.stats.restarts += 1
        # One observation a batch, its lowest host-minus-sensor difference: the clock
        # mapper keeps only the lower envelope, so the others add nothing.
        d = host_s - u * 1e-6
        j = int(np.argmin(d))
        est = self.clock.observe(int(u[j]), float(host_s[j]))
        t_host = est.to_host(u)
        # Host times never run backwards (a re-fitted mapping may move them a little): a
        # sample mapped less than half a period after the one before is put there. With
        # s_i = t_i - i * half that is a running maximum of s.
        half = 0.5 / self.fmt.rate_hz
        steps_s = half * np.arange(t_host.shape[0])
        floor_s = self._last_sample_host_s + half
        t_host = np.maximum.accumulate(np.maximum(t_host - steps_s, floor_s)) + steps_s
        period = self.fmt.period_us
        prev_us = self._last_us if self._last_us is not None else int(u[0])
        du = np.diff(np.concatenate(([prev_us], u)))
        gap_before = du > 1.5 * period
        gap_before[0] = restart or (self._last_us is not None and bool(gap_before[0]))
        m = int(u.shape[0])
        bounds = sorted({0, *np.flatnonzero(gap_before).tolist(), m})
        for a, b in itertools.pairwise(bounds):
            if gap_before[a]:
                out.append(self._gap(a, u, t_host, du, restart=restart and a == 0))
            out.append(
                SampleBlock(
                    seq_first=self._seq,
                    seq_last=self._seq + (b - a) - 1,
                    kind=PayloadKind.RAW_QUAT if quat is not None else PayloadKind.RAW,
                    t_sensor_us=u[a:b].astype(np.int64),
                    t_host_s=t_host[a:b],
                    acc_m_s2=acc[a:b],
                    gyr_rad_s=gyr[a:b],
                    quat=None if quat is None else quat[a:b],
                )
            )
            self._seq += b - a
        self.stats.samples += int(u.shape[0])
        self._last_us = int(u[-1])
        self._last_wrapped = int(wrapped[keep][-1])
        self._last_host_s = float(host_s[-1])
        self._last_sample_host_s = float(t_host[-1])
        return out

    def _gap(self, a: int, u: I64Array, t_host: F64Array, du: I64Array, *, restart: bool) -> Gap:
        """The gap before sample `a` of this push."""
        start_us = int(u[a - 1]) if a > 0 else int(u[a] - du[a])
        start_host = float(t_host[a - 1]) if a > 0 else self._last_sample_host_s
        if restart:
            # Two clocks: only the host's says how long it was.
            lost = max(0, round((float(t_host[a]) - start_host) * self.fmt.rate_hz) - 1)
        else:
            # The exact period, not `period_us` rounded: over hours it would miscount.
            lost = max(0, round(int(du[a]) * self.fmt.rate_hz / _US_PER_S) - 1)
        self.stats.gaps += 1
        self.stats.lost_packets += lost
        self.stats.lost_samples += lost
        self._seq += lost
        return Gap(
            reason="restart" if restart else "loss",
            lost_packets=lost,
            lost_samples=lost,
            start_host_s=start_host,
            end_host_s=float(t_host[a]),
            start_sensor_us=start_us,
            end_sensor_us=int(u[a]),
        )

    def _after_reconnect(self, first_wrapped: int, host_s: float) -> tuple[int, bool]:
        """Unwrapped time of the first sample after a reconnection; whether it restarted.

        A restart is a clock that fits no whole number of wraps of the time away.
        """
        assert self._last_us is not None
        elapsed_s = max(0.0, host_s - self._last_host_s)
        predicted = self._last_us + elapsed_s * _US_PER_S
        k = round((predicted - first_wrapped) / _WRAP)
        u = first_wrapped + k * _WRAP
        if u <= self._last_us:
            u += _WRAP
        tolerance_us = (_RESTART_TOLERANCE_S + _DRIFT * elapsed_s) * _US_PER_S
        if abs(u - predicted) <= tolerance_us:
            return int(u), False
        # A new stream: sensor time goes on from the old one by the host time between.
        return int(self._last_us + max(elapsed_s * _US_PER_S, self.fmt.period_us)), True
