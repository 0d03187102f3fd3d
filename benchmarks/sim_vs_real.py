"""How close is the simulator to a real thigh IMU? One side-lying recording each, at 25 Hz.

    .venv/bin/python benchmarks/sim_vs_real.py [--dataset DIR] [--seed S]

Real: ../shared/datasets/uci_pt_s1/data/e4/u3/test.txt, side-lying straight-leg hip
abduction, Xsens MTx on the lateral thigh, first block of 10 correct executions (5 s hold).
Simulated: `side-lying-hip-abduction`, 10 reps at the library dosage, 25 Hz, with an
MTx-class sensor (gyro 0.05 deg/s/sqrt(Hz), accelerometer 0.002 m/s^2/sqrt(Hz),
40 Hz bandwidth).

Both go through the same plain measurement, independent of the motion core: the tilt of
the accelerometer from its resting direction (low-passed) gives the angle, reps are
stretches above the level half way
between resting and held tilt, and rest noise is the gyro's standard deviation
over the quietest 2 s windows.
"""

import argparse
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from _common import DATASET_DIR, load_dataset_file
from hipsense_sim import ImuSpec, ScenarioSpec, SetSpec, simulate

F64 = NDArray[np.float64]
RATE_HZ = 25.0


def _lowpass(x: F64, seconds: float) -> F64:
    k = max(1, round(seconds * RATE_HZ))
    kernel = np.ones(k) / k
    return np.stack([np.convolve(x[:, i], kernel, mode="same") for i in range(x.shape[1])], 1)


def _rest_windows(gyr: F64, window_s: float = 2.0) -> F64:
    """Per-axis gyro std (deg/s) over each non-overlapping window."""
    k = round(window_s * RATE_HZ)
    m = gyr.shape[0] // k
    w = np.rad2deg(gyr[: m * k]).reshape(m, k, 3)
    return np.asarray(w.std(axis=1), dtype=np.float64)


def measure(acc: F64, gyr: F64, reps_wanted: int) -> dict[str, float]:
    """Rest noise, ROM, rep duration and hold from raw accelerometer and gyroscope."""
    stds = _rest_windows(gyr)
    quiet = stds[np.argsort(stds.mean(axis=1))[: max(3, len(stds) // 10)]]
    a = _lowpass(acc, 0.2)
    rest = np.median(a[: round(2 * RATE_HZ)], axis=0)
    cosang = (a @ rest) / (np.linalg.norm(a, axis=1) * np.linalg.norm(rest))
    tilt = np.rad2deg(np.arccos(np.clip(cosang, -1, 1)))
    # Half way between the resting and the held level, per recording.
    low, high = np.percentile(tilt, 10), np.percentile(tilt, 90)
    above = tilt > (low + high) / 2
    edges = np.flatnonzero(np.diff(np.concatenate([[0], above.astype(np.int8), [0]])))
    reps = [(s, e) for s, e in zip(edges[::2], edges[1::2], strict=True) if e - s > RATE_HZ]
    reps = reps[:reps_wanted]
    rom = np.array([tilt[s:e].max() - low for s, e in reps])
    width = np.array([(e - s) / RATE_HZ for s, e in reps])
    cycle = np.diff([s for s, _ in reps]) / RATE_HZ
    hold = [np.count_nonzero(tilt[s:e] > tilt[s:e].max() - 5.0) / RATE_HZ for s, e in reps]
    peak_w = [np.rad2deg(np.linalg.norm(gyr[s:e], axis=1)).max() for s, e in reps]
    return {
        "reps found": float(len(reps)),
        "gyro std at rest, deg/s": float(quiet.mean()),
        "gyro bias at rest, deg/s": float(np.rad2deg(np.abs(np.median(gyr, axis=0))).mean()),
        "acc |a| at rest, m/s^2": float(np.linalg.norm(acc[: round(2 * RATE_HZ)], axis=1).mean()),
        "ROM mean, deg": float(rom.mean()),
        "ROM sd, deg": float(rom.std()),
        "rep width at half range, s": float(width.mean()),
        "rep width sd, s": float(width.std()),
        "rep cycle (start to start), s": float(np.median(cycle)),
        "time within 5 deg of peak, s": float(np.mean(hold)),
        "peak angular speed, deg/s": float(np.mean(peak_w)),
    }


def real(dataset: Path) -> tuple[F64, F64]:
    """The real side-lying recording's raw accelerometer and gyroscope."""
    rec = load_dataset_file(dataset / "data" / "e4" / "u3" / "test.txt")
    return rec.acc_m_s2, rec.gyr_rad_s


def simulated(seed: int) -> tuple[F64, F64]:
    """Ten simulated side-lying abduction reps at 25 Hz with an MTx-class sensor."""
    spec = ScenarioSpec(
        name="sim-vs-real",
        exercise="side-lying-hip-abduction",
        seed=seed,
        sets=[SetSpec(reps=10)],
        imu=ImuSpec(
            rate_hz=25,
            accel_range_g=8,
            gyro_range_dps=1000,
            gyro_noise_dps_sqrt_hz=0.05,
            accel_noise_ug_sqrt_hz=200.0,
            noise_bandwidth_hz=40.0,
            gyro_bias_dps=0.5,
        ),
    )
    rec = simulate(spec).recording
    return rec.acc_m_s2, rec.gyr_rad_s


def _trace(acc: F64, label: str, seconds: float = 40.0) -> str:
    a = _lowpass(acc, 0.2)
    rest = np.median(a[: round(2 * RATE_HZ)], axis=0)
    cosang = (a @ rest) / (np.linalg.norm(a, axis=1) * np.linalg.norm(rest))
    tilt = np.rad2deg(np.arccos(np.clip(cosang, -1, 1)))
    start = int(np.argmax(tilt > 10)) - round(2 * RATE_HZ)
    seg = tilt[max(0, start) : max(0, start) + round(seconds * RATE_HZ)]
    bars = " .:-=+*#%@"
    cols = seg[: len(seg) // 10 * 10].reshape(-1, 10).max(axis=1)
    line = "".join(bars[min(9, int(v / 60 * 9.99))] for v in cols)
    return f"{label:>5} |{line}|  (0.4 s per column, ' '=0 deg .. '@'>=60 deg)"


def main() -> int:
    """Print the comparison table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", type=Path, default=DATASET_DIR)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    if not (args.dataset / "data").is_dir():
        print(f"no dataset at {args.dataset}")
        return 1
    r_acc, r_gyr = real(args.dataset)
    # The first block: up to the first long idle period after 10 executions.
    first_block = slice(0, round(0.36 * len(r_acc)))
    s_acc, s_gyr = simulated(args.seed)
    rows = [measure(r_acc[first_block], r_gyr[first_block], 10), measure(s_acc, s_gyr, 10)]
    print(f"{'side-lying abduction, 25 Hz':34} {'real (MTx)':>11} {'simulated':>11}")
    for key in rows[0]:
        print(f"{key:34} {rows[0][key]:11.3f} {rows[1][key]:11.3f}")
    print()
    print(_trace(r_acc, "real"))
    print(_trace(s_acc, "sim"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
