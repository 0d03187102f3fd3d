"""What real people do: no still start, restless rests, sagging holds, per-set range and
tempo, fast wide movers, derived fault labels and a given gyro bias; truth that matches."""

import itertools

import numpy as np
import pytest

from hipsense.exercises import load_library
from hipsense_sim import ImuSpec, ScenarioSpec, SetSpec, load_suite, simulate

LIB = load_library()


def _spec(exercise: str = "side-lying-hip-abduction", **kw: object) -> ScenarioSpec:
    base: dict[str, object] = {
        "exercise": exercise,
        "seed": 11,
        "sets": [SetSpec(reps=4)],
        "imu": ImuSpec(noise_free=True),
        "tremor_deg": 0.0,
    }
    base.update(kw)
    return ScenarioSpec.model_validate(base)


def _planned(r: object, t0: float, t1: float) -> np.ndarray:
    m = r.motion  # type: ignore[attr-defined]
    return np.asarray(m.primary_deg[round(t0 * m.grid_hz) : round(t1 * m.grid_hz)])


def test_no_still_start_begins_the_first_rep_with_the_stream() -> None:
    r = simulate(_spec(lead_s=0.0, imu=ImuSpec(rate_hz=100)))
    first = r.truth["reps"][0]
    assert first["start_s"] <= 1 / 100
    # Moving from the first sample: already over 1 deg/s a tenth of a second in.
    w = np.degrees(np.linalg.norm(r.recording.gyr_rad_s, axis=1))
    assert w[10] > 1.0


def test_no_still_start_after_a_side_switch_either() -> None:
    r = simulate(_spec(lead_s=0.0, sets=[SetSpec(reps=2), SetSpec(reps=2, side="left")]))
    switch = r.truth["side_switches"][0]
    left = [rep for rep in r.truth["reps"] if rep["side"] == "left"]
    assert left[0]["start_s"] == pytest.approx(switch["end_s"], abs=1e-6)


def test_default_lead_is_still_and_unchanged() -> None:
    r = simulate(_spec())
    assert r.truth["reps"][0]["start_s"] == pytest.approx(4.0, abs=1e-3)


@pytest.mark.parametrize("sag", [0.1, 0.25])
def test_a_sagging_hold_sinks_by_its_share_and_the_truth_is_its_median(sag: float) -> None:
    r = simulate(_spec(hold_sag=sag, rom_variability=0.0))
    for rep in r.truth["reps"]:
        hold = _planned(r, rep["top_s"], rep["hold_end_s"])
        arrival = rep["arrival_deg"]
        assert hold[0] == pytest.approx(arrival, abs=0.01)
        assert hold[0] - hold[-1] == pytest.approx(sag * arrival, rel=0.01)
        assert rep["sag_deg"] == pytest.approx(sag * arrival)
        assert rep["rom_deg"] == pytest.approx(float(np.median(hold)), abs=1e-6)
        assert rep["rom_deg"] == pytest.approx(arrival * (1 - sag / 2))
        # The way back starts from the sunk level and ends where the rep began.
        back = _planned(r, rep["hold_end_s"], rep["end_s"])
        assert back[0] == pytest.approx(arrival - rep["sag_deg"], abs=0.05)
        assert abs(back[-1] - rep["base_deg"]) < 1e-3


def test_a_sagging_hold_of_a_hold_exercise() -> None:
    r = simulate(_spec("sitting-iliopsoas-isometric", hold_sag=0.2, sets=[SetSpec(reps=2)]))
    for h in r.truth["holds"]:
        held = _planned(r, h["start_s"], h["end_s"])
        assert held[0] - held[-1] == pytest.approx(0.2 * h["arrival_deg"], rel=0.01)
        assert h["target_deg"] == pytest.approx(float(np.median(held)), abs=1e-6)


def test_without_sag_the_range_is_the_arrival() -> None:
    r = simulate(_spec())
    for rep in r.truth["reps"]:
        assert rep["rom_deg"] == rep["arrival_deg"]
        assert rep["sag_deg"] == 0.0 and rep["base_deg"] == 0.0


def test_rom_scale_scales_a_sets_ranges() -> None:
    r = simulate(
        _spec(
            rom_variability=0.0,
            sets=[SetSpec(reps=3), SetSpec(reps=3, rom_scale=0.4)],
        )
    )
    typical = LIB["side-lying-hip-abduction"].rom.typical_deg
    wide = [rep["rom_deg"] for rep in r.truth["reps"] if rep["set"] == 0]
    low = [rep["rom_deg"] for rep in r.truth["reps"] if rep["set"] == 1]
    np.testing.assert_allclose(wide, typical)
    np.testing.assert_allclose(low, 0.4 * typical)
    for rep in r.truth["reps"]:
        seg = _planned(r, rep["start_s"], rep["end_s"])
        assert seg.max() == pytest.approx(rep["rom_deg"], rel=1e-3)


def test_faults_keep_their_own_range_in_a_scaled_set() -> None:
    r = simulate(_spec(sets=[SetSpec(reps=3, rom_scale=0.4, faults={"too_much_range": [1]})]))
    assert r.truth["reps"][1]["rom_deg"] > LIB["side-lying-hip-abduction"].rom.target_max_deg


def test_tempo_scale_and_set_hold_and_rest() -> None:
    r = simulate(
        _spec(
            tempo_variability=0.0,
            sets=[
                SetSpec(reps=3),
                SetSpec(reps=3, tempo_scale=0.5, hold_s=0.0, rest_between_reps_s=0.3),
            ],
        )
    )
    slow = [rep for rep in r.truth["reps"] if rep["set"] == 0]
    fast = [rep for rep in r.truth["reps"] if rep["set"] == 1]
    for a, b in zip(slow, fast, strict=True):
        assert b["outward_s"] == pytest.approx(0.5 * a["outward_s"], abs=0.005)
        assert b["return_s"] == pytest.approx(0.5 * a["return_s"], abs=0.005)
        assert a["hold_s"] == pytest.approx(5.0, rel=0.1) and b["hold_s"] == 0.0
    for a, b in itertools.pairwise(fast):
        assert 0.7 * 0.3 - 0.01 <= b["start_s"] - a["end_s"] <= 1.4 * 0.3 + 0.01


def test_restless_rests_stay_within_the_sway_and_the_drift() -> None:
    sway, drift = 2.0, 6.0
    r = simulate(
        _spec(
            rest_sway_deg=sway,
            rest_drift_deg=drift,
            rest_between_reps_s=4.0,
            sets=[SetSpec(reps=6, rest_after_s=20.0), SetSpec(reps=6)],
        )
    )
    reps = r.truth["reps"]
    bases = [rep["base_deg"] for rep in reps]
    assert all(0.0 <= b <= drift for b in bases)
    assert np.ptp(bases) > 0.5  # the level does move
    moved = []
    for a, b in itertools.pairwise(reps):
        rest = _planned(r, a["end_s"], b["start_s"])
        lo, hi = min(a["base_deg"], b["base_deg"]), max(a["base_deg"], b["base_deg"])
        assert rest.min() >= lo - sway - 1e-9 and rest.max() <= hi + sway + 1e-9
        moved.append(float(np.ptp(rest)))
    assert max(moved) > 0.5 * sway
    # Each rep starts from its resting level and returns to it.
    for rep in reps:
        seg = _planned(r, rep["start_s"], rep["end_s"])
        assert abs(seg[0] - rep["base_deg"]) < 0.05 and abs(seg[-1] - rep["base_deg"]) < 1e-3
        assert seg.max() == pytest.approx(rep["base_deg"] + rep["arrival_deg"], rel=1e-3)


def test_restless_rests_have_no_velocity_steps() -> None:
    def peak_accel(r: object) -> float:
        m = r.motion  # type: ignore[attr-defined]
        speed = np.diff(m.primary_deg) * m.grid_hz
        return float(np.abs(np.diff(speed)).max() * m.grid_hz)

    plain = peak_accel(simulate(_spec(rest_between_reps_s=3.0)))
    restless = peak_accel(
        simulate(_spec(rest_sway_deg=3.0, rest_drift_deg=8.0, rest_between_reps_s=3.0))
    )
    # The reps' own minimum-jerk phases set the peak (about 130 deg/s^2 here); a velocity
    # step of 1 deg/s at a join would add 400 deg/s^2 on the 400 Hz grid.
    assert restless < 1.5 * plain


def test_a_fast_wide_mover_reaches_its_planned_peak_speed() -> None:
    ex = LIB["clamshell"]
    rom = 0.85 * ex.rom.target_max_deg
    phase_s = 15 / 8 * rom / 200.0
    r = simulate(
        _spec(
            "clamshell",
            rom_deg=rom,
            concentric_s=phase_s,
            eccentric_s=phase_s,
            rom_variability=0.0,
            tempo_variability=0.0,
            imu=ImuSpec(noise_free=True, rate_hz=200),
        )
    )
    gyro_peak = np.degrees(np.linalg.norm(r.recording.gyr_rad_s, axis=1)).max()
    for rep in r.truth["reps"]:
        assert rep["peak_dps"] == pytest.approx(200.0, rel=0.01)
        assert rep["rom_deg"] <= ex.rom.target_max_deg
    # The gyro sees it too (the off-plane share adds 0.1 %; the output filter takes a bit).
    assert gyro_peak == pytest.approx(200.0, rel=0.03)


def test_derived_faults_label_what_the_motion_is() -> None:
    ex = LIB["side-lying-hip-abduction"]
    sets = [
        SetSpec(reps=2),
        SetSpec(reps=2, tempo_scale=0.25),
        SetSpec(reps=2, rom_scale=0.3),
        SetSpec(reps=2, hold_s=1.0),
    ]
    plain = simulate(_spec(sets=sets, rom_variability=0.0, tempo_variability=0.0))
    assert all(rep["faults"] == [] for rep in plain.truth["reps"])
    r = simulate(_spec(sets=sets, rom_variability=0.0, tempo_variability=0.0, derive_faults=True))
    by_set = {i: [rep["faults"] for rep in r.truth["reps"] if rep["set"] == i] for i in range(4)}
    assert by_set[0] == [[], []]
    assert by_set[1] == [["too_fast"], ["too_fast"]]
    assert ex.rom.typical_deg * 0.3 < 0.8 * ex.rom.target_min_deg
    assert by_set[2] == [["partial"], ["partial"]]
    assert by_set[3] == [["hold_short"], ["hold_short"]]


def test_derived_faults_of_holds() -> None:
    r = simulate(
        _spec(
            "sitting-iliopsoas-isometric",
            sets=[SetSpec(reps=1), SetSpec(reps=1, hold_s=5.0)],
            derive_faults=True,
        )
    )
    assert [h["faults"] for h in r.truth["holds"]] == [[], ["hold_short"]]


def test_a_given_gyro_bias_is_what_the_sensor_reads_at_rest() -> None:
    bias = (2.5, -0.2, -2.8)
    a = simulate(_spec(imu=ImuSpec(gyro_bias_xyz_dps=bias, gyro_bias_walk_dps_sqrt_s=0.0)))
    b = simulate(_spec(imu=ImuSpec(gyro_bias_walk_dps_sqrt_s=0.0)))
    still = a.recording.time_s < 3.5
    np.testing.assert_allclose(
        np.degrees(np.median(a.recording.gyr_rad_s[still], axis=0)), bias, atol=0.05
    )
    # The rest of the sensor's errors are the same draws.
    np.testing.assert_array_equal(a.recording.acc_m_s2, b.recording.acc_m_s2)
    diff = np.degrees(a.recording.gyr_rad_s - b.recording.gyr_rad_s)
    assert np.ptp(diff, axis=0).max() < 0.1  # a constant, up to quantization


def test_new_fields_default_to_the_old_session() -> None:
    spec = _spec()
    assert spec.rest_sway_deg == spec.rest_drift_deg == spec.hold_sag == 0.0
    assert not spec.derive_faults and spec.imu.gyro_bias_xyz_dps is None
    s = spec.sets[0]
    assert (s.rom_scale, s.tempo_scale, s.hold_s, s.rest_between_reps_s) == (1.0, 1.0, None, None)


PEOPLE = [s for s in load_suite() if "-people-" in s.name]


def test_the_people_population_covers_every_kind_and_body_position() -> None:
    kinds = {s.name.rsplit("-people-", 1)[1] for s in PEOPLE}
    assert kinds == {"nostart", "fast", "restless", "sag", "lowset"}
    exercises = {s.exercise for s in PEOPLE}
    assert len(exercises) >= 8
    positions = {LIB[e].body_position for e in exercises}
    assert len(positions) >= 5
    assert any(s.imu.gyro_bias_xyz_dps for s in PEOPLE)
    assert all(s.derive_faults for s in PEOPLE)


@pytest.mark.parametrize("spec", PEOPLE, ids=[s.name for s in PEOPLE])
def test_people_scenarios_are_short_and_do_what_they_say(spec: ScenarioSpec) -> None:
    r = simulate(spec)
    assert r.truth["duration_s"] < 5 * 60
    kind = spec.name.rsplit("-people-", 1)[1]
    items = r.truth["reps"] or r.truth["holds"]
    ex = LIB[spec.exercise]
    if kind == "nostart":
        first = items[0]["start_s"] if r.truth["reps"] else items[0]["enter_s"]
        assert first <= 1 / spec.imu.rate_hz
    if kind == "fast":
        peaks = [rep["peak_dps"] for rep in r.truth["reps"]]
        assert min(peaks) >= 150.0 and max(peaks) <= 250.0
        assert all("too_fast" in rep["faults"] for rep in r.truth["reps"])
        # Within the exercise's range, far from what the motion core rejects (1.75 x).
        assert max(rep["rom_deg"] for rep in r.truth["reps"]) <= ex.rom.target_max_deg
    if kind == "sag":
        assert all(it["sag_deg"] > 0 for it in items)
    if kind == "lowset":
        wide = np.median([rep["rom_deg"] for rep in r.truth["reps"] if rep["set"] == 0])
        low = np.median([rep["rom_deg"] for rep in r.truth["reps"] if rep["set"] == 1])
        assert 0.15 < low / wide < 0.65
