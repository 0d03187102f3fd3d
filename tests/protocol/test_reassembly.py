"""The stream reassembler: order, loss, duplicates, wrap-around, restarts, clock drift."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import hipsense.protocol as hp
from hipsense_sim._packetizer import Packetizer

FMT = hp.StreamFormat(rate_hz=100)
PERIOD_S = 0.01


def _stream(
    n_samples: int, *, per_packet: int = 244, seq0: int = 0, ts0: int = 0, seed: int = 0
) -> tuple[list[bytes], np.ndarray, np.ndarray]:
    """Packets of a RAW stream, their arrival times, and the raw counts sent."""
    rng = np.random.default_rng(seed)
    raw = rng.integers(-20000, 20000, size=(n_samples, 6)).astype(np.int16)
    pz = Packetizer(att_payload=per_packet, period_us=FMT.period_us, seq=seq0, timestamp_us=ts0)
    packets = pz.packets(raw)
    k = pz.samples_per_packet
    # Each packet arrives 15 ms after its last sample was taken.
    arrivals = np.array(
        [(min((i + 1) * k, n_samples) - 1) * PERIOD_S + 0.015 for i in range(len(packets))]
    )
    return packets, arrivals, raw


def _collect(items: list[hp.StreamItem]) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[hp.Gap]]:
    blocks = [i for i in items if isinstance(i, hp.SampleBlock)]
    gaps = [i for i in items if isinstance(i, hp.Gap)]
    if not blocks:
        return np.empty(0, np.int64), np.empty(0), np.empty((0, 3)), gaps
    t = np.concatenate([b.t_sensor_us for b in blocks])
    th = np.concatenate([b.t_host_s for b in blocks])
    acc = np.concatenate([b.acc_m_s2 for b in blocks if b.acc_m_s2 is not None])
    return t, th, acc, gaps


def _acc(raw: np.ndarray) -> np.ndarray:
    return raw[:, :3] * FMT.accel_lsb_m_s2


def test_in_order_stream_is_delivered_whole() -> None:
    packets, arrivals, raw = _stream(1900)
    r = hp.StreamReassembler(FMT)
    items = r.push_many(packets, arrivals) + r.flush()
    t, th, acc, gaps = _collect(items)
    assert gaps == []
    np.testing.assert_array_equal(t, np.arange(1900) * FMT.period_us)
    np.testing.assert_allclose(acc, _acc(raw))
    # Host times follow the sensor clock, offset by the 15 ms latency floor.
    np.testing.assert_allclose(th - t * 1e-6, 0.015, atol=1e-9)
    assert r.stats.samples == 1900 and r.stats.lost_packets == 0 and r.stats.loss_ratio == 0


def test_sequence_and_timestamp_wrap_are_unwrapped() -> None:
    packets, arrivals, _ = _stream(19 * 40, seq0=65530, ts0=2**32 - 200_000)
    r = hp.StreamReassembler(FMT)
    t, _, _, gaps = _collect(r.push_many(packets, arrivals) + r.flush())
    assert gaps == []
    assert np.all(np.diff(t) == FMT.period_us)
    assert t[-1] > 2**32
    assert r.stats.samples == 760


def test_lost_packets_become_a_gap_with_counts() -> None:
    packets, arrivals, raw = _stream(19 * 30)
    keep = [i for i in range(30) if i not in (10, 11, 12)]
    r = hp.StreamReassembler(FMT, reorder_window=4)
    items = r.push_many([packets[i] for i in keep], arrivals[keep]) + r.flush()
    _t, _, acc, gaps = _collect(items)
    assert len(gaps) == 1
    g = gaps[0]
    assert (g.reason, g.lost_packets, g.lost_samples) == ("loss", 3, 57)
    assert g.start_sensor_us == (10 * 19 - 1) * FMT.period_us
    assert g.end_sensor_us == 13 * 19 * FMT.period_us
    assert g.duration_s == pytest.approx(58 * PERIOD_S, abs=1e-6)
    mask = np.ones(570, bool)
    mask[190:247] = False
    np.testing.assert_allclose(acc, _acc(raw)[mask])
    assert r.stats.lost_packets == 3 and r.stats.lost_samples == 57
    assert r.stats.loss_ratio == pytest.approx(3 / 30)
    # The gap sits between the blocks it separates.
    kinds = [type(i).__name__ for i in items]
    assert kinds == ["SampleBlock", "Gap", "SampleBlock"]


def test_stream_paused_by_a_disconnection_is_a_gap_without_lost_packets() -> None:
    # The sensor stops while disconnected and resumes with the next sequence number: the
    # clock, not the counter, tells what is missing.
    rng = np.random.default_rng(3)
    raw = rng.integers(-2000, 2000, size=(19 * 20, 6)).astype(np.int16)
    pz = Packetizer(att_payload=244, period_us=FMT.period_us)
    before = pz.packets(raw[: 19 * 10])
    pz.timestamp_us += 250 * FMT.period_us
    after = pz.packets(raw[19 * 10 :])
    arrivals = np.concatenate([np.arange(10) * 0.19 + 0.2, np.arange(10) * 0.19 + 4.6])
    r = hp.StreamReassembler(FMT)
    t, _, acc, gaps = _collect(r.push_many(before + after, arrivals) + r.flush())
    assert len(gaps) == 1
    assert (gaps[0].reason, gaps[0].lost_packets, gaps[0].lost_samples) == ("loss", 0, 250)
    assert t[190] - t[189] == 251 * FMT.period_us
    np.testing.assert_allclose(acc, _acc(raw))
    assert r.stats.lost_samples == 250 and r.stats.lost_packets == 0


def test_duplicates_are_dropped_and_counted() -> None:
    packets, arrivals, raw = _stream(19 * 10)
    order = [0, 1, 1, 2, 3, 3, 3, 4, 5, 6, 2, 7, 8, 9, 9]
    r = hp.StreamReassembler(FMT)
    items = r.push_many([packets[i] for i in order], np.sort(arrivals[order])) + r.flush()
    _, _, acc, gaps = _collect(items)
    assert gaps == []
    np.testing.assert_allclose(acc, _acc(raw))
    assert r.stats.duplicates == 5


def test_reordering_within_the_window_is_repaired() -> None:
    packets, _arrivals, raw = _stream(19 * 12)
    order = [0, 2, 1, 3, 6, 4, 5, 7, 8, 11, 10, 9]
    # Reordered packets come in one burst, within the reorder timeout of each other.
    times = np.arange(12) * 0.01
    r = hp.StreamReassembler(FMT, reorder_window=4)
    items = r.push_many([packets[i] for i in order], times) + r.flush()
    t, _, acc, gaps = _collect(items)
    assert gaps == []
    assert np.all(np.diff(t) == FMT.period_us)
    np.testing.assert_allclose(acc, _acc(raw))
    assert r.stats.reordered == 5  # 1, 4, 5, 10 and 9 each came after a later packet


def test_packet_later_than_the_window_is_lost_then_late() -> None:
    packets, _arrivals, _ = _stream(19 * 12)
    order = [0, 1, 3, 4, 5, 6, 7, 2, 8, 9, 10, 11]
    times = np.arange(12) * 0.01
    r = hp.StreamReassembler(FMT, reorder_window=3, reorder_timeout_s=10.0)
    items = r.push_many([packets[i] for i in order], times) + r.flush()
    _, _, _, gaps = _collect(items)
    assert [(g.lost_packets, g.lost_samples) for g in gaps] == [(1, 19)]
    assert r.stats.late == 1 and r.stats.samples == 19 * 11


def test_reorder_timeout_bounds_the_delay_after_a_loss() -> None:
    packets, arrivals, _ = _stream(19 * 6)
    r = hp.StreamReassembler(FMT, reorder_window=8, reorder_timeout_s=0.05)
    assert _collect(r.push_many(packets[:2], arrivals[:2]))[0].size == 38
    # Packet 2 is lost; 3 waits for it, but no longer than the timeout.
    assert r.push(packets[3], 1.000) == []
    assert r.poll(1.049) == []
    items = r.poll(1.050)
    t, _, _, gaps = _collect(items)
    assert [g.lost_packets for g in gaps] == [1]
    assert t.size == 19
    # Afterwards the stream flows without waiting.
    assert _collect(r.push(packets[4], 1.2))[0].size == 19


def test_malformed_packets_are_reported_and_the_stream_goes_on() -> None:
    packets, arrivals, raw = _stream(19 * 6)
    bad = [b"", b"\x20" + packets[0][1:], packets[1][:-3]]
    stream = [packets[0], bad[0], packets[1], bad[1], bad[2], *packets[2:]]
    times = [arrivals[0], 0.1, arrivals[1], 0.2, 0.3, *arrivals[2:]]
    r = hp.StreamReassembler(FMT)
    items = r.push_many(stream, times) + r.flush()
    malformed = [i for i in items if isinstance(i, hp.MalformedPacket)]
    assert [type(m.error) for m in malformed] == [
        hp.PacketTooShortError,
        hp.UnsupportedVersionError,
        hp.TruncatedSampleBlockError,
    ]
    _, _, acc, gaps = _collect(items)
    assert gaps == []
    np.testing.assert_allclose(acc, _acc(raw))
    assert r.stats.malformed == 3


def test_sensor_restart_starts_a_new_stream_after_a_gap() -> None:
    first, arr1, raw1 = _stream(19 * 20, seq0=500, ts0=50_000_000)
    second, arr2, raw2 = _stream(19 * 20, seq0=0, ts0=1_000, seed=1)
    arr2 = arr2 + arr1[-1] + 2.0  # the sensor came back two seconds later
    r = hp.StreamReassembler(FMT)
    items = r.push_many(first + second, np.concatenate([arr1, arr2])) + r.flush()
    t, th, acc, gaps = _collect(items)
    assert len(gaps) == 1 and gaps[0].reason == "restart"
    assert gaps[0].duration_s == pytest.approx(2.0 + PERIOD_S, abs=0.02)
    assert gaps[0].lost_samples == pytest.approx(200, abs=2)
    assert np.all(np.diff(t) > 0) and np.all(np.diff(th) > 0)
    np.testing.assert_allclose(acc, np.concatenate([_acc(raw1), _acc(raw2)]))
    assert r.stats.restarts == 1


def test_reset_forgets_the_stream() -> None:
    packets, arrivals, _ = _stream(19 * 4)
    r = hp.StreamReassembler(FMT)
    r.push_many(packets, arrivals)
    r.reset()
    assert r.stats == hp.ReassemblyStats()
    items = r.push_many(packets, arrivals) + r.flush()
    assert _collect(items)[0].shape == (76,)
    assert r.clock.estimate is not None


@st.composite
def messy_stream(draw: st.DrawFn) -> tuple[list[bytes], list[float]]:
    packets, arrivals, _ = _stream(
        19 * 60, seq0=draw(st.integers(0, 65535)), ts0=draw(st.integers(0, 2**32 - 1))
    )
    order = list(range(60))
    for _ in range(draw(st.integers(0, 6))):  # losses
        order.remove(draw(st.sampled_from(order)))
    for _ in range(draw(st.integers(0, 6))):  # duplicates
        i = draw(st.integers(0, len(order) - 1))
        order.insert(i, order[i])
    for _ in range(draw(st.integers(0, 6))):  # swaps
        i = draw(st.integers(0, len(order) - 2))
        order[i], order[i + 1] = order[i + 1], order[i]
    return [packets[i] for i in order], sorted(float(arrivals[i]) for i in order)


@settings(max_examples=60, deadline=None)
@given(messy_stream(), st.lists(st.integers(1, 25), min_size=1, max_size=20))
def test_any_chunking_gives_the_same_result(stream, sizes: list[int]) -> None:  # type: ignore[no-untyped-def]
    packets, times = stream
    whole = hp.StreamReassembler(FMT, reorder_window=3)
    w_items = whole.push_many(packets, times) + whole.flush()

    chunked = hp.StreamReassembler(FMT, reorder_window=3)
    c_items: list[hp.StreamItem] = []
    i = k = 0
    while i < len(packets):
        n = sizes[k % len(sizes)]
        c_items += chunked.push_many(packets[i : i + n], times[i : i + n])
        i, k = i + n, k + 1
    c_items += chunked.flush()

    wt, wth, wacc, wgaps = _collect(w_items)
    ct, cth, cacc, cgaps = _collect(c_items)
    np.testing.assert_array_equal(wt, ct)
    np.testing.assert_array_equal(wth, cth)
    np.testing.assert_array_equal(wacc, cacc)
    assert wgaps == cgaps
    assert whole.stats == chunked.stats
    assert np.all(np.diff(wt) > 0)


def test_clock_drift_is_estimated_against_host_time() -> None:
    # Sensor crystal 80 ppm fast, 12 ms latency floor plus exponential jitter.
    rng = np.random.default_rng(7)
    n = 100 * 600  # ten minutes at 100 Hz
    true_s = np.arange(n) * PERIOD_S + 3.0
    sensor_us = np.round((true_s - 3.0) * (1 + 80e-6) * 1e6).astype(np.int64) + 777_000
    pz = Packetizer(period_us=FMT.period_us)
    raw = np.zeros((n, 6), np.int16)
    packets = pz.packets(raw, timestamps_us=sensor_us)
    k = pz.samples_per_packet
    last = np.minimum(np.arange(1, len(packets) + 1) * k, n) - 1
    arrivals = true_s[last] + 0.012 + rng.exponential(0.01, len(packets))
    r = hp.StreamReassembler(FMT)
    items = r.push_many(packets, arrivals) + r.flush()
    est = r.clock.estimate
    assert est is not None
    assert est.skew_ppm == pytest.approx(-80, abs=5)
    # Within the packet, samples are stamped at the nominal period of the sensor clock.
    blocks = [i for i in items if isinstance(i, hp.SampleBlock)]
    th = np.concatenate([b.t_host_s for b in blocks])
    late = slice(n // 2, None)  # once a few minutes were seen
    err = th[late] - (true_s[late] + 0.012)
    assert np.abs(err).max() < 0.003, np.abs(err).max()


def test_a_resumed_backlog_neither_leaves_a_gap_nor_tilts_the_clock() -> None:
    # 80 ppm fast sensor; 60 s before the end the link drops for 9 s. The sensor keeps its
    # packets (protocol 1.1 backlog) and replays them at the reconnection, back to back.
    rng = np.random.default_rng(11)
    n = 100 * 300
    true_s = np.arange(n) * PERIOD_S + 3.0
    sensor_us = np.round((true_s - 3.0) * (1 + 80e-6) * 1e6).astype(np.int64) + 777_000
    pz = Packetizer(period_us=FMT.period_us)
    packets = pz.packets(np.zeros((n, 6), np.int16), timestamps_us=sensor_us)
    k = pz.samples_per_packet
    last = np.minimum(np.arange(1, len(packets) + 1) * k, n) - 1
    arrivals = true_s[last] + 0.012 + rng.exponential(0.01, len(packets))
    down = (true_s[last] >= true_s[-1] - 60) & (true_s[last] < true_s[-1] - 51)
    back_s = true_s[-1] - 51 + 0.012
    arrivals[down] = back_s + 0.001 * np.arange(int(down.sum()))
    arrivals = np.maximum.accumulate(arrivals)
    r = hp.StreamReassembler(FMT)
    items = r.push_many(packets, arrivals) + r.flush()
    assert not [i for i in items if isinstance(i, hp.Gap)]
    est = r.clock.estimate
    assert est is not None
    assert est.skew_ppm == pytest.approx(-80, abs=5)
    th = np.concatenate([b.t_host_s for b in items if isinstance(b, hp.SampleBlock)])
    err = th[n // 2 :] - (true_s[n // 2 :] + 0.012)
    assert np.abs(err).max() < 0.003, np.abs(err).max()
