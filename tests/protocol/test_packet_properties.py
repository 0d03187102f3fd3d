"""Property tests of the packet codec: round trips, and nothing but ProtocolError escapes."""

import contextlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import hipsense.protocol as hp

FORMATS = st.builds(
    hp.StreamFormat,
    rate_hz=st.sampled_from(hp.SAMPLE_RATES_HZ),
    accel_range_g=st.sampled_from(hp.ACCEL_RANGES_G),
    gyro_range_dps=st.sampled_from(hp.GYRO_RANGES_DPS),
)
I16 = st.integers(-32768, 32767)


@st.composite
def packets(
    draw: st.DrawFn,
) -> tuple[hp.PayloadKind, int, int, np.ndarray | None, np.ndarray | None]:
    kind = draw(st.sampled_from(list(hp.PayloadKind)))
    n = draw(st.integers(1, hp.max_samples_per_packet(kind, hp.MAX_ATT_PAYLOAD)))
    raw = draw(hnp.arrays(np.int16, (n, 6), elements=I16)) if kind.has_raw else None
    quat = None
    if kind.has_quat:
        q = draw(hnp.arrays(np.float64, (n, 4), elements=st.floats(-1, 1, allow_nan=False)))
        q[np.linalg.norm(q, axis=1) < 0.1] = [1.0, 0.0, 0.0, 0.0]
        quat = hp.quantize_quat(q)
    return kind, draw(st.integers(0, 2**16 - 1)), draw(st.integers(0, 2**32 - 1)), raw, quat


@given(packets(), FORMATS)
def test_encode_decode_round_trip(pkt, fmt: hp.StreamFormat) -> None:  # type: ignore[no-untyped-def]
    kind, seq, ts, raw, quat = pkt
    data = hp.encode(kind, seq, ts, raw=raw, quat_q14=quat)
    assert len(data) <= hp.MAX_ATT_PAYLOAD
    out = hp.decode(data, fmt)
    assert (out.kind, out.seq, out.timestamp_us) == (kind, seq, ts)
    np.testing.assert_array_equal(out.t_us, ts + np.arange(out.count) * fmt.period_us)
    if raw is not None:
        assert out.acc_m_s2 is not None and out.gyr_rad_s is not None
        back = hp.quantize_raw(out.acc_m_s2, out.gyr_rad_s, fmt)
        np.testing.assert_array_equal(back, raw)
    if quat is not None:
        assert out.quat is not None
        np.testing.assert_allclose(np.linalg.norm(out.quat, axis=1), 1.0, atol=1e-12)
        # Q14 keeps each component to within one count after normalisation.
        np.testing.assert_allclose(out.quat, quat / hp.QUAT_Q14_ONE, atol=3 / hp.QUAT_Q14_ONE)
    assert hp.decode_many([data], fmt).sample_count == out.count


@settings(max_examples=500)
@given(st.binary(max_size=300), FORMATS)
def test_arbitrary_bytes_raise_only_protocol_errors(data: bytes, fmt: hp.StreamFormat) -> None:
    message = ""
    try:
        pkt = hp.decode(data, fmt)
    except hp.ProtocolError as exc:
        message = str(exc)
    ok = not message
    if ok:
        assert pkt.count >= 1
    else:
        assert "expected" in message
    batch = hp.decode_many([data, data], fmt)
    assert batch.packet_count == (2 if ok else 0)
    assert len(batch.errors) == (0 if ok else 2)


@settings(max_examples=300)
@given(st.binary(max_size=40))
def test_arbitrary_control_bytes_raise_only_protocol_errors(data: bytes) -> None:
    for parse in (hp.decode_command, hp.decode_response, hp.decode_status):
        with contextlib.suppress(hp.ProtocolError):
            parse(data)


@given(st.lists(packets(), min_size=1, max_size=12), st.lists(st.binary(max_size=30), max_size=4))
def test_batch_decode_equals_single_decode(pkts, junk: list[bytes]) -> None:  # type: ignore[no-untyped-def]
    fmt = hp.StreamFormat()
    data = [hp.encode(k, s, t, raw=r, quat_q14=q) for k, s, t, r, q in pkts]
    mixed = data[:1] + junk + data[1:]
    batch = hp.decode_many(mixed, fmt)
    singles = []
    for i, d in enumerate(mixed):
        with contextlib.suppress(hp.ProtocolError):
            singles.append((i, hp.decode(d, fmt)))
    assert batch.index.tolist() == [i for i, _ in singles]
    for row, (_, pkt) in enumerate(singles):
        s = slice(batch.offsets[row], batch.offsets[row + 1])
        np.testing.assert_array_equal(batch.t_us[s], pkt.t_us)
        if pkt.acc_m_s2 is not None:
            np.testing.assert_array_equal(batch.acc_m_s2[s], pkt.acc_m_s2)
        if pkt.quat is not None:
            np.testing.assert_array_equal(batch.quat[s], pkt.quat)


@given(st.sampled_from(list(hp.PayloadKind)))
def test_command_round_trip(kind: hp.PayloadKind) -> None:
    cmds: list[hp.ControlCommand] = [
        hp.StartStreaming(kind),
        hp.StopStreaming(),
        *(hp.SetRate(r) for r in hp.SAMPLE_RATES_HZ),
        *(hp.SetRanges(g, d) for g in hp.ACCEL_RANGES_G for d in hp.GYRO_RANGES_DPS),
        hp.TimeSync(0),
        hp.TimeSync(2**32 - 1),
        hp.Identify(1),
        hp.Identify(255),
    ]
    for cmd in cmds:
        assert hp.decode_command(hp.encode_command(cmd)) == cmd


def test_mtu_23_fits_one_raw_or_quat_sample_and_no_raw_quat() -> None:
    assert hp.max_samples_per_packet(hp.PayloadKind.RAW, hp.DEFAULT_ATT_PAYLOAD) == 1
    assert hp.max_samples_per_packet(hp.PayloadKind.QUAT, hp.DEFAULT_ATT_PAYLOAD) == 1
    assert hp.max_samples_per_packet(hp.PayloadKind.RAW_QUAT, hp.DEFAULT_ATT_PAYLOAD) == 0
    assert hp.max_samples_per_packet(hp.PayloadKind.RAW, 244) == 19
    assert hp.max_samples_per_packet(hp.PayloadKind.QUAT, 244) == 29
    assert hp.max_samples_per_packet(hp.PayloadKind.RAW_QUAT, 244) == 11
    # Larger MTUs do not make larger packets: 244 bytes is the protocol's ceiling.
    assert hp.max_samples_per_packet(hp.PayloadKind.RAW, 512) == 19


@pytest.mark.parametrize("kwargs", [{"rate_hz": 30}, {"accel_range_g": 3}, {"gyro_range_dps": 300}])
def test_stream_format_refuses_unoffered_settings(kwargs: dict[str, int]) -> None:
    with pytest.raises(hp.UnsupportedSettingError, match="expected one of"):
        hp.StreamFormat(**kwargs)


@st.composite
def corrupted(draw: st.DrawFn) -> bytes:
    """A well-formed packet whose payload bytes are partly overwritten (zeros or noise):
    its header still agrees with its length, so only the samples can be wrong."""
    kind, seq, ts, raw, quat = draw(packets())
    data = bytearray(hp.encode(kind, seq, ts, raw=raw, quat_q14=quat))
    if draw(st.booleans()):
        start = draw(st.integers(hp.HEADER_SIZE, len(data) - 1))
        stop = draw(st.integers(start + 1, len(data)))
        fill = draw(st.sampled_from(["zeros", "noise"]))
        noise = draw(st.binary(min_size=stop - start, max_size=stop - start))
        data[start:stop] = bytes(stop - start) if fill == "zeros" else noise
    return bytes(data)


@settings(max_examples=300)
@given(st.lists(corrupted(), min_size=1, max_size=10))
def test_batch_of_corrupted_packets_reports_each_and_decodes_the_rest(data: list[bytes]) -> None:
    # Every packet of a quaternion group bad, or groups of several lengths each partly
    # bad: the batch is still each packet's own `decode`, errors included.
    fmt = hp.StreamFormat()
    batch = hp.decode_many(data, fmt)
    good, bad = [], []
    for i, d in enumerate(data):
        try:
            pkt = hp.decode(d, fmt)
        except hp.ProtocolError as exc:
            bad.append((i, type(exc)))
        else:
            good.append((i, pkt))
    assert batch.index.tolist() == [i for i, _ in good]
    assert [(i, type(e)) for i, e in batch.errors] == bad
    for row, (_, pkt) in enumerate(good):
        s = slice(batch.offsets[row], batch.offsets[row + 1])
        np.testing.assert_array_equal(batch.t_us[s], pkt.t_us)


def test_a_raw_quat_packet_with_a_zero_quaternion_is_an_error_not_a_crash() -> None:
    # The reported case: one RAW_QUAT packet whose only quaternion is zero.
    data = bytes.fromhex("1161000000000000") + bytes(20)
    batch = hp.decode_many([data], hp.StreamFormat())
    assert batch.packet_count == 0
    assert [type(e) for _, e in batch.errors] == [hp.InvalidSampleError]
