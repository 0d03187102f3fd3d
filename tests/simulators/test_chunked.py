"""A session simulated in pieces is the session simulated whole, to the bit."""

import numpy as np
import pytest

import hipsense_sim._sampling as sampling
from hipsense_sim import ImuSpec, ScenarioSpec, SimulationResult, body_rates, simulate, suite_dir
from hipsense_sim._sampling import interp_columns
from hipsense_sim._spec import load_scenario


def _scenario(name: str, **imu: object) -> ScenarioSpec:
    spec = load_scenario(suite_dir() / f"{name}.toml")
    if imu:
        spec = spec.model_copy(
            update={"imu": ImuSpec.model_validate({**spec.imu.model_dump(), **imu})}
        )
    return spec


CASES = [
    # Loss, duplicates, reordering and a disconnection with its backlog.
    ("clamshell-bad-link", {}),
    # Holds with tremor, sag, restless rests; the sensor's own quaternion.
    ("sitting-iliopsoas-isometric-people-restless", {"quaternion": True}),
    # Walking, sitting down, fidgeting: no reps at all; 200 Hz on an 800 Hz grid.
    ("non-exercise-living-room", {"rate_hz": 200}),
    # 25 Hz (a 16-row filter window), a set bias, fast reps.
    ("fire-hydrant-people-fast", {}),
    # Sets on both sides: the side switch starts from the last grid row of the set before.
    ("clamshell-clean", {"noise_free": True}),
]


def _assert_same(a: SimulationResult, b: SimulationResult) -> None:
    ra, rb = a.recording, b.recording
    np.testing.assert_array_equal(ra.time_s, rb.time_s)
    np.testing.assert_array_equal(ra.acc_m_s2, rb.acc_m_s2)
    np.testing.assert_array_equal(ra.gyr_rad_s, rb.gyr_rad_s)
    assert (ra.quat is None) == (rb.quat is None)
    if ra.quat is not None and rb.quat is not None:
        np.testing.assert_array_equal(ra.quat, rb.quat)
    assert ra.metadata == rb.metadata
    np.testing.assert_array_equal(a.raw_counts, b.raw_counts)
    np.testing.assert_array_equal(a.sensor_time_us, b.sensor_time_us)
    da, db = a.delivery, b.delivery
    assert da.packets == db.packets
    np.testing.assert_array_equal(da.arrival_s, db.arrival_s)
    np.testing.assert_array_equal(da.received, db.received)
    assert (da.gaps, da.kind, da.sent) == (db.gaps, db.kind, db.sent)
    assert a.truth == b.truth


@pytest.mark.parametrize(("name", "imu"), CASES, ids=[c[0] for c in CASES])
def test_small_pieces_give_the_bits_of_one_piece(
    name: str, imu: dict[str, object], monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = _scenario(name, **imu)
    monkeypatch.setattr(sampling, "CHUNK_ROWS", 10**9)
    whole = simulate(spec)
    # Odd sizes, so seams fall anywhere against segments, filter windows and samples.
    monkeypatch.setattr(sampling, "CHUNK_ROWS", 997)
    pieces = simulate(spec)
    _assert_same(whole, pieces)
    assert whole.grid_hz * whole.truth["duration_s"] > 20 * 997  # many seams, not one
    if spec.imu.quaternion:
        assert pieces.recording.quat is not None


def test_tiny_pieces_give_the_bits_of_one_piece(monkeypatch: pytest.MonkeyPatch) -> None:
    spec = _scenario("fire-hydrant-people-fast", quaternion=True)
    spec = spec.model_copy(update={"sets": spec.sets[:1]})
    monkeypatch.setattr(sampling, "CHUNK_ROWS", 10**9)
    whole = simulate(spec)
    monkeypatch.setattr(sampling, "CHUNK_ROWS", 3)  # fewer grid rows than a filter window
    _assert_same(whole, simulate(spec))


def test_the_motion_built_again_is_the_one_the_sensor_sampled() -> None:
    # Noise free: no jitter, no filter, no quantization in the recording, so each reading
    # is the grid's body rate interpolated at the sample's true instant.
    spec = _scenario("clamshell-clean", noise_free=True)
    r = simulate(spec)
    m = r.motion
    w, f = body_rates(m)
    drift = spec.imu.clock_drift_ppm * 1e-6
    true_s = r.recording.time_s / (1 + drift)
    np.testing.assert_array_equal(r.recording.gyr_rad_s, interp_columns(m.t_s, w, true_s))
    np.testing.assert_array_equal(r.recording.acc_m_s2, interp_columns(m.t_s, f, true_s))
    assert r.motion is m  # built once
    assert r.truth["rep_count"] == len(m.truth["reps"]) > 0
    assert len(r.truth["side_switches"]) == 1
