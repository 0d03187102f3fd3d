"""Write the development suite, simulators/scenarios/*.toml, from the exercise library.

Run `python simulators/make_scenarios.py` after adding an exercise. For every exercise
the suite has a clean session at the prescribed dosage, a noisy "at home" session
(low rate, misaligned strap, fatigue, hesitations, pauses, fidgeting between sets) and a
session with labelled form faults; every third exercise also gets a bad radio link.
Three sessions of pure non-exercise motion (12.5 minutes) must give zero reps.

The "people" family (`<exercise>-people-<kind>.toml`) is what real people do rather than
the prescription, drawn from physiology and from two real subjects' statistics (see
PEOPLE_STATS and docs/simulator.md): no still start, fast wide movers, restless rests,
holds that sag, a low-amplitude set after a wide one.
"""

import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

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


# What two real people did: benchmarks/sim_vs_real.py on ../shared/datasets/uci_pt_s1 and
# uci_pt_s2 (four straight-leg exercises each, an Xsens MTx on the right thigh, 25 Hz,
# 3 blocks of 10 reps: with a 5 s hold, fast, low amplitude). The population is drawn
# from these ranges, not fitted rep by rep.
PEOPLE_STATS: dict[str, tuple[float, float]] = {
    # Still before the first movement: s1 1.6-2.9 s, s2 0.6-5.1 s.
    "start_s": (0.5, 5.0),
    # Median rest between reps, per block: 0.2-1.1 s (reps nearly run into each other).
    "rest_between_reps_s": (0.3, 1.0),
    # Rest between blocks: s1 21-32 s, s2 25-48 s.
    "rest_between_sets_s": (20.0, 45.0),
    # Sinking over a held raise, share of its range: s1 median 10 %, 90th percentile
    # 23 % (prone and supine raises up to a quarter); s2 1 % and 13 %.
    "hold_sag": (0.1, 0.25),
    # Everyone's rests move: the tilt's peak-to-peak in a rest is 0.3-3.8 deg (median
    # 0.9-1.1), the resting level moves 0.1-3 deg from rep to rep (median 0.8-1.0) and
    # spreads 3-12 deg over a block (median 5).
    "rest_sway_deg": (0.8, 2.0),
    "rest_drift_deg": (5.0, 8.0),
    # A restless person: the upper end of those (s2's supine raises rest 8-12 deg above
    # where the block began).
    "restless_sway_deg": (1.5, 3.0),
    "restless_drift_deg": (7.0, 12.0),
    # A restless person also rests longer between reps (s1's longest: 1.7 s).
    "restless_rest_between_reps_s": (0.8, 2.0),
    # Everyone's holds sink a little (the medians above).
    "background_sag": (0.0, 0.1),
    # Gyro turn-on bias: s1 0.3-0.8 deg/s per axis, s2 2.0-2.6 deg/s on two axes.
    "gyro_bias_dps": (2.0, 3.0),
    # Peak thigh speed of a fast wide mover: s2's gyroscope reads 86-200 deg/s (block
    # medians; 205 at the 90th percentile), well within a brisk voluntary hip swing.
    # Her accelerometer says about half of that (see docs/simulator.md).
    "fast_peak_dps": (150.0, 250.0),
}
# A minimum-jerk phase of range R over T seconds peaks at 15/8 R / T.
_MIN_JERK_PEAK = 15.0 / 8.0
# Rest sway and drift scale down for exercises whose whole range is a few degrees: a
# quarter of the target minimum is the smallest movement the motion core counts.
_SWAY_SHARE_OF_MIN = 0.2
_DRIFT_SHARE_OF_MIN = 0.5
# Real people work the lower part of the target range (s1 21 deg, s2 28 deg of
# side-lying abduction whose library range is 20-55 deg, typical 35).
_PEOPLE_ROM_SHARE = (0.3, 1.0)
"""Planned range from the target minimum (0) to the typical range (1)."""
_FAST_ROM_SHARE_OF_MAX = (0.75, 0.9)
_FAST_VARIABILITY = 0.08
_WIDE_ROM_SHARE_OF_MAX = 0.85
# The real low-amplitude blocks move 0.24-0.72 of the widest block's range (median 0.5).
# A low set within the target sits at 1.3 x the target minimum (its reps, +-15 %, stay
# above it); a partial one at 0.55 x (its reps stay clear of the 80 % that is partial).
# After a wide set at 0.85 x the target maximum, that is 0.2-0.6 of its range.
_LOW_SET_OF_MIN = {"in-target": 1.3, "partial": 0.55}

PEOPLE: dict[str, tuple[str, ...]] = {
    "side-lying-hip-abduction": ("nostart", "fast", "restless", "sag", "lowset"),
    "clamshell": ("nostart", "fast", "restless", "lowset"),
    "fire-hydrant": ("fast", "restless", "lowset"),
    "seated-hip-internal-rotation": ("nostart", "fast", "sag", "lowset"),
    "prone-hip-external-rotation": ("nostart", "restless", "lowset"),
    "step-down-eccentric": ("nostart", "restless", "lowset"),
    "pelvic-drop": ("restless", "sag", "lowset"),
    "gluteus-minimus-internal-rotation": ("sag", "restless"),
    "sitting-iliopsoas-isometric": ("nostart", "sag", "restless"),
    "figure-4-stretch-supine": ("nostart", "restless"),
}
"""Exercises across body positions (side-lying, quadruped, seated, prone, standing,
supine) and the kinds of person each gets."""
_KINDS = ("nostart", "fast", "restless", "sag", "lowset")


def _uniform(rng: np.random.Generator, key: str) -> float:
    lo, hi = PEOPLE_STATS[key]
    return round(float(rng.uniform(lo, hi)), 2)


def _scaled(rng: np.random.Generator, key: str, cap: float) -> float:
    """A draw from PEOPLE_STATS[key], shrunk (in proportion) to `cap` for small exercises."""
    lo, hi = PEOPLE_STATS[key]
    v = float(rng.uniform(lo, hi))
    return round(v * min(1.0, cap / hi), 2)


def _bias_dps(rng: np.random.Generator) -> list[float]:
    """A turn-on gyro bias of 2-3 deg/s on two random axes, a few tenths on the third."""
    bias = rng.uniform(-0.3, 0.3, 3)
    axes = rng.choice(3, size=2, replace=False)
    bias[axes] = rng.uniform(*PEOPLE_STATS["gyro_bias_dps"], 2) * rng.choice([-1.0, 1.0], 2)
    return [round(float(b), 2) for b in bias]


def people_scenario(
    ex: Exercise, kind: str, seed: int, rate_hz: int, low: str
) -> tuple[str, dict[str, Any], str]:
    """One person doing one exercise their way: (file stem, spec, comment)."""
    rng = np.random.default_rng(seed)
    d, r = ex.dosage, ex.rom
    hold = ex.kind is ExerciseKind.HOLD
    u = float(rng.uniform(*_PEOPLE_ROM_SHARE))
    rom = r.target_min_deg + u * (r.typical_deg - r.target_min_deg)
    # Long holds make long sessions: fewer of them keeps each under a few minutes.
    if hold:
        reps = 2 if d.reps == 1 else min(d.reps, 5)
    else:
        reps = 6 if d.hold_s >= 8 else min(d.reps, 8)
    spec: dict[str, Any] = {
        "name": f"{ex.id}-people-{kind}",
        "exercise": ex.id,
        "seed": seed,
        "lead_s": _uniform(rng, "start_s"),
        "rest_between_reps_s": _uniform(rng, "rest_between_reps_s"),
        "rom_variability": 0.15,
        "tempo_variability": 0.25,
        "derive_faults": True,
    }
    # Everyone: rests that move a little, holds that sink a little.
    spec["rest_sway_deg"] = _scaled(rng, "rest_sway_deg", _SWAY_SHARE_OF_MIN * r.target_min_deg)
    spec["rest_drift_deg"] = _scaled(rng, "rest_drift_deg", _DRIFT_SHARE_OF_MIN * r.target_min_deg)
    if hold or d.hold_s > 0:
        spec["hold_sag"] = _uniform(rng, "background_sag")
    imu: dict[str, Any] = {"rate_hz": rate_hz}
    rest_after = _uniform(rng, "rest_between_sets_s")
    sets: list[dict[str, Any]] = [
        {"reps": reps, "side": "right", "rest_after_s": rest_after},
        {"reps": reps, "side": "right", "rest_after_s": rest_after},
    ]
    match kind:
        case "nostart":
            spec["lead_s"] = 0.0
            # The second set on the other thigh: no still moment after the switch either.
            sets[1]["side"] = "left"
            imu["gyro_bias_xyz_dps"] = _bias_dps(rng)
            what = "no still start (the first rep begins with the stream), 2-3 deg/s gyro bias"
        case "fast":
            rom = r.target_max_deg * float(rng.uniform(*_FAST_ROM_SHARE_OF_MAX))
            # Every rep's peak within the range: range and tempo vary by +-8 % each, so
            # the planned peak is drawn from the range narrowed by that much.
            lo, hi = PEOPLE_STATS["fast_peak_dps"]
            spread = (1 + _FAST_VARIABILITY) / (1 - _FAST_VARIABILITY)
            peak = float(rng.uniform(lo * spread, hi / spread))
            phase_s = round(_MIN_JERK_PEAK * rom / peak, 3)
            spec["concentric_s"] = phase_s
            spec["eccentric_s"] = phase_s
            spec["rom_variability"] = _FAST_VARIABILITY
            spec["tempo_variability"] = _FAST_VARIABILITY
            spec["rest_between_reps_s"] = round(float(rng.uniform(0.2, 0.5)), 2)
            imu["gyro_bias_xyz_dps"] = _bias_dps(rng)
            what = (
                f"a fast wide mover: {rom:.0f} deg in {phase_s:.2f} s phases "
                f"(peak {peak:.0f} deg/s), 2-3 deg/s gyro bias"
            )
        case "restless":
            spec["rest_sway_deg"] = _scaled(
                rng, "restless_sway_deg", _SWAY_SHARE_OF_MIN * r.target_min_deg
            )
            spec["rest_drift_deg"] = _scaled(
                rng, "restless_drift_deg", _DRIFT_SHARE_OF_MIN * r.target_min_deg
            )
            spec["rest_between_reps_s"] = _uniform(rng, "restless_rest_between_reps_s")
            spec["tremor_deg"] = 0.5
            what = (
                f"restless rests: sway up to {spec['rest_sway_deg']} deg, resting level "
                f"drifting within {spec['rest_drift_deg']} deg"
            )
        case "sag":
            spec["hold_sag"] = _uniform(rng, "hold_sag")
            what = f"holds that sag by {100 * spec['hold_sag']:.0f} % of their range"
        case "lowset":
            rom = r.target_max_deg * _WIDE_ROM_SHARE_OF_MAX
            scale = _LOW_SET_OF_MIN[low] * r.target_min_deg / rom
            sets[1]["rom_scale"] = round(scale, 3)
            what = (
                f"a wide set ({rom:.0f} deg) then a low-amplitude one "
                f"(x{scale:.2f}, {'partial' if low == 'partial' else 'within the target'})"
            )
        case _:
            raise ValueError(f"kind: expected one of {', '.join(_KINDS)}, got {kind!r}")
    spec["rom_deg"] = round(rom, 1)
    spec["sets"] = sets
    spec["imu"] = imu
    return spec["name"], spec, f"{ex.name} as people do it: {what}; {rate_hz} Hz."


def people_scenarios(lib: Mapping[str, Exercise]) -> list[tuple[str, dict[str, Any], str]]:
    """The "people" family: PEOPLE's exercises, each with its kinds of person."""
    out = []
    k = 0
    for e_index, ex_id in enumerate(PEOPLE):
        for kind in PEOPLE[ex_id]:
            seed = 5000 + 10 * e_index + _KINDS.index(kind)
            rate = RATES[k % 3]  # 25, 50 and 100 Hz: the real subjects' 25 Hz and above
            low = "partial" if e_index % 2 else "in-target"
            out.append(people_scenario(lib[ex_id], kind, seed, rate, low))
            k += 1
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
    for stem, spec, comment in people_scenarios(lib):
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
