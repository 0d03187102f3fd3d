"""The reassembler against a reference model of what the sensor sent and the host got.

The model is a sensor's life: streams of packets with losses, reorders, late packets and
duplicates (fresh or older than any window), pauses of a second to hours (a 1.0 sensor
stops while disconnected), outages that a 1.1 sensor streams through into its backlog,
and restarts (power-up: sequence and clock start over) at any uptime, the first stream
starting anywhere in both counters' ranges so that both wrap. The model knows each
sample's identity, its sensor clock and its true host time, and so what must come out:
which samples, in order, once; which gaps, with their exact counts (a restart's sized by
the host clock, within the jitter of arrival times).
"""

from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Literal

import numpy as np
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

import hipsense.protocol as hp

FMT = hp.StreamFormat(rate_hz=100)
P_US = FMT.period_us
SPP = 19
FLOOR_S = 0.012
TS_MOD = 1 << 32
Mode = Literal["silent", "unknown", "denied", "told"]
"""How the host learns of reconnections: not at all; told of each but not whether the
sensor restarted; told the sensor did not restart (a firmware that never sets
CLOCK_UNSYNCED); told truly (CLOCK_UNSYNCED as the protocol has it)."""


@dataclass
class Pkt:
    epoch: int
    seq: int
    """Unwrapped: packets sent since the epoch's counter started."""
    clock_us: int
    """Unwrapped sensor clock of the first sample."""
    n: int
    first_id: int
    sent_s: float
    """True host time the packet left (its last sample was taken)."""
    data: bytes


@dataclass
class Expected:
    ids: list[np.ndarray] = field(default_factory=list)
    host_s: list[np.ndarray] = field(default_factory=list)
    """True host time of each delivered sample, plus the latency floor."""
    gaps: list[tuple[int, str, int, int]] = field(default_factory=list)
    """(samples delivered before, reason, lost packets, lost samples)."""
    duplicates: int = 0
    late: int = 0
    reordered: int = 0
    restarts: int = 0


class SensorModel:
    """A sensor and its radio: what it sends, when it arrives, what the host must get."""

    def __init__(self, seq0: int, clock0_us: int, ppm: float, rng: np.random.Generator) -> None:
        self.rng = rng
        self.rate = 1.0 + ppm * 1e-6  # sensor µs per host µs
        self.epoch = 0
        self.seq = seq0
        self.clock_us = clock0_us
        self.boot_host_s = -clock0_us / self.rate * 1e-6 + 100.0
        self.next_id = 0
        self.sent: list[Pkt] = []
        """Every packet built, by epoch and sequence."""
        self.events: list[tuple[float, int, object]] = []
        """(host time, order, packet bytes or a reconnection's flag), as the host gets them."""
        self.delivered: list[Pkt] = []
        """What the host must deliver, in order."""
        self.exp = Expected()
        self.longest_silence_s = 0.0
        self.features: list[str] = []
        """What this life has, for hypothesis' statistics."""
        self._order = 0

    def host_s(self, clock_us: float) -> float:
        return self.boot_host_s + clock_us / self.rate * 1e-6

    def _build(self, n: int = SPP) -> Pkt:
        ids = np.arange(self.next_id, self.next_id + n)
        raw = np.zeros((n, 6), np.int16)
        raw[:, 0] = ids % 30_000
        raw[:, 1] = ids // 30_000
        raw[:, 2] = self.epoch
        data = hp.encode(hp.PayloadKind.RAW, self.seq % 65536, self.clock_us % TS_MOD, raw=raw)
        p = Pkt(
            self.epoch,
            self.seq,
            self.clock_us,
            n,
            self.next_id,
            self.host_s(self.clock_us + (n - 1) * P_US),
            data,
        )
        self.seq += 1
        self.clock_us += n * P_US
        self.next_id += n
        self.sent.append(p)
        return p

    def _arrive(self, at_s: float, what: object) -> None:
        if self.events and at_s < self.events[-1][0]:
            at_s = self.events[-1][0]
        self.events.append((at_s, self._order, what))
        self._order += 1

    def _latency(self) -> float:
        return FLOOR_S + float(min(self.rng.exponential(0.004), 0.04))

    def reconnect(self, at_s: float, said: bool | None) -> None:
        self._arrive(at_s, ("reconnect", said))

    def stream(self, ops: "RunOps", *, last_partial: int | None = None) -> None:
        """A run of live packets, with the run's faults applied to its middle."""
        run = [self._build() for _ in range(ops.length)]
        if last_partial is not None:
            run.append(self._build(last_partial))
        arrivals = [(p.sent_s + self._latency(), p, "on time") for p in run]
        lost = {i for i in ops.losses if 2 <= i < len(run) - 3}
        late: dict[int, int] = {}
        for i, d in ops.delays:
            after = i + d
            while after in lost or after in late:
                after += 1
            fits = 2 <= i < len(run) - 3 and after < len(run)
            if fits and i not in lost and i not in late and i not in late.values():
                late[i] = after
        kept = [a for i, a in enumerate(arrivals) if i not in lost and i not in late]
        sched = list(kept)
        # Late packets come after 30+ later ones: by then their gap has been declared.
        for i, after in late.items():
            at = next(k for k, a in enumerate(sched) if a[1] is run[after] and a[2] == "on time")
            sched.insert(at + 1, (sched[at][0] + 0.0005, run[i], "late"))
        # Duplicates of delivered packets, at once or hundreds of packets later.
        for i, d in ops.duplicates:
            if not 2 <= i < len(run) - 1 or i in lost or i in late:
                continue
            j = min(i + d, len(run) - 1)
            while j in lost or j in late:
                j -= 1
            at = next(k for k, a in enumerate(sched) if a[1] is run[j] and a[2] == "on time")
            sched.insert(at + 1, (sched[at][0] + 0.0005, run[i], "duplicate"))
        # Reorders: two consecutive packets in one connection event, the later first.
        for k in ops.swaps:
            if 2 <= k < len(sched) - 2:
                a, b = sched[k], sched[k + 1]
                if (
                    a[2] == b[2] == "on time"
                    and b[1].seq == a[1].seq + 1
                    and sched[k + 2][0] > b[0] + 0.002
                ):
                    sched[k], sched[k + 1] = (b[0], b[1], b[2]), (b[0] + 0.001, a[1], "swapped")
        if any(d > 48 for i, d in ops.duplicates if i in range(2, len(run) - 1 - d)):
            self.features.append("duplicate older than 48 packets")
        if late:
            self.features.append("late packet")
        if any(run[0].clock_us // TS_MOD != p.clock_us // TS_MOD for p in run):
            self.features.append("clock wraps in a run")
        if any(run[0].seq // 65536 != p.seq // 65536 for p in run):
            self.features.append("sequence wraps in a run")
        for t, p, why in sched:
            self._arrive(t, p.data)
            self.exp.duplicates += why == "duplicate"
            self.exp.late += why == "late"
            self.exp.reordered += why == "swapped"
        self.delivered += [p for i, p in enumerate(run) if i not in lost and i not in late]

    def pause(self, seconds: float, mode: Mode) -> None:
        """A 1.0 sensor: stops streaming when the link drops, starts again on reconnection."""
        self.features.append("pause over an hour" if seconds > 3600 else "pause")
        self.clock_us += max(1, round(seconds * 1e6 / P_US)) * P_US
        if mode != "silent":
            self.reconnect(self.host_s(self.clock_us) - 0.3, None if mode == "unknown" else False)

    def outage(self, seconds: float, ring: int, mode: Mode) -> None:
        """A 1.1 sensor: streams on into its backlog and replays its last `ring` packets."""
        self.features.append("outage")
        away = [self._build() for _ in range(max(1, round(seconds / (SPP * P_US * 1e-6))))]
        back_s = away[-1].sent_s + 0.3
        if mode != "silent":
            self.reconnect(back_s - 0.2, None if mode == "unknown" else False)
        for k, p in enumerate(away[-ring:]):
            self._arrive(back_s + 0.001 * k, p.data)
        self.delivered += away[-ring:]

    def restart(self, down_s: float, boot_to_stream_s: float, seq: int, mode: Mode) -> bool:
        """Powers up `down_s` after its last sample; streams `boot_to_stream_s` later.

        Returns whether the restart is one the host cannot tell from a continuation
        without the sensor's word (see the module docstring of the reassembler).
        """
        old = [p for p in self.sent if p.epoch == self.epoch]
        last_clock = self.clock_us - P_US
        self.boot_host_s = self.host_s(last_clock) + down_s
        self.epoch += 1
        self.clock_us = round(boot_to_stream_s * 1e6) + int(self.rng.integers(0, P_US))
        self.seq = seq
        if mode != "silent":
            self.reconnect(
                self.host_s(self.clock_us) - 0.2, {"told": True, "denied": False}.get(mode)
            )
        # The old clock, had it gone on, against the new one at the first new sample.
        first_s = self.host_s(self.clock_us)
        old_now = last_clock + (first_s - old[-1].sent_s) * 1e6 * self.rate
        window = old_now - last_clock
        ahead = (self.clock_us - last_clock) % TS_MOD
        looks_continued = ahead <= window + 30e6 + 2e-3 * window
        # Or its number and clock are those of an old packet, or fit a gap of the old
        # stream (one its sequence number and clock both wrapped in).
        new_ts = self.clock_us % TS_MOD
        seq16 = seq % 65536
        looks_stale = any(
            abs(p.clock_us % TS_MOD - new_ts) < 60e6
            and min((p.seq - seq16) % 65536, (seq16 - p.seq) % 65536) < 64
            for p in old
        )
        kept = [p for p in self.delivered if p.epoch == self.epoch - 1]
        for a, b in pairwise(kept):
            span_us = b.clock_us - (a.clock_us + a.n * P_US)
            if (seq16 - a.seq - 1) % 65536 < b.seq - a.seq - 1:
                looks_stale |= (new_ts - (a.clock_us + a.n * P_US)) % TS_MOD <= span_us
        self.exp.restarts += 1
        why = ", looks continued" * looks_continued + ", looks stale" * looks_stale
        self.features.append(f"restart, {mode}{why}")
        if (last_clock // TS_MOD) != (old[0].clock_us // TS_MOD):
            self.features.append("restart of a stream whose clock wrapped")
        if (old[-1].seq // 65536) != (old[0].seq // 65536):
            self.features.append("restart of a stream whose sequence wrapped")
        return looks_continued or looks_stale

    def expectations(self) -> Expected:
        c = self.exp
        exp = Expected(
            duplicates=c.duplicates, late=c.late, reordered=c.reordered, restarts=c.restarts
        )
        prev: Pkt | None = None
        count = 0
        for p in self.delivered:
            if prev is not None and prev.epoch != p.epoch:
                gap_s = self.host_s_of(p, 0) - self.host_s_of(prev, prev.n - 1)
                exp.gaps.append((count, "restart", 0, round(gap_s * 1e6 / P_US) - 1))
            elif prev is not None:
                lost_samples = (p.clock_us - (prev.clock_us + prev.n * P_US)) // P_US
                if p.seq != prev.seq + 1 or lost_samples:
                    exp.gaps.append((count, "loss", p.seq - prev.seq - 1, lost_samples))
            exp.ids.append(np.arange(p.first_id, p.first_id + p.n))
            exp.host_s.append(np.array([self.host_s_of(p, i) for i in range(p.n)]) + FLOOR_S)
            count += p.n
            prev = p
        return exp

    def host_s_of(self, p: Pkt, i: int) -> float:
        return p.sent_s - (p.n - 1 - i) * P_US / self.rate * 1e-6


@dataclass
class RunOps:
    length: int
    losses: list[int]
    delays: list[tuple[int, int]]
    duplicates: list[tuple[int, int]]
    swaps: list[int]


@st.composite
def run_ops(draw: st.DrawFn) -> RunOps:
    length = draw(st.integers(3, 110))
    idx = st.integers(0, length)
    return RunOps(
        length,
        draw(st.lists(idx, max_size=5)),
        draw(st.lists(st.tuples(idx, st.integers(30, 60)), max_size=2)),
        draw(
            st.lists(st.tuples(idx, st.one_of(st.integers(0, 3), st.integers(45, 120))), max_size=3)
        ),
        draw(st.lists(idx, max_size=3)),
    )


short_restart = st.tuples(
    st.just("restart"), st.floats(0.3, 30.0), st.floats(0.5, 5.0), st.integers(0, 3)
)
long_restart = st.tuples(
    st.just("restart"), st.floats(30.0, 3 * 3600.0), st.floats(0.5, 60.0), st.integers(0, 65535)
)
between = st.one_of(
    st.tuples(st.just("pause"), st.floats(0.5, 30.0)),
    st.tuples(st.just("pause"), st.floats(30.0, 5 * 3600.0)),
    st.tuples(st.just("outage"), st.floats(0.5, 600.0), st.integers(1, 64)),
    short_restart,
    short_restart,
    long_restart,
    long_restart,
)


@st.composite
def lives(draw: st.DrawFn) -> tuple[Mode, SensorModel]:
    mode: Mode = draw(st.sampled_from(["silent", "unknown", "denied", "told"]))
    seq0 = draw(st.one_of(st.integers(0, 65535), st.integers(65400, 65535)))
    clock0 = draw(st.one_of(st.integers(0, TS_MOD - 1), st.integers(TS_MOD - 60_000_000, TS_MOD)))
    clock0 += draw(st.sampled_from([0, 0, TS_MOD, 5 * TS_MOD]))  # uptime: hours, days
    ppm = draw(st.floats(-50, 50))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    s = SensorModel(seq0, clock0, ppm, rng)
    steps = draw(st.lists(st.tuples(between, run_ops()), max_size=4))
    runs = [draw(run_ops())] + [ops for _, ops in steps]
    longest = 0.0
    for k, ops in enumerate(runs):
        stops = k < len(steps) and steps[k][0][0] != "outage"
        # A sensor sends a partial packet only when it stops streaming.
        partial = draw(st.none() | st.integers(1, SPP - 1)) if stops else None
        s.stream(ops, last_partial=partial)
        if k == len(steps):
            break
        what, *args = steps[k][0]
        if what == "pause":
            s.pause(args[0], mode)
            longest = max(longest, args[0])
        elif what == "outage":
            s.outage(args[0], args[1], mode)
            longest = max(longest, args[0])
        else:
            ambiguous = s.restart(args[0], args[1], args[2], mode)
            # Without the sensor's word such a restart is a continuation as far as
            # sequence, clock and host time can tell; the BLE link has that word.
            assume(not ambiguous or mode == "told")
    s.longest_silence_s = longest
    return mode, s


def feed(
    s: SensorModel, sizes: Sequence[int], *, reconnects_first: bool
) -> tuple[hp.StreamReassembler, list[hp.StreamItem]]:
    r = hp.StreamReassembler(FMT)
    events = sorted(s.events, key=lambda e: (e[0], e[1]))
    if reconnects_first:  # told of every reconnection before any packet is pushed
        for t, _, what in events:
            if isinstance(what, tuple):
                r.reconnected(t, sensor_restarted=what[1])
    items: list[hp.StreamItem] = []
    batch: list[bytes] = []
    times: list[float] = []
    k = 0

    def push() -> None:
        nonlocal k
        if batch:
            items.extend(r.push_many(batch, times))
            batch.clear()
            times.clear()
            k += 1

    for t, _, what in events:
        if isinstance(what, tuple):
            push()
            if not reconnects_first:
                r.reconnected(t, sensor_restarted=what[1])
        else:
            assert isinstance(what, bytes)
            batch.append(what)
            times.append(t)
            if len(batch) >= sizes[k % len(sizes)]:
                push()
    push()
    return r, items + r.flush()


def delivered(items: list[hp.StreamItem]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    blocks = [i for i in items if isinstance(i, hp.SampleBlock)]
    acc = np.concatenate([b.acc_m_s2 for b in blocks if b.acc_m_s2 is not None])
    raw = np.round(acc / FMT.accel_lsb_m_s2).astype(np.int64)
    ids = raw[:, 0] + 30_000 * raw[:, 1]
    t = np.concatenate([b.t_sensor_us for b in blocks])
    th = np.concatenate([b.t_host_s for b in blocks])
    return ids, raw[:, 2], t, th


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
@given(lives(), st.lists(st.integers(1, 40), min_size=1, max_size=8), st.booleans())
def test_the_reassembler_delivers_what_the_model_says(
    life: tuple[Mode, SensorModel], sizes: list[int], reconnects_first: bool
) -> None:
    for feature in life[1].features:
        event(feature)
    check(life[1], sizes, reconnects_first=reconnects_first)


def check(s: SensorModel, sizes: Sequence[int], *, reconnects_first: bool) -> None:
    exp = s.expectations()
    r, items = feed(s, sizes, reconnects_first=reconnects_first)
    ids, epochs, t, th = delivered(items)

    # Every sample the host got in time, in order, once; nothing else.
    np.testing.assert_array_equal(ids, np.concatenate(exp.ids))
    # Gaps where the model has them, with the counts it has.
    got: list[tuple[int, str, int, int]] = []
    count = 0
    for item in items:
        if isinstance(item, hp.SampleBlock):
            count += item.count
        elif isinstance(item, hp.Gap):
            got.append((count, item.reason, item.lost_packets, item.lost_samples))
            assert item.duration_s > 0 and item.end_sensor_us > item.start_sensor_us
    assert [g[:3] for g in got] == [g[:3] for g in exp.gaps]
    for (_, reason, _, lost), (_, _, _, want) in zip(got, exp.gaps, strict=True):
        if reason == "loss":
            assert lost == want
        else:  # sized by arrival times, which jitter by up to 40 ms
            assert abs(lost - want) <= 5, (lost, want)
    # Time never runs backwards; within a stream it is the sensor's own clock.
    assert np.all(np.diff(t) > 0) and np.all(np.diff(th) > 0)
    clock = np.concatenate([np.arange(p.n) * P_US + p.clock_us for p in s.delivered])
    same = np.diff(epochs) == 0
    np.testing.assert_array_equal(np.diff(t)[same], np.diff(clock)[same])
    # Host times are the true ones, give or take jitter and clock drift over long pauses.
    # (The mapping is extrapolated over a silence of up to 20 minutes, with the drift.)
    err = np.abs(th - np.concatenate(exp.host_s))
    drift_s = 1e-4 * min(s.longest_silence_s, 1200.0)
    assert err.max() < 0.1 + drift_s, err.max()
    assert np.median(err) < 0.02 + drift_s, np.median(err)

    st_ = r.stats
    assert (st_.duplicates, st_.late, st_.restarts) == (exp.duplicates, exp.late, exp.restarts)
    assert st_.reordered == exp.reordered
    assert st_.lost_packets == sum(g[2] for g in exp.gaps)
    assert st_.lost_samples == sum(g[3] for g in got)
    assert (st_.rejected, st_.clock_steps, st_.malformed) == (0, 0, 0)
    assert st_.samples == len(ids) and st_.gaps == len(got)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(lives(), st.lists(st.integers(1, 25), min_size=1, max_size=8))
def test_chunks_and_when_reconnections_are_told_change_nothing(
    life: tuple[Mode, SensorModel], sizes: list[int]
) -> None:
    _mode, s = life
    whole_r, whole = feed(s, [1 << 30], reconnects_first=False)
    parts_r, parts = feed(s, sizes, reconnects_first=True)
    for a, b in zip(delivered(whole), delivered(parts), strict=True):
        np.testing.assert_array_equal(a, b)
    assert [i for i in whole if isinstance(i, hp.Gap)] == [
        i for i in parts if isinstance(i, hp.Gap)
    ]
    assert whole_r.stats == parts_r.stats
