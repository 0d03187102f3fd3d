"""The simulated radio link: packets the reassembler can rebuild, and honest gap truth."""

import asyncio
import math

import numpy as np
import pytest

import hipsense.protocol as hp
from hipsense_sim import ImuSpec, LinkSpec, ScenarioSpec, SetSpec, SimulationResult, simulate


def _run(link: LinkSpec, *, seed: int = 2, reps: int = 6, **imu: object) -> SimulationResult:
    spec = ScenarioSpec.model_validate(
        {
            "exercise": "clamshell",
            "seed": seed,
            "sets": [SetSpec(reps=reps)],
            "link": link,
            "imu": ImuSpec.model_validate({"rate_hz": 100, **imu}),
        }
    )
    return simulate(spec)


def _reassemble(r: SimulationResult) -> tuple[np.ndarray, np.ndarray, list[hp.Gap]]:
    imu = r.spec.imu
    fmt = hp.StreamFormat(imu.rate_hz, imu.accel_range_g, imu.gyro_range_dps)
    ra = hp.StreamReassembler(fmt, reorder_window=8)
    d = r.delivery
    items = ra.push_many(d.packets, d.arrival_s) + ra.flush()
    blocks = [i for i in items if isinstance(i, hp.SampleBlock)]
    gaps = [i for i in items if isinstance(i, hp.Gap)]
    t = np.concatenate([b.t_sensor_us for b in blocks])
    acc = np.concatenate([b.acc_m_s2 for b in blocks if b.acc_m_s2 is not None])
    return t, acc, gaps


def test_a_clean_link_delivers_every_sample_in_order() -> None:
    r = _run(LinkSpec())
    d = r.delivery
    assert d.received.all() and r.truth["gaps"] == []
    assert np.all(np.diff(d.arrival_s) >= 0)
    t, acc, gaps = _reassemble(r)
    assert gaps == []
    np.testing.assert_array_equal(t - t[0], r.sensor_time_us - r.sensor_time_us[0])
    np.testing.assert_allclose(acc, r.recording.acc_m_s2, atol=1e-9)


def test_loss_duplicates_and_reordering_are_undone_by_the_reassembler() -> None:
    link = LinkSpec(loss_ratio=0.05, burst_length=3, duplicate_ratio=0.05, reorder_ratio=0.05)
    r = _run(link, reps=10)
    d = r.delivery
    truth = r.truth
    _, acc, gaps = _reassemble(r)
    # The reassembler gets back exactly the samples that arrived, and the same gaps.
    np.testing.assert_allclose(acc, r.recording.acc_m_s2, atol=1e-9)
    assert len(gaps) == len(truth["gaps"]) > 0
    assert [g.lost_samples for g in gaps] == [g["lost_samples"] for g in truth["gaps"]]
    assert len(d.packets) > len(set(d.packets))  # duplicates were sent
    # The recording has the received samples only: its clock jumps over each gap.
    rec_t = r.recording.time_s
    assert len(rec_t) == d.received.sum() < len(r.raw_counts)
    for g in truth["gaps"]:
        assert not np.any((rec_t >= g["start_s"]) & (rec_t <= g["end_s"]))


def test_losses_come_in_bursts_of_the_asked_length() -> None:
    link = LinkSpec(loss_ratio=0.1, burst_length=4)
    r = _run(link, reps=20, seed=9)
    d = r.delivery
    lost_share = 1 - d.received.mean()
    assert lost_share == pytest.approx(0.1, abs=0.04)
    spp = hp.max_samples_per_packet(hp.PayloadKind.RAW, 244)
    bursts = [g["lost_samples"] / spp for g in r.truth["gaps"]]
    assert 2.5 < float(np.mean(bursts)) < 6.0


def test_a_disconnection_stops_the_stream_and_is_labelled() -> None:
    r = _run(LinkSpec(disconnects=[(20.0, 5.0)], backlog_s=0.0), reps=8)
    truth = r.truth
    assert [g["cause"] for g in truth["gaps"]] == ["disconnect"]
    g = truth["gaps"][0]
    # Down for 5 s plus the time to reconnect; the sensor did not stream meanwhile.
    assert 5.0 < g["end_s"] - g["start_s"] < 9.5
    _, _, gaps = _reassemble(r)
    assert len(gaps) == 1 and gaps[0].lost_packets == 0
    assert gaps[0].lost_samples == g["lost_samples"]


def test_a_backlog_sends_what_the_sensor_kept_through_a_disconnection() -> None:
    # Down 5 s plus 1.5-4 s to reconnect: within a 10 s ring, nothing is lost.
    r = _run(LinkSpec(disconnects=[(20.0, 5.0)], backlog_s=10.0), reps=8)
    d = r.delivery
    assert d.received.all() and r.truth["gaps"] == []
    t, acc, gaps = _reassemble(r)
    assert gaps == []
    np.testing.assert_array_equal(t - t[0], r.sensor_time_us - r.sensor_time_us[0])
    np.testing.assert_allclose(acc, r.recording.acc_m_s2, atol=1e-9)
    # The kept packets arrive after the reconnection, back to back, before live ones.
    packet_s = hp.max_samples_per_packet(hp.PayloadKind.RAW, 244) / 100
    back_to_back = np.flatnonzero(np.diff(d.arrival_s) < 0.25 * packet_s) + 1
    assert 6.5 / packet_s - 2 < back_to_back.size < 9.0 / packet_s + 2
    assert d.arrival_s[back_to_back].min() > 26.5


def test_a_disconnection_longer_than_the_backlog_loses_its_oldest_part() -> None:
    r = _run(LinkSpec(disconnects=[(20.0, 12.0)], backlog_s=4.0), reps=8)
    truth = r.truth
    assert [g["cause"] for g in truth["gaps"]] == ["disconnect"]
    g = truth["gaps"][0]
    # Down 13.5-16 s; the last 4 s (a whole number of packets) came with the backlog.
    assert g["start_s"] == pytest.approx(20.0, abs=0.2)
    assert 13.5 - 4.0 - 0.2 < g["end_s"] - g["start_s"] < 16.0 - 4.0 + 0.2
    _, _, gaps = _reassemble(r)
    assert len(gaps) == 1 and gaps[0].lost_packets > 0
    assert gaps[0].lost_samples == g["lost_samples"]


def test_mtu_23_falls_back_to_raw_when_quaternions_do_not_fit() -> None:
    r = _run(LinkSpec(mtu=23), quaternion=True, reps=2)
    assert r.delivery.kind is hp.PayloadKind.RAW
    assert r.recording.quat is None
    assert all(len(p) <= 20 for p in r.delivery.packets)
    q = _run(LinkSpec(mtu=247), quaternion=True, reps=2)
    assert q.delivery.kind is hp.PayloadKind.RAW_QUAT


async def test_packet_stream_paces_by_the_speed_factor() -> None:
    r = _run(LinkSpec(), reps=1)
    d = r.delivery
    loop = asyncio.get_running_loop()
    speed = 200.0
    t0 = loop.time()
    got = []
    async for arrival, packet in r.packets(speed=speed):
        # Never early: a packet is handed over no sooner than its arrival at this speed.
        assert loop.time() - t0 >= arrival / speed - 1e-3
        got.append(packet)
    assert got == d.packets
    fast = [p async for _, p in r.packets(speed=math.inf)]
    assert fast == d.packets
    with pytest.raises(ValueError, match="speed"):
        _ = [p async for p in r.packets(speed=0)]
