"""Samples per second through the whole motion core, on one core.

    .venv/bin/python benchmarks/throughput.py [--reps N] [--runs N]

A simulated clamshell session at 200 Hz (one set of `--reps` reps) goes through
`MotionCore` (orientation, calibration, angles, segmentation) four ways: raw 6-axis
whole-file and in 20-sample blocks, the sensor's quaternions whole-file and in 20-sample
blocks. Blocks shorter than `CoreSettings.batch_s` (0.25 s) wait in the core and go
through its stages together, as they would from a radio. It pins itself to one CPU (the
targets are per core).

Targets (issue: motion core): >= 1,000,000 samples/s raw whole-file; >= 200,000
samples/s raw in 20-sample blocks.

Each way runs `--runs` times; the figure is the fastest run (the code's own speed: a
shared machine only ever slows a run down), the median beside it.
"""

import argparse
import statistics
import time

from _common import pin_one_core
from hipsense.exercises import load_library
from hipsense.motion import MotionCore
from hipsense_sim import ImuSpec, ScenarioSpec, SetSpec, simulate


def main() -> int:
    """Print samples per second for each way of feeding the core."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=60)
    ap.add_argument("--runs", type=int, default=10)
    args = ap.parse_args()
    ex = load_library()["clamshell"]
    spec = ScenarioSpec(
        exercise="clamshell",
        seed=1,
        sets=[SetSpec(reps=args.reps)],
        imu=ImuSpec(rate_hz=200, quaternion=True),
    )
    rec = simulate(spec, ex).recording
    n = len(rec.time_s)
    print(f"{n} samples ({n / 200 / 60:.1f} min at 200 Hz), {pin_one_core()}")
    assert rec.quat is not None
    for kind in ("raw", "quaternion"):
        for block in (n, 20):
            times: list[float] = []
            reps = 0
            for _ in range(args.runs):
                core = MotionCore(200, ex)
                t0 = time.perf_counter()
                events = []
                for a in range(0, n, block):
                    b = a + block
                    if kind == "raw":
                        events += core.update(
                            rec.time_s[a:b],
                            gyr_rad_s=rec.gyr_rad_s[a:b],
                            acc_m_s2=rec.acc_m_s2[a:b],
                        )
                    else:
                        events += core.update(rec.time_s[a:b], quat=rec.quat[a:b])
                events += core.finish()
                times.append(time.perf_counter() - t0)
                reps = sum(1 for e in events if type(e).__name__ == "RepEvent")
            label = "whole file" if block == n else f"{block}-sample blocks"
            fastest, middle = min(times), statistics.median(times)
            print(
                f"{kind:10} {label:18} {n / fastest:12,.0f} samples/s"
                f"  (median {n / middle:,.0f}; {reps} reps)"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
