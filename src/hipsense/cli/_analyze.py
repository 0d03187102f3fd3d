"""`hipsense analyze`: reps, holds and sets in a recording."""

import argparse
import json
from pathlib import Path

__all__ = ["add_parser"]

_BLOCK_SAMPLES = 16384
"""Samples fed to the core at a time: its working arrays stay a few MB whatever the file's
length (a 2-hour 100 Hz file fed whole took 300 MB), and blocks give the same result as the
whole file, bit for bit (the core's chunked == whole tests)."""


def add_parser(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Register `analyze`."""
    p = sub.add_parser(
        "analyze",
        help="count reps and measure range, holds and tempo in a recording",
        description="Run the motion core over a recording CSV (raw 6-axis at 25 Hz or more, "
        "or with the sensor's quaternions) and print its reps, holds and sets.",
    )
    p.add_argument("recording", type=Path, help="recording CSV (docs/recording-format.md)")
    p.add_argument(
        "--exercise",
        help="exercise id, or 'auto' to count reps about the dominant axis "
        "(default: the recording's 'exercise' metadata, else auto)",
    )
    p.add_argument("--variant", help="exercise variant, e.g. with-elastic")
    p.add_argument("--json", action="store_true", help="print the JSON document instead")
    p.set_defaults(func=_analyze)


def _analyze(args: argparse.Namespace) -> int:
    from .._text import counted
    from ..exercises import load_library
    from ..motion import MotionInputError, analyze
    from ..recording import read_recording

    rec = read_recording(args.recording)
    ex_id = args.exercise or rec.metadata.get("exercise") or "auto"
    exercise = None if ex_id == "auto" else load_library()[ex_id]
    try:
        result = analyze(rec, exercise, variant=args.variant, block_size=_BLOCK_SAMPLES)
    except MotionInputError as exc:
        # The core speaks of "recording"; the user gave a file.
        raise MotionInputError(
            f"{args.recording}: {exc.args[0].removeprefix('recording: ')}"
        ) from exc
    if args.json:
        print(json.dumps(result.to_dict(), indent=1))
        return 0
    s = result.summary()
    print(
        f"{args.recording}: {s['exercise']}, {result.rate_hz:g} Hz, {s['duration_s']:.1f} s; "
        f"{counted(s['rep_count'], 'rep')}, {counted(s['hold_count'], 'hold')}, "
        f"{counted(s['set_count'], 'set')}"
    )
    if result.reps:
        print()
        print(
            f"{'rep':>4} {'set':>3} {'start_s':>8} {'end_s':>8} {'rom_deg':>7} {'conc_s':>6} "
            f"{'hold_s':>6} {'ecc_s':>6} {'conf':>5}  flags"
        )
        for r in result.reps:
            print(
                f"{r.index + 1:4} {r.set_index + 1:3} {r.start_s:8.2f} {r.end_s:8.2f} "
                f"{r.rom_deg:7.1f} {r.concentric_s:6.2f} {r.hold_s:6.2f} {r.eccentric_s:6.2f} "
                f"{r.confidence:5.2f}  {' '.join(str(f) for f in r.flags)}"
            )
    if result.holds:
        print()
        print(
            f"{'hold':>4} {'set':>3} {'start_s':>8} {'hold_s':>7} {'angle':>6} {'on_tgt%':>7} "
            f"{'sd_deg':>6} {'broken':>6}  flags"
        )
        for h in result.holds:
            print(
                f"{h.index + 1:4} {h.set_index + 1:3} {h.start_s:8.2f} {h.hold_s:7.2f} "
                f"{h.angle_deg:6.1f} {h.on_target_pct:7.1f} {h.stability_deg:6.2f} "
                f"{h.broken:6}  {' '.join(str(f) for f in h.flags)}"
            )
    if result.sets:
        print()
        for st in result.sets:
            print(
                f"set {st.index + 1}: {st.start_s:.1f}-{st.end_s:.1f} s, "
                f"{counted(st.reps, 'rep')}, {counted(st.holds, 'hold')}"
            )
    return 0
