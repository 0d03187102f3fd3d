"""The radio between sensor and host: loss, duplicates, reordering, disconnections.

Cuts the sampled stream into packets as firmware does and decides when each arrives.
"""

import itertools
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from hipsense.protocol import PayloadKind, max_samples_per_packet

from ._packetizer import Packetizer
from ._spec import LinkSpec

__all__ = ["Delivery", "transmit"]

F64Array = NDArray[np.float64]
# A BLE connection event comes every 7.5-30 ms; a packet waits for the next one.
_CONNECTION_INTERVAL_S = 0.015
# After a link loss the host needs a few seconds to find and reconnect to the sensor.
_RECONNECT_S = (1.5, 4.0)
# Reading the status, TIME_SYNC, subscribing and START_STREAMING before the backlog flows.
_RESUME_S = 0.3
# A sensor with packets queued sends several per connection event.
_REPLAY_PER_EVENT = 4


@dataclass(frozen=True, eq=False)
class Delivery:
    """What the host receives: packets in arrival order, and what never arrived."""

    packets: list[bytes]
    arrival_s: F64Array
    """Arrival of each packet on the true (host) time axis, non-decreasing."""
    received: NDArray[np.bool_]
    """Per sample: carried by a packet that arrived at least once."""
    gaps: list[dict[str, Any]]
    """Runs of samples that never arrived: first/last lost sample index, cause."""
    kind: PayloadKind
    sent: int
    """Packets the sensor sent (before loss, without duplicates)."""


def _gilbert_elliott(n: int, link: LinkSpec, rng: np.random.Generator) -> NDArray[np.bool_]:
    """Which of `n` packets are lost: a two-state chain whose bad state loses everything."""
    lost = np.zeros(n, dtype=bool)
    if link.loss_ratio <= 0 or n == 0:
        return lost
    leave_bad = 1.0 / link.burst_length
    # Stationary share of the bad state equals the asked loss ratio.
    enter_bad = min(1.0, link.loss_ratio * leave_bad / (1.0 - link.loss_ratio))
    u = rng.random(n)
    bad = rng.random() < link.loss_ratio
    for i in range(n):  # n is packets (tens per second), not samples
        bad = u[i] >= leave_bad if bad else u[i] < enter_bad
        lost[i] = bad
    return lost


def transmit(
    raw_counts: NDArray[np.int16],
    quat_q14: NDArray[np.int16] | None,
    sensor_time_us: NDArray[np.int64],
    true_s: F64Array,
    link: LinkSpec,
    rng: np.random.Generator,
) -> Delivery:
    """Send a sampled stream over a simulated link.

    The sensor fills packets to the ATT payload (MTU - 3). Its sequence counter and clock
    carry on through a disconnection. With a backlog (`link.backlog_s`, protocol 1.1) it
    goes on building packets and keeps the newest in a ring; after the reconnection the
    host asks for everything from the first packet it has not received, and the sensor
    sends what the ring still holds, back to back, before live packets. Without one it
    stops streaming, so the first packet after the reconnection continues the sequence
    at a later time. Lost packets follow a Gilbert-Elliott chain with mean burst
    `link.burst_length`.
    """
    n = raw_counts.shape[0]
    att = link.mtu - 3
    kind = PayloadKind.RAW
    if quat_q14 is not None:
        kind = PayloadKind.RAW_QUAT
        if max_samples_per_packet(kind, att) == 0:
            # The documented fallback: the sensor refuses RAW_QUAT, the host streams RAW.
            kind, quat_q14 = PayloadKind.RAW, None
    connected = np.ones(n, dtype=bool)
    outages: list[tuple[float, float]] = []
    for start_s, duration_s in link.disconnects:
        reconnect_s = rng.uniform(*_RECONNECT_S)
        outages.append((start_s, start_s + duration_s + reconnect_s))
        connected &= ~((true_s >= start_s) & (true_s < outages[-1][1]))
    period_us = int(np.median(np.diff(sensor_time_us))) if n > 1 else 10_000
    pz = Packetizer(kind=kind, att_payload=att, period_us=period_us)
    if link.backlog_s > 0:
        packets, ranges, tx, send_s, lost = _with_backlog(
            pz, raw_counts, quat_q14, sensor_time_us, true_s, connected, outages, link, rng
        )
    else:
        packets, ranges = _without_backlog(pz, raw_counts, quat_q14, sensor_time_us, connected)
        tx = np.arange(len(packets))
        lost = _gilbert_elliott(len(packets), link, rng)
        # Sent at the first connection event after the packet's last sample.
        send_s = np.array([true_s[r[1] - 1] for r in ranges]) if ranges else np.empty(0)
    sent = len(tx)
    arrival = send_s + rng.uniform(0.002, _CONNECTION_INTERVAL_S, sent)
    arrival = np.maximum.accumulate(arrival) if sent else arrival
    out_p: list[bytes] = []
    out_t: list[float] = []
    for i in np.flatnonzero(~lost):
        t = float(arrival[i])
        if rng.random() < link.reorder_ratio:
            # Held back in the host stack past the next one or two packets.
            t += rng.uniform(1.1, 2.5) * _CONNECTION_INTERVAL_S
        out_p.append(packets[tx[i]])
        out_t.append(t)
        if rng.random() < link.duplicate_ratio:
            out_p.append(packets[tx[i]])
            out_t.append(t + rng.uniform(0.0005, _CONNECTION_INTERVAL_S))
    order = np.argsort(np.asarray(out_t), kind="stable")
    received = np.zeros(n, dtype=bool)
    for i in np.flatnonzero(~lost):
        a, b = ranges[tx[i]]
        received[a:b] = True
    gaps = []
    # Runs of samples not received: where `received` turns False and back to True.
    edges = np.flatnonzero(np.diff(np.concatenate([[1], received.astype(np.int8), [1]])))
    for first, after in zip(edges[::2], edges[1::2], strict=True):
        cause = "disconnect" if not connected[first:after].all() else "loss"
        gaps.append({"first_sample": int(first), "last_sample": int(after - 1), "cause": cause})
    return Delivery(
        packets=[out_p[i] for i in order],
        arrival_s=np.asarray(out_t, dtype=np.float64)[order],
        received=received,
        gaps=gaps,
        kind=kind,
        sent=sent,
    )


def _without_backlog(
    pz: Packetizer,
    raw_counts: NDArray[np.int16],
    quat_q14: NDArray[np.int16] | None,
    sensor_time_us: NDArray[np.int64],
    connected: NDArray[np.bool_],
) -> tuple[list[bytes], list[tuple[int, int]]]:
    """Packets of the connected stretches only: the sensor stops while disconnected."""
    n = raw_counts.shape[0]
    step = pz.samples_per_packet
    packets: list[bytes] = []
    ranges: list[tuple[int, int]] = []
    edges = np.flatnonzero(np.diff(connected.astype(np.int8))) + 1
    bounds = np.concatenate([[0], edges, [n]]).astype(int)
    for a, b in itertools.pairwise(bounds.tolist()):
        if not connected[a]:
            continue
        stop = b if b == n else a + (b - a) // step * step  # a link loss cuts the last one
        if stop <= a:
            continue
        packets += pz.packets(
            raw_counts[a:stop],
            None if quat_q14 is None else quat_q14[a:stop],
            timestamps_us=sensor_time_us[a:stop],
        )
        ranges += [(s, min(s + step, stop)) for s in range(a, stop, step)]
    return packets, ranges


def _with_backlog(
    pz: Packetizer,
    raw_counts: NDArray[np.int16],
    quat_q14: NDArray[np.int16] | None,
    sensor_time_us: NDArray[np.int64],
    true_s: F64Array,
    connected: NDArray[np.bool_],
    outages: list[tuple[float, float]],
    link: LinkSpec,
    rng: np.random.Generator,
) -> tuple[list[bytes], list[tuple[int, int]], NDArray[np.intp], F64Array, NDArray[np.bool_]]:
    """Packets of the whole stream, and the transmissions that carry them.

    Returns packets, their sample ranges, and per transmission in sending order: the
    packet it carries, when it is sent and whether it is lost.
    """
    n = raw_counts.shape[0]
    step = pz.samples_per_packet
    packets = pz.packets(raw_counts, quat_q14, timestamps_us=sensor_time_us)
    ranges = [(s, min(s + step, n)) for s in range(0, n, step)]
    last = np.array([b - 1 for _, b in ranges], dtype=np.intp)
    ready, live = true_s[last], connected[last]
    rate_hz = 1e6 / pz.period_us
    capacity = max(1, int(link.backlog_s * rate_hz / step))
    tx: list[int] = np.flatnonzero(live).tolist()
    send: list[float] = ready[live].tolist()
    lost: list[bool] = _gilbert_elliott(len(tx), link, rng).tolist()
    for start_s, end_s in outages:
        built = np.flatnonzero(ready < end_s)
        if built.size == 0:
            continue
        # The host resumes from the packet after the last one it received before.
        got = [p for p, t, x in zip(tx, send, lost, strict=True) if t < start_s and not x]
        first = max(got[-1] + 1 if got else 0, int(built[-1]) - capacity + 1)
        replay = np.arange(first, int(built[-1]) + 1)
        t0 = end_s + _RESUME_S
        replay_s = t0 + np.arange(replay.size) * _CONNECTION_INTERVAL_S / _REPLAY_PER_EVENT
        done_s = float(replay_s[-1]) if replay.size else t0
        # Live packets wait until the backlog is out.
        send = [max(t, done_s) if t >= end_s else t for t in send]
        tx += replay.tolist()
        send += replay_s.tolist()
        lost += _gilbert_elliott(replay.size, link, rng).tolist()
    order = np.lexsort((np.arange(len(tx)), np.asarray(send)))
    return (
        packets,
        ranges,
        np.asarray(tx, dtype=np.intp)[order],
        np.asarray(send, dtype=np.float64)[order],
        np.asarray(lost, dtype=bool)[order],
    )
