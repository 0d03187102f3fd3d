"""A plain offline rep counter beside the motion core, on the robustness variants.

    .venv/bin/python benchmarks/plain_counter.py [--jobs N] [--prominence P]

The yardstick the motion core issue names: the accelerometer's tilt from the most common
still pose, and `scipy.signal.find_peaks` with a prominence relative to the recording's
own range. It sees the whole recording at once (offline, both directions), knows nothing
of exercises, and has four constants:

- a 1.5 Hz low-pass (forward and back) on the accelerometer: a thigh's voluntary
  movement has nothing above a few hertz, its kicks and tremor do;
- still: the gyro's speed (less its median) under 10 deg/s over 1 s;
- neutral: the still sample with the most still samples within 3 deg of it;
- a peak: prominence `--prominence` (0.3) of the tilt's 2nd-98th percentile range, peaks
  at least 0.5 s apart. 0.3 was chosen on subject 1 as recorded (0.2: 4 of 8 exact,
  0.3: 6 of 8, 0.4: 2 of 8); subject 2 as recorded then counts 6 of 8.

Both it and the core (`analyze(rec, None)`, as `robustness.py` runs it) count every
recording and every variant of `robustness.py` (the same seeds, the same truths); the
table gives the share counted exactly per transform, side by side. No target: it says
whether the core does better than the simplest thing that could work.
"""

import argparse
import multiprocessing
import time
from collections import defaultdict

import numpy as np
from scipy.ndimage import uniform_filter1d
from scipy.signal import butter, filtfilt, find_peaks

from hipsense.motion import analyze
from hipsense.recording import Recording
from robustness import DATASETS, Task, build_tasks, load, original, recordings, transform

LOWPASS_HZ = 1.5
STILL_DPS = 10.0
STILL_WINDOW_S = 1.0
NEUTRAL_RADIUS_DEG = 3.0
PEAK_GAP_S = 0.5
SPAN_PCT = (2.0, 98.0)
NEUTRAL_SAMPLES = 2000
"""The most common still pose is looked for among at most this many still samples."""


def plain_count(rec: Recording, prominence: float) -> int:
    """Reps by the plain offline counter: peaks of the tilt from the most common rest."""
    rate = 1.0 / float(np.median(np.diff(rec.time_s)))
    b, a = butter(2, LOWPASS_HZ / (rate / 2))
    acc = filtfilt(b, a, rec.acc_m_s2, axis=0)
    up = acc / np.linalg.norm(acc, axis=1, keepdims=True)
    rates = rec.gyr_rad_s - np.median(rec.gyr_rad_s, axis=0)
    speed = uniform_filter1d(np.degrees(np.linalg.norm(rates, axis=1)), max(1, round(rate)))
    still = speed < STILL_DPS
    if not still.any():
        still[:] = True
    pool = up[still][:: max(1, int(still.sum()) // NEUTRAL_SAMPLES)]
    near = (pool @ pool.T) > np.cos(np.radians(NEUTRAL_RADIUS_DEG))
    neutral = pool[int(near.sum(axis=1).argmax())]
    tilt = np.degrees(np.arccos(np.clip(up @ neutral, -1.0, 1.0)))
    lo, hi = np.percentile(tilt, SPAN_PCT)
    gap = max(1, round(PEAK_GAP_S * rate))
    peaks, _ = find_peaks(tilt, prominence=prominence * (hi - lo), distance=gap)
    return int(peaks.shape[0])


def count_both(job: tuple[Task, float]) -> tuple[Task, int, int]:
    """One variant counted by the plain counter and by the core."""
    task, prominence = job
    rec = transform(task, load(task.path))
    return task, plain_count(rec, prominence), len(analyze(rec, None).reps)


def main() -> int:
    """Count every variant both ways and print the table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=min(2, multiprocessing.cpu_count()))
    ap.add_argument("--prominence", type=float, default=0.3)
    args = ap.parse_args()
    t0 = time.perf_counter()
    items = [(s, str(f), truth) for s, f, truth in recordings(list(DATASETS))]
    if not items:
        print("no recordings found")
        return 1
    with multiprocessing.Pool(args.jobs) as pool:
        originals = pool.map(original, items, chunksize=1)
        tasks, _ = build_tasks(originals, quick=False)
        results = pool.map(count_both, [(t, args.prominence) for t in tasks], chunksize=1)
    print("as recorded (exact of 8 per subject):")
    for subject in DATASETS:
        mine = [(p, truth) for s, p, truth in items if s == subject]
        plain = sum(plain_count(load(p), args.prominence) == truth for p, truth in mine)
        core = sum(len(spans) == truth for s, _, truth, spans in originals if s == subject)
        print(f"  {subject}: plain counter {plain}/{len(mine)}, motion core {core}/{len(mine)}")
    rows: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    for task, plain, core in results:
        for key in (task.family, "all"):
            r = rows[key]
            r[0] += 1
            r[1] += plain == task.truth
            r[2] += core == task.truth
    print(f"\n{'transform':14} {'vars':>5} {'plain%':>7} {'core%':>7}")
    for key, (n, plain, core) in rows.items():
        if key != "all":
            print(f"{key:14} {n:5d} {100 * plain / n:7.1f} {100 * core / n:7.1f}")
    n, plain, core = rows["all"]
    print(f"{'all':14} {n:5d} {100 * plain / n:7.1f} {100 * core / n:7.1f}")
    print(f"({time.perf_counter() - t0:.0f} s, {args.jobs} jobs)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
