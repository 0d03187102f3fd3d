"""Packets from the firmware, decoded and reassembled by hipsense: samples, sizes, resume."""

import numpy as np
import pytest
from hipsense_fw.backlog import Backlog
from hipsense_fw.batcher import Batcher
from hipsense_fw.sensor import Sensor

import hipsense.protocol as hp
from tests.firmware._drive import Loop, counts_of, fed_arrays, raw_at

FMT = hp.StreamFormat(rate_hz=100, accel_range_g=8, gyro_range_dps=1000)
KINDS = [hp.PayloadKind.RAW, hp.PayloadKind.QUAT, hp.PayloadKind.RAW_QUAT]


def _reassemble(
    loop: Loop, r: hp.StreamReassembler | None = None
) -> tuple[list[hp.SampleBlock], list[hp.Gap], hp.StreamReassembler]:
    r = r or hp.StreamReassembler(FMT)
    items: list[hp.StreamItem] = []
    for p, host_s in loop.sent:
        items += r.push(p, host_s)
    items += r.flush()
    assert not [i for i in items if isinstance(i, hp.MalformedPacket)]
    blocks = [i for i in items if isinstance(i, hp.SampleBlock)]
    gaps = [i for i in items if isinstance(i, hp.Gap)]
    return blocks, gaps, r


@pytest.mark.parametrize(
    ("start_us", "seq0"), [(0, 0), (2**32 - 2_000_000, 65_530)], ids=["boot", "both-wrap"]
)
def test_round_trip_raw_samples_are_the_ones_fed(start_us: int, seq0: int) -> None:
    """Every sample fed comes back, in order, at its own time; also across both wraps."""
    s = Sensor()
    s._seq = seq0  # a sensor that has streamed before: its counter carries on
    loop = Loop(s, now_us=start_us)
    s.connect(244)
    loop.command(bytes([0x01, 1]))
    loop.run(5_000_000)
    loop.command(bytes([0x02]))
    loop.drain()
    seqs = [hp.decode(p, FMT).seq for p, _ in loop.sent]
    assert seqs[0] == seq0 and (seq0 == 0 or 0 in seqs)  # the sequence wrapped
    blocks, gaps, r = _reassemble(loop)
    assert not gaps
    got, t = counts_of(blocks, FMT)
    want, t_fed = fed_arrays(loop)
    assert len(want) == 500
    np.testing.assert_array_equal(got, want)
    # Sensor time comes back unwrapped: the same steps as the firmware's own clock.
    np.testing.assert_array_equal(np.diff(t), np.diff(t_fed))
    assert t[0] == t_fed[0] % 2**32
    assert r.stats.samples == 500 and r.stats.lost_packets == 0


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.name)
def test_round_trip_quaternions_decode_as_unit_quaternions(kind: hp.PayloadKind) -> None:
    loop = Loop(Sensor())
    loop.sensor.connect(244)
    loop.command(bytes([0x01, int(kind)]))
    loop.run(2_000_000)
    loop.command(bytes([0x02]))
    loop.drain()
    blocks, gaps, _ = _reassemble(loop)
    assert not gaps
    assert sum(b.count for b in blocks) == len(loop.fed) == 200
    if kind.has_raw:
        np.testing.assert_array_equal(counts_of(blocks, FMT)[0], fed_arrays(loop)[0])
    if kind.has_quat:
        q = np.concatenate([b.quat for b in blocks if b.quat is not None])
        np.testing.assert_allclose(np.linalg.norm(q, axis=1), 1.0, atol=1e-9)
        # The host normalises; the Q14 counts the firmware sent were unit to rounding.
        raw_q = np.concatenate(
            [hp.decode(p, FMT).quat for p, _ in loop.sent]  # type: ignore[misc]
        )
        assert raw_q.shape == (200, 4)


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.name)
@pytest.mark.parametrize("att_payload", [20, 244, 509], ids=["mtu23", "mtu247", "mtu512"])
def test_batching_fills_packets_to_the_mtu(kind: hp.PayloadKind, att_payload: int) -> None:
    s = Sensor()
    s.connect(att_payload)
    loop = Loop(s)
    result = hp.decode_response(loop.command(bytes([0x01, int(kind)]))).result
    # Never past 244 bytes, whatever the MTU (PROTOCOL.md 3.3).
    most = hp.max_samples_per_packet(kind, min(att_payload, hp.MAX_ATT_PAYLOAD))
    if most == 0:  # RAW_QUAT at MTU 23
        assert result == hp.ResultCode.INVALID_PARAMETER
        return
    assert result == hp.ResultCode.SUCCESS
    loop.run(1_000_000 + 30_000)
    loop.command(bytes([0x02]))
    loop.drain()
    sizes = [len(p) for p, _ in loop.sent]
    counts = [hp.decode(p, FMT).count for p, _ in loop.sent]
    assert max(sizes) <= min(att_payload, hp.MAX_ATT_PAYLOAD)
    assert all(c == most for c in counts[:-1])  # full packets while streaming
    assert 1 <= counts[-1] <= most  # a partial one only at the stop
    assert sum(counts) == 103
    assert sizes[0] == 8 + most * kind.sample_size


def test_the_ring_keeps_the_newest_and_counts_what_it_dropped() -> None:
    ring = Backlog(4, slot_size=12)
    for seq in range(65_534, 65_534 + 6):  # across the sequence wrap
        ring.push(bytes([seq & 0xFF]) * 10, seq & 0xFFFF)
    assert len(ring) == 4
    assert ring.overwritten_unsent == 2
    assert ring.peek_seq() == 0
    got = []
    while (p := ring.peek()) is not None:
        got.append(bytes(p))
        ring.mark_sent()
    assert got == [bytes([v]) * 10 for v in (0, 1, 2, 3)]
    assert ring.rewind(65_535, ring.next_seq) == 1  # 65535 is gone, 0..3 are kept
    assert ring.unsent == 4
    assert ring.rewind(2, ring.next_seq) == 0
    assert [bytes(ring.peek() or b"")[0], ring.peek_seq()] == [2, 2]
    assert ring.rewind(10, ring.next_seq) == 0  # ahead of everything: nothing due
    assert ring.unsent == 0


def _reconnect_and_resume(loop: Loop, r: hp.StreamReassembler) -> bytes:
    s = loop.sensor
    s.connect(244)
    r.reconnected(loop.host_s() - loop.latency_s, sensor_restarted=False)
    st = hp.decode_status(s.status())
    assert st.streaming  # the host sees the stream still open and resumes it
    loop.command(bytes.fromhex("0501000000"))  # TIME_SYNC, as hipsense does first
    resume = r.resume_seq
    assert resume is not None
    return loop.command(bytes([0x01, st.kind]) + resume.to_bytes(2, "little"))


def test_resume_gives_back_the_missed_packets_in_order_before_live_ones() -> None:
    loop = Loop(Sensor(backlog_packets=64))
    s = loop.sensor
    s.connect(244)
    loop.command(bytes([0x01, 1]))
    loop.run(3_000_000)
    n_before = len(loop.sent)
    r = hp.StreamReassembler(FMT)
    for p, host_s in loop.sent:
        r.push(p, host_s)
    # The link drops; the sensor samples on into its ring: 5 s, 26 packets of 19.
    s.disconnect(loop.now_us)
    loop.run(5_000_000)
    assert len(loop.sent) == n_before  # nothing goes out without a connection
    assert hp.decode_status(s.status()).streaming
    resp = _reconnect_and_resume(loop, r)
    assert hp.decode_response(resp).ok
    loop.drain()  # the backlog goes out at once, then live packets follow
    loop.run(1_000_000)
    loop.command(bytes([0x02]))
    loop.drain()
    seqs = [hp.decode(p, FMT).seq for p, _ in loop.sent]
    assert seqs == list(range(len(seqs)))  # no hole, no repeat, oldest first
    assert s.replayed == len(seqs[n_before:]) - 6  # the live second after the resume
    assert s.packets_not_kept == 0
    blocks, gaps, _ = _reassemble(loop)
    assert not gaps
    np.testing.assert_array_equal(counts_of(blocks, FMT)[0], fed_arrays(loop)[0])
    assert len(loop.fed) == 900


def test_resume_after_a_longer_outage_reports_what_the_ring_lost() -> None:
    """The ring holds 16 packets (3 s); 6 s away loses the oldest, the host sees the gap."""
    loop = Loop(Sensor(backlog_packets=16))
    s = loop.sensor
    s.connect(244)
    loop.command(bytes([0x01, 1]))
    loop.run(1_900_000)  # 10 packets sent
    r = hp.StreamReassembler(FMT)
    items: list[hp.StreamItem] = []
    for p, host_s in loop.sent:
        items += r.push(p, host_s)
    n_before = len(loop.sent)
    s.disconnect(loop.now_us)
    loop.run(6_080_000)  # 32 packets built, the ring keeps the last 16
    assert s.ring.overwritten_unsent == 16
    resume_seq = r.resume_seq
    assert _result_ok(_reconnect_and_resume(loop, r))
    assert s.packets_not_kept == 16
    loop.drain()
    replayed = [hp.decode(p, FMT) for p, _ in loop.sent[n_before:]]
    assert [p.seq for p in replayed] == list(range(26, 42))
    for p, host_s in loop.sent[n_before:]:
        items += r.push(p, host_s)
    items += r.flush()
    gaps = [i for i in items if isinstance(i, hp.Gap)]
    assert len(gaps) == 1
    assert gaps[0].reason == "loss"
    assert gaps[0].lost_packets == 16 == replayed[0].seq - resume_seq
    assert gaps[0].lost_samples == 16 * 19


def _result_ok(resp: bytes) -> bool:
    return hp.decode_response(resp).ok


def test_resume_with_nothing_kept_starts_a_new_stream() -> None:
    """A sensor without a backlog stops on a disconnection; resume_seq is then ignored."""
    loop = Loop(Sensor(backlog_packets=0))
    s = loop.sensor
    assert hp.decode_status(s.status()).backlog_packets == 0
    s.connect(244)
    loop.command(bytes([0x01, 1]))
    loop.run(1_000_000)
    s.disconnect(loop.now_us)
    assert not hp.decode_status(s.status()).streaming
    loop.run(1_000_000)
    s.connect(244)
    assert _result_ok(loop.command(bytes([0x01, 1, 3, 0])))
    loop.drain()
    assert s.replayed == 0
    loop.run(400_000)
    pkts = [hp.decode(p, FMT) for p, _ in loop.sent]
    # The counter carried on; the new stream starts after the reconnection.
    assert [p.seq for p in pkts] == list(range(len(pkts)))
    assert pkts[5].timestamp_us > 2_000_000


def test_start_without_resume_after_a_reconnection_drops_the_backlog() -> None:
    loop = Loop(Sensor())
    s = loop.sensor
    s.connect(244)
    loop.command(bytes([0x01, 1]))
    loop.run(1_900_000)
    s.disconnect(loop.now_us)
    loop.run(1_900_000)
    s.connect(244)
    assert _result_ok(loop.command(bytes([0x01, 1])))
    loop.run(190_000)
    seqs = [hp.decode(p, FMT).seq for p, _ in loop.sent]
    assert seqs == [*range(10), 20]  # 10..19 were kept, not wanted, never sent


def test_a_stream_nobody_comes_back_for_ends_after_ten_minutes() -> None:
    loop = Loop(Sensor())
    s = loop.sensor
    s.connect(244)
    loop.command(bytes([0x01, 1]))
    loop.run(1_000_000)
    s.disconnect(loop.now_us)
    loop.run(599_000_000, step_us=1_000_000, send=False)
    assert s.streaming
    loop.run(1_000_000, step_us=1_000_000, send=False)
    assert not s.streaming
    assert len(s.ring) == 0
    s.connect(244)
    assert not hp.decode_status(s.status()).streaming


def test_kept_packets_too_long_for_a_smaller_mtu_are_given_up() -> None:
    loop = Loop(Sensor())
    s = loop.sensor
    s.connect(244)
    loop.command(bytes([0x01, 1]))
    loop.run(1_000_000)
    s.disconnect(loop.now_us)
    loop.run(1_000_000)  # 5 packets of 236 bytes kept
    s.connect(20)  # this time the host got only MTU 23
    assert _result_ok(loop.command(bytes([0x01, 1, 5, 0])))
    loop.drain()
    assert s.packets_not_kept >= 5
    loop.run(50_000)
    assert all(len(p) <= 20 for p, _ in loop.sent[5:])


def test_a_host_that_does_not_resume_stops_reconfigures_and_starts_anew() -> None:
    """Session step 3-5 after a reconnection: the old stream ends, the counter goes on."""
    loop = Loop(Sensor())
    s = loop.sensor
    s.connect(244)
    loop.command(bytes([0x01, 1]))
    loop.run(1_950_000)  # 10 packets sent, 5 samples in the one being filled
    s.disconnect(loop.now_us)
    loop.run(1_900_000)  # 10 more packets built into the ring
    s.connect(244)
    assert _result_ok(loop.command(bytes([0x02])))
    assert _result_ok(loop.command(bytes([0x03, 50, 0])))
    assert _result_ok(loop.command(bytes([0x01, 1])))
    loop.run(380_000)
    pkts = [hp.decode(p, hp.StreamFormat(rate_hz=50)) for p, _ in loop.sent]
    # Nothing of the old stream is sent after the STOP; the partial packet it ended
    # with was for nobody, so it used no number.
    assert [p.seq for p in pkts] == [*range(10), 20]
    assert pkts[-1].timestamp_us % 20_000 == 0 and pkts[-1].timestamp_us > 3_850_000
    assert len(s.ring) == 1


def test_batcher_follows_an_mtu_change_at_the_packet_in_progress() -> None:
    out: list[tuple[bytes, int]] = []
    b = Batcher(1, 100, 10_000, lambda p, s: out.append((bytes(p), s)), seq=7)
    assert b.capacity == 7
    for i in range(3):
        b.add(i * 10_000, raw_at(i))
    b.resize(244)  # grows: the 3 samples stay in the packet being filled
    for i in range(3, 19):
        b.add(i * 10_000, raw_at(i))
    b.add(19 * 10_000, raw_at(19))
    b.add(20 * 10_000, raw_at(20))
    b.resize(20)  # shrinks below what the packet holds: it is closed now
    b.add(21 * 10_000, raw_at(21))
    pkts = [hp.decode(p, FMT) for p, _ in out]
    assert [(p.seq, p.count, p.timestamp_us) for p in pkts] == [
        (7, 19, 0),
        (8, 2, 190_000),
        (9, 1, 210_000),
    ]
    assert [s for _, s in out] == [7, 8, 9]
    back = np.rint(np.vstack([p.acc_m_s2 for p in pkts]) / FMT.accel_lsb_m_s2)  # type: ignore[misc]
    np.testing.assert_array_equal(back, [raw_at(i)[:3] for i in range(22)])
    with pytest.raises(ValueError, match="att_payload"):
        Batcher(3, 20, 10_000, lambda p, s: None)
