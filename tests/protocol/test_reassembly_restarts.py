"""Restart, loss, pause and staleness told apart at any uptime: the reproduced defects.

Each test builds the packets a sensor sends, packet by packet, with the sequence number
and the clock it would have at that uptime, and the host times they arrive at.
"""

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest

import hipsense.protocol as hp

FMT = hp.StreamFormat(rate_hz=100)
P_US = FMT.period_us
SPP = 19  # RAW samples in a packet at MTU 247
PACKET_S = SPP * P_US * 1e-6
LATENCY_S = 0.015
MIN = 60_000_000  # µs


@dataclass
class Sensor:
    """A sensor's packets: its sequence counter and µs clock since power-up, wrapped."""

    seq: int = 0
    clock_us: int = 0
    boot_host_s: float = 0.0
    """Host time of the sensor's power-up, so sample times map to host times."""
    sent: list[tuple[bytes, float]] = field(default_factory=list)
    next_id: int = 0

    def host_s(self, clock_us: int) -> float:
        return self.boot_host_s + clock_us * 1e-6

    def stream(self, packets: int, *, n: int = SPP) -> list[tuple[bytes, float]]:
        """Packets of `n` samples; each arrives 15 ms after its last sample."""
        out = []
        for _ in range(packets):
            ids = np.arange(self.next_id, self.next_id + n)
            raw = np.zeros((n, 6), np.int16)
            raw[:, 0] = ids % 30_000
            raw[:, 1] = ids // 30_000
            pkt = hp.encode(hp.PayloadKind.RAW, self.seq & 0xFFFF, self.clock_us % 2**32, raw=raw)
            arrival = self.host_s(self.clock_us + (n - 1) * P_US) + LATENCY_S
            out.append((pkt, arrival))
            self.seq += 1
            self.clock_us += n * P_US
            self.next_id += n
        self.sent += out
        return out

    def pause(self, seconds: float) -> None:
        """Stops streaming, goes on later: the clock runs on, the sequence does not."""
        self.clock_us += round(seconds * 1e6 / P_US) * P_US

    def restart(self, gap_s: float, *, seq: int = 0, boot_to_stream_s: float = 1.2345) -> None:
        """Powers up and streams again: the first new sample comes `gap_s` after the last
        old one, `boot_to_stream_s` after the power-up."""
        last_host_s = self.host_s(self.clock_us - P_US)
        self.boot_host_s = last_host_s + gap_s - boot_to_stream_s
        self.clock_us = round(boot_to_stream_s * 1e6)
        self.seq = seq


def run(
    packets: list[tuple[bytes, float]],
    reconnects: Sequence[float | tuple[float, bool | None]] = (),
    **kwargs: Any,
) -> tuple[hp.StreamReassembler, list[hp.StreamItem]]:
    r = hp.StreamReassembler(FMT, **kwargs)
    for rc in reconnects:
        at, said = rc if isinstance(rc, tuple) else (rc, None)
        r.reconnected(at, sensor_restarted=said)
    items = r.push_many([p for p, _ in packets], [t for _, t in packets]) + r.flush()
    return r, items


def blocks(items: list[hp.StreamItem]) -> list[hp.SampleBlock]:
    return [i for i in items if isinstance(i, hp.SampleBlock)]


def gaps(items: list[hp.StreamItem]) -> list[hp.Gap]:
    return [i for i in items if isinstance(i, hp.Gap)]


def ids(items: list[hp.StreamItem]) -> np.ndarray:
    acc = np.concatenate([b.acc_m_s2 for b in blocks(items) if b.acc_m_s2 is not None])
    raw = np.round(acc[:, :2] / FMT.accel_lsb_m_s2).astype(np.int64)
    return raw[:, 0] + 30_000 * raw[:, 1]


def assert_invariants(items: list[hp.StreamItem]) -> None:
    """Sensor and host time never run backwards; no gap has a negative duration."""
    t = np.concatenate([b.t_sensor_us for b in blocks(items)])
    th = np.concatenate([b.t_host_s for b in blocks(items)])
    assert np.all(np.diff(t) > 0), "sensor time ran backwards"
    assert np.all(np.diff(th) > 0), "host time ran backwards"
    for g in gaps(items):
        assert g.duration_s > 0 and g.end_sensor_us > g.start_sensor_us, g
    got = ids(items)
    assert np.all(np.diff(got) > 0), "a sample delivered twice or out of order"


def restart_case(uptime_min: float, gap_s: float = 3.0) -> list[tuple[bytes, float]]:
    s = Sensor(seq=4242, clock_us=round(uptime_min * MIN) - 40 * SPP * P_US)
    before = s.stream(40)
    s.restart(gap_s)
    return before + s.stream(40)


@pytest.mark.parametrize("uptime_min", [10, 37, 60, 71.55, 71.7, 100, 180])
@pytest.mark.parametrize("notified", [False, True])
def test_a_restart_is_seen_as_one_at_any_uptime(uptime_min: float, notified: bool) -> None:
    # At 37 min the wrapped clock of the new stream looked 34.6 min ahead: 10,036 lost
    # packets over a 3 s outage. At 60 min it looked behind: every packet dropped as late.
    packets = restart_case(uptime_min)
    reconnects = [packets[40][1] - 0.5] if notified else []
    r, items = run(packets, reconnects)
    assert [(g.reason, g.lost_packets) for g in gaps(items)] == [("restart", 0)]
    g = gaps(items)[0]
    assert g.duration_s == pytest.approx(3.0, abs=0.005)
    assert g.lost_samples == pytest.approx(299, abs=1)
    np.testing.assert_array_equal(ids(items), np.arange(80 * SPP))
    assert (r.stats.restarts, r.stats.lost_packets, r.stats.late) == (1, 0, 0)
    assert_invariants(items)


def test_the_sensor_saying_it_restarted_settles_a_new_clock_that_looks_continued() -> None:
    # The sensor rebooted 2 s after its old clock would have wrapped, and streamed 1.5 s
    # later: its new clock reads what the old one would have read 2 s earlier.
    s = Sensor(seq=65460, clock_us=2**32 - 40 * SPP * P_US - 1_000_000)
    before = s.stream(40)
    wrap_host_s = s.host_s(2**32)
    s.boot_host_s, s.clock_us, s.seq = wrap_host_s + 2.0, 1_500_000, 0
    after = s.stream(20)
    packets = before + after
    marker = after[0][1] - 0.6
    # Told by the sensor's status (CLOCK_UNSYNCED), the link passes it on: a restart.
    _, items = run(packets, [(marker, True)])
    assert [(g.reason, g.lost_packets) for g in gaps(items)] == [("restart", 0)]
    assert_invariants(items)
    # Not told, the counts settle it: sequence 0 after 65499 is 36 packets on, 684
    # samples, where the clock says 250 passed; and the packet was not sampled after the
    # reconnection, as a stream started again would be.
    _, items = run(packets, [marker])
    assert [(g.reason, g.lost_packets) for g in gaps(items)] == [("restart", 0)]
    assert_invariants(items)


def test_a_restart_after_a_reconnection_is_found_when_the_old_clock_wrapped_meanwhile() -> None:
    # The link was down 3 minutes; the sensor rebooted 60 s after its old clock wrapped.
    # Its clock passes for the old one continued, its sequence number (0 after 65519) for
    # 16 packets lost; but 16 packets are not the 120 s the clock says passed, and the
    # packet was sampled a minute before the reconnection by the old clock: a restart.
    s = Sensor(seq=65480, clock_us=2**32 - 40 * SPP * P_US - 30_000_000)
    before = s.stream(40)
    wrap_host_s = s.host_s(2**32)
    s.boot_host_s, s.clock_us, s.seq = wrap_host_s + 60.0, 90_000_000, 0
    after = s.stream(20)
    _, items = run(before + after, [after[0][1] - 0.6])
    assert [g.reason for g in gaps(items)] == ["restart"]
    assert_invariants(items)


def test_a_packet_30_packets_late_is_only_late() -> None:
    s = Sensor(seq=100, clock_us=37 * MIN)
    packets = s.stream(80)
    late = packets.pop(20)
    packets.insert(50, (late[0], packets[49][1] + 0.001))
    r, items = run(packets)
    assert [(g.reason, g.lost_packets, g.lost_samples) for g in gaps(items)] == [("loss", 1, SPP)]
    assert (r.stats.late, r.stats.restarts, r.stats.duplicates) == (1, 0, 0)
    expected = np.delete(np.arange(80 * SPP), np.arange(20 * SPP, 21 * SPP))
    np.testing.assert_array_equal(ids(items), expected)
    assert_invariants(items)


@pytest.mark.parametrize("uptime_min", [0.5, 37, 60])
@pytest.mark.parametrize("behind", [1, 49, 300, 3000])
def test_a_duplicate_older_than_the_window_is_only_a_duplicate(
    uptime_min: float, behind: int
) -> None:
    s = Sensor(seq=65000, clock_us=round(uptime_min * MIN))
    packets = s.stream(behind + 20)
    again = packets[10]
    packets.insert(11 + behind, (again[0], packets[10 + behind][1] + 0.001))
    r, items = run(packets)
    assert gaps(items) == []
    assert (r.stats.duplicates, r.stats.late, r.stats.restarts) == (1, 0, 0)
    np.testing.assert_array_equal(ids(items), np.arange((behind + 20) * SPP))
    assert_invariants(items)


@pytest.mark.parametrize("pause_s", [4.0, 40 * 60, 3 * 3600, 5 * 3600 + 17.3])
@pytest.mark.parametrize("notified", [False, True])
def test_a_long_pause_is_a_gap_of_no_packets_and_exact_samples(
    pause_s: float, notified: bool
) -> None:
    # A 1.0 sensor stops streaming while disconnected and goes on with the next number.
    s = Sensor(seq=9, clock_us=20 * MIN)
    before = s.stream(30)
    s.pause(pause_s)
    after = s.stream(30)
    reconnects = [after[0][1] - 0.3] if notified else []
    r, items = run(before + after, reconnects)
    lost = round(pause_s * 1e6 / P_US)
    assert [(g.reason, g.lost_packets, g.lost_samples) for g in gaps(items)] == [("loss", 0, lost)]
    assert r.stats.restarts == 0
    t = np.concatenate([b.t_sensor_us for b in blocks(items)])
    assert t[30 * SPP] - t[30 * SPP - 1] == (lost + 1) * P_US
    assert gaps(items)[0].duration_s == pytest.approx(pause_s + P_US * 1e-6, abs=0.01)
    assert_invariants(items)


def test_a_clock_stepping_back_half_a_second_does_not_run_time_backwards() -> None:
    s = Sensor(seq=7, clock_us=37 * MIN)
    packets = s.stream(20)
    s.clock_us -= 500_000  # the sensor's clock steps back; its samples go on
    packets += s.stream(20)
    r, items = run(packets)
    assert gaps(items) == []
    t = np.concatenate([b.t_sensor_us for b in blocks(items)])
    assert np.all(np.diff(t) == P_US)
    assert (r.stats.restarts, r.stats.late, r.stats.clock_steps) == (0, 0, 1)
    np.testing.assert_array_equal(ids(items), np.arange(40 * SPP))
    assert_invariants(items)


def test_one_packet_with_a_wrong_clock_is_placed_by_its_number() -> None:
    s = Sensor(seq=7, clock_us=60 * MIN)
    packets = s.stream(20)
    pkt = bytearray(packets[10][0])
    pkt[4:8] = ((int.from_bytes(pkt[4:8], "little") - 500_000) % 2**32).to_bytes(4, "little")
    packets[10] = (bytes(pkt), packets[10][1])
    r, items = run(packets)
    assert gaps(items) == []
    t = np.concatenate([b.t_sensor_us for b in blocks(items)])
    assert np.all(np.diff(t) == P_US)
    assert r.stats.clock_steps == 1


def test_a_packet_far_ahead_in_sequence_with_an_old_clock_is_rejected() -> None:
    s = Sensor(seq=500, clock_us=60 * MIN)
    packets = s.stream(30)
    odd = bytearray(packets[5][0])
    odd[2:4] = (500 + 5 + 1000).to_bytes(2, "little")
    packets.insert(20, (bytes(odd), packets[19][1] + 0.001))
    r, items = run(packets, [0.0])
    assert gaps(items) == []
    assert (r.stats.rejected, r.stats.restarts, r.stats.clock_steps) == (1, 0, 0)
    np.testing.assert_array_equal(ids(items), np.arange(30 * SPP))
    assert r.stats.loss_ratio == 0


def test_a_resumed_backlog_after_a_reconnection_is_not_a_restart() -> None:
    # A 1.1 sensor streamed on while the link was down (for 61 s, around its clock's
    # wrap) and replays its last 64 packets at once; the ones before are lost.
    s = Sensor(seq=65530, clock_us=2**32 - 30 * SPP * P_US - 20_000_000)
    before = s.stream(30)
    away = s.stream(round(61.0 / PACKET_S))
    back_s = away[-1][1] + 0.5
    replay = [(p, back_s + 0.001 * i) for i, (p, _) in enumerate(away[-64:])]
    live = s.stream(10)
    r, items = run(before + replay + live, [back_s - 0.2])
    lost = len(away) - 64
    assert [(g.reason, g.lost_packets, g.lost_samples) for g in gaps(items)] == [
        ("loss", lost, lost * SPP)
    ]
    assert r.stats.restarts == 0
    assert_invariants(items)


def test_an_old_packet_replayed_after_a_reconnection_is_a_duplicate() -> None:
    # A sensor that replays more than asked: packets the host already has.
    s = Sensor(seq=300, clock_us=50 * MIN)
    before = s.stream(30)
    away = s.stream(20)
    back_s = away[-1][1] + 2.0
    replay = [(p, back_s + 0.001 * i) for i, (p, _) in enumerate(before[-10:] + away)]
    r, items = run(before + replay + s.stream(5), [back_s - 0.2])
    assert gaps(items) == []
    assert (r.stats.duplicates, r.stats.restarts) == (10, 0)
    assert_invariants(items)


def test_packets_of_the_old_connection_pushed_after_the_reconnection_call() -> None:
    # The link tells of the reconnection while packets of the old connection still wait
    # in its queue: they are judged by their arrival times, not by when they are pushed.
    s = Sensor(seq=4242, clock_us=60 * MIN)
    before = s.stream(40)
    s.restart(2.0)
    after = s.stream(20)
    r = hp.StreamReassembler(FMT)
    items = r.push_many([p for p, _ in before[:30]], [t for _, t in before[:30]])
    r.reconnected(after[0][1] - 0.3, sensor_restarted=None)
    rest = before[30:] + after
    items += r.push_many([p for p, _ in rest], [t for _, t in rest]) + r.flush()
    assert [g.reason for g in gaps(items)] == ["restart"]
    np.testing.assert_array_equal(ids(items), np.arange(60 * SPP))
    assert_invariants(items)


def test_within_a_connection_nothing_is_a_restart_once_the_link_reports_reconnections() -> None:
    # A young stream (the sensor just powered up): a late packet from its first second
    # fits in the host time since, but a link that reports reconnections had none.
    s = Sensor(seq=0, clock_us=200_000)
    packets = s.stream(40)
    stale = bytearray(packets[3][0])
    stale[2:4] = (1).to_bytes(2, "little")  # a number never delivered, from before
    packets.insert(6, (bytes(stale), packets[5][1] + 0.001))
    r, items = run(packets, [0.0])
    assert r.stats.restarts == 0
    assert gaps(items) == []
    assert_invariants(items)


def test_host_time_never_runs_backwards_when_the_first_packets_came_late() -> None:
    # The mapping learns a lower latency floor after the first packets: it moves earlier,
    # and the samples stamped after it must still come after those stamped before.
    s = Sensor(seq=0, clock_us=5 * MIN)
    packets = s.stream(30)
    packets = [(p, t + (0.3 if i < 3 else 0.0)) for i, (p, t) in enumerate(packets)]
    packets = [(p, max(t, packets[2][1] + 0.001 * i)) for i, (p, t) in enumerate(packets)]
    _, items = run(packets)
    assert_invariants(items)


def test_reset_forgets_reconnections() -> None:
    s = Sensor(seq=0, clock_us=5 * MIN)
    packets = s.stream(10)
    r = hp.StreamReassembler(FMT)
    r.reconnected(packets[5][1] - 0.001, sensor_restarted=True)
    r.reset()
    items = r.push_many([p for p, _ in packets], [t for _, t in packets]) + r.flush()
    assert gaps(items) == [] and r.stats.restarts == 0
