"""Memory of the offline commands on a long recording, as a Raspberry Pi would run them.

    .venv/bin/python benchmarks/footprint.py [--hours 2] [--rate 100] [--keep DIR]

Writes a simulated recording of about `--hours` at `--rate` Hz with `hipsense simulate`
(clamshells, sets of 100), then runs `hipsense analyze` on it, in auto mode and for
its exercise, each command in a process of its own. Prints each command's peak resident
memory (the kernel's `ru_maxrss` of the finished child) and its wall time.

Targets (issue: one wiring and a Pi footprint; a Raspberry Pi Zero 2 W has 512 MB):
`analyze` of a 2-hour 100 Hz recording <= 150 MB, `simulate` of one <= 200 MB. The
service itself (`hipsense run` with one sensor, <= 80 MB) and its CPU per sensor
(<= 1 % of a core) are measured by `benchmarks/daemon.py rss` and `daemon.py cpu`.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

EXE = str(Path(sys.executable).with_name("hipsense"))
# A clamshell set of 100 reps with its rests lasts about 600 s at the library's tempo.
_SET_S = 600.0


def measured(args: list[str]) -> tuple[float, float]:
    """Run one command; its peak RSS (MB) and its wall time (s)."""
    t0 = time.perf_counter()
    pid = os.fork()
    if pid == 0:
        out = os.open(os.devnull, os.O_WRONLY)
        os.dup2(out, 1)
        os.dup2(out, 2)
        os.execv(args[0], args)
    # The child's own peak, not this script's: wait4 gives the one child's usage.
    _, status, usage = os.wait4(pid, 0)
    wall = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(args)}: exit {os.waitstatus_to_exitcode(status)}")
    return usage.ru_maxrss / 1024.0, wall


def first_line(args: list[str]) -> str:
    """The first line a command prints."""
    return subprocess.run(args, capture_output=True, text=True, check=True).stdout.split("\n")[0]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--hours", type=float, default=2.0)
    ap.add_argument("--rate", type=int, choices=(25, 50, 100, 200), default=100)
    ap.add_argument("--keep", type=Path, help="folder to keep the recording in")
    args = ap.parse_args()
    sets = max(1, round(args.hours * 3600 / _SET_S))
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.keep or Path(tmp)
        rec = folder / f"clamshell-{sets}x100-{args.rate}hz.csv"
        sim = [EXE, "simulate", "--exercise", "clamshell", "--reps", "100", "--sets", str(sets)]
        sim += ["--rate", str(args.rate), "--out", str(rec)]
        rows = [("simulate", *measured(sim))]
        print(first_line([EXE, "analyze", str(rec), "--exercise", "clamshell"]))
        for mode in ("clamshell", "auto"):
            cmd = [EXE, "analyze", str(rec), "--exercise", mode, "--json"]
            rows.append((f"analyze --exercise {mode}", *measured(cmd)))
        size_mb = rec.stat().st_size / 1e6
    print(f"recording: {sets} sets of 100 clamshells at {args.rate} Hz, {size_mb:.0f} MB of CSV")
    print(f"{'command':<28} {'peak RSS':>10} {'wall':>8}")
    for name, rss, wall in rows:
        print(f"{name:<28} {rss:7.1f} MB {wall:6.1f} s")
    targets = {"simulate": 200.0, "analyze --exercise clamshell": 150.0}
    targets["analyze --exercise auto"] = 150.0
    for name, rss, _ in rows:
        verdict = "met" if rss <= targets[name] else "NOT met"
        print(f"target {name}: <= {targets[name]:.0f} MB: {verdict} ({rss:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
