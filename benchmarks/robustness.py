"""Robustness of the rep count: the real recordings, transformed, counted again.

    .venv/bin/python benchmarks/robustness.py [--subject s1|s2|both] [--quick] [--jobs N] [-v]
        [--only crop,noise,...]

The real thigh recordings of `_common.DATASETS` (u3; every `test.txt`, 30 executions, and
every `template_session.txt`, 9) are transformed in the ways a recording made by someone
else, elsewhere, would differ, and each variant goes through `analyze(rec, None)` (`auto`
mode, whole file) exactly as the recording itself would. A variant is exact when the core
counts as many reps as the variant holds executions. Every transform draws from its own
fixed seed (per recording, transform and variant), so a run is deterministic and
`--quick` runs a subset of the same variants.

- crop: the recording cut to start at 6 times drawn uniformly in its first 70 % (so
  some start mid-rep, some mid-set, some in a rest). The truth of a crop is the
  executions wholly inside it, those whose start is at or after the cut. The dataset
  does not delimit its executions, so their starts are taken from the core's own reps on
  the ORIGINAL, uncropped recording, and only when that recording counts exactly (30 or
  9); crops of recordings counted wrong are skipped, and how many is printed. Crops that
  start inside one of those reps are also scored on their own ("mid-rep start").
- no_opening: the still opening removed, the recording starting 0.2 s before the thigh
  first moves (gyro magnitude, less the median of the first second, above 15 deg/s,
  traced back to where it was below 3 deg/s): no still moment to calibrate on. Truth
  unchanged, as for every transform below. Printed with it: on how many recordings the
  cut falls before the first rep the core finds on the uncropped one, and at most how
  far after its start (the core's start may lead the motion by a sample or two).
- tempo x0.5, x0.75, x1.5, x2: done 0.5 to 2 times as slowly (time stretched, the
  movement's rates divided and the gyro's bias kept as recorded, and when slowed the
  accelerometer's linear part divided by the factor squared), resampled at 25 Hz with
  the gyro by its integral (`_common.resample`).
- gyro_bias: a constant bias of 1, 2 and 3 deg/s in a random direction (two each),
  plus a random walk of 0.02 deg/s/sqrt(s): another unit's gyro, not yet calibrated.
- turned: the unit turned on the thigh by a uniformly random rotation (three), the
  accelerometer and gyro turned alike.
- mirrored: the unit on the left leg, a reflection of the sensor frame (see `mirror`);
  a check that the mirrored signal is still one rigid body's is printed first.
- resampled 50, 100, 200 Hz: upsampled, the accelerometer linearly, the gyro by its
  integral.
- noise: white noise added to every sample, accelerometer 0.02 m/s^2 and gyro 0.5 deg/s
  rms, and four times that.

Prints the mirror check, then a table per transform (and per parameter): variants, share
counted exactly, the same share among the variants of recordings the core counts exactly
as recorded (`base%`: what the transform itself breaks), total count error (sum of
|counted - truth|, and the extra and missed reps), the executions they hold, crashes, and
the exact variants per subject; then the share of all variants counted
exactly and the worst transform. A crash of the core on a variant counts as not exact;
its exception type is printed. `-v` lists every variant not counted exactly.

Targets (issue: motion core, robustness): >= 95 % of all variants counted exactly;
>= 90 % on each transform.
"""

import argparse
import functools
import multiprocessing
import time
import zlib
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from _common import DATASET_RATE_HZ, DATASETS, load_dataset_file, resample
from hipsense.motion import analyze
from hipsense.recording import Recording

SEED = 2028
TEST_TRUTH = 30
"""Executions in every test.txt (the protocol)."""
TEMPLATE_TRUTH = 9
"""Executions in every template_session.txt (the protocol)."""

CROPS = 6
CROPS_QUICK = 2
CROP_WITHIN = 0.7
"""Crops start in the first 70 % of a recording: later ones hold too few executions."""

OPENING_STILL_S = 1.0
"""The first second's median gyro is the bias the motion detector subtracts."""
MOVING_DPS = 15.0
"""Moving: well above a still unit's noise and the bias left after subtracting that
median (a few deg/s), well below a rep's peak thigh rate (30 to 170 deg/s here)."""
STILL_DPS = 3.0
"""Still again, tracing a motion back to its start: above a still unit's noise (about
1 deg/s in magnitude here, with what is left of its bias), below a rep's rate once
under way."""
BEFORE_MOTION_S = 0.2
"""Kept before the first motion, so the cut does not fall inside the first rep."""

TEMPO_FACTORS = (0.5, 0.75, 1.5, 2.0)
BIASES_DPS = (1.0, 2.0, 3.0)
BIAS_DIRECTIONS = 2
BIAS_WALK_DPS_SQRT_S = 0.02
"""Ten times a MEMS gyro's bias instability (the simulator's default is 0.002)."""
TURNS = 3
RATES_HZ = (50.0, 100.0, 200.0)
NOISE_LEVELS = ((0.02, 0.5), (0.08, 2.0))
"""(accelerometer m/s^2, gyro deg/s) rms per sample. The first is above what the
dataset's own Xsens MTx shows at rest (about 0.3 deg/s at 25 Hz); the second is four
times that, a poor consumer IMU on a loose strap."""
NOISE_DRAWS = 2

MIRROR_ACC = np.array([1.0, -1.0, 1.0])
MIRROR_GYR = np.array([-1.0, 1.0, -1.0])
"""The reflection y -> -y of the sensor frame, M = diag(1, -1, 1), det M = -1.

Acceleration is a polar vector: a' = M a. Angular velocity is a pseudovector: under an
improper transform w' = det(M) M w = diag(-1, 1, -1) w. Then the mirrored signal obeys
the same rigid-body law as the recording: a fixed world vector g seen from the sensor
moves as dg/dt = -w x g, and since (M a) x (M b) = det(M) M (a x b), -w' x g' =
-det(M) (M w) x (M g) = -M (w x g) = d(M g)/dt. A left-leg unit is this mirror image
turned on the thigh (a real unit is right-handed), and `auto` mode must cope with any
turn, so one reflection stands for the left leg. `mirror_check` verifies the law on
the data; flipping y of both (the gyro treated as a polar vector) breaks it.
"""


@dataclass(frozen=True)
class Task:
    """One variant of one recording to count."""

    subject: str
    path: str
    family: str
    label: str
    k: int
    """Index of the variant within its transform, for its seed."""
    truth: int
    param: float = 0.0
    param2: float = 0.0
    mid_rep: bool = False
    orig_exact: bool = True
    """Whether the core counts the untransformed recording exactly."""


def recordings(subjects: list[str]) -> list[tuple[str, Path, int]]:
    """(subject, file, truth) of every recording of the subjects, in a fixed order."""
    out = []
    for s in subjects:
        root = DATASETS[s] / "data"
        out += [(s, f, TEST_TRUTH) for f in sorted(root.glob("e*/u3/test.txt"))]
        out += [(s, f, TEMPLATE_TRUTH) for f in sorted(root.glob("e*/u3/template_session.txt"))]
    return out


def name_of(subject: str, path: Path | str) -> str:
    """A short stable name: subject and path below data/."""
    return f"{subject}/{Path(path).relative_to(DATASETS[subject] / 'data')}"


@functools.lru_cache(maxsize=4)
def load(path: str) -> Recording:
    """One recording, read once per process (tasks of a recording follow each other)."""
    return load_dataset_file(Path(path))


def rng_for(subject: str, path: str, family: str, k: int) -> np.random.Generator:
    """The fixed random stream of one variant, independent of which others run."""
    key = zlib.crc32(f"{name_of(subject, path)}|{family}".encode())
    return np.random.default_rng([SEED, key, k])


def cut(rec: Recording, start_s: float) -> Recording:
    """The recording from `start_s` on, its time axis starting at 0 again."""
    i = int(np.searchsorted(rec.time_s, start_s))
    t = rec.time_s[i:] - rec.time_s[i]
    return Recording(t, rec.acc_m_s2[i:], rec.gyr_rad_s[i:], None, rec.metadata)


def first_motion_s(rec: Recording) -> float:
    """When the thigh first moves: a plain detector, independent of the motion core.

    The first sample whose rate (less the first second's median) passes MOVING_DPS,
    traced back to the last sample before it below STILL_DPS: a slow rep (subject 1
    rises at under 30 deg/s) passes 15 deg/s only some 0.3 s after it began.
    """
    still = rec.time_s < rec.time_s[0] + OPENING_STILL_S
    w_dps = np.degrees(np.linalg.norm(rec.gyr_rad_s - np.median(rec.gyr_rad_s[still], 0), axis=1))
    moving = np.flatnonzero(w_dps > MOVING_DPS)
    if not moving.size:
        return float(rec.time_s[0])
    quiet = np.flatnonzero(w_dps[: moving[0]] < STILL_DPS)
    return float(rec.time_s[quiet[-1] if quiet.size else 0])


def random_rotation(rng: np.random.Generator) -> np.ndarray:
    """A rotation matrix drawn uniformly: from a normalised Gaussian quaternion."""
    q = rng.standard_normal(4)
    w, x, y, z = q / np.linalg.norm(q)
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
            [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
            [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
        ]
    )


def mirror(rec: Recording) -> Recording:
    """The recording as if of the left leg: the sensor frame reflected (MIRROR_*)."""
    return Recording(
        rec.time_s, rec.acc_m_s2 * MIRROR_ACC, rec.gyr_rad_s * MIRROR_GYR, None, rec.metadata
    )


def transform(task: Task, rec: Recording) -> Recording:
    """The variant `task` describes."""
    rng = rng_for(task.subject, task.path, task.family, task.k)
    if task.family in ("crop", "no_opening"):
        return cut(rec, task.param)
    if task.family == "tempo":
        return resample(rec, DATASET_RATE_HZ, task.param)
    if task.family == "resampled":
        return resample(rec, task.param)
    if task.family == "turned":
        r = random_rotation(rng)
        return Recording(rec.time_s, rec.acc_m_s2 @ r.T, rec.gyr_rad_s @ r.T, None, rec.metadata)
    if task.family == "mirrored":
        return mirror(rec)
    n = rec.time_s.shape[0]
    if task.family == "gyro_bias":
        way = rng.standard_normal(3)
        dt_s = float(np.median(np.diff(rec.time_s)))
        walk_dps = np.cumsum(rng.normal(0.0, BIAS_WALK_DPS_SQRT_S * np.sqrt(dt_s), (n, 3)), 0)
        bias_dps = task.param * way / np.linalg.norm(way) + walk_dps
        return Recording(
            rec.time_s, rec.acc_m_s2, rec.gyr_rad_s + np.radians(bias_dps), None, rec.metadata
        )
    if task.family == "noise":
        acc = rec.acc_m_s2 + rng.normal(0.0, task.param, (n, 3))
        gyr = rec.gyr_rad_s + np.radians(rng.normal(0.0, task.param2, (n, 3)))
        return Recording(rec.time_s, acc, gyr, None, rec.metadata)
    raise ValueError(f"transform: unknown family {task.family!r}")


def count(task: Task) -> tuple[Task, int | None, str]:
    """Reps the core counts in one variant; None and the exception's type if it failed."""
    try:
        return task, len(analyze(transform(task, load(task.path)), None).reps), ""
    except Exception as e:  # a crash is a result here: counted as not exact
        return task, None, type(e).__name__


def original(item: tuple[str, str, int]) -> tuple[str, str, int, list[tuple[float, float]]]:
    """The core's reps on an uncropped recording: (start_s, end_s) of each."""
    subject, path, truth = item
    reps = analyze(load(path), None).reps
    return subject, path, truth, [(r.start_s, r.end_s) for r in reps]


def build_tasks(
    originals: list[tuple[str, str, int, list[tuple[float, float]]]], quick: bool
) -> tuple[list[Task], list[str]]:
    """Every variant of every recording; and the recordings whose crops are skipped."""
    tasks: list[Task] = []
    skipped: list[str] = []
    for subject, path, truth, spans in originals:
        rec = load(path)
        base = {"subject": subject, "path": path, "truth": truth, "orig_exact": len(spans) == truth}
        duration_s = float(rec.time_s[-1] - rec.time_s[0])
        if len(spans) == truth:
            for k in range(CROPS_QUICK if quick else CROPS):
                at = rng_for(subject, path, "crop", k).uniform(0.0, CROP_WITHIN * duration_s)
                start_s = float(rec.time_s[np.searchsorted(rec.time_s, at)])
                inside = sum(a >= start_s for a, _ in spans)
                mid = any(a < start_s < b for a, b in spans)
                crop = {"family": "crop", "label": "crop", "k": k, "param": start_s}
                tasks.append(Task(**base | crop | {"truth": inside, "mid_rep": mid}))
        else:
            skipped.append(f"{name_of(subject, path)} (counted {len(spans)}, truth {truth})")
        start_s = max(float(rec.time_s[0]), first_motion_s(rec) - BEFORE_MOTION_S)
        tasks.append(Task(**base, family="no_opening", label="no_opening", k=0, param=start_s))
        for k, f in enumerate(TEMPO_FACTORS):
            tasks.append(Task(**base, family="tempo", label=f"tempo x{f:g}", k=k, param=f))
        for i, b in enumerate(BIASES_DPS):
            for j in range(1 if quick else BIAS_DIRECTIONS):
                label = f"gyro_bias {b:g} deg/s"
                k = i * BIAS_DIRECTIONS + j
                tasks.append(Task(**base, family="gyro_bias", label=label, k=k, param=b))
        turns = range(1 if quick else TURNS)
        tasks += [Task(**base, family="turned", label="turned", k=k) for k in turns]
        tasks.append(Task(**base, family="mirrored", label="mirrored", k=0))
        for k, r in enumerate(RATES_HZ):
            tasks.append(
                Task(**base, family="resampled", label=f"resampled {r:g} Hz", k=k, param=r)
            )
        for i, (a, g) in enumerate(NOISE_LEVELS):
            for j in range(1 if quick else NOISE_DRAWS):
                label = f"noise {a:g} m/s^2, {g:g} deg/s"
                k = i * NOISE_DRAWS + j
                tasks.append(Task(**base, family="noise", label=label, k=k, param=a, param2=g))
    return tasks, skipped


def mirror_check(paths: list[str]) -> str:
    """How well the gyro predicts the gravity direction over 2 s of motion, three ways.

    From the accelerometer's direction at the start of a window, the gyro is integrated
    (dg/dt = -w x g) to the end and compared with the accelerometer's direction there.
    Windows: 2 s turning through more than 15 deg, nearly still (< 10 deg/s) at both ends
    so the accelerometer reads gravity. Same law, same error: the reflection is a rigid
    body's signal; the naive flip (the gyro as a polar vector) is not.
    """
    window_s, turn_deg, still_dps = 2.0, 15.0, 10.0  # see the docstring
    errors: dict[str, list[float]] = defaultdict(list)
    for path in paths:
        rec = load(path)
        n_win = round(window_s * DATASET_RATE_HZ)
        w_dps = np.degrees(np.linalg.norm(rec.gyr_rad_s, axis=1))
        dt_s = np.diff(rec.time_s)
        i = 0
        while i + n_win < len(rec.time_s):
            j = i + n_win
            swept = float(np.sum(w_dps[i:j] * dt_s[i:j]))
            if w_dps[i] < still_dps and w_dps[j] < still_dps and swept > turn_deg:
                for way, acc_sign, gyr_sign in (
                    ("as recorded", np.ones(3), np.ones(3)),
                    ("mirrored (acc y, gyro x and z negated)", MIRROR_ACC, MIRROR_GYR),
                    ("naive flip (acc y and gyro y negated)", MIRROR_ACC, MIRROR_ACC),
                ):
                    acc = rec.acc_m_s2[i : j + 1] * acc_sign
                    gyr = rec.gyr_rad_s[i : j + 1] * gyr_sign
                    g = acc[0] / np.linalg.norm(acc[0])
                    for k in range(n_win):
                        rot = -0.5 * (gyr[k] + gyr[k + 1]) * dt_s[i + k]
                        g = rodrigues(rot, g)
                    end = acc[-1] / np.linalg.norm(acc[-1])
                    errors[way].append(float(np.degrees(np.arccos(np.clip(g @ end, -1, 1)))))
                i = j
            else:
                i += 5  # 0.2 s steps: windows need not be aligned to anything
    n = len(next(iter(errors.values()), []))
    parts = [f"{way} {np.median(e):.1f} deg" for way, e in errors.items()]
    return f"mirror check, gravity from the gyro vs the accelerometer ({n} windows): " + (
        ", ".join(parts) if parts else "no window found"
    )


def rodrigues(rot: np.ndarray, v: np.ndarray) -> np.ndarray:
    """`v` turned by the rotation vector `rot` (rad)."""
    angle = float(np.linalg.norm(rot))
    if angle < 1e-12:  # no turn: avoid dividing by zero
        return v
    k = rot / angle
    c, s = np.cos(angle), np.sin(angle)
    return np.asarray(v * c + np.cross(k, v) * s + k * (k @ v) * (1 - c))


@dataclass
class Row:
    """Sums for one transform (or one of its parameters)."""

    n: int = 0
    exact: int = 0
    abs_err: int = 0
    extra: int = 0
    missed: int = 0
    executions: int = 0
    crashes: int = 0
    n_base: int = 0
    """Variants of recordings the core counts exactly untransformed."""
    exact_base: int = 0
    per_subject: dict[str, list[int]] | None = None

    def add(self, task: Task, got: int | None) -> None:
        """Fold one variant's count in."""
        if self.per_subject is None:
            self.per_subject = defaultdict(lambda: [0, 0])
        self.n += 1
        self.executions += task.truth
        self.per_subject[task.subject][1] += 1
        self.n_base += task.orig_exact
        if got is None:
            self.crashes += 1
            return
        self.exact += got == task.truth
        self.exact_base += task.orig_exact and got == task.truth
        self.per_subject[task.subject][0] += got == task.truth
        self.abs_err += abs(got - task.truth)
        self.extra += max(0, got - task.truth)
        self.missed += max(0, task.truth - got)

    def pct(self) -> float:
        """Share counted exactly, %."""
        return 100.0 * self.exact / self.n if self.n else float("nan")

    def base_pct(self) -> float:
        """Share counted exactly of the variants of recordings counted exactly, %."""
        return 100.0 * self.exact_base / self.n_base if self.n_base else float("nan")

    def line(self, name: str, subjects: list[str]) -> str:
        """One row of the table."""
        ps = self.per_subject or {}
        cells = " ".join(f"{ps.get(s, [0, 0])[0]:>3}/{ps.get(s, [0, 0])[1]:<3}" for s in subjects)
        return (
            f"{name:34} {self.n:5} {self.pct():7.1f} {self.base_pct():6.1f} {self.abs_err:5} "
            f"{f'+{self.extra}/-{self.missed}':>9} {self.executions:6} {self.crashes:5}  {cells}"
        )


def main() -> int:
    """Count every variant and print the table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--subject", choices=[*DATASETS, "both"], default="both")
    ap.add_argument("--quick", action="store_true", help="fewer crops and random variants")
    ap.add_argument("--jobs", type=int, default=min(2, multiprocessing.cpu_count()))
    ap.add_argument("-v", "--verbose", action="store_true", help="list every variant miscounted")
    ap.add_argument("--only", default="", help="comma-separated transforms to run (default all)")
    args = ap.parse_args()
    t0 = time.perf_counter()
    subjects = list(DATASETS) if args.subject == "both" else [args.subject]
    items = [(s, str(f), truth) for s, f, truth in recordings(subjects)]
    if not items:
        print("no recordings found")
        return 1
    print(mirror_check([p for _, p, truth in items if truth == TEST_TRUTH]))
    with multiprocessing.Pool(args.jobs) as pool:
        originals = pool.map(original, items, chunksize=1)
        tasks, skipped = build_tasks(originals, args.quick)
        if args.only:
            tasks = [t for t in tasks if t.family in args.only.split(",")]
        # Longest first (the 200 Hz variants), so the workers finish together.
        order = sorted(tasks, key=lambda t: -(t.param if t.family == "resampled" else 25.0))
        results = pool.map(count, order, chunksize=1)
    exact_orig = sum(len(spans) == truth for _, _, truth, spans in originals)
    print(
        f"{len(items)} recordings ({', '.join(subjects)}; u3, test and template sessions), "
        f"{exact_orig} counted exactly as recorded; {len(tasks)} variants"
        f"{' (quick)' if args.quick else ''}"
    )
    families: dict[str, Row] = defaultdict(Row)
    labels: dict[str, dict[str, Row]] = defaultdict(lambda: defaultdict(Row))
    first_k: dict[str, int] = {}
    """Sub-rows in the order of their parameters (tempo x0.5 first)."""
    total = Row()
    crash_types: Counter[str] = Counter()
    misses: list[str] = []
    for task, got, err in results:
        families[task.family].add(task, got)
        total.add(task, got)
        sub = task.label
        if task.family == "crop":
            sub = "mid-rep start" if task.mid_rep else "start between reps"
        labels[task.family][sub].add(task, got)
        first_k[sub] = min(first_k.get(sub, task.k), task.k)
        if err:
            crash_types[f"{task.label}: {err}"] += 1
        if got != task.truth:
            where = f" from {task.param:.1f} s" if task.family in ("crop", "no_opening") else ""
            misses.append(
                f"{name_of(task.subject, task.path):34} {task.label}{where} (variant {task.k}): "
                f"{'crashed, ' + err if got is None else f'counted {got}'}, truth {task.truth}"
            )
    print()
    print(
        f"{'transform':34} {'vars':>5} {'exact%':>7} {'base%':>6} {'|err|':>5} {'+ext/-mis':>9} "
        f"{'execs':>6} {'crash':>5}  exact per subject ({', '.join(subjects)})"
    )
    order_f = ["crop", "no_opening", "tempo", "gyro_bias", "turned", "mirrored"]
    order_f += ["resampled", "noise"]
    for fam in order_f:
        if fam not in families:
            continue
        print(families[fam].line(fam, subjects))
        if len(labels[fam]) > 1:
            for name, row in sorted(labels[fam].items(), key=lambda kv: first_k[kv[0]]):
                print(row.line("  " + name, subjects))
    print(total.line("all", subjects))
    if skipped:
        print(
            f"crop: {len(skipped)} of {len(items)} recordings skipped, "
            f"{len(skipped) * (CROPS_QUICK if args.quick else CROPS)} crops: their uncropped "
            f"count is wrong, so their executions' spans are not known: {'; '.join(skipped)}"
        )
    dropped = [t.param for t in tasks if t.family == "no_opening"]  # s cut off at the start
    first_s = {(sub, path): spans[0][0] for sub, path, _, spans in originals if spans}
    late_s = [
        t.param - first_s[(t.subject, t.path)]
        for t in tasks
        if t.family == "no_opening" and (t.subject, t.path) in first_s
    ]
    if dropped:
        print(
            f"no_opening: opening removed {np.min(dropped):.1f} to {np.max(dropped):.1f} s "
            f"(median {np.median(dropped):.1f} s); the cut before the uncropped recording's "
            f"first rep on {sum(d <= 0 for d in late_s)} of {len(late_s)}, at most "
            f"{max(late_s):+.2f} s after its start"
        )
    if crash_types:
        print("crashes: " + ", ".join(f"{k} x{v}" for k, v in sorted(crash_types.items())))
    else:
        print("crashes: none")
    print()
    worst = min(order_f, key=lambda f: families[f].pct() if f in families else 101.0)
    for s in subjects:
        ps = (total.per_subject or {}).get(s, [0, 0])
        print(f"{s}: {ps[0]} of {ps[1]} variants exact ({100 * ps[0] / max(1, ps[1]):.1f} %)")
    print(
        f"all variants: {total.pct():.1f} % exact (target >= 95 %), worst transform {worst} "
        f"{families[worst].pct():.1f} % (target >= 90 % each)"
    )
    if args.verbose:
        print()
        print("\n".join(sorted(misses)) if misses else "every variant counted exactly")
    print(f"({time.perf_counter() - t0:.0f} s, {args.jobs} jobs)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
