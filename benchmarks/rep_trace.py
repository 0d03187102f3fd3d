"""Every rep and every decision of the core on the real recordings, as text to diff.

    .venv/bin/python benchmarks/rep_trace.py [MATCH] [--variant FAMILY:K] [--from S] [--to S]

For each real recording whose name as `robustness.py` prints it (`s1/e5/u3/test.txt`,
`s2/e4/u3/template_session.txt`, ...) contains MATCH (all of them by default), the core
runs in `auto` mode as `robustness.py` runs it, with its decision traces on, and prints
its calibrations, its reps (start, end, range, hold, flags, recovered) and each decision
of the reference and acceptance stages (why a candidate was dropped, held or released;
when a reference was found or lost), in time order. `--variant crop:3` (or tempo:0,
noise:1, ...) runs that robustness variant instead, with times given as in the original
recording. No target: run it before and after a change and diff the two outputs to see
which reps moved, and why.
"""

import argparse

import numpy as np

from hipsense.motion import Calibration, MotionCore, RepEvent
from hipsense.recording import Recording
from robustness import DATASETS, build_tasks, load, name_of, original, recordings, transform


def trace(rec: Recording, offset_s: float, scale: float) -> list[tuple[float, str]]:
    """The core's calibrations, reps and decisions on `rec`, in the original's time."""
    rate = float(np.round(1.0 / float(np.median(np.diff(rec.time_s))), 3))
    core = MotionCore(rate, None)
    core.reference.trace = []
    core.segmenter.trace = []
    events = core.update(rec.time_s, gyr_rad_s=rec.gyr_rad_s, acc_m_s2=rec.acc_m_s2)
    events += core.finish()

    def at(t_s: float) -> float:
        return (t_s + offset_s) / scale

    lines: list[tuple[float, str]] = []
    for e in events:
        if isinstance(e, RepEvent):
            flags = ",".join(str(f) for f in e.flags) or "-"
            lines.append(
                (
                    at(e.start_s),
                    f"REP {at(e.start_s):8.2f}-{at(e.end_s):8.2f}  rom {e.rom_deg:5.1f}  "
                    f"hold {e.hold_s:4.1f}  {flags}{'  recovered' if e.recovered else ''}",
                )
            )
        elif isinstance(e, Calibration):
            lines.append((at(e.t_s), f"CAL {at(e.t_s):8.2f}  {e.reason}"))
    for t_s, what in core.reference.trace + core.segmenter.trace:
        lines.append((at(t_s), f"    {at(t_s):8.2f}  {what}"))
    return sorted(lines, key=lambda x: x[0])


def main() -> int:
    """Print the traces of the recordings asked for."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("match", nargs="?", default="", help="part of a recording's name")
    ap.add_argument("--variant", default="", help="a robustness variant, FAMILY:K")
    ap.add_argument("--from", dest="t0", type=float, default=-np.inf, help="from (s)")
    ap.add_argument("--to", dest="t1", type=float, default=np.inf, help="to (s)")
    args = ap.parse_args()
    items = [
        (s, str(p), truth)
        for s, p, truth in recordings(list(DATASETS))
        if args.match in name_of(s, str(p))
    ]
    if not items:
        print(f"no recording matches {args.match!r}")
        return 1
    family, _, k = args.variant.partition(":")
    for subject, path, truth in items:
        rec, offset_s, scale = load(path), 0.0, 1.0
        label = "as recorded"
        if family:
            tasks, _ = build_tasks([original((subject, path, truth))], quick=False)
            chosen = [t for t in tasks if t.family == family and t.k == int(k or 0)]
            if not chosen:
                print(f"{name_of(subject, path)}: no variant {args.variant!r}")
                continue
            task = chosen[0]
            rec, label = transform(task, rec), f"{task.label} (variant {task.k})"
            offset_s = task.param if family in ("crop", "no_opening") else 0.0
            scale = task.param if family == "tempo" else 1.0
            truth = task.truth
        lines = trace(rec, offset_s, scale)
        reps = sum(1 for _, line in lines if line.startswith("REP"))
        print(f"=== {name_of(subject, path)}, {label}: {reps} reps, truth {truth}")
        for t_s, line in lines:
            if args.t0 <= t_s <= args.t1:
                print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
