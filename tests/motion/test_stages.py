"""Each stage of the motion core: chunked equals whole, and agreement with a reference."""

import numpy as np
import pytest
from scipy import signal

from hipsense._quat import quat_conj, rotate
from hipsense.exercises import load_library
from hipsense.motion import (
    AngleBlock,
    AngleTracker,
    OrientationEstimator,
    Segmenter,
    Targets,
)
from hipsense.motion._filters import Lowpass, run_lengths
from hipsense_sim import ImuSpec, ScenarioSpec, SetSpec, SimulationResult, simulate

LIB = load_library()
UP = np.array([0.0, 0.0, 1.0])


def _sim(exercise: str = "clamshell", reps: int = 5, **imu: object) -> SimulationResult:
    spec = ScenarioSpec.model_validate(
        {
            "exercise": exercise,
            "seed": 11,
            "sets": [SetSpec(reps=reps)],
            "imu": ImuSpec.model_validate({"rate_hz": 50, **imu}),
        }
    )
    return simulate(spec)


def _splits(n: int, seed: int) -> list[tuple[int, int]]:
    """Random block boundaries, sizes 1 to 97."""
    rng = np.random.default_rng(seed)
    cuts = np.cumsum(rng.integers(1, 98, size=n))
    cuts = np.concatenate([[0], cuts[cuts < n], [n]])
    return list(zip(cuts[:-1].tolist(), cuts[1:].tolist(), strict=True))


@pytest.mark.parametrize("seed", [0, 1])
def test_lowpass_and_run_lengths_chunked_equal_whole(seed: int) -> None:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(1000, 3))
    whole = Lowpass(4.0, 100.0, 3)(x)
    f = Lowpass(4.0, 100.0, 3)
    parts = np.concatenate([f(x[a:b]) for a, b in _splits(1000, seed)])
    np.testing.assert_array_equal(parts, whole)
    # Reference: scipy on the whole signal with the same initial state.
    sos = signal.butter(2, 4.0, fs=100.0, output="sos")
    zi = signal.sosfilt_zi(sos)[:, :, None] * x[0]
    np.testing.assert_allclose(whole, signal.sosfilt(sos, x, axis=0, zi=zi)[0], atol=1e-12)
    mask = rng.random(1000) < 0.7
    runs_whole = run_lengths(mask, 0)
    carry, pieces = 0, []
    for a, b in _splits(1000, seed + 5):
        r = run_lengths(mask[a:b], carry)
        carry = int(r[-1])
        pieces.append(r)
    np.testing.assert_array_equal(np.concatenate(pieces), runs_whole)
    expected = np.zeros(1000, int)  # plain loop as the reference
    for i in range(1000):
        expected[i] = (expected[i - 1] + 1 if i else 1) if mask[i] else 0
    np.testing.assert_array_equal(runs_whole, expected)


def test_orientation_chunked_equals_whole_and_tracks_gravity() -> None:
    r = _sim()
    rec = r.recording
    whole = OrientationEstimator(50).update_raw(rec.gyr_rad_s, rec.acc_m_s2)
    est = OrientationEstimator(50)
    parts = [est.update_raw(rec.gyr_rad_s[a:b], rec.acc_m_s2[a:b]) for a, b in _splits(len(rec), 3)]
    np.testing.assert_array_equal(np.concatenate([p.quat for p in parts]), whole.quat)
    np.testing.assert_array_equal(np.concatenate([p.gyr_rad_s for p in parts]), whole.gyr_rad_s)
    # Reference: the simulated orientation. Heading is free without a magnetometer, so
    # compare "up" seen from the sensor; VQF converges within a few seconds.
    q_true = r.motion.q_ws[np.round(rec.time_s * r.motion.grid_hz).astype(int)]
    up_est = rotate(quat_conj(whole.quat), np.broadcast_to(UP, (len(rec), 3)))
    up_true = rotate(quat_conj(q_true), np.broadcast_to(UP, (len(rec), 3)))
    err = np.degrees(np.arccos(np.clip(np.sum(up_est * up_true, axis=1), -1, 1)))
    settled = rec.time_s > 5.0
    assert float(np.percentile(err[settled], 95)) < 2.0


def test_quaternion_input_is_passed_through_with_rates() -> None:
    r = _sim(quaternion=True, noise_free=True)
    q = r.recording.quat
    assert q is not None
    est = OrientationEstimator(50)
    out = est.update_quat(q)
    np.testing.assert_allclose(out.quat, q / np.linalg.norm(q, axis=1, keepdims=True))
    est2 = OrientationEstimator(50)
    parts = [est2.update_quat(q[a:b]).gyr_rad_s for a, b in _splits(len(q), 4)]
    np.testing.assert_array_equal(np.concatenate(parts), out.gyr_rad_s)
    # Rates from quaternions agree with the ideal gyroscope: the rate over each interval
    # is the mean of its two ends (the simulated on-sensor heading wanders a little).
    g = r.recording.gyr_rad_s
    np.testing.assert_allclose(out.gyr_rad_s[1:], 0.5 * (g[:-1] + g[1:]), atol=0.01)


def _angles(r: SimulationResult, splits: list[tuple[int, int]] | None) -> AngleBlock:
    rec = r.recording
    ori = OrientationEstimator(50).update_raw(rec.gyr_rad_s, rec.acc_m_s2)
    tracker = AngleTracker(50, min_rotation_deg=30.0)
    if splits is None:
        return tracker.update(rec.time_s, ori.quat, ori.gyr_rad_s)[0]
    return AngleBlock.concat(
        [tracker.update(rec.time_s[a:b], ori.quat[a:b], ori.gyr_rad_s[a:b])[0] for a, b in splits]
    )


def test_angle_tracker_chunked_equals_whole_and_matches_the_planned_angle() -> None:
    r = _sim(reps=6)
    whole = _angles(r, None)
    parts = _angles(r, _splits(len(r.recording), 6))
    for name in ("t_s", "primary_deg", "off_plane_deg", "velocity_dps", "still", "reference"):
        np.testing.assert_array_equal(getattr(parts, name), getattr(whole, name))
    # Reference: the simulator's planned primary angle, wherever it is defined. Strap
    # misalignment (up to 20 deg) must not matter: the axis is estimated.
    idx = np.round(whole.t_s * r.motion.grid_hz).astype(int)
    planned = r.motion.primary_deg[idx]
    ok = np.isfinite(planned)
    err = np.abs(whole.primary_deg[ok] - planned[ok])
    assert float(np.mean(err)) < 1.0
    assert float(np.percentile(err, 99)) < 3.0


def test_segmenter_chunked_equals_whole_and_matches_truth() -> None:
    r = _sim(reps=8)
    block = _angles(r, None)
    tg = Targets.from_exercise(LIB["clamshell"])
    whole = Segmenter(50, tg).update(block)
    seg = Segmenter(50, tg)
    parts: list[object] = []
    for a, b in _splits(len(block.t_s), 8):
        parts += seg.update(block.slice(a, b))
    ref = Segmenter(50, tg)
    whole_all = ref.update(block) + ref.finish()
    assert whole_all[: len(whole)] == whole
    assert parts + seg.finish() == whole_all
    reps = [e for e in whole_all if type(e).__name__ == "RepEvent"]
    truth = r.truth["reps"]
    assert len(reps) == len(truth) == 8
    for got, want in zip(reps, truth, strict=True):
        assert got.rom_deg == pytest.approx(want["rom_deg"], abs=1.5)
        assert got.start_s == pytest.approx(want["start_s"], abs=0.25)
        assert got.end_s == pytest.approx(want["end_s"], abs=0.25)
        assert got.concentric_s == pytest.approx(want["concentric_s"], abs=0.3)
        assert got.eccentric_s == pytest.approx(want["eccentric_s"], abs=0.3)
        assert got.hold_s == pytest.approx(want["hold_s"], abs=0.3)
        assert got.flags == ()
