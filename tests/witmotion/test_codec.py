"""The WitMotion codec: records, commands, register replies, and what bad bytes raise."""

import itertools
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hipsense.protocol import GRAVITY_M_S2, ProtocolError
from hipsense.witmotion import (
    RegisterReply,
    WitMotionDecoder,
    WitMotionProtocolError,
    battery_pct,
    decode_command,
    encode_read_register,
    encode_register_reply,
    encode_samples,
    encode_save,
    encode_set_rate,
    encode_unlock,
    rate_hz_of_code,
)

# A record as WitMotion's Python SDK documents it: 0x55 0x61, then ax ay az wx wy wz
# roll pitch yaw as int16 little-endian (here 1 g on z, 250 deg/s on x, roll 90 deg).
RECORD = bytes.fromhex("5561000000000008001000000000004000000000")


def test_a_record_decodes_to_si_units() -> None:
    note = WitMotionDecoder().push(RECORD)
    s = note.samples
    assert s.count == 1
    np.testing.assert_allclose(s.acc_m_s2, [[0, 0, 0x0800 * 16 / 32768 * GRAVITY_M_S2]])
    np.testing.assert_allclose(s.acc_m_s2[0, 2], GRAVITY_M_S2)
    np.testing.assert_allclose(s.gyr_rad_s, [[np.deg2rad(0x1000 * 2000 / 32768), 0, 0]])
    np.testing.assert_allclose(s.angles_deg, [[90.0, 0, 0]])
    assert note.replies == ()


def test_concatenated_and_split_records_come_out_whole_and_in_order() -> None:
    rng = np.random.default_rng(1)
    counts = rng.integers(-32768, 32767, size=(7, 9), dtype=np.int16)
    data = encode_samples(counts[:, :3], counts[:, 3:6], counts[:, 6:])
    whole = WitMotionDecoder().push(data).samples
    dec = WitMotionDecoder()
    parts = [dec.push(data[a:b]).samples for a, b in ((0, 33), (33, 47), (47, 140))]
    assert [p.count for p in parts] == [1, 1, 5]
    np.testing.assert_array_equal(np.concatenate([p.acc_m_s2 for p in parts]), whole.acc_m_s2)
    np.testing.assert_allclose(whole.acc_m_s2 / (16 * GRAVITY_M_S2 / 32768), counts[:, :3])


def test_register_replies_come_out_beside_the_samples() -> None:
    reply = encode_register_reply(0x64, (395,))
    note = WitMotionDecoder().push(RECORD + reply + RECORD)
    assert note.samples.count == 2
    assert note.replies == (RegisterReply(0x64, (395, 0, 0, 0, 0, 0, 0, 0)),)
    assert battery_pct(note.replies[0]) == 90.0


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x56" + RECORD[1:], "record 0 of 1: expected 0x55 at its start, got 0x56"),
        (RECORD + b"\x55\x62" + bytes(18), "record 1 of 2: expected flag 0x61 (data) or 0x71"),
        (b"\x00\x61\x00", "record 0 (partial): expected 0x55 at its start, got 0x00"),
        (
            b"\x55\x11",
            "record 0 (partial): expected flag 0x61 (data) or 0x71 (registers), got 0x11",
        ),
        (RECORD + b"\x00", "record 1 (partial): expected 0x55 at its start, got 0x00"),
    ],
)
def test_bad_bytes_raise_a_witmotion_protocol_error(data: bytes, message: str) -> None:
    dec = WitMotionDecoder()
    with pytest.raises(WitMotionProtocolError, match=re.escape(message)) as info:
        dec.push(data)
    assert isinstance(info.value, ProtocolError)
    # The bad bytes are dropped: the next notification decodes on its own.
    assert dec.push(RECORD).samples.count == 1


def test_commands_are_the_documented_bytes() -> None:
    assert encode_unlock() == bytes.fromhex("FFAA6988B5")
    assert encode_save() == bytes.fromhex("FFAA000000")
    assert encode_set_rate(100) == bytes.fromhex("FFAA030900")
    assert encode_set_rate(10) == bytes.fromhex("FFAA030600")
    assert encode_read_register(0x64) == bytes.fromhex("FFAA276400")
    assert decode_command(encode_unlock()) == (0x69, 0xB588)
    assert rate_hz_of_code(0x0A) == 200
    with pytest.raises(ValueError, match="rate_hz: expected one of 10, 20, 50, 100, 200, got 25"):
        encode_set_rate(25)
    with pytest.raises(WitMotionProtocolError, match="command: expected 5 bytes, got 4"):
        decode_command(b"\xff\xaa\x03\x09")
    with pytest.raises(WitMotionProtocolError, match="command: expected FF AA at its start"):
        decode_command(b"\xff\xab\x03\x09\x00")
    with pytest.raises(WitMotionProtocolError, match="rate code: expected one of 0x06"):
        rate_hz_of_code(0x0B)


def test_battery_reply_of_another_register_or_an_impossible_voltage_is_refused() -> None:
    with pytest.raises(WitMotionProtocolError, match="expected register 0x64, got 0x03"):
        battery_pct(RegisterReply(0x03, (9,)))
    with pytest.raises(WitMotionProtocolError, match=r"expected 2.50..4.50 V, got 0.09 V"):
        battery_pct(RegisterReply(0x64, (9,)))
    assert battery_pct(RegisterReply(0x64, (340,))) == 5.0
    assert battery_pct(RegisterReply(0x64, (420,))) == 100.0


@settings(max_examples=400, deadline=None)
@given(st.lists(st.binary(max_size=64), max_size=8))
def test_the_decoder_yields_samples_or_a_protocol_error_never_anything_else(
    chunks: list[bytes],
) -> None:
    dec = WitMotionDecoder()
    for chunk in chunks:
        error: ProtocolError | None = None
        try:
            note = dec.push(chunk)
        except ProtocolError as exc:
            error = exc
        if error is not None:
            assert isinstance(error, WitMotionProtocolError)
            assert "expected" in str(error)
            continue
        s = note.samples
        assert s.acc_m_s2.shape == s.gyr_rad_s.shape == s.angles_deg.shape == (s.count, 3)
        assert np.all(np.abs(s.acc_m_s2) <= 16 * GRAVITY_M_S2)
        assert np.all(np.isfinite(s.gyr_rad_s))


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(*[st.integers(-32768, 32767)] * 9), min_size=1, max_size=12),
    st.lists(st.integers(1, 239), max_size=4),
)
def test_records_survive_any_split_into_notifications(
    rows: list[tuple[int, ...]], cuts: list[int]
) -> None:
    counts = np.asarray(rows, dtype=np.int16)
    data = encode_samples(counts[:, :3], counts[:, 3:6], counts[:, 6:])
    edges = sorted({c for c in cuts if c < len(data)} | {0, len(data)})
    dec = WitMotionDecoder()
    got = [dec.push(data[a:b]).samples for a, b in itertools.pairwise(edges)]
    acc = np.concatenate([g.acc_m_s2 for g in got])
    np.testing.assert_allclose(acc / (16 * GRAVITY_M_S2 / 32768), counts[:, :3], atol=1e-9)
