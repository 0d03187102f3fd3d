"""`hipsense exercises`: the exercise library."""

import argparse
import json
import re

from ..exercises import Exercise, load_library

__all__ = ["add_parser", "based_on"]

_REFERENCE = re.compile(r"(?:^|;\s*)\S+ \(([^)]*)\)")
"""A source reference: where it is kept (seeds/002), then its description in brackets."""


def add_parser(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Register `exercises` and `exercises show`."""
    p = sub.add_parser(
        "exercises",
        help="list the exercise library, or show one exercise",
        description="List the exercises hipsense knows, with their prescribed dosage, or "
        "print everything about one of them.",
    )
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=_list)
    inner = p.add_subparsers(dest="exercises_command", metavar="SUBCOMMAND")
    show = inner.add_parser("show", help="print one exercise")
    show.add_argument("id", help="exercise id, e.g. clamshell")
    show.add_argument("--json", action="store_true", help="print JSON")
    show.set_defaults(func=_show)


def _list(args: argparse.Namespace) -> int:
    lib = load_library()
    if args.json:
        print(json.dumps([ex.model_dump(mode="json") for ex in lib.values()], indent=2))
        return 0
    print(f"{len(lib)} exercises (hipsense exercises show ID for details)\n")
    print(f"{'id':<40} {'position':<11} {'movement':<18} dosage")
    for ex in lib.values():
        print(f"{ex.id:<40} {ex.body_position:<11} {ex.movement:<18} {ex.dosage.describe(ex.kind)}")
    return 0


def _show(args: argparse.Namespace) -> int:
    ex = load_library()[args.id]
    if args.json:
        print(ex.model_dump_json(indent=2))
        return 0
    print(_describe(ex))
    return 0


def _describe(ex: Exercise) -> str:
    lines = [
        ex.name,
        "=" * len(ex.name),
        f"id:            {ex.id}",
        f"based on:      {based_on(ex.source)}",
        f"position:      {ex.body_position}"
        + (" (working leg underneath)" if ex.lying_on_working_side else ""),
        f"sensor:        on the {ex.sensor_thigh} thigh",
        f"movement:      {ex.movement} ({ex.contraction}"
        + (f", level {ex.level}" if ex.level else "")
        + ")",
        f"start pose:    hip flexion {ex.hip_flexion_deg:g} deg, knee flexion "
        f"{ex.knee_flexion_deg:g} deg"
        + (f", hip rotation {ex.hip_rotation_deg:g} deg" if ex.hip_rotation_deg else ""),
        f"range:         typical {ex.rom.typical_deg:g} deg, target "
        f"{ex.rom.target_min_deg:g}-{ex.rom.target_max_deg:g} deg",
        f"dosage:        {ex.dosage.describe(ex.kind)}",
    ]
    lines += [f"  {v.name + ':':<12} {v.dosage.describe(ex.kind)}" for v in ex.variants]
    if ex.progression_next:
        lines.append(
            f"progression:   after {ex.progression_after_reps} correct, move to "
            f"{ex.progression_next}"
        )
    if ex.instructions:
        lines.append("how:")
        lines += [f"  {i}. {step}" for i, step in enumerate(ex.instructions, 1)]
    if ex.cues:
        lines.append("checked cues:")
        for c in ex.cues:
            limit = f" (limit {c.limit:g})" if c.limit is not None else ""
            lines.append(f'  {c.check:<15} "{c.cue}"{limit}')
    return "\n".join(lines)


def based_on(source: str) -> str:
    """What an exercise's `source` says to a reader: the sheets' titles, not their folders.

    "seeds/002 (hip external rotation; strengthening protocols); seeds/003 (hip internal
    rotation)" -> "hip external rotation, strengthening protocols; hip internal rotation".
    A source not written as references is shown as it is.
    """
    titles = [t.replace(";", ",").strip() for t in _REFERENCE.findall(source)]
    return "; ".join(t for t in titles if t) or source
