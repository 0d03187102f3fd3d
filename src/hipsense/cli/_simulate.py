"""`hipsense simulate`: a simulated recording and its ground truth."""

import argparse
from pathlib import Path

__all__ = ["add_parser"]


def add_parser(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Register `simulate`."""
    p = sub.add_parser(
        "simulate",
        help="write a simulated recording (CSV) and its ground truth (JSON)",
        description="Simulate a thigh-worn IMU during an exercise, from the library or a "
        "scenario file (simulators/scenarios/*.toml), and write the recording and the truth.",
    )
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--exercise", help="exercise id (hipsense exercises lists them)")
    src.add_argument("--scenario", type=Path, help="scenario TOML file")
    p.add_argument("--reps", type=int, default=10, help="reps (or holds) per set")
    p.add_argument("--sets", type=int, default=1)
    p.add_argument("--side", choices=("left", "right"), default="right")
    p.add_argument("--variant", help="exercise variant, e.g. with-elastic")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--rate", type=int, choices=(25, 50, 100, 200), default=100, help="sample rate in Hz"
    )
    p.add_argument("--quaternion", action="store_true", help="also write qw,qx,qy,qz")
    p.add_argument("--out", type=Path, required=True, help="recording CSV to write")
    p.add_argument("--truth", type=Path, help="ground truth JSON to write")
    p.set_defaults(func=_simulate)


def _simulate(args: argparse.Namespace) -> int:
    from hipsense_sim import ImuSpec, ScenarioSpec, SetSpec, load_scenario, simulate

    from ..exercises import load_library
    from ..recording import RecordingError

    library = load_library()
    if args.scenario is not None:
        spec = load_scenario(args.scenario)
    else:
        spec = ScenarioSpec(
            name=f"{args.exercise}-{args.reps}x{args.sets}-seed{args.seed}",
            exercise=args.exercise,
            variant=args.variant,
            seed=args.seed,
            sets=[SetSpec(reps=args.reps, side=args.side) for _ in range(args.sets)],
            imu=ImuSpec(rate_hz=args.rate, quaternion=args.quaternion),
        )
    for path in (args.out, args.truth):
        if path is not None and not path.resolve().parent.is_dir():
            raise RecordingError(
                str(path), None, "expected a file in an existing folder, found none"
            )
    result = simulate(spec, library[spec.exercise])  # unknown ids get a clear error here
    result.write(args.out, args.truth)
    t = result.truth
    what = f"{t['rep_count']} reps" if t["kind"] == "reps" else f"{t['hold_count']} holds"
    print(
        f"wrote {args.out}: {len(result.recording)} samples at {spec.imu.rate_hz} Hz, "
        f"{result.recording.duration_s:.1f} s, {what}"
        + (f"; truth in {args.truth}" if args.truth else "")
    )
    return 0
