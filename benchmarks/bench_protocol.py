"""Decoded samples per second for a stream of MTU-247 packets, on one core.

    .venv/bin/python benchmarks/bench_protocol.py [--packets N]

Target (issue: foundation): at least 1,000,000 samples/s. Prints one line per way of
decoding: packet by packet (`decode`), drained notification queues of 64 packets
(`decode_many`), and the whole reassembly path (`StreamReassembler.push_many`).
"""

import argparse
import time
from collections.abc import Callable

import numpy as np

import hipsense.protocol as hp
from _common import pin_one_core
from hipsense_sim import Packetizer


def _best_of(runs: int, fn: Callable[[], int]) -> tuple[float, int]:
    best = float("inf")
    n = 0
    for _ in range(runs):
        t0 = time.perf_counter()
        n = fn()
        best = min(best, time.perf_counter() - t0)
    return best, n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packets", type=int, default=50_000)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    where = pin_one_core()

    fmt = hp.StreamFormat(rate_hz=200, accel_range_g=8, gyro_range_dps=1000)
    rng = np.random.default_rng(0)
    results = []
    b = args.batch
    for mtu, att in ((247, hp.MAX_ATT_PAYLOAD), (23, hp.DEFAULT_ATT_PAYLOAD)):
        pz = Packetizer(att_payload=att, period_us=fmt.period_us)
        n_samples = args.packets * pz.samples_per_packet
        raw = rng.integers(-20000, 20000, size=(n_samples, 6)).astype(np.int16)
        packets = pz.packets(raw)
        arrivals = np.arange(len(packets)) * pz.samples_per_packet / fmt.rate_hz + 0.02

        def per_packet(packets: list[bytes] = packets) -> int:
            return sum(hp.decode(p, fmt).count for p in packets)

        def batched(packets: list[bytes] = packets) -> int:
            return sum(
                hp.decode_many(packets[i : i + b], fmt).sample_count
                for i in range(0, len(packets), b)
            )

        def whole(packets: list[bytes] = packets) -> int:
            return hp.decode_many(packets, fmt).sample_count

        def reassembled(packets: list[bytes] = packets, arrivals: np.ndarray = arrivals) -> int:
            r = hp.StreamReassembler(fmt)
            for i in range(0, len(packets), b):
                r.push_many(packets[i : i + b], arrivals[i : i + b])
            r.flush()
            return r.stats.samples

        for name, fn in (
            ("decode, packet by packet", per_packet),
            (f"decode_many, batches of {b}", batched),
            ("decode_many, whole stream", whole),
            (f"reassembler, batches of {b}", reassembled),
        ):
            secs, n = _best_of(args.runs, fn)
            assert n == n_samples, (name, n, n_samples)
            results.append((mtu, name, n / secs, len(packets) / secs))

    print(f"bench_protocol: {args.packets} packets per MTU, best of {args.runs}, {where}")
    print(f"{'MTU':>4}  {'path':<30} {'samples/s':>14} {'packets/s':>12}")
    for mtu, name, sps, pps in results:
        print(f"{mtu:>4}  {name:<30} {sps:>14,.0f} {pps:>12,.0f}")
    target = next(
        sps
        for mtu, name, sps, _ in results
        if mtu == 247 and "batches" in name and name.startswith("decode_many")
    )
    verdict = "met" if target >= 1_000_000 else "NOT met"
    print(
        f"target >= 1,000,000 samples/s at MTU 247 (decode_many, batches): "
        f"{target:,.0f} -> {verdict}"
    )


if __name__ == "__main__":
    main()
