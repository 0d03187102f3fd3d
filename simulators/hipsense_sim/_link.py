"""The radio between sensor and host: loss, duplicates, reordering, disconnections.

Cuts the sampled stream into packets as firmware does and decides when each arrives.
"""

import itertools
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from hipsense.motion._filters import true_runs
from hipsense.protocol import PayloadKind, max_samples_per_packet

from ._packetizer import Packetizer
from ._spec import LinkSpec

__all__ = ["Delivery", "transmit"]

F64Array = NDArray[np.float64]
# A BLE connection event comes every 7.5-30 ms; a packet waits for the next one.
_CONNECTION_INTERVAL_S = 0.015
# After a link loss the host needs a few seconds to find and reconnect to the sensor.
_RECONNECT_S = (1.5, 4.0)


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

    The sensor fills packets to the ATT payload (MTU - 3). While disconnected it does not
    stream; its sequence counter and clock carry on (the protocol's rule), so the first
    packet after a reconnection continues the sequence at a later time. Lost packets
    follow a Gilbert-Elliott chain with mean burst `link.burst_length`.
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
    for start_s, duration_s in link.disconnects:
        reconnect_s = rng.uniform(*_RECONNECT_S)
        connected &= ~((true_s >= start_s) & (true_s < start_s + duration_s + reconnect_s))
    period_us = int(np.median(np.diff(sensor_time_us))) if n > 1 else 10_000
    pz = Packetizer(kind=kind, att_payload=att, period_us=period_us)
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
    sent = len(packets)
    lost = _gilbert_elliott(sent, link, rng)
    # Sent at the first connection event after the packet's last sample.
    ready = np.array([true_s[r[1] - 1] for r in ranges]) if ranges else np.empty(0)
    arrival = ready + rng.uniform(0.002, _CONNECTION_INTERVAL_S, sent)
    arrival = np.maximum.accumulate(arrival) if sent else arrival
    out_p: list[bytes] = []
    out_t: list[float] = []
    for i in np.flatnonzero(~lost):
        t = float(arrival[i])
        if rng.random() < link.reorder_ratio:
            # Held back in the host stack past the next one or two packets.
            t += rng.uniform(1.1, 2.5) * _CONNECTION_INTERVAL_S
        out_p.append(packets[i])
        out_t.append(t)
        if rng.random() < link.duplicate_ratio:
            out_p.append(packets[i])
            out_t.append(t + rng.uniform(0.0005, _CONNECTION_INTERVAL_S))
    order = np.argsort(np.asarray(out_t), kind="stable")
    received = np.zeros(n, dtype=bool)
    for i in np.flatnonzero(~lost):
        received[ranges[i][0] : ranges[i][1]] = True
    gaps = []
    for first, after in zip(*true_runs(~received), strict=True):
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
