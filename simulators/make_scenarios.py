"""Write the development suite, simulators/scenarios/*.toml, from the exercise library.

Run `python simulators/make_scenarios.py` after adding an exercise. For every exercise
the suite has a clean session at the prescribed dosage, a noisy "at home" session
(low rate, misaligned strap, fatigue, hesitations, pauses, fidgeting between sets) and a
session with labelled form faults; every third exercise also gets a bad radio link.
Three sessions of pure non-exercise motion (12.5 minutes) must give zero reps.
"""

import sys
from pathlib import Path
from typing import Any

from hipsense.exercises import Exercise, ExerciseKind, load_library

OUT = Path(__file__).parent / "scenarios"
RATES = (25, 50, 100, 200)


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f'"{k}" = {_toml_value(x)}' for k, x in v.items()) + " }"
    return repr(v)


def to_toml(spec: dict[str, Any], comment: str) -> str:
    """A scenario as TOML (the few shapes ScenarioSpec uses)."""
    lines = [f"# {comment}"]
    tables = {k: v for k, v in spec.items() if isinstance(v, dict)}
    arrays = {k: v for k, v in spec.items() if isinstance(v, list) and v and isinstance(v[0], dict)}
    for k, v in spec.items():
        if k not in tables and k not in arrays:
            lines.append(f"{k} = {_toml_value(v)}")
    for k, v in tables.items():
        lines += ["", f"[{k}]"] + [f"{kk} = {_toml_value(vv)}" for kk, vv in v.items()]
    for k, rows in arrays.items():
        for row in rows:
            lines += ["", f"[[{k}]]"] + [f"{kk} = {_toml_value(vv)}" for kk, vv in row.items()]
    return "\n".join(lines) + "\n"


def _fault_kinds(ex: Exercise) -> list[str]:
    cues = {c.check.value for c in ex.cues}
    if ex.kind is ExerciseKind.HOLD:
        return ["hold_short"]
    kinds = sorted(cues | {"partial"})
    if not ex.dosage.hold_s:
        kinds = [k for k in kinds if k != "hold_short"]
    return kinds


def scenarios_for(ex: Exercise, index: int) -> list[tuple[str, dict[str, Any], str]]:
    """The suite's scenarios for one exercise: (file stem, spec, comment)."""
    d = ex.dosage
    seed = 1000 + 17 * index
    reps = d.reps
    hold = ex.kind is ExerciseKind.HOLD
    out = []
    clean_sets = [{"reps": reps, "side": "right", "rest_after_s": 40.0} for _ in range(d.sets)]
    if d.per_side:
        clean_sets.append({"reps": reps, "side": "left", "rest_after_s": 40.0})
    out.append(
        (
            f"{ex.id}-clean",
            {
                "name": f"{ex.id}-clean",
                "exercise": ex.id,
                "seed": seed,
                "rest_between_reps_s": 2.0 if hold else 1.5,
                "sets": clean_sets,
                "imu": {"rate_hz": 100},
            },
            f"{ex.name}: the prescribed dosage ({d.describe(ex.kind)}), well performed.",
        )
    )
    rate = RATES[index % len(RATES)]
    home_reps = max(2, reps) if hold and reps == 1 else reps
    between = ["adjust-pillow", "reach-phone", "fidget"][index % 3]
    out.append(
        (
            f"{ex.id}-home",
            {
                "name": f"{ex.id}-home",
                "exercise": ex.id,
                "seed": seed + 1,
                "rom_variability": 0.15,
                "tempo_variability": 0.25,
                "fatigue": 0.15,
                "hesitation_ratio": 0.15,
                "long_pause_ratio": 0.1,
                "tremor_deg": 0.5,
                "misalignment_deg": 20.0,
                "sets": [
                    {"reps": home_reps, "side": "left", "rest_after_s": 30.0},
                    {"reps": home_reps, "side": "left", "rest_after_s": 30.0},
                ],
                "imu": {
                    "rate_hz": rate,
                    "gyro_noise_dps_sqrt_hz": 0.02,
                    "accel_noise_ug_sqrt_hz": 300.0,
                    "gyro_bias_dps": 1.5,
                    "gyro_bias_walk_dps_sqrt_s": 0.01,
                    "clock_drift_ppm": -80.0,
                    "quaternion": index % 4 == 3,
                },
                "non_exercise": [
                    {"kind": "fidget", "duration_s": 20.0, "at": "start"},
                    {"kind": between, "duration_s": 15.0, "at": "between-sets"},
                ],
            },
            f"{ex.name} at home: {rate} Hz, noisy sensor, loose strap, fatigue, hesitations, "
            "pauses, fidgeting.",
        )
    )
    kinds = _fault_kinds(ex)
    n = max(reps, 2 * len(kinds) + 2, 4) if not hold else max(reps, 3)
    if not hold:
        # An even count puts the second occurrences (n - 2 - 2k, even) between the first
        # ones (1 + 2k, odd): one fault per rep, never two that contradict each other.
        n += n % 2
    faults: dict[str, list[int]] = {}
    for k, kind in enumerate(kinds):
        faults[kind] = [1 + 2 * k] if hold else [1 + 2 * k, n - 2 - 2 * k]
    out.append(
        (
            f"{ex.id}-faults",
            {
                "name": f"{ex.id}-faults",
                "exercise": ex.id,
                "seed": seed + 2,
                "sets": [{"reps": n, "side": "right", "faults": faults}],
                "imu": {"rate_hz": RATES[(index + 2) % len(RATES)]},
            },
            f"{ex.name} with labelled form faults: {', '.join(kinds)}.",
        )
    )
    if index % 3 == 0:
        out.append(
            (
                f"{ex.id}-bad-link",
                {
                    "name": f"{ex.id}-bad-link",
                    "exercise": ex.id,
                    "seed": seed + 3,
                    "sets": [{"reps": max(reps, 4), "side": "right"}],
                    "imu": {"rate_hz": 50 if index % 2 else 100},
                    "link": {
                        "mtu": 23 if index % 2 else 247,
                        "loss_ratio": 0.03,
                        "burst_length": 3.0,
                        "duplicate_ratio": 0.02,
                        "reorder_ratio": 0.02,
                        "disconnects": [[30.0, 4.0]],
                    },
                },
                f"{ex.name} over a poor radio link: bursty loss, duplicates, "
                "reordering, one disconnection.",
            )
        )
    return out


NON_EXERCISE = [
    (
        "non-exercise-living-room",
        "seated-hip-internal-rotation",
        [("walk", 120.0), ("sit-down", 15.0), ("fidget", 60.0), ("stand-up", 15.0), ("walk", 90.0)],
    ),
    (
        "non-exercise-in-bed",
        "clamshell",
        [
            ("adjust-pillow", 40.0),
            ("reach-phone", 20.0),
            ("fidget", 120.0),
            ("adjust-pillow", 40.0),
            ("reach-phone", 20.0),
        ],
    ),
    (
        "non-exercise-chair",
        "sitting-internal-rotation-elastic",
        [
            ("fidget", 90.0),
            ("reach-phone", 30.0),
            ("stand-up", 15.0),
            ("walk", 60.0),
            ("sit-down", 15.0),
        ],
    ),
]


def main(argv: list[str] | None = None) -> int:
    """Write every scenario file (to `argv[0]`, default simulators/scenarios)."""
    args = sys.argv[1:] if argv is None else argv
    out = Path(args[0]) if args else OUT
    lib = load_library()
    out.mkdir(exist_ok=True)
    written = set()
    for index, ex_id in enumerate(sorted(lib)):
        for stem, spec, comment in scenarios_for(lib[ex_id], index):
            (out / f"{stem}.toml").write_text(to_toml(spec, comment))
            written.add(f"{stem}.toml")
    for k, (stem, ex_id, parts) in enumerate(NON_EXERCISE):
        total = sum(p[1] for p in parts)
        spec = {
            "name": stem,
            "exercise": ex_id,
            "seed": 9000 + k,
            "sets": [],
            "non_exercise": [{"kind": kind, "duration_s": s, "at": "start"} for kind, s in parts],
        }
        comment = f"{total:.0f} s of everyday motion in the exercise's position: zero reps."
        (out / f"{stem}.toml").write_text(to_toml(spec, comment))
        written.add(f"{stem}.toml")
    for stale in out.glob("*.toml"):
        if stale.name not in written:
            stale.unlink()
    print(f"wrote {len(written)} scenarios to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
