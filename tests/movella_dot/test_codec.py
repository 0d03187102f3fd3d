"""The DOT codec: bytes to SI arrays and back, clear errors, and the clock across wraps."""

import math
import struct

import numpy as np
import pytest

from hipsense import HipsenseError
from hipsense.movella_dot import (
    DEVICE_CONTROL_SIZE,
    MEDIUM_PAYLOAD_CHAR_UUID,
    VISIT_OUTPUT_RATE,
    DeviceControl,
    DotBattery,
    DotFieldError,
    DotLengthError,
    DotProtocolError,
    DotSamples,
    DotSettingError,
    DotStreamFormat,
    DotTimeline,
    PayloadMode,
    decode_battery,
    decode_device_control,
    decode_device_info,
    decode_many,
    decode_measurement,
    decode_measurement_control,
    dot_uuid,
    encode_battery,
    encode_device_control,
    encode_measurement,
    encode_measurement_control,
    encode_set_output_rate,
)
from hipsense.protocol import Gap, ProtocolError, SampleBlock

WRAP = 1 << 32
RNG = np.random.default_rng(7)


def _samples(n: int) -> tuple[np.ndarray, np.ndarray]:
    acc = RNG.normal(0, 5, (n, 3)).astype(np.float32).astype(np.float64)
    gyr_dps = RNG.normal(0, 90, (n, 3)).astype(np.float32).astype(np.float64)
    return acc, np.radians(gyr_dps)


def test_uuids_follow_the_dot_base() -> None:
    assert dot_uuid(0x2003) == "15172003-4947-11e9-8646-d663bd873d93"
    assert PayloadMode.RATE_QUANTITIES.char_uuid == MEDIUM_PAYLOAD_CHAR_UUID


@pytest.mark.parametrize("padded", [True, False])
def test_rate_quantities_decode_to_m_s2_and_rad_s(padded: bool) -> None:
    acc, gyr = _samples(5)
    t = [10, 16677, 33344, 50011, 66678]
    payloads = encode_measurement(PayloadMode.RATE_QUANTITIES, t, acc, gyr, padded=padded)
    assert {len(p) for p in payloads} == {40 if padded else 28}
    # The layout the specification gives: uint32 timestamp, then float32 acc and gyro.
    ts, ax, *_, gz = struct.unpack("<I6f", payloads[1][:28])
    assert (ts, ax) == (16677, pytest.approx(acc[1, 0]))
    assert gz == pytest.approx(math.degrees(gyr[1, 2]), rel=1e-6)
    s, errors = decode_many(payloads, PayloadMode.RATE_QUANTITIES)
    assert errors == []
    assert s.t_us.tolist() == t
    np.testing.assert_allclose(s.acc_m_s2, acc, rtol=1e-6)
    np.testing.assert_allclose(s.gyr_rad_s, gyr, rtol=1e-6, atol=1e-9)
    assert s.quat is None
    assert s.index.tolist() == [0, 1, 2, 3, 4]


def test_custom_mode_5_carries_a_normalised_quaternion() -> None:
    acc, gyr = _samples(2)
    q = np.array([[0.7071, 0.7071, 0.0, 0.0], [1.02, 0.0, 0.0, 0.0]])
    (p0, p1) = encode_measurement(PayloadMode.CUSTOM_MODE_5, [1, 2], acc, gyr, q)
    assert len(p0) == 63
    s = decode_measurement(p1, PayloadMode.CUSTOM_MODE_5)
    assert s.quat is not None
    np.testing.assert_allclose(s.quat, [[1.0, 0.0, 0.0, 0.0]], atol=1e-7)
    with pytest.raises(DotFieldError):
        encode_measurement(PayloadMode.CUSTOM_MODE_5, [1], acc[:1], gyr[:1])


def test_a_wrong_length_names_what_was_expected() -> None:
    with pytest.raises(DotLengthError, match=r"expected 28 or 40 .* bytes, got 27") as err:
        decode_measurement(bytes(27), PayloadMode.RATE_QUANTITIES)
    assert isinstance(err.value, ProtocolError)
    assert isinstance(err.value, HipsenseError)


def test_bad_values_are_refused_sample_by_sample() -> None:
    acc, gyr = _samples(4)
    acc[1, 2] = np.nan
    gyr[2, 0] = np.radians(1e6)
    payloads = encode_measurement(PayloadMode.RATE_QUANTITIES, [1, 2, 3, 4], acc, gyr)
    payloads.insert(0, b"\x01\x02")
    s, errors = decode_many(payloads, PayloadMode.RATE_QUANTITIES)
    assert [i for i, _ in errors] == [0, 2, 3]
    assert isinstance(errors[0][1], DotLengthError)
    assert "nan" in str(errors[1][1])
    assert s.index.tolist() == [1, 4]
    assert s.t_us.tolist() == [1, 4]
    zero_q = encode_measurement(PayloadMode.CUSTOM_MODE_5, [1], acc[:1], gyr[:1], np.zeros((1, 4)))
    with pytest.raises(DotFieldError, match=r"quaternion norm 0\.0000"):
        decode_measurement(zero_q[0], PayloadMode.CUSTOM_MODE_5)


def test_an_unknown_payload_mode_is_a_setting_error() -> None:
    with pytest.raises(DotSettingError, match="payload mode: expected one of 21, 26, got 5"):
        decode_many([bytes(20)], 5)  # type: ignore[arg-type]


def test_measurement_control_bytes() -> None:
    assert encode_measurement_control(True, PayloadMode.RATE_QUANTITIES) == bytes([1, 1, 21])
    assert encode_measurement_control(False, PayloadMode.CUSTOM_MODE_5) == bytes([1, 0, 26])
    ctl = decode_measurement_control(bytes([1, 1, 21]))
    assert (ctl.streaming, ctl.mode) == (True, 21)
    with pytest.raises(DotLengthError, match="expected 3 bytes, got 2"):
        decode_measurement_control(bytes([1, 1]))
    with pytest.raises(DotFieldError, match=r"action: expected 0 \(stop\) or 1 \(start\), got 7"):
        decode_measurement_control(bytes([1, 7, 21]))


def test_output_rate_write_keeps_the_rest_of_device_control() -> None:
    current = DeviceControl(0, 0, 1, bytes([5, 0, 30, 0]), "left thigh", 60, 1)
    raw = encode_device_control(current)
    assert len(raw) == DEVICE_CONTROL_SIZE
    # Output rate at bytes 24-25, filter profile at 26, as the specification lays them.
    assert raw[24:26] == (60).to_bytes(2, "little") and raw[26] == 1
    assert decode_device_control(raw) == current
    write = decode_device_control(encode_set_output_rate(current, 20))
    assert write.visit_index == VISIT_OUTPUT_RATE
    assert (write.output_rate_hz, write.tag, write.filter_profile_index) == (20, "left thigh", 1)
    with pytest.raises(
        DotSettingError, match=r"expected one of 1, 4, 10, 12, 15, 20, 30, 60, got 100"
    ):
        encode_set_output_rate(current, 100)
    with pytest.raises(DotLengthError, match=r"expected 27\.\.32 bytes, got 16"):
        decode_device_control(raw[:16])
    with pytest.raises(DotFieldError, match=r"device tag length: expected 0\.\.16, got 17"):
        decode_device_control(raw[:7] + bytes([17]) + raw[8:])


def test_battery_and_device_info() -> None:
    assert decode_battery(encode_battery(DotBattery(64, True))) == DotBattery(64, True)
    with pytest.raises(DotFieldError, match=r"battery level: expected 0\.\.100 %, got 101 %"):
        decode_battery(bytes([101, 0]))
    with pytest.raises(DotLengthError):
        decode_battery(bytes([50]))
    info = (
        bytes.fromhex("534800cd22d4")
        + bytes([2, 6, 0])
        + bytes(11)
        + bytes([0x53, 0x48])
        + bytes(6)
    )
    got = decode_device_info(info)
    assert (got.address, got.firmware, got.serial) == ("D4:22:CD:00:48:53", (2, 6, 0), "4853")
    with pytest.raises(DotLengthError):
        decode_device_info(bytes(10))


def test_stream_format_takes_dot_rates_only() -> None:
    fmt = DotStreamFormat(60)
    assert (fmt.rate_hz, fmt.accel_range_g, fmt.gyro_range_dps, fmt.period_us) == (
        60, 16, 2000, 16667,
    )  # fmt: skip
    with pytest.raises(DotSettingError, match="got 100"):
        DotStreamFormat(100)


# -- the timeline ---------------------------------------------------------------------


def _batch(t_us: np.ndarray) -> DotSamples:
    n = t_us.shape[0]
    return DotSamples(
        index=np.arange(n),
        t_us=(t_us % WRAP).astype(np.uint32),
        acc_m_s2=np.zeros((n, 3)),
        gyr_rad_s=np.zeros((n, 3)),
        quat=None,
    )


def _grid(rate_hz: int, k0: int, n: int, start_us: int = 0) -> np.ndarray:
    k = np.arange(k0, k0 + n)
    return start_us + np.round(k * 1e6 / rate_hz).astype(np.int64)


def _host(t_us: np.ndarray, offset_s: float = 100.0) -> np.ndarray:
    return offset_s + t_us * 1e-6 + 0.02


def test_the_clock_unwraps_across_its_wrap_in_any_chunking() -> None:
    start = WRAP - 1_000_000
    t = _grid(60, 0, 300, start)
    whole = DotTimeline(DotStreamFormat(60)).push(_batch(t), _host(t))
    chunked: list[SampleBlock | Gap] = []
    tl = DotTimeline(DotStreamFormat(60))
    for a in range(0, 300, 7):
        chunked += tl.push(_batch(t[a : a + 7]), _host(t[a : a + 7]))
    for items in (whole, chunked):
        assert all(isinstance(i, SampleBlock) for i in items)
        u = np.concatenate([b.t_sensor_us for b in items if isinstance(b, SampleBlock)])
        np.testing.assert_array_equal(u, t)  # past 2^32, no step back
        h = np.concatenate([b.t_host_s for b in items if isinstance(b, SampleBlock)])
        assert np.all(np.diff(h) > 0)
        np.testing.assert_allclose(h - h[0], (t - t[0]) * 1e-6, atol=1e-6)
    assert tl.stats.samples == 300 and tl.stats.gaps == 0


def test_a_lost_notification_is_a_gap_and_a_repeat_is_dropped() -> None:
    t = _grid(20, 0, 50)
    sent = np.concatenate([t[:10], t[9:10], t[15:]])  # 5 lost, one repeated
    tl = DotTimeline(DotStreamFormat(20))
    items = tl.push(_batch(sent), _host(sent))
    assert [type(i).__name__ for i in items] == ["SampleBlock", "Gap", "SampleBlock"]
    gap = items[1]
    assert isinstance(gap, Gap)
    assert (gap.reason, gap.lost_samples, gap.start_sensor_us, gap.end_sensor_us) == (
        "loss", 5, int(t[9]), int(t[15]),
    )  # fmt: skip
    assert tl.stats.duplicates == 1
    assert tl.stats.lost_samples == 5
    blocks = [i for i in items if isinstance(i, SampleBlock)]
    assert blocks[1].seq_first == blocks[0].seq_last + 6


@pytest.mark.parametrize("away_s", [3.0, 30.0, 2 * 4294.967296 + 12.5])
def test_after_a_reconnection_the_host_time_away_places_the_clock(away_s: float) -> None:
    """Outages of seconds, across a wrap, and of two whole wraps and more."""
    tl = DotTimeline(DotStreamFormat(30))
    before = _grid(30, 0, 60, WRAP - 4_000_000)
    tl.push(_batch(before), _host(before))
    k0 = 60 + round(away_s * 30)
    after = _grid(30, k0, 30, WRAP - 4_000_000)
    tl.reconnected(float(_host(before)[-1]) + 0.5)
    items = tl.push(_batch(after), _host(after))
    gap, block = items
    assert isinstance(gap, Gap) and isinstance(block, SampleBlock)
    assert gap.reason == "loss"
    assert gap.lost_samples == k0 - 60
    np.testing.assert_array_equal(block.t_sensor_us, after)


def test_a_clock_that_started_over_is_a_restart() -> None:
    tl = DotTimeline(DotStreamFormat(60))
    before = _grid(60, 0, 120, 50_000_000)
    tl.push(_batch(before), _host(before))
    # Powered up again 5 s later: its clock reads 2 s, the host says 5 s went by.
    host_after = float(_host(before)[-1]) + 5.0 + np.arange(60) / 60
    after = _grid(60, 0, 60, 2_000_000)
    tl.reconnected(host_after[0] - 1.0)
    items = tl.push(_batch(after), host_after)
    gap, block = items
    assert isinstance(gap, Gap) and isinstance(block, SampleBlock)
    assert gap.reason == "restart"
    assert gap.lost_samples == pytest.approx(5 * 60, abs=3)
    assert block.t_sensor_us[0] > before[-1]
    assert np.all(np.diff(block.t_sensor_us) > 0)
    assert block.t_host_s[0] == pytest.approx(host_after[0], abs=0.05)
    assert tl.stats.restarts == 1


def test_errors_are_one_family() -> None:
    for cls in (DotLengthError, DotFieldError, DotSettingError):
        assert issubclass(cls, DotProtocolError)
    assert issubclass(DotSettingError, ValueError)


def test_reset_forgets_the_stream() -> None:
    tl = DotTimeline(DotStreamFormat(60))
    before = _grid(60, 0, 30, 5_000_000)
    tl.push(_batch(before), _host(before))
    tl.reset()
    after = _grid(60, 0, 30, 1_000_000)  # earlier: would be stale without the reset
    (block,) = tl.push(_batch(after), _host(after, offset_s=200.0))
    assert isinstance(block, SampleBlock)
    np.testing.assert_array_equal(block.t_sensor_us, after)
    assert block.seq_first == 0
    assert (tl.stats.samples, tl.stats.duplicates, tl.stats.gaps) == (30, 0, 0)
