"""The whole core: block-size independence, agreement with simulator truth, analyze CLI."""

import itertools
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from hipsense.exercises import load_library
from hipsense.motion import HoldEvent, MotionCore, MotionInputError, RepEvent, analyze
from hipsense.recording import Recording, write_recording
from hipsense_sim import ScenarioSpec, load_scenario, simulate, suite_dir

LIB = load_library()
# Known shortfalls of the motion core (open in its issue), each pinned as a strict xfail
# so that a fix shows up as a pass:
GRAVITY_BIAS = pytest.mark.xfail(
    strict=True,
    reason="angles come from gravity: the accelerometer's bias (20 mg here) moves a "
    "rep's range by up to 3 deg, and the range of a rep turning far off its plane "
    "(60-90 % of its range) is split between the axes otherwise than the simulator does; "
    "one such rep in seated-hip-internal-rotation-faults is not flagged off the plane",
)
FAST_ECCENTRIC_ONSET = pytest.mark.xfail(
    strict=True,
    reason="a rushed (1 s) lowering is measured from 0.4 s too early: 1.6 s",
)
FIDGET_COUNTED = pytest.mark.xfail(
    strict=True,
    reason="fidgeting just before the first set, recovered from the backlog, yields one "
    "or two movements in the plane that pass as doubtful reps confirmed by the set",
)


def _events(name: str, sizes: list[int] | None) -> list[object]:
    name, _, backlog_s = name.partition(":backlog_s=")
    spec = load_scenario(suite_dir() / f"{name}.toml")
    if backlog_s:
        link = spec.link.model_copy(update={"backlog_s": float(backlog_s)})
        spec = spec.model_copy(update={"link": link})
    rec = simulate(spec).recording
    core = MotionCore(spec.imu.rate_hz, LIB[spec.exercise])
    n = len(rec)
    rng = np.random.default_rng(0)
    a, out = 0, []
    while a < n:
        b = n if sizes is None else min(n, a + int(rng.choice(sizes)))
        if rec.quat is not None:
            out += core.update(rec.time_s[a:b], quat=rec.quat[a:b])
        else:
            out += core.update(
                rec.time_s[a:b], gyr_rad_s=rec.gyr_rad_s[a:b], acc_m_s2=rec.acc_m_s2[a:b]
            )
        a = b
    return out + core.finish()


@pytest.mark.parametrize(
    "name",
    [
        "clamshell-home",  # side switch, fidgeting, pauses, 25 Hz
        "fire-hydrant-bad-link",  # gaps, and a disconnection the sensor's backlog covers
        "fire-hydrant-bad-link:backlog_s=0",  # the same disconnection as a gap
        "side-lying-hip-abduction-bad-link",  # a gap next to gyro values far apart
        "seated-hip-internal-rotation-home",
        "figure-4-stretch-supine-home",  # holds
        "sitting-internal-rotation-elastic-home",  # quaternion input
    ],
)
def test_blocks_of_any_size_give_the_same_events(name: str) -> None:
    whole = _events(name, None)
    assert any(isinstance(e, RepEvent | HoldEvent) for e in whole)
    assert _events(name, [1, 2, 3, 5, 8, 13, 20, 64, 333]) == whole


@pytest.mark.parametrize(
    "name",
    [
        "clamshell-clean",
        pytest.param("fire-hydrant-faults", marks=GRAVITY_BIAS),
        "prone-hip-external-rotation-clean",
        pytest.param("seated-hip-internal-rotation-faults", marks=GRAVITY_BIAS),
        pytest.param("step-down-eccentric-faults", marks=FAST_ECCENTRIC_ONSET),
        pytest.param("side-lying-abduction-eccentric-faults", marks=GRAVITY_BIAS),
        "seated-90-90-stretch-faults",
    ],
)
def test_events_match_simulator_truth(name: str) -> None:
    """Exact counts per set; ROM within 1.5 deg, times within 0.3 s; flags = faults."""
    spec = load_scenario(suite_dir() / f"{name}.toml")
    sim = simulate(spec)
    res = analyze(sim.recording, LIB[spec.exercise])
    truth = sim.truth
    if truth["kind"] == "hold":
        assert [s.holds for s in res.sets] == [s["reps"] for s in truth["sets"]]
        for got, want in zip(res.holds, truth["holds"], strict=True):
            assert got.hold_s == pytest.approx(want["hold_s"], abs=0.3)
            assert ("hold_short" in [str(f) for f in got.flags]) == ("hold_short" in want["faults"])
        return
    assert [s.reps for s in res.sets] == [s["reps"] for s in truth["sets"]]
    for got, want in zip(res.reps, truth["reps"], strict=True):
        assert got.start_s == pytest.approx(want["start_s"], abs=0.3)
        assert got.end_s == pytest.approx(want["end_s"], abs=0.3)
        assert got.concentric_s == pytest.approx(want["concentric_s"], abs=0.35)
        assert got.eccentric_s == pytest.approx(want["eccentric_s"], abs=0.35)
        assert sorted(str(f) for f in got.flags) == want["faults"]
        if "partial" not in want["faults"]:
            assert got.rom_deg == pytest.approx(want["rom_deg"], abs=1.5)


def test_a_fast_movers_range_is_the_level_held_not_the_accelerometers_kick() -> None:
    # 46 deg clamshells in 0.48 s phases (peak 182 deg/s) at 25 Hz: arriving at the top and
    # setting off, the thigh's own acceleration tilts "up" by up to 15-20 deg, and the
    # gyroscope is not blended in for the first reps. The range is measured from the rest
    # the limb left to the level it held in between, so none of them reads as too much.
    spec = load_scenario(suite_dir() / "clamshell-people-fast.toml")
    sim = simulate(spec)
    res = analyze(sim.recording, LIB[spec.exercise])
    # (One rep of the 16 is missed; that is another matter.)
    assert len(res.reps) >= len(sim.truth["reps"]) - 1
    errors = []
    for got in res.reps:
        want = min(sim.truth["reps"], key=lambda w: abs(w["start_s"] - got.start_s))
        assert abs(want["start_s"] - got.start_s) < 0.3
        errors.append(abs(got.rom_deg - want["rom_deg"]))
    assert float(np.mean(errors)) < 2.0
    assert max(errors) < 6.0
    assert not any("too_much_range" in [str(f) for f in r.flags] for r in res.reps)


def test_everyday_motion_in_bed_counts_no_reps() -> None:
    spec = load_scenario(suite_dir() / "non-exercise-in-bed.toml")
    res = analyze(simulate(spec).recording, LIB[spec.exercise])
    assert res.reps == []


def test_analyze_rejects_too_few_samples_and_a_rate_out_of_range() -> None:
    one = Recording(np.zeros(1), np.zeros((1, 3)), np.zeros((1, 3)), None, {})
    with pytest.raises(MotionInputError, match="at least 2 samples"):
        analyze(one)
    slow = Recording(np.arange(50) / 10.0, np.zeros((50, 3)), np.zeros((50, 3)), None, {})
    with pytest.raises(MotionInputError, match="rate of 20 to 2000 Hz, got 10 Hz"):
        analyze(slow)
    fast = Recording(np.arange(50) / 1e9, np.zeros((50, 3)), np.zeros((50, 3)), None, {})
    with pytest.raises(MotionInputError, match="rate of 20 to 2000 Hz, got 1e"):
        analyze(fast)


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hipsense", *args], capture_output=True, text=True, check=False
    )


def test_cli_analyze_prints_a_table_and_json(tmp_path: Path) -> None:
    spec = load_scenario(suite_dir() / "fire-hydrant-clean.toml")
    sim = simulate(spec)
    path = tmp_path / "rec.csv"
    write_recording(path, sim.recording)
    table = _cli("analyze", str(path))
    assert table.returncode == 0, table.stderr
    assert f"{sim.truth['rep_count']} reps" in table.stdout
    doc = json.loads(_cli("analyze", str(path), "--json").stdout)
    assert {"reps", "holds", "sets", "summary"} <= set(doc)
    rep = doc["reps"][0]
    for key in (
        "start_s",
        "end_s",
        "rom_deg",
        "concentric_s",
        "hold_s",
        "eccentric_s",
        "flags",
        "confidence",
    ):
        assert key in rep
    assert doc["summary"]["rep_count"] == sim.truth["rep_count"]
    # Unknown exercise: auto mode still counts the reps about the dominant axis.
    auto = json.loads(_cli("analyze", str(path), "--exercise", "auto", "--json").stdout)
    assert auto["summary"]["rep_count"] == sim.truth["rep_count"]


def test_cli_analyze_bad_file_exits_non_zero_naming_the_problem(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("time_s,ax,ay,az,gx,gy,gz\n0,0,0,9.8,0,0,0\n0.01,0,0,nope,0,0,0\n")
    r = _cli("analyze", str(bad))
    assert r.returncode != 0
    assert "bad.csv:3" in r.stderr and "nope" in r.stderr
    missing = _cli("analyze", str(tmp_path / "absent.csv"))
    assert missing.returncode != 0 and "absent.csv" in missing.stderr


@pytest.mark.parametrize("rate_hz", [pytest.param(25, marks=GRAVITY_BIAS), 100])
def test_reps_with_barely_a_pause_between_them_are_each_counted(rate_hz: int) -> None:
    # A patient going straight from one rep into the next (0-0.5 s at the bottom): the
    # next rep is already on its way up when the previous one is closed.
    spec = ScenarioSpec.model_validate(
        {
            "exercise": "side-lying-hip-abduction",
            "seed": 5,
            "sets": [{"reps": 12, "rest_after_s": 5.0}],
            "rest_between_reps_s": 0.3,
            "imu": {"rate_hz": rate_hz},
        }
    )
    sim = simulate(spec)
    res = analyze(sim.recording, LIB[spec.exercise])
    auto = analyze(sim.recording, None)
    assert len(res.reps) == 12
    assert len(auto.reps) == 12
    for got, want in zip(res.reps, sim.truth["reps"], strict=True):
        assert got.rom_deg == pytest.approx(want["rom_deg"], abs=1.5)
        assert got.start_s == pytest.approx(want["start_s"], abs=0.3)


@pytest.mark.parametrize(
    "name",
    [
        # Fidgeting before the first set, with still pauses that are not the start pose.
        "pelvic-drop-home",
        "gluteus-minimus-internal-rotation-home",
        # Reaching for the phone between sets, pausing on the way.
        "seated-90-90-foot-lift-home",
        "supine-strap-external-rotation-stretch-home",
        # Turning over and moving the sensor to the other thigh.
        "side-lying-hip-abduction-clean",
        # Adjusting the pillow between sets: a dip below the rest level.
        "deep-hip-rotators-small-arc-home",
        # Isometric holds: the heel just clears the bed, a slow move of a few degrees.
        "deep-hip-lateral-rotator-level-1-faults",
        # Fidgeting ends 11 deg from the pause taken for neutral; the first rep goes from
        # and back to there, which is also a third of its reach from neutral.
        pytest.param("side-lying-hip-abduction-home@2000", marks=FIDGET_COUNTED),
        # Fidgeting whose poses happen to lie near one plane (pose quality 0.89-0.91),
        # though it turns every way: not the movement axis.
        "prone-hip-external-rotation-home",
        "side-lying-abduction-eccentric-home@3000",
        "seated-leg-opener-home@6000",
        # Reaching for the phone between sets of held stretches, pausing at the top (taken
        # for a new start position): settling back where it was undoes that.
        "figure-4-stretch-seated-home@6000",
    ],
)
def test_start_position_is_found_after_fidgeting_reaching_turning_over_or_small_moves(
    name: str,
) -> None:
    name, _, offset = name.partition("@")
    spec = load_scenario(suite_dir() / f"{name}.toml")
    spec = spec.model_copy(update={"seed": spec.seed + int(offset or 0)})
    sim = simulate(spec)
    res = analyze(sim.recording, LIB[spec.exercise])
    truth = sim.truth
    if truth["kind"] == "hold":
        assert [s.holds for s in res.sets] == [s["reps"] for s in truth["sets"]]
        return
    assert [s.reps for s in res.sets] == [s["reps"] for s in truth["sets"]]
    # Angles measured from the right start position: range of motion within the suite's
    # target (MAE <= 1.5 deg) over the reps the link did not cut.
    errors = [
        abs(got.rom_deg - want["rom_deg"])
        for got, want in zip(res.reps, truth["reps"], strict=True)
        if "data_gap" not in [str(f) for f in got.flags] and "partial" not in want["faults"]
    ]
    assert float(np.mean(errors)) <= 1.5


@pytest.mark.parametrize("offset", [0, 2000, 3000, 6000])
def test_a_small_partial_rep_is_measured_through_tremor(offset: int) -> None:
    # Pelvic drop (range 4-15 deg, hold 2 s) with partial reps of 2-3 deg: the top 20 %
    # of such a rep is narrower than the tremor at end range, which ended the hold early;
    # the tremor also blurs where its way back ends, which is not a rushed rep. Draws
    # +3000 and +6000 each have a partial rep of 1.5 deg (a third of the 4 deg minimum),
    # which a 1.5 deg detection floor missed about half the time.
    spec = load_scenario(suite_dir() / "pelvic-drop-faults.toml")
    spec = spec.model_copy(update={"seed": spec.seed + offset})
    sim = simulate(spec)
    res = analyze(sim.recording, LIB[spec.exercise])
    partial = [r for r in sim.truth["reps"] if "partial" in r["faults"]]
    assert partial
    for want in partial:
        got = min(res.reps, key=lambda r: abs(r.start_s - want["start_s"]))
        assert got.start_s == pytest.approx(want["start_s"], abs=0.5)
        assert got.hold_s == pytest.approx(want["hold_s"], abs=0.5)
        assert sorted(str(f) for f in got.flags) == want["faults"]


def test_a_rep_whose_top_was_lost_is_not_judged_on_the_rest_of_its_way_back() -> None:
    # Prone hip rotations over a bad link, draw +4000: 1.1 s lost at 41.0-42.2 s hides
    # the top of a rep at the prescribed tempo and the start of its way back. What is
    # left of the way back lasts 0.55 s; judged alone, it was flagged too fast. A gap
    # anywhere after half way out leaves the way back unknown: data_gap says so.
    spec = load_scenario(suite_dir() / "prone-hip-external-rotation-bad-link.toml")
    spec = spec.model_copy(update={"seed": spec.seed + 4000})
    sim = simulate(spec)
    res = analyze(sim.recording, LIB[spec.exercise])
    gaps = [g for g in sim.truth["gaps"] if 40.5 < g["start_s"] < 41.5]
    assert gaps and gaps[0]["end_s"] - gaps[0]["start_s"] > 1.0
    got = min(res.reps, key=lambda r: abs(r.start_s - 40.4))
    assert got.start_s < gaps[0]["start_s"] < got.end_s
    assert [str(f) for f in got.flags] == ["data_gap"]


def test_reps_straight_one_into_the_next_are_measured_from_the_start_not_the_tops() -> None:
    # Rests at the start position only before the first rep; then straight leg raises
    # held 4 s at the top, each lowered straight into the next, so the only still poses
    # after the start are the tops (which differ by a few degrees). The sensor sits at
    # an arbitrary rotation. Auto mode: nothing is known about the exercise.
    from hipsense._quat import axis_angle_quat, quat_mul

    rate = 25.0
    t = np.arange(0, 70.0, 1 / rate)

    def mj(x: np.ndarray) -> np.ndarray:
        x = np.clip(x, 0.0, 1.0)
        return np.asarray(x**3 * (10 - 15 * x + 6 * x**2))

    # Levels held in turn: the tops 4 s each; the bottoms not all the way down (a third
    # of the way up) and not at all (the way up starts before the way down has ended),
    # so the limb is never still near the start.
    tops = [15.0, 20.0, 25.0, 20.0, 22.0, 16.0]
    levels = [0.0]
    for top in tops:
        levels += [top, 0.2 * top]
    levels[-1] = 0.0
    angle = np.zeros_like(t)
    start = 3.0
    for a, b in itertools.pairwise(levels):
        angle += (b - a) * mj((t - start) / 1.5)
        start += 5.5 if b > a else 1.0
    axis = np.array([0.3, -0.8, 0.52])
    axis /= np.linalg.norm(axis)
    mount = axis_angle_quat(np.array([0.6, 0.0, 0.8]), np.array([1.1]))[0]
    q = quat_mul(axis_angle_quat(axis, np.radians(angle)), np.broadcast_to(mount, (t.shape[0], 4)))
    core = MotionCore(rate)
    events = core.update(t, quat=q) + core.finish()
    reps = [e for e in events if isinstance(e, RepEvent)]
    assert len(reps) == len(tops)
    # Measured from the start position: the first rep's range is its top.
    assert reps[0].rom_deg == pytest.approx(tops[0], abs=1.0)
    assert all(r.rom_deg > 0.6 * top for r, top in zip(reps, tops, strict=True))
