"""The motion core on real thigh-IMU recordings (../shared/datasets, raw, 25 Hz).

    .venv/bin/python benchmarks/real_recordings.py [--subject s1|s2|both] [--no-variants]
                                                   [--dataset DIR]

Two subjects of the same dataset (`_common.DATASETS`: uci_pt_s1 and uci_pt_s2), each
run on its own, in turn (`--subject` picks one; `--dataset DIR` runs one folder instead).

Every `test.txt` of the thigh unit (u3) has 30 executions: 10 correct with a 5 s hold,
10 too fast, 10 with low amplitude, in three blocks. The core runs in `auto` mode (these
straight-leg exercises are not in our library, and nothing here is tuned to them) and
the script prints, per recording: reps counted, mean hold of the first block, share of
second-block reps flagged too fast or without a hold (shorter than 2 s), and share of
third-block reps whose range is well below (< 75 % of) the first block's median.
Blocks are the core's own sets when it finds three, else reps 1-10, 11-20, 21-30.
Then, per subject, how many of the 20 too-fast and low-amplitude executions of every
recording were told apart, together: per block at most 10 count, out of the protocol's
10, so a rep the core did not count is one not told apart.

The short `template_session.txt` recordings (9 executions, 3 of each type, done with
less rest between them) are run the same way and their counts printed after. The
dataset's authors marked one execution of each type in them by hand
(`template_times.txt`): the reps that overlap them most are printed against the marks,
start and end, with their phases. No target; it is the one reference for where real reps
begin and end, and it shows how long the subject held (a correct execution marked 5.6 s
from start to end cannot hold for 5 s).

Then (unless `--no-variants`), as other people would do the same protocol: each
`test.txt` played faster and slower (time scaled by 0.7 to 1.5, rates by the inverse,
resampled at 25 Hz), each with the unit as worn and turned on the thigh by a random
rotation (the same 30 executions; only the tempo, the rests and the strap differ). It
prints the reps counted per variant; no target, a figure of how much the count depends on
one subject's tempo.

Last, each `test.txt` with a constant gyro bias added (0.5, 1 and 2 deg/s, each in four
random directions): another unit's gyro, not yet calibrated. No target either.

It ends with a summary of each subject: recordings counted exactly (test and template),
the share told apart, the mean first-block hold, and the variants counted exactly.

Targets (issue: motion core): 30 on every recording; first-block hold 5 +- 0.5 s;
>= 90 % of the too-fast and low-amplitude reps told apart.
"""

import argparse
import time
from pathlib import Path

import numpy as np

from _common import DATASET_RATE_HZ, DATASETS, load_dataset_file, overlap, resample
from hipsense._quat import rotate
from hipsense.motion import Flag, RepEvent, analyze
from hipsense.recording import Recording


def blocks(reps: list[RepEvent]) -> list[list[RepEvent]]:
    """Three blocks of reps: by the core's sets when there are three, else by order."""
    by_set: dict[int, list[RepEvent]] = {}
    for r in reps:
        by_set.setdefault(r.set_index, []).append(r)
    if len(by_set) == 3:
        return [by_set[k] for k in sorted(by_set)]
    return [reps[0:10], reps[10:20], reps[20:30]]


TEMPO_FACTORS = (0.7, 0.85, 1.0, 1.2, 1.5)
BIASES_DPS = (0.5, 1.0, 2.0)


def template_times(session: Path) -> list[tuple[int, float, float]]:
    """The executions the dataset's authors marked by hand in a template session.

    `template_times.txt` (next to the unit folders): execution type (1 correct, 2 too
    fast, 3 low amplitude), start and end as time indices (n -> (n - 1) / 25 s).
    """
    path = session.parents[1] / "template_times.txt"
    if not path.exists():
        return []
    rows = np.loadtxt(path, delimiter=";", skiprows=1, ndmin=2)
    return [(int(k), (a - 1) / DATASET_RATE_HZ, (b - 1) / DATASET_RATE_HZ) for k, a, b in rows]


def match(reps: list[RepEvent], start_s: float, end_s: float) -> RepEvent | None:
    """The rep that overlaps the marked execution most, if any does."""
    best, most = None, 0.0
    for r in reps:
        shared = overlap(start_s, end_s, r.start_s, r.end_s)
        if shared > most:
            best, most = r, shared
    return best


def print_templates(marked: list[tuple[str, int, float, float, RepEvent | None]]) -> None:
    """Our reps against the executions the authors marked: start and end, and phases."""
    kinds = {1: "correct", 2: "too fast", 3: "low amplitude"}
    print("the executions the dataset's authors marked by hand (template_times.txt), and ours")
    print(
        f"{'recording':32} {'execution':13} {'marked_s':>13} {'ours_s':>13} "
        f"{'d_start':>7} {'d_end':>6} {'up_s':>5} {'hold_s':>6} {'down_s':>6}"
    )
    errors: list[float] = []
    for name, kind, a, b, r in marked:
        head = f"{name:32} {kinds.get(kind, str(kind)):13} {a:6.1f}-{b:6.1f}"
        if r is None:
            print(f"{head} {'none':>13}")
            continue
        errors += [abs(r.start_s - a), abs(r.end_s - b)]
        print(
            f"{head} {r.start_s:6.1f}-{r.end_s:6.1f} {r.start_s - a:+7.2f} {r.end_s - b:+6.2f} "
            f"{r.concentric_s:5.2f} {r.hold_s:6.2f} {r.eccentric_s:6.2f}"
        )
    if errors:
        print(
            f"start and end against the marks ({len(errors) // 2} executions): |error| median "
            f"{np.median(errors):.2f} s, mean {np.mean(errors):.2f} s, largest "
            f"{np.max(errors):.2f} s"
        )
        print(
            "(a correct execution marked shorter than its way up and down plus 5 s was held "
            "for less than the protocol's 5 s)"
        )


def variant(rec: Recording, factor: float, turn: np.ndarray) -> Recording:
    """`rec` done `factor` times as slowly, with the unit turned by the quaternion `turn`.

    Resampled at 25 Hz by `_common.resample` (the gyro by its integral, so every variant
    turns through the same angles as the recording). Factor 1 is the recording itself,
    turned.
    """
    turned = Recording(
        rec.time_s, rotate(turn, rec.acc_m_s2), rotate(turn, rec.gyr_rad_s), None, rec.metadata
    )
    if factor == 1.0:
        return turned
    return resample(turned, DATASET_RATE_HZ, factor)


def random_turn(rng: np.random.Generator) -> np.ndarray:
    """A rotation drawn uniformly: a normalised Gaussian quaternion."""
    q = rng.standard_normal(4)
    return np.asarray(q / np.linalg.norm(q))


TEST_TRUTH = 30
"""Executions in every test.txt (the protocol)."""
TEMPLATE_TRUTH = 9
"""Executions in every template_session.txt (the protocol)."""
BLOCK_TRUTH = 10
"""Executions per block of a test.txt (the protocol)."""
NO_HOLD_S = 2.0
"""Shorter than this at the top is no hold: the protocol's hold is 5 s."""
LOW_ROM_SHARE = 0.75
"""A range below this share of the first block's median is low amplitude."""


def run_subject(label: str, dataset: Path, variants: bool) -> list[str]:
    """Print every table of one subject; return its summary lines."""
    files = sorted(dataset.glob("data/e*/u3/test.txt"))
    print(f"=== subject {label}: {dataset}")
    if not files:
        print(f"no recordings under {dataset}")
        return [f"{label}: no recordings"]
    print(f"{'recording':24} {'reps':>4} {'hold1_s':>7} {'fast2%':>6} {'low3%':>6}  sets")
    test_exact = 0
    told_fast = told_low = 0
    holds1: list[float] = []
    for f in files:
        res = analyze(load_dataset_file(f), None)
        test_exact += len(res.reps) == TEST_TRUTH
        b1, b2, b3 = blocks(res.reps)
        hold1 = float(np.mean([r.hold_s for r in b1])) if b1 else float("nan")
        holds1.append(hold1)
        fast = [Flag.TOO_FAST in r.flags or r.hold_s < NO_HOLD_S for r in b2]
        ref = float(np.median([r.rom_deg for r in b1])) if b1 else float("nan")
        low = [r.rom_deg < LOW_ROM_SHARE * ref for r in b3]
        told_fast += min(BLOCK_TRUTH, sum(fast))
        told_low += min(BLOCK_TRUTH, sum(low))
        name = str(f.relative_to(dataset / "data"))
        print(
            f"{name:24} {len(res.reps):4} {hold1:7.2f} {100 * np.mean(fast) if fast else 0:6.1f} "
            f"{100 * np.mean(low) if low else 0:6.1f}  {[s.reps for s in res.sets]}"
        )
    each = BLOCK_TRUTH * len(files)
    told = told_fast + told_low
    told_line = (
        f"{label}: told apart {told_fast}/{each} too fast, {told_low}/{each} low amplitude, "
        f"together {told}/{2 * each} ({100 * told / (2 * each):.1f} %, target >= 90 %)"
    )
    print(told_line)
    print()
    print(f"{'recording':32} {'reps':>4}  (truth 9: 3 correct, 3 too fast, 3 low amplitude)")
    marked: list[tuple[str, int, float, float, RepEvent | None]] = []
    templates = sorted(dataset.glob("data/e*/u3/template_session.txt"))
    template_exact = 0
    for f in templates:
        res = analyze(load_dataset_file(f), None)
        template_exact += len(res.reps) == TEMPLATE_TRUTH
        name = str(f.relative_to(dataset / "data"))
        print(f"{name:32} {len(res.reps):4}  ranges {[round(r.rom_deg, 1) for r in res.reps]}")
        marked += [(name, *m, match(res.reps, *m[1:])) for m in template_times(f)]
    print()
    print_templates(marked)
    summary = [
        f"{label}: test exact {test_exact}/{len(files)}, "
        f"template exact {template_exact}/{len(templates)}",
        told_line,
        f"{label}: first-block hold, mean over recordings {np.nanmean(holds1):.2f} s "
        f"(per recording {', '.join(f'{h:.2f}' for h in holds1)}; target 5 +- 0.5 s)",
    ]
    if variants:
        summary += run_variants(label, dataset, files)
    print()
    return summary


def run_variants(label: str, dataset: Path, files: list[Path]) -> list[str]:
    """Print the tempo/turned and gyro-bias tables of one subject; return summaries."""
    print()
    print("reps counted (truth 30) with the tempo scaled; 'turned': the unit turned on the thigh")
    print(f"{'recording':24} " + " ".join(f"{f:>5}x {'turned':>6}" for f in TEMPO_FACTORS))
    rng = np.random.default_rng(2026)
    errors: list[int] = []
    for f in files:
        rec = load_dataset_file(f)
        cells = []
        for factor in TEMPO_FACTORS:
            for turn in (np.array([1.0, 0.0, 0.0, 0.0]), random_turn(rng)):
                n = len(analyze(variant(rec, factor, turn), None).reps)
                cells.append(n)
                errors.append(abs(n - TEST_TRUTH))
        name = str(f.relative_to(dataset / "data"))
        print(f"{name:24} " + " ".join(f"{n:6}" for n in cells))
    tempo_line = f"{label}: tempo/turned variants: {report(errors)}"
    print(tempo_line)
    print()
    print("reps counted (truth 30) with a gyro bias added (deg/s, four random directions each)")
    print(f"{'recording':24} " + " ".join(f"{b:>5}" for b in BIASES_DPS for _ in range(4)))
    rng = np.random.default_rng(2027)
    errors = []
    for f in files:
        rec = load_dataset_file(f)
        cells = []
        for bias in BIASES_DPS:
            for _ in range(4):
                way = rng.standard_normal(3)
                gyr = rec.gyr_rad_s + np.radians(bias) * way / np.linalg.norm(way)
                biased = Recording(rec.time_s, rec.acc_m_s2, gyr, None, rec.metadata)
                n = len(analyze(biased, None).reps)
                cells.append(n)
                errors.append(abs(n - TEST_TRUTH))
        name = str(f.relative_to(dataset / "data"))
        print(f"{name:24} " + " ".join(f"{n:5}" for n in cells))
    bias_line = f"{label}: gyro-bias variants: {report(errors)}"
    print(bias_line)
    return [tempo_line, bias_line]


def main() -> int:
    """Print the tables of each subject, then a summary of each."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--subject", choices=[*DATASETS, "both"], default="both")
    ap.add_argument(
        "--variants",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also the tempo/turned and gyro-bias variants (the slow part)",
    )
    ap.add_argument("--dataset", type=Path, default=None, help="one dataset folder instead")
    args = ap.parse_args()
    t0 = time.perf_counter()
    if args.dataset is not None:
        subjects = {args.dataset.name: args.dataset}
    elif args.subject == "both":
        subjects = dict(DATASETS)
    else:
        subjects = {args.subject: DATASETS[args.subject]}
    summary: list[str] = []
    for label, dataset in subjects.items():
        summary += run_subject(label, dataset, args.variants)
    print("=== summary")
    print("\n".join(summary))
    print(f"({time.perf_counter() - t0:.0f} s)")
    return 0


def report(errors: list[int]) -> str:
    """How many variants counted exactly and the total count error, as one line."""
    exact = sum(e == 0 for e in errors)
    return (
        f"{exact} of {len(errors)} variants counted exactly; "
        f"count error {sum(errors)} reps over {TEST_TRUTH * len(errors)}"
    )


if __name__ == "__main__":
    raise SystemExit(main())
