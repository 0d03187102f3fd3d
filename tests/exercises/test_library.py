"""The exercise library: every file validates and carries what the seeds prescribe."""

import subprocess
import sys
from pathlib import Path

import pytest

from hipsense.exercises import (
    Dosage,
    Exercise,
    ExerciseError,
    ExerciseKind,
    FormCheck,
    load_library,
)

LIB = load_library()
SCRIPT = Path(sys.executable).parent / "hipsense"


def test_library_has_the_seed_exercises() -> None:
    required = {
        "gluteus-minimus-internal-rotation",
        "deep-hip-rotators-small-arc",
        "deep-hip-lateral-rotator-level-1",
        "deep-hip-lateral-rotator-level-2",
        "deep-hip-lateral-rotator-level-3",
        "deep-hip-lateral-rotator-level-4",
        "sitting-iliopsoas-isometric",
        "side-lying-hip-exorotation",
        "clamshell",
        "clamshell-band",
        "prone-hip-external-rotation",
        "fire-hydrant",
        "seated-hip-internal-rotation",
        "side-lying-internal-rotation-foot-lift",
        "seated-90-90-foot-lift",
        "sitting-internal-rotation-elastic",
        "sitting-external-rotation-elastic",
        "side-lying-abduction-eccentric",
        "step-down-eccentric",
        "figure-4-stretch-seated",
        "figure-4-stretch-supine",
        "seated-90-90-stretch",
        "supine-strap-external-rotation-stretch",
        "seated-leg-opener",
    }
    assert required <= set(LIB)
    assert len(LIB) >= 20


@pytest.mark.parametrize(
    ("ex_id", "variant", "sets", "reps", "hold_s"),
    [
        ("gluteus-minimus-internal-rotation", None, 1, 10, 10),
        ("gluteus-minimus-internal-rotation", "with-elastic", 1, 20, 3),
        ("deep-hip-rotators-small-arc", None, 1, 10, 10),
        ("deep-hip-rotators-small-arc", "with-elastic", 1, 20, 3),
        ("deep-hip-lateral-rotator-level-1", None, 1, 10, 10),
        ("deep-hip-lateral-rotator-level-4", None, 1, 20, 0),
        ("clamshell", None, 1, 20, 1),
        ("clamshell-band", None, 3, 15, 0),
        ("prone-hip-external-rotation", None, 1, 20, 0),
        ("fire-hydrant", None, 1, 10, 1),
        ("seated-hip-internal-rotation", None, 1, 20, 3),
        ("side-lying-internal-rotation-foot-lift", None, 1, 20, 3),
        ("seated-90-90-foot-lift", None, 1, 10, 0),
        ("sitting-internal-rotation-elastic", None, 3, 20, 0),
        ("side-lying-abduction-eccentric", None, 3, 20, 0),
        ("step-down-eccentric", None, 3, 15, 0),
        ("figure-4-stretch-seated", None, 1, 1, 60),
        ("seated-90-90-stretch", None, 1, 1, 30),
    ],
)
def test_dosages_follow_the_seeds(
    ex_id: str, variant: str | None, sets: int, reps: int, hold_s: float
) -> None:
    d = LIB[ex_id].variant(variant)
    assert (d.sets, d.reps, d.hold_s) == (sets, reps, hold_s)


def test_seed_ranges_keep_both_ends() -> None:
    assert (LIB["clamshell"].dosage.reps, LIB["clamshell"].dosage.reps_max) == (20, 30)
    d = LIB["seated-hip-internal-rotation"].dosage
    assert (d.hold_s, d.hold_max_s) == (3, 5)
    assert LIB["figure-4-stretch-supine"].dosage.hold_max_s == 60
    assert LIB["step-down-eccentric"].dosage.tempo.eccentric_s == 3


def test_progression_chain_of_the_deep_rotator_levels() -> None:
    chain = []
    ex: Exercise | None = LIB["deep-hip-lateral-rotator-level-1"]
    while ex is not None:
        chain.append((ex.level, ex.contraction.value))
        ex = LIB[ex.progression_next] if ex.progression_next else None
    assert chain == [(1, "isometric"), (2, "eccentric"), (3, "concentric"), (4, "combined")]
    assert LIB["deep-hip-lateral-rotator-level-1"].kind is ExerciseKind.HOLD
    assert LIB["deep-hip-lateral-rotator-level-2"].outward_phase == "eccentric"


def test_every_exercise_is_checkable() -> None:
    positions = {ex.body_position.value for ex in LIB.values()}
    assert positions == {"side-lying", "prone", "supine", "seated", "quadruped", "standing"}
    for ex in LIB.values():
        assert ex.cues, ex.id
        assert abs(sum(c * c for c in ex.axis_thigh) - 1) < 1e-9
        if ex.kind is ExerciseKind.HOLD:
            assert ex.cue(FormCheck.HOLD_SHORT) is not None, ex.id
        assert ex.rom.target_min_deg <= ex.rom.typical_deg <= ex.rom.target_max_deg


def test_left_axis_is_the_mirror_image() -> None:
    ex = LIB["fire-hydrant"]
    assert ex.axis_for("right") == ex.axis_thigh
    x, y, z = ex.axis_thigh
    assert ex.axis_for("left") == (-x, -y, z)


def test_bad_file_names_file_and_field(tmp_path: Path) -> None:
    text = (Path(__file__).resolve().parents[2] / "configs/exercises/clamshell.toml").read_text()
    (tmp_path / "clamshell.toml").write_text(text.replace("typical_deg = 40", "typical_deg = 70"))
    with pytest.raises(ExerciseError, match=r"clamshell.toml: rom: .*target_min_deg"):
        load_library(tmp_path)
    (tmp_path / "clamshell.toml").write_text(text.replace('id = "clamshell"', 'id = "Clam Shell"'))
    with pytest.raises(ExerciseError, match="kebab-case"):
        load_library(tmp_path)
    (tmp_path / "clamshell.toml").write_text(text + "\nunknown_key = 1\n")
    with pytest.raises(ExerciseError, match="unknown_key"):
        load_library(tmp_path)


def test_unknown_id_suggests_close_ones() -> None:
    with pytest.raises(ExerciseError, match="did you mean clamshell"):
        LIB["clam"]


def test_dosage_wording() -> None:
    assert (
        Dosage(sets=3, reps=20, resistance="elastic").describe()
        == "3 sets of 20 reps, elastic, each side"
    )
    hold = LIB["figure-4-stretch-supine"]
    assert hold.dosage.describe(hold.kind) == "hold 30-60 s, each side"


def test_cli_lists_at_least_20_with_dosages() -> None:
    out = subprocess.run([str(SCRIPT), "exercises"], capture_output=True, text=True, check=True)
    rows = [ln for ln in out.stdout.splitlines() if ln.split() and ln.split()[0] in LIB]
    assert len(rows) >= 20
    assert any("3 sets of 20 reps" in r for r in rows)
    show = subprocess.run(
        [str(SCRIPT), "exercises", "show", "fire-hydrant"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "quadruped" in show.stdout and "Hold this position briefly" in show.stdout
    bad = subprocess.run([str(SCRIPT), "exercises", "show", "nope"], capture_output=True, text=True)
    assert bad.returncode == 1 and "expected one of" in bad.stderr
