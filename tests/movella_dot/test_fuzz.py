"""Hypothesis against the DOT decoders: samples, or a DotProtocolError, never anything else."""

import contextlib

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from hipsense.movella_dot import (
    DotProtocolError,
    DotStreamFormat,
    DotTimeline,
    PayloadMode,
    decode_battery,
    decode_device_control,
    decode_device_info,
    decode_many,
    decode_measurement,
    decode_measurement_control,
    encode_measurement,
)
from hipsense.protocol import SampleBlock

MODES = st.sampled_from(list(PayloadMode))


def _near_valid(mode: PayloadMode) -> st.SearchStrategy[bytes]:
    """Valid notifications with bytes flipped, cut or padded: where bugs hide."""
    one = encode_measurement(
        mode, [123456], np.ones((1, 3)), np.ones((1, 3)), np.array([[1.0, 0, 0, 0]])
    )[0]
    return st.tuples(
        st.integers(0, len(one) - 1), st.integers(0, 255), st.integers(0, len(one) + 4)
    ).map(lambda f: (one[: f[0]] + bytes([f[1]]) + one[f[0] + 1 :]).ljust(f[2], b"\0")[: f[2]])


@settings(max_examples=300, deadline=None)
@given(st.data(), MODES)
def test_decode_many_returns_samples_and_errors_only(
    data: st.DataObject, mode: PayloadMode
) -> None:
    payloads = data.draw(
        st.lists(st.one_of(st.binary(max_size=70), _near_valid(mode)), max_size=12)
    )
    samples, errors = decode_many(payloads, mode)
    assert all(isinstance(e, DotProtocolError) for _, e in errors)
    assert sorted([*samples.index.tolist(), *(i for i, _ in errors)]) == list(range(len(payloads)))
    assert np.isfinite(samples.acc_m_s2).all() and np.isfinite(samples.gyr_rad_s).all()
    for p in payloads:
        try:
            one = decode_measurement(p, mode)
        except DotProtocolError:
            continue
        assert one.count == 1


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=40))
def test_control_battery_and_info_decoders_raise_only_their_family(data: bytes) -> None:
    for decode in (
        decode_device_control,
        decode_measurement_control,
        decode_battery,
        decode_device_info,
    ):
        with contextlib.suppress(DotProtocolError):
            decode(data)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.integers(0, (1 << 32) - 1), min_size=1, max_size=40),
    st.lists(st.floats(0.0, 5.0), min_size=1, max_size=40),
    st.booleans(),
)
def test_any_timestamps_give_increasing_host_times(
    stamps: list[int], dt_s: list[float], reconnect: bool
) -> None:
    tl = DotTimeline(DotStreamFormat(60))
    n = min(len(stamps), len(dt_s))
    host = 1000.0 + np.cumsum(dt_s[:n])
    raw = encode_measurement(
        PayloadMode.RATE_QUANTITIES, stamps[:n], np.zeros((n, 3)), np.zeros((n, 3))
    )
    samples, _ = decode_many(raw, PayloadMode.RATE_QUANTITIES)
    half = n // 2
    first, second = (
        decode_many(raw[:half], PayloadMode.RATE_QUANTITIES)[0],
        decode_many(raw[half:], PayloadMode.RATE_QUANTITIES)[0],
    )
    items = tl.push(first, host[:half])
    if reconnect:
        tl.reconnected(float(host[half - 1]) if half else 999.0)
    items += tl.push(second, host[half:])
    blocks = [i for i in items if isinstance(i, SampleBlock)]
    assert sum(b.count for b in blocks) + tl.stats.duplicates == samples.count
    if blocks:
        t_host = np.concatenate([b.t_host_s for b in blocks])
        t_sensor = np.concatenate([b.t_sensor_us for b in blocks])
        assert np.all(np.diff(t_host) > 0)
        assert np.all(np.diff(t_sensor) > 0)
