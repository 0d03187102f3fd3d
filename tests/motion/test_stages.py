"""Each stage of the motion core: chunked equals whole, and agreement with a reference."""

import math

import numpy as np
import pytest
from scipy import ndimage, signal

from hipsense._quat import (
    axis_angle_quat,
    plane_frame,
    quat_conj,
    quat_lmul,
    quat_mul,
    rotate,
    twist_swing_plane,
)
from hipsense.exercises import load_library
from hipsense.motion import (
    AngleBlock,
    AngleTracker,
    Calibration,
    CalibrationSettings,
    Flag,
    HoldEvent,
    OrientationEstimator,
    OrientationSettings,
    RepEvent,
    Segmenter,
    SetEvent,
    Targets,
)
from hipsense.motion._filters import (
    Biquad,
    Lowpass,
    any_true,
    butter2_lowpass,
    first_true,
    largest,
    run_lengths,
    trailing_min,
    trailing_min_from,
)
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


@pytest.mark.parametrize(
    ("cutoff_hz", "rate_hz"), [(1.5, 25.0), (3.0, 100.0), (11.0, 25.0), (0.5, 1000.0)]
)
def test_lowpass_design_and_zero_phase_match_scipy(cutoff_hz: float, rate_hz: float) -> None:
    # Reference: scipy.signal (a test-only dependency; the service does not import it).
    b, a = butter2_lowpass(cutoff_hz, rate_hz)
    sos = signal.butter(2, cutoff_hz, fs=rate_hz, output="sos")
    np.testing.assert_allclose(np.concatenate([b, a]), sos[0], rtol=1e-12, atol=1e-15)
    rng = np.random.default_rng(3)
    x = 40.0 + 5.0 * np.cumsum(rng.normal(size=3000))  # a drifting angle, deg
    scale = np.abs(x).max()
    y = Lowpass(cutoff_hz, rate_hz)(x)
    zi = signal.sosfilt_zi(sos) * x[0]
    np.testing.assert_allclose(
        y,
        signal.sosfilt(sos, x, zi=zi)[0],
        rtol=0,
        atol=1e-12 * scale / (1 - abs(np.roots(a)).max()),
    )
    smooth = Biquad(b, a).filtfilt(x[:200])
    np.testing.assert_allclose(smooth, signal.sosfiltfilt(sos, x[:200]), rtol=0, atol=1e-9 * scale)
    with pytest.raises(ValueError, match="more than 9"):
        Biquad(b, a).filtfilt(x[:9])


@pytest.mark.parametrize("w", [3, 5, 51, 401])
def test_trailing_min_matches_plain_numpy_and_ndimage(w: int) -> None:
    x = np.random.default_rng(w).normal(size=700)
    got = trailing_min(x, w)
    plain = np.array([x[max(0, i - w + 1) : i + 1].min() for i in range(700)])
    np.testing.assert_array_equal(got, plain)
    np.testing.assert_array_equal(
        got, ndimage.minimum_filter1d(x, w, mode="nearest", origin=w // 2)
    )
    # Only the last samples' minima, as a stream asks for them: the same values.
    for start in (0, 1, 350, 650, 680, 699):
        np.testing.assert_array_equal(trailing_min_from(x, w, start), plain[start:])
    # And streams shorter than the window, whose windows all reach back to the first sample.
    for stop in (w // 2 + 1, w, w + 7):
        for start in {0, 1, stop // 2, stop - 3, stop - 1} & set(range(stop)):
            np.testing.assert_array_equal(trailing_min_from(x[:stop], w, start), plain[start:stop])


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
    np.testing.assert_array_equal(err, _up_error_deg(r, rec.time_s, whole.quat))


def _up_error_deg(r: SimulationResult, t: np.ndarray, quat: np.ndarray) -> np.ndarray:
    """Angle between estimated and simulated "up" seen from the sensor, per sample."""
    q_true = r.motion.q_ws[np.round(t * r.motion.grid_hz).astype(int)]
    up_est = rotate(quat_conj(quat), np.broadcast_to(UP, (len(t), 3)))
    up_true = rotate(quat_conj(q_true), np.broadcast_to(UP, (len(t), 3)))
    return np.degrees(np.arccos(np.clip(np.sum(up_est * up_true, axis=1), -1, 1)))


def test_orientation_through_lost_samples_stays_right_and_chunked_equals_whole() -> None:
    # Reps of 35 deg; samples lost mid-movement: short bursts (bridged) and one 4 s
    # disconnection (after which the inclination is taken afresh).
    r = _sim(reps=8)
    rec = r.recording
    t = rec.time_s
    keep = np.ones(len(t), bool)
    speed = np.linalg.norm(rec.gyr_rad_s, axis=1)
    moving = np.flatnonzero((speed > 0.5) & (t > 8.0))
    rng = np.random.default_rng(3)
    for start in rng.choice(moving, size=12, replace=False):
        keep[start : start + rng.integers(3, 20)] = False
    long_start = int(moving[len(moving) // 2])
    keep[long_start : long_start + 200] = False
    t_k, g_k, a_k = t[keep], rec.gyr_rad_s[keep], rec.acc_m_s2[keep]
    whole = OrientationEstimator(50).update_raw(g_k, a_k, t_k)
    est = OrientationEstimator(50)
    parts = [est.update_raw(g_k[a:b], a_k[a:b], t_k[a:b]) for a, b in _splits(len(t_k), 8)]
    np.testing.assert_array_equal(np.concatenate([p.quat for p in parts]), whole.quat)
    np.testing.assert_array_equal(np.concatenate([p.gyr_rad_s for p in parts]), whole.gyr_rad_s)
    # Reference: the simulated orientation, as without losses (2 deg at the 95th
    # percentile), including the samples right after each gap.
    err = _up_error_deg(r, t_k, whole.quat)
    assert float(np.percentile(err[t_k > 5.0], 95)) < 2.0
    after_long = np.flatnonzero(t_k > t[long_start + 200 - 1])[:25]
    assert float(err[after_long].max()) < 3.0
    # Fed without times, the same stream loses the rotation made while samples were lost.
    blind = OrientationEstimator(50).update_raw(g_k, a_k)
    assert float(_up_error_deg(r, t_k, blind.quat)[after_long].max()) > 5.0


@pytest.mark.parametrize(("bridge_gap_s", "bridged"), [(1.0, True), (0.5, False)])
def test_a_turn_about_the_vertical_through_a_lost_second_is_bridged(
    bridge_gap_s: float, bridged: bool
) -> None:
    # Turns of 20 deg about the vertical, which the accelerometer cannot see: out 3 s,
    # back 3 s, still 2 s. 0.9 s of samples (five packets at MTU 247) are lost around
    # the fastest part of one way out, where 11 deg of the turn are made. Bridged, the
    # straight line between the rates either side of the gap recovers all but ~2 deg
    # of it; taken as a long gap (the former 0.5 s limit), all of it is lost.
    rate = 100.0
    t = np.arange(0, 40.0, 1 / rate)
    phase = np.mod(t - 10.0, 8.0)
    peak_dps = 2 * 20 / 3.0
    rate_dps = np.where(phase < 3.0, 1.0, np.where(phase < 6.0, -1.0, 0.0)) * (
        peak_dps * np.sin(np.pi * np.mod(phase, 3.0) / 3.0) ** 2
    )
    rate_dps[t < 10.0] = 0.0
    heading_deg = np.cumsum(rate_dps) / rate
    gyr = np.zeros((len(t), 3))
    gyr[:, 2] = np.radians(rate_dps)
    acc = np.tile([0.0, 0.0, 9.81], (len(t), 1))
    keep = ~((t >= 27.05) & (t < 27.95))  # the middle of the third way out
    est = OrientationEstimator(rate, OrientationSettings(bridge_gap_s=bridge_gap_s))
    quat = est.update_raw(gyr[keep], acc[keep], t[keep]).quat
    yaw = np.degrees(2 * np.arctan2(quat[:, 3], quat[:, 0]))
    err = np.abs((yaw - yaw[0]) - heading_deg[keep])[t[keep] > 28.0]
    if bridged:
        assert float(err.max()) < 2.5
    else:
        assert float(err.min()) > 8.0


@pytest.mark.parametrize("residual_clip_dps", [1.0, None])
def test_a_slow_turn_about_the_vertical_once_the_bias_is_known_is_not_taken_for_bias(
    residual_clip_dps: float | None,
) -> None:
    # A gyro with a bias of 2.5 deg/s about the vertical; still for 10 s (VQF learns the
    # bias), then a turn about the vertical at 2 deg/s for 8 s (the way back from a
    # reach), nearly cancelling the bias: by VQF's own rest test that is rest; and back.
    # The accelerometer cannot see a turn about the vertical. With the bias taken off
    # once known and the residual clipped to 1 deg/s, the bias estimate stays put and
    # the heading comes back to where it was; with the 5 deg/s clip throughout, the turn
    # is taken for a bias jump and the heading is left 10+ deg off.
    rate = 50.0
    t = np.arange(0, 45.0, 1 / rate)
    rng = np.random.default_rng(5)
    turn = np.where((t >= 10) & (t < 18), -2.0, 0.0) + np.where((t >= 20) & (t < 24), 4.0, 0.0)
    bias_dps = np.array([0.4, -0.3, 2.5])
    gyr = np.radians(bias_dps + np.outer(turn, [0.0, 0.0, 1.0]) + rng.normal(0, 0.1, (t.size, 3)))
    acc = np.array([0.0, 0.0, 9.81]) + rng.normal(0, 0.03, (t.size, 3))
    settings = OrientationSettings(residual_bias_clip_dps=residual_clip_dps)
    whole = OrientationEstimator(rate, settings).update_raw(gyr, acc, t)

    def heading_deg(q: np.ndarray) -> np.ndarray:
        return np.degrees(2.0 * np.arctan2(q[:, 3], q[:, 0]))

    h = heading_deg(whole.quat)
    came_back = float(abs(h[t.searchsorted(40.0)] - h[t.searchsorted(9.0)]))
    bias_after = np.degrees(gyr - whole.gyr_rad_s)[t.searchsorted(40.0)]
    if residual_clip_dps is None:
        assert came_back > 10.0
    else:
        assert came_back < 1.0
        np.testing.assert_allclose(bias_after, bias_dps, atol=0.2)
    est = OrientationEstimator(rate, settings)
    parts = [est.update_raw(gyr[a:b], acc[a:b], t[a:b]) for a, b in _splits(len(t), 6)]
    np.testing.assert_array_equal(np.concatenate([p.quat for p in parts]), whole.quat)
    np.testing.assert_array_equal(np.concatenate([p.gyr_rad_s for p in parts]), whole.gyr_rad_s)


def test_orientation_feeds_real_samples_unchanged_whether_or_not_their_block_has_a_gap() -> None:
    # White-noise samples (consecutive values far apart, so before + 1 * (x - before) is
    # not always x in floating point) with a few lost: a block holding a gap and a block
    # without one must give VQF the real samples to the bit, or chunked != whole.
    rng = np.random.default_rng(11)
    n = 600
    t = np.arange(n) / 50.0
    keep = np.ones(n, bool)
    for start in (100, 250, 420):
        keep[start : start + 3] = False
    t = t[keep]
    g = rng.normal(0.0, 0.5, (t.shape[0], 3))
    a = np.array([0.0, 0.0, 9.81]) + rng.normal(0.0, 0.3, (t.shape[0], 3))
    whole = OrientationEstimator(50).update_raw(g, a, t)
    est = OrientationEstimator(50)
    parts = [
        est.update_raw(g[i : i + 10], a[i : i + 10], t[i : i + 10]) for i in range(0, len(t), 10)
    ]
    np.testing.assert_array_equal(np.concatenate([p.quat for p in parts]), whole.quat)


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
    # Across lost samples the rate is over the real interval: the mean of what was lost.
    t = r.recording.time_s
    keep = np.ones(len(t), bool)
    keep[200:205] = False
    lossy = OrientationEstimator(50).update_quat(q[keep], t[keep])
    np.testing.assert_allclose(lossy.gyr_rad_s[200], g[200:205].mean(axis=0), atol=0.02)
    np.testing.assert_array_equal(lossy.gyr_rad_s[:200], out.gyr_rad_s[:200])


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
    names = ("t_s", "primary_deg", "off_plane_deg", "velocity_dps", "still", "reference")
    for name in (*names, "off_plane_xy_deg"):
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


# A movement axis along no sensor axis (the strap may sit at any rotation).
_TILTED_AXIS = np.array([0.6, -0.3, 0.74]) / np.linalg.norm([0.6, -0.3, 0.74])


def _synthetic_reps(rate: float, axis: np.ndarray, wobble_dps: float) -> tuple:
    """Neutral, then 10 deg raises about `axis` with fast wobble about another axis."""
    from hipsense._quat import axis_angle_quat, quat_mul

    t = np.arange(0, 60.0, 1 / rate)
    up = np.clip(np.minimum(t % 8 - 2.0, 6.0 - t % 8), 0.0, 1.0) * (t > 3.0)
    ang = np.radians(10.0) * up
    other = np.cross(axis, [0.0, 0.0, 1.0] if abs(axis[2]) < 0.9 else [1.0, 0.0, 0.0])
    other /= np.linalg.norm(other)
    # Tremor: large rates (wobble_dps), small angles (amplitude wobble / (2 pi 8 Hz)).
    wob = np.radians(wobble_dps) / (2 * np.pi * 8.0) * np.sin(2 * np.pi * 8.0 * t) * (up > 0)
    q = quat_mul(axis_angle_quat(axis, ang), axis_angle_quat(other, wob))
    w = np.gradient(ang, t)[:, None] * axis + np.gradient(wob, t)[:, None] * other
    return t, q, w, np.degrees(ang)


def test_axis_from_rotation_not_rates_survives_tremor() -> None:
    # A leg raise of 10 deg with tremor as fast as the raise: an axis from angular
    # velocity energy would be ~50 % planar; the rotation from neutral is clearly planar.
    axis = _TILTED_AXIS
    t, q, w, ang = _synthetic_reps(50.0, axis, wobble_dps=25.0)
    tracker = AngleTracker(50, min_rotation_deg=12.0)
    block, cals = tracker.update(t, q, w)
    found = [c for c in cals if c.reason == "axis"]
    assert len(found) == 1
    assert abs(float(np.dot(found[0].axis_sensor, axis))) > 0.99
    assert found[0].axis_quality > 0.95
    # Every sample after neutral comes back, measured about the found axis.
    late = block.t_s > 3.0
    np.testing.assert_allclose(block.primary_deg[late], ang[np.isin(t, block.t_s[late])], atol=0.5)


def test_a_marginal_axis_is_taken_when_the_next_movement_repeats_it() -> None:
    # Raises whose tremor is so large that the poses are only ~0.9 planar and the
    # angular velocity is mostly tremor: like fidgeting by both measures, so the first
    # movement's axis is refused; the second movement repeats it and it is taken.
    axis = _TILTED_AXIS
    t, q, w, _ = _synthetic_reps(50.0, axis, wobble_dps=200.0)
    tracker = AngleTracker(50, min_rotation_deg=12.0)
    _, cals = tracker.update(t, q, w)
    assert [c.reason for c in cals[:3]] == ["still", "still", "axis"]
    assert 0.85 <= cals[2].axis_quality < 0.95
    assert cals[2].t_s > 8.0  # after the second raise (they start every 8 s)
    assert abs(float(np.dot(cals[2].axis_sensor, axis))) > 0.99
    # Fed in blocks, the same calibrations.
    tracker2 = AngleTracker(50, min_rotation_deg=12.0)
    parts = []
    for a, b in _splits(len(t), 9):
        parts += tracker2.update(t[a:b], q[a:b], w[a:b])[1]
    assert parts == cals


def test_marginal_axes_that_never_agree_are_refused_at_most_twice() -> None:
    # Three raises of 10 deg with large tremor, each about a different axis (60 deg
    # apart): the first two are refused, the third is taken rather than losing the
    # session to a leg that wobbles more than the tests allow.
    from hipsense._quat import axis_angle_quat, quat_mul

    rate = 50.0
    t = np.arange(0, 40.0, 1 / rate)
    axes = [np.array([1.0, 0.0, 0.0]), np.array([0.5, 0.866, 0.0]), np.array([-0.5, 0.866, 0.0])]
    q = np.tile([1.0, 0.0, 0.0, 0.0], (t.shape[0], 1))
    w = np.zeros((t.shape[0], 3))
    for k, ax in enumerate(axes):
        local = t - (3.0 + 8.0 * k)
        up = np.clip(np.minimum(local, 4.0 - local), 0.0, 1.0)
        other = np.array([0.0, 0.0, 1.0])
        wob = np.radians(200.0) / (2 * np.pi * 8.0) * np.sin(2 * np.pi * 8.0 * t) * (up > 0)
        on = up > 0
        q[on] = quat_mul(axis_angle_quat(ax, np.radians(10.0) * up), axis_angle_quat(other, wob))[
            on
        ]
        w[on] = (np.gradient(np.radians(10.0) * up, t)[:, None] * ax)[on] + (
            np.gradient(wob, t)[:, None] * other
        )[on]
    tracker = AngleTracker(50, min_rotation_deg=12.0)
    _, cals = tracker.update(t, q, w)
    found = [c for c in cals if c.reason == "axis"]
    assert [c.reason for c in cals] == ["still", "still", "still", "axis"]
    assert 19.0 < found[0].t_s < 27.0  # after the third raise
    assert abs(float(np.dot(found[0].axis_sensor, axes[2]))) > 0.99


def test_a_pause_at_the_top_of_a_reach_taken_for_a_new_start_is_undone_on_return() -> None:
    # Raises of 20 deg about one axis; then a reach that tilts the thigh 35 deg off the
    # plane, pausing 3 s at the top (a still pose off the plane: a new start position,
    # as after turning over); back where it was, the old start position and axis hold
    # again, and the raises after it are measured as before.
    from hipsense._quat import axis_angle_quat

    rate = 50.0
    t = np.arange(0, 70.0, 1 / rate)
    axis = np.array([0.0, 0.6, 0.8])
    tilt_axis = np.array([1.0, 0.0, 0.0])

    def bump(start: float, move: float, top: float) -> np.ndarray:
        x = t - start
        up = np.clip(x / move, 0, 1) - np.clip((x - move - top) / move, 0, 1)
        return np.asarray(up * up * (3 - 2 * up))

    raises = sum(bump(c, 1.0, 1.0) for c in (4.0, 10.0, 45.0, 51.0, 57.0))
    reach = bump(20.0, 3.0, 3.0)
    q = quat_mul(
        axis_angle_quat(tilt_axis, np.radians(35.0) * reach),
        axis_angle_quat(axis, np.radians(20.0) * raises),
    )
    w = np.zeros((t.shape[0], 3))
    w[1:] = (
        np.gradient(np.radians(20.0) * raises, t)[1:, None] * axis
        + np.gradient(np.radians(35.0) * reach, t)[1:, None] * tilt_axis
    )
    tracker = AngleTracker(50, min_rotation_deg=12.0)
    block, cals = tracker.update(t, q, w)
    assert [c.reason for c in cals] == ["still", "axis", "reposition", "reposition"]
    taken, restored = cals[1], cals[3]
    assert 24.0 < cals[2].t_s < 27.0  # the pause at the top of the reach
    assert 29.0 < restored.t_s < 35.0  # back, and still
    assert restored.axis_sensor == taken.axis_sensor
    assert restored.neutral_quat == taken.neutral_quat
    late = block.t_s > 40.0
    np.testing.assert_allclose(
        block.primary_deg[late], 20.0 * raises[np.isin(t, block.t_s[late])], atol=0.5
    )
    tracker2 = AngleTracker(50, min_rotation_deg=12.0)
    parts = []
    for a, b in _splits(len(t), 12):
        parts += tracker2.update(t[a:b], q[a:b], w[a:b])[1]
    assert parts == cals


@pytest.mark.parametrize("still_until_s", [9.0, 4.0])
def test_a_neutral_taken_before_the_gyro_bias_was_known_is_taken_again_if_still(
    still_until_s: float,
) -> None:
    # Still from the start while the heading drifts 2 deg/s (the gyro bias, not yet
    # known: VQF's first rest comes after 1.5 s of it) until 3 s, when the bias becomes
    # known; then raises of 20 deg about a horizontal axis. Still until 9 s: the neutral
    # is taken again at 4.5 s (bias known for 1.5 s), so the raises are measured with no
    # off-plane angle; the drift would have put 4.5 deg of heading into it. Moving from
    # 4 s (before the bias is known for 1.5 s): the first neutral stays.
    from hipsense._quat import axis_angle_quat

    rate = 50.0
    t = np.arange(0, 40.0, 1 / rate)
    axis = np.array([1.0, 0.0, 0.0])
    drift = np.radians(2.0) * np.minimum(t, 3.0)
    x = (t - still_until_s) % 6.0
    on = t >= still_until_s
    raises = np.where(on, np.clip(np.minimum(x, 3.0 - x), 0.0, 1.0), 0.0)
    q = quat_mul(
        axis_angle_quat(np.array([0.0, 0.0, 1.0]), drift),
        axis_angle_quat(axis, np.radians(20.0) * raises),
    )
    w = np.gradient(np.radians(20.0) * raises, t)[:, None] * axis
    sigma = np.where(t < 3.0, np.radians(0.5), np.radians(0.05))
    tracker = AngleTracker(50, min_rotation_deg=12.0)
    block, cals = tracker.update(t, q, w, sigma)
    late = block.t_s > still_until_s + 7.0
    if still_until_s > 4.5:
        assert [c.reason for c in cals] == ["still", "still", "axis"]
        assert cals[1].t_s == pytest.approx(4.5, abs=0.05)
        np.testing.assert_allclose(cals[1].neutral_quat, q[int(4.5 * rate)], atol=1e-9)
        assert float(block.off_plane_deg[late].max()) < 0.1
    else:
        assert [c.reason for c in cals] == ["still", "axis"]
        assert float(block.off_plane_deg[late].max()) > 2.0
    np.testing.assert_allclose(
        block.primary_deg[late], 20.0 * raises[np.isin(t, block.t_s[late])], atol=0.5
    )
    tracker2 = AngleTracker(50, min_rotation_deg=12.0)
    parts = []
    for a, b in _splits(len(t), 4):
        parts += tracker2.update(t[a:b], q[a:b], w[a:b], sigma[a:b])[1]
    assert parts == cals


def test_small_holds_come_back_within_drift_of_neutral() -> None:
    # Isometric holds of 4 deg about a horizontal axis (10 s each, 3.5 s rests) while
    # the heading drifts 0.1 deg/s (a gyro bias a tenth of a degree per second off):
    # the first rest reads about 1.8 deg from neutral, more than a third of the way to
    # the hold. Back within the drift allowance (2 deg, at most half the hold), that
    # is the limb back at neutral: the axis is found at the first rest, and the holds
    # are measured up, not from the hold pose down.
    from hipsense._quat import axis_angle_quat

    rate = 50.0
    t = np.arange(0, 75.0, 1 / rate)
    axis = np.array([1.0, 0.0, 0.0])
    holds = sum(_ramp_rep(t, 4.0 + 17.5 * k, 4.0, 2.0, 10.0) for k in range(4))
    drift = np.radians(0.1) * t
    q = quat_mul(
        axis_angle_quat(np.array([0.0, 0.0, 1.0]), drift),
        axis_angle_quat(axis, np.radians(1.0) * np.asarray(holds)),
    )
    w = np.radians(np.gradient(np.asarray(holds), t))[:, None] * axis
    w[:, 2] += np.radians(0.1)
    tracker = AngleTracker(50, min_rotation_deg=6.0)
    block, cals = tracker.update(t, q, w)
    assert [c.reason for c in cals] == ["still", "axis"]
    assert 16.0 < cals[1].t_s < 21.5  # back from the first hold, before the second
    # The drift tilts the axis found a little towards the vertical, so the angles take
    # in some of it (the segmenter follows the rest level); each hold is 4 deg above
    # the rest before it. Upside down, it would be 4 deg below.
    planned = np.asarray(holds)[np.isin(t, block.t_s)]
    for k in range(4):
        start = 4.0 + 17.5 * k
        top = (planned > 3.9) & (block.t_s > start) & (block.t_s < start + 14.0)
        rest = (planned < 0.1) & (block.t_s > start - 3.0) & (block.t_s < start)
        rise = float(block.primary_deg[top].mean() - block.primary_deg[rest].mean())
        assert rise == pytest.approx(4.0, abs=0.5)
    tracker2 = AngleTracker(50, min_rotation_deg=6.0)
    parts = []
    for a, b in _splits(len(t), 6):
        parts += tracker2.update(t[a:b], q[a:b], w[a:b])[1]
    assert parts == cals


def _track_whole_and_chunked(
    t: np.ndarray,
    q: np.ndarray,
    w: np.ndarray,
    seed: int,
    settings: CalibrationSettings | None = None,
) -> tuple[AngleBlock, list[Calibration]]:
    """Angles and calibrations fed whole; checks that random blocks (`seed`) give the same."""
    tracker = AngleTracker(50, settings, min_rotation_deg=12.0)
    block, cals = tracker.update(t, q, w)
    tracker2 = AngleTracker(50, settings, min_rotation_deg=12.0)
    blocks, parts = [], []
    for a, b in _splits(len(t), seed):
        got, c = tracker2.update(t[a:b], q[a:b], w[a:b])
        blocks.append(got)
        parts += c
    assert parts == cals
    whole = AngleBlock.concat(blocks)
    np.testing.assert_array_equal(whole.t_s, block.t_s)
    np.testing.assert_array_equal(whole.primary_deg, block.primary_deg)
    np.testing.assert_array_equal(whole.off_plane_deg, block.off_plane_deg)
    return block, cals


def _planned_reps(
    t: np.ndarray, starts: list[float], rom_deg: float, move_s: float, top_s: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Poses, rates and angle of reps about `_TILTED_AXIS` starting at `starts`."""
    angle = np.asarray(sum(_ramp_rep(t, s0, rom_deg, move_s, top_s) for s0 in starts))
    q = axis_angle_quat(_TILTED_AXIS, np.radians(angle))
    w = np.radians(np.gradient(angle, t))[:, None] * _TILTED_AXIS
    return q, w, angle


@pytest.mark.parametrize("opening", ["at the start position", "with a noisy rate", "elsewhere"])
def test_a_first_rep_begun_before_a_still_start_is_measured_from_where_it_began(
    opening: str,
) -> None:
    # Reps of 12 deg with 5 s at the top and 0.5 s rests: the subject begins the first
    # one 0.8 s after the stream opens, so the first still spell of 1.5 s is its top,
    # and the rests are never still that long. The stream opened where the reps go back
    # to: that is the start position, and the samples from the opening on are measured
    # from it (the first rep too). The opening is still by its pose: a rate as noisy as
    # a gyro's with its bias not yet known (3 deg/s) does not hide it. Opened still
    # somewhere else (turned 12 deg about another axis, moving from there to the start
    # of the reps): the opening says nothing, the top stays neutral, and the reps read
    # from it, the other way up.
    rate = 50.0
    t = np.arange(0, 40.0, 1 / rate)
    starts = [0.8 + 7.5 * k for k in range(5)]
    q, w, angle = _planned_reps(t, starts, 12.0, 1.0, 5.0)
    if opening == "elsewhere":
        other = np.cross(_TILTED_AXIS, UP)
        other /= np.linalg.norm(other)
        away = np.radians(12.0) * (1.0 - np.clip((t - 0.8) / 1.0, 0.0, 1.0))
        q = quat_mul(axis_angle_quat(other, away), q)
        w = w + np.gradient(away, t)[:, None] * other
    if opening == "with a noisy rate":
        w = (
            w
            + np.radians(3.0)
            * np.random.default_rng(5).standard_normal(w.shape)
            * (t < 0.8)[:, None]
        )
    block, cals = _track_whole_and_chunked(t, q, w, seed=21)
    assert [c.reason for c in cals] == ["still", "axis"]
    assert 3.0 < cals[0].t_s < 5.0  # the first top
    assert abs(float(np.dot(cals[1].axis_sensor, _TILTED_AXIS))) > 0.99
    late = block.t_s > 10.0
    planned = angle[np.isin(t, block.t_s)]
    if opening == "elsewhere":
        assert block.t_s[0] > 3.0
        np.testing.assert_allclose(block.primary_deg[late], 12.0 - planned[late], atol=0.5)
        return
    np.testing.assert_allclose(cals[1].neutral_quat, q[0], atol=5e-3)  # 0.6 deg
    assert block.t_s[0] == 0.0  # from the opening on
    np.testing.assert_allclose(block.primary_deg, planned, atol=0.5)


def test_reps_without_a_rest_at_the_start_position_find_the_axis_at_the_first_turn() -> None:
    # Reps of 12 deg, each straight into the next: the limb turns round at neutral at
    # 14 deg/s, never still there (2 s at the top, 1 s out, 1 s back). That turn is the
    # end of the first rep: the axis is found then, not after 90 s of waiting.
    rate = 50.0
    t = np.arange(0, 30.0, 1 / rate)
    angle = 12.0 * np.clip(1.5 * np.abs(np.sin(np.pi * (t - 3.0) / 4.0)), 0.0, 1.0) * (t > 3.0)
    q = axis_angle_quat(_TILTED_AXIS, np.radians(angle))
    w = np.radians(np.gradient(angle, t))[:, None] * _TILTED_AXIS
    block, cals = _track_whole_and_chunked(t, q, w, seed=22)
    assert [c.reason for c in cals] == ["still", "axis"]
    assert 7.0 < cals[1].t_s < 7.5  # just after the turn at 7 s
    assert abs(float(np.dot(cals[1].axis_sensor, _TILTED_AXIS))) > 0.99
    np.testing.assert_allclose(block.primary_deg, angle[np.isin(t, block.t_s)], atol=0.5)
    # Waiting for a still moment back at neutral, there is none until the reps end.
    stays = CalibrationSettings(axis_back_turn_deg=math.inf)
    _, cals_still = _track_whole_and_chunked(t, q, w, seed=22, settings=stays)
    assert [c.reason for c in cals_still] == ["still"]


def _angle_block(
    t: np.ndarray, primary: np.ndarray, still: np.ndarray, off_xy: np.ndarray | None = None
) -> AngleBlock:
    xy = np.zeros((t.shape[0], 2)) if off_xy is None else off_xy
    off = np.sqrt((xy**2).sum(axis=1))
    ref = np.zeros(t.shape, np.int64)
    return AngleBlock(t, primary, off, np.gradient(primary, t), still, ref, xy)


def _ramp_rep(
    t: np.ndarray, start_s: float, rom_deg: float, move_s: float, top_s: float
) -> np.ndarray:
    """Out in `move_s`, `top_s` at the top, back in `move_s` (minimum-jerk movements)."""

    def mj(x: np.ndarray) -> np.ndarray:
        x = np.clip(x, 0.0, 1.0)
        return np.asarray(x**3 * (10 - 15 * x + 6 * x**2))

    up = mj((t - start_s) / move_s)
    down = mj((t - start_s - move_s - top_s) / move_s)
    return rom_deg * (up - down)


def _segment_whole_and_chunked(
    t: np.ndarray, primary: np.ndarray, exercise: str | None, seed: int, still_dps: float = 1.0
) -> list[object]:
    """Events of a planned angle (still: slower than `still_dps`) fed whole; checks that
    blocks split at random (`seed`) give the same events. `None` is `auto`."""
    rate = 1.0 / float(t[1] - t[0])
    still = np.abs(np.gradient(primary, t)) < still_dps
    tg = Targets.automatic() if exercise is None else Targets.from_exercise(LIB[exercise])
    block = _angle_block(t, primary, still)
    seg = Segmenter(rate, tg)
    events: list[object] = [*seg.update(block), *seg.finish()]
    seg2 = Segmenter(rate, tg)
    parts: list[object] = []
    for a, b in _splits(len(t), seed):
        parts += seg2.update(block.slice(a, b))
    assert parts + seg2.finish() == events
    return events


def _isometric_holds(t: np.ndarray, primary: np.ndarray, seed: int) -> list[HoldEvent]:
    """The holds of 4 deg isometric holds (10 s) in a planned angle, whole == chunked."""
    events = _segment_whole_and_chunked(t, primary, "deep-hip-lateral-rotator-level-1", seed)
    return [e for e in events if isinstance(e, HoldEvent)]


def test_segmenter_splits_reps_that_come_back_half_way_and_go_out_again() -> None:
    # Real low-amplitude raises: the first comes back only 55 % of the way (the rest
    # level creeps up) and the next goes out from there. Two reps, measured from their
    # own starts. A third comes back half way and stays: no rep. Nor is a fourth that
    # comes back half way, goes out again and stays (a pillow adjusted, in two humps).
    t = np.arange(0, 75.0, 1 / 50)

    def step(t0: float, amp: float) -> np.ndarray:
        x = np.clip((t - t0) / 1.5, 0.0, 1.0)
        return np.asarray(amp * x**3 * (10 - 15 * x + 6 * x**2))

    primary = (
        step(5.0, 10.0) + step(7.5, -5.5) + step(10.5, 10.0) + step(13.0, -10.0)
        + step(30.0, 10.0) + step(32.5, -5.5)
        + step(50.0, 10.0) + step(52.5, -5.5) + step(55.0, 4.0)
    )  # fmt: skip
    events = _segment_whole_and_chunked(t, primary, None, 41)
    reps = [e for e in events if isinstance(e, RepEvent)]
    assert [round(r.start_s, 1) for r in reps] == pytest.approx([5.0, 10.5], abs=0.15)
    assert [r.rom_deg for r in reps] == pytest.approx([10.0, 10.0], abs=0.3)
    assert reps[0].end_s == pytest.approx(9.0, abs=0.5)


def test_segmenter_finds_the_rest_level_again_after_a_dip() -> None:
    # Turning over dips the angle 25 deg below neutral; then 5 clamshells from neutral.
    # A baseline that remembered the dip would wait for a return that never comes.
    rate = 50.0
    t = np.arange(0, 80.0, 1 / rate)
    dip = -25.0 * np.clip(1 - np.abs(t - 5.0) / 2.0, 0, 1)
    reps = np.zeros_like(t)
    for k in range(5):
        c = 20.0 + 10.0 * k
        reps += 30.0 * np.clip(np.minimum(t - c, c + 6.0 - t) / 1.5, 0, 1)
    primary = dip + reps
    still = np.abs(np.gradient(primary, t)) < 1.0
    tg = Targets.from_exercise(LIB["clamshell"])
    seg = Segmenter(rate, tg)
    block = _angle_block(t, primary, still)
    events = seg.update(block) + seg.finish()
    got = [e for e in events if type(e).__name__ == "RepEvent"]
    assert len(got) == 5
    for k, rep in enumerate(got):
        assert rep.start_s == pytest.approx(20.0 + 10.0 * k, abs=0.3)
        assert rep.rom_deg == pytest.approx(30.0, abs=1.0)
    parts: list[object] = []
    seg2 = Segmenter(rate, tg)
    for a, b in _splits(len(t), 21):
        parts += seg2.update(block.slice(a, b))
    assert parts + seg2.finish() == events


def test_segmenter_drops_a_rise_from_a_fidgeting_dip_that_settles_at_neutral() -> None:
    # Getting settled for isometric holds of 4 deg (10 s): still for 2 s at -3 deg
    # (taken as the rest level), a dip to -7 deg and at once back to neutral, a move
    # up and back with no hold, then five holds with 3.5 s rests. The rise out of the
    # dip is no hold: it settles where reps start. Measured from the dip, the holds
    # would never come back down to it, and none would be counted. The move with no
    # time at the top is passing through, not a hold cut short.
    rate = 50.0
    t = np.arange(0, 130.0, 1 / rate)
    settle = _ramp_rep(t, 2.0, -3.0, 1.0, 3.0) + _ramp_rep(t, 5.0, -4.0, 1.0, 0.0)
    # Settling in: the leg goes 6 deg up and straight back, no hold at the top.
    settle += _ramp_rep(t, 15.0, 6.0, 1.0, 0.0)
    holds = sum(_ramp_rep(t, 25.0 + 17.5 * k, 4.0, 2.0, 10.0) for k in range(5))
    primary = np.asarray(settle + holds)
    got = _isometric_holds(t, primary, 17)
    assert [h.enter_s for h in got] == [pytest.approx(25.0 + 17.5 * k, abs=0.5) for k in range(5)]
    for h in got:
        assert h.hold_s == pytest.approx(10.0, abs=1.0)
        assert h.angle_deg == pytest.approx(4.0, abs=0.5)


def test_a_fidget_that_creeps_at_its_top_is_no_hold_but_a_hold_cut_short_is() -> None:
    # Isometric holds of 4 deg (10 s). Shifting on the mat moves the leg 5 deg up,
    # creeping on by 1.5 deg for 1.5 s, and back: measured with its creep, its top
    # lasts 1.5 s, less than a fifth of the hold. Then a hold given up after 3.5 s
    # (a third of it) and two full ones: three holds, the first one cut short.
    rate = 50.0
    t = np.arange(0, 75.0, 1 / rate)
    fidget = (
        _ramp_rep(t, 5.0, 5.0, 1.0, 1e3)
        + 1.5 * np.clip((t - 6.0) / 1.5, 0.0, 1.0)
        + _ramp_rep(t, 7.5, -6.5, 1.0, 1e3)
    )
    holds = _ramp_rep(t, 15.0, 4.0, 2.0, 3.5) + sum(
        _ramp_rep(t, 30.0 + 17.5 * k, 4.0, 2.0, 10.0) for k in range(2)
    )
    primary = np.asarray(fidget + holds)
    got = _isometric_holds(t, primary, 37)
    assert [h.enter_s for h in got] == [pytest.approx(s, abs=0.5) for s in (15.0, 30.0, 47.5)]
    assert [h.hold_s for h in got] == [pytest.approx(h, abs=1.0) for h in (3.5, 10.0, 10.0)]
    assert [Flag.HOLD_SHORT in h.flags for h in got] == [True, False, False]


def test_segmenter_drops_a_candidate_that_settles_well_short_of_its_top() -> None:
    # Settling in for isometric holds of 4 deg (10 s): a dip to -4 deg, up to +5 and
    # back to -0.5, where the leg then rests for 12 s (past half way back from +5, not
    # the 35 % that ends a rep), then four holds from there. A hold sits at its top
    # and a pause on the way back is short: still that far short of the top for longer
    # than the hold, the candidate has settled somewhere new and is dropped. Kept, it
    # would swallow every hold that followed (none reaches +5, none returns to -4).
    rate = 50.0
    t = np.arange(0, 95.0, 1 / rate)
    settle = (
        _ramp_rep(t, 2.0, -4.0, 1.0, 0.0)
        + _ramp_rep(t, 4.0, 5.0, 1.0, 0.0)
        + _ramp_rep(t, 5.0, -0.5, 1.0, 200.0)
    )
    holds = sum(_ramp_rep(t, 18.0 + 17.5 * k, 4.0, 2.0, 10.0) for k in range(4))
    primary = np.asarray(settle + holds)
    got = _isometric_holds(t, primary, 29)
    assert [h.enter_s for h in got] == [pytest.approx(18.0 + 17.5 * k, abs=0.5) for k in range(4)]
    for h in got:
        assert h.angle_deg == pytest.approx(4.0, abs=0.5)


def test_a_hold_risen_into_slowly_after_a_fidget_counts_where_the_leg_came_to_rest() -> None:
    # Isometric holds of 4 deg (10 s). A fidget dips the leg to -9 deg for 2 s (taken
    # as the rest level), then it comes back to neutral and rests. The first hold rises
    # so gently (4 deg in 3 s) that the limb stays still to the detector (3 deg/s)
    # until it is lowered: 20 s after coming to rest, the candidate that rose out of
    # the dip is dropped in the middle of that hold. The rest level is looked for again
    # from where the leg came to rest, so that hold counts like the three after it.
    rate = 50.0
    t = np.arange(0, 90.0, 1 / rate)
    fidget = _ramp_rep(t, 3.0, -9.0, 1.0, 2.0)
    starts = [15.0 + 17.5 * k for k in range(4)]
    holds = sum(
        _ramp_rep(t, c, 4.0, 3.0, 1e3) + _ramp_rep(t, c + 13.0, -4.0, 2.0, 1e3) for c in starts
    )
    primary = np.asarray(fidget + holds)
    assert (np.abs(np.gradient(primary, t))[(t > 7.0) & (t < 28.0)] < 3.0).all()
    events = _segment_whole_and_chunked(
        t, primary, "deep-hip-lateral-rotator-level-1", 43, still_dps=3.0
    )
    got = [e for e in events if isinstance(e, HoldEvent)]
    assert [h.enter_s for h in got] == [pytest.approx(c, abs=0.5) for c in starts]
    for h in got:
        assert h.angle_deg == pytest.approx(4.0, abs=0.5)


@pytest.mark.parametrize(
    ("exercise", "rom_deg"), [("side-lying-hip-abduction", 30.0), (None, 10.0)]
)
def test_a_hold_that_sags_by_a_quarter_of_its_range_is_held_to_the_end(
    exercise: str | None, rom_deg: float
) -> None:
    # Straight-leg raises held 4.5 s, the leg sinking steadily by a quarter of its range
    # while held (as real raises do), then lowered in 1.2 s. The sag sinks below the
    # top 20 % of the range 0.9 s before the leg is lowered: judged against a flat
    # top, the hold would end there and the lowering would take the rest.
    rate = 50.0
    t = np.arange(0, 60.0, 1 / rate)
    primary = np.zeros_like(t)
    starts = [3.0 + 11.0 * k for k in range(5)]
    for c in starts:
        up = _ramp_rep(t, c, rom_deg, 1.2, 1e3)
        sag = -0.25 * rom_deg * np.clip((t - c - 1.2) / 4.5, 0.0, 1.0)
        down = _ramp_rep(t, c + 5.7, -0.75 * rom_deg, 1.2, 1e3)
        primary += up + sag + down
    events = _segment_whole_and_chunked(t, primary, exercise, 31)
    got = [e for e in events if isinstance(e, RepEvent)]
    assert [r.start_s for r in got] == [pytest.approx(c, abs=0.3) for c in starts]
    for r in got:
        assert r.hold_s == pytest.approx(4.5, abs=0.3)
        assert r.concentric_s == pytest.approx(1.2, abs=0.3)
        assert r.eccentric_s == pytest.approx(1.2, abs=0.3)
        assert Flag.HOLD_SHORT not in r.flags


def test_segmenter_follows_a_rest_level_that_drifts_rep_by_rep_past_the_onset_limit() -> None:
    # Reps of 12 deg every 5 s while the rest level drifts down at 0.2 deg/s (heading
    # drift about a near-vertical movement axis, rotation lost in gaps): after 60 s the reps
    # start more than 12 deg from neutral, where movements are not taken for reps
    # unless they start where the last rep started. All 20 count; a movement from
    # that far off after a pause longer than a set gap does not.
    rate = 50.0
    t = np.arange(0, 140.0, 1 / rate)
    drift = -0.2 * np.minimum(t, 103.0)
    reps = sum(_ramp_rep(t, 3.0 + 5.0 * k, 12.0, 1.5, 0.5) for k in range(20))
    late = _ramp_rep(t, 133.0, 12.0, 1.5, 0.5)
    primary = np.asarray(drift + reps + late)
    events = _segment_whole_and_chunked(t, primary, "prone-hip-external-rotation", 23)
    got = [e for e in events if isinstance(e, RepEvent)]
    assert [r.start_s for r in got] == [pytest.approx(3.0 + 5.0 * k, abs=0.3) for k in range(20)]
    for r in got:
        assert r.rom_deg == pytest.approx(12.0, abs=1.0)


def test_segmenter_counts_reps_but_not_walking_that_swings_both_ways() -> None:
    # Seated at neutral: 4 clamshell-like reps, a rest, then walking (+-22 deg at
    # 0.9 Hz about the same axis). Reps leave the rest position in one direction;
    # walking swings to both sides of it.
    rate = 50.0
    t = np.arange(0, 120.0, 1 / rate)
    primary = np.zeros_like(t)
    for k in range(4):
        c = 5.0 + 8.0 * k
        primary += 30.0 * np.clip(np.minimum(t - c, c + 5.0 - t) / 1.5, 0, 1)
    walk = (t > 50.0) & (t < 110.0)
    primary += np.where(walk, 22.0 * np.sin(2 * np.pi * 0.9 * (t - 50.0)), 0.0)
    still = np.abs(np.gradient(primary, t)) < 1.0
    tg = Targets.from_exercise(LIB["clamshell"])
    seg = Segmenter(rate, tg)
    events = seg.update(_angle_block(t, primary, still)) + seg.finish()
    reps = [e for e in events if type(e).__name__ == "RepEvent"]
    assert [round(r.start_s) for r in reps] == [5, 13, 21, 29]


def test_segmenter_skips_movements_no_rep_of_the_exercise_makes() -> None:
    # Clamshell (range 25-55 deg, 1.5 s each way, 1 s hold). Counted: a good rep, a rep
    # with off-plane compensation (flagged), a partial rep in the plane (flagged), a
    # partial rep that wobbles off the plane by nearly as much as it turns (real legs
    # do: flagged). Not counted: getting up (100 deg), rolling over slowly (10 s each
    # way), a full-range movement swinging further off the plane than it turns (from a
    # tilt to the opposite tilt, so the distance from the plane barely changes).
    # The flagged reps come within a few seconds of another rep: a lone flagged one is
    # held to a stricter test (see the test of lone reps).
    rate = 50.0
    t = np.arange(0, 130.0, 1 / rate)
    primary = np.zeros_like(t)
    xy = np.zeros((t.shape[0], 2))
    xy[:, 0] = _ramp_rep(t, 106.0, 15.0, 2.0, 16.0)
    plan = [  # start, range, seconds each way, off-plane swing (deg), counted
        (5.0, 35.0, 1.5, 0.0, True),
        (13.0, 35.0, 1.5, 20.0, True),
        (21.0, 15.0, 1.5, 0.0, True),
        (35.0, 100.0, 3.0, 0.0, False),
        (50.0, 30.0, 10.0, 0.0, False),
        (80.0, 12.0, 1.5, 10.0, True),
        (88.0, 35.0, 1.5, 0.0, True),
        (113.0, 25.0, 1.5, -30.0, False),
    ]
    for start, rom, move, swing, _ in plan:
        primary += _ramp_rep(t, start, rom, move, 1.0)
        # The swing goes one way and comes back: off the plane, then the other way.
        xy[:, 0] += _ramp_rep(t, start, swing, move, 1.0)
        xy[:, 1] += _ramp_rep(t, start + move, -0.5 * swing, 0.5, 0.0)
    still = np.abs(np.gradient(primary, t)) < 1.0
    seg = Segmenter(rate, Targets.from_exercise(LIB["clamshell"]))
    block = _angle_block(t, primary, still, xy)
    events = seg.update(block) + seg.finish()
    reps = [e for e in events if isinstance(e, RepEvent)]
    assert [round(r.start_s) for r in reps] == [round(p[0]) for p in plan if p[4]]
    assert [sorted(str(f) for f in r.flags) for r in reps] == [
        [],
        ["off_plane"],
        ["partial"],
        ["off_plane", "partial"],
        [],
    ]
    parts: list[object] = []
    seg2 = Segmenter(rate, Targets.from_exercise(LIB["clamshell"]))
    for a, b in _splits(len(t), 5):
        parts += seg2.update(block.slice(a, b))
    assert parts + seg2.finish() == events
    # An unknown exercise has no range or tempo to judge by: all but the swing count.
    seg3 = Segmenter(rate, Targets.automatic())
    auto = [e for e in seg3.update(block) + seg3.finish() if isinstance(e, RepEvent)]
    assert [round(r.start_s) for r in auto] == [round(p[0]) for p in plan[:-1]]


def test_segmenter_counts_a_lone_flagged_rep_only_when_another_rep_confirms_it() -> None:
    # Clamshells (range 25-55 deg, 1 s hold). A partial rep alone, 20 s from anything:
    # not counted. A good rep alone: counted (the first against the neutral, at 30 s,
    # once another is detected within a set gap; the one at 90 s at once). A partial
    # rep followed 4 s later by a good one: both counted (the first, held back, comes
    # out with the second). A partial rep 4 s after a good one: counted at once.
    rate = 50.0
    t = np.arange(0, 130.0, 1 / rate)
    plan = [(5.0, 12.0, False), (30.0, 35.0, True), (55.0, 12.0, True), (63.0, 35.0, True),
            (90.0, 35.0, True), (98.0, 12.0, True)]  # fmt: skip
    primary = sum(_ramp_rep(t, start, rom, 1.5, 1.0) for start, rom, _ in plan)
    still = np.abs(np.gradient(primary, t)) < 1.0
    block = _angle_block(t, np.asarray(primary), still)
    seg = Segmenter(rate, Targets.from_exercise(LIB["clamshell"]))
    events = seg.update(block) + seg.finish()
    reps = [e for e in events if isinstance(e, RepEvent)]
    assert [round(r.start_s) for r in reps] == [round(p[0]) for p in plan if p[2]]
    assert [r.index for r in reps] == list(range(5))
    assert ["partial" in r.flags for r in reps] == [False, True, False, False, True]
    assert reps[2].rest_before_s == pytest.approx(4.0, abs=0.5)
    # Streamed in 1 s blocks, the held-back rep is reported with the one that confirms
    # it; the events are the same as the whole stream's.
    seg2 = Segmenter(rate, Targets.from_exercise(LIB["clamshell"]))
    per_block = [seg2.update(block.slice(a, a + 50)) for a in range(0, len(t), 50)]
    per_block.append(seg2.finish())
    assert [e for evs in per_block for e in evs] == events
    together = [evs for evs in per_block if any(isinstance(e, RepEvent) for e in evs)]
    assert [[round(e.start_s) for e in evs if isinstance(e, RepEvent)] for evs in together] == [
        [30, 55, 63],
        [90],
        [98],
    ]


def test_segmenter_counts_the_first_rep_against_a_neutral_once_another_confirms_it() -> None:
    # Clamshells. The first rep against a neutral may be the fidget its axis was learned
    # from: one at 5 s with nothing for 40 s is not counted; the next, at 50 s, is, once
    # the one at 70 s (within a set gap, 25 s, of its end) confirms it. At a second
    # neutral (from 100 s) the rep at 110 s is the first, and the patient settles at a
    # third (from 120 s) before another comes: it is dropped. Of the two reps against the
    # third, the first comes out with the second.
    rate = 50.0
    t = np.arange(0, 170.0, 1 / rate)
    starts = [5.0, 50.0, 70.0, 110.0, 130.0, 137.0]
    primary = np.asarray(sum(_ramp_rep(t, c, 35.0, 1.5, 1.0) for c in starts))
    still = np.abs(np.gradient(primary, t)) < 1.0
    block = _angle_block(t, primary, still)
    block.reference[t >= 100.0] = 1
    block.reference[t >= 120.0] = 2
    tg = Targets.from_exercise(LIB["clamshell"])
    seg = Segmenter(rate, tg)
    events = seg.update(block) + seg.finish()
    reps = [e for e in events if isinstance(e, RepEvent)]
    assert [round(r.start_s) for r in reps] == [50, 70, 130, 137]
    assert [r.set_index for r in reps] == [0, 0, 1, 1]
    seg2 = Segmenter(rate, tg)
    per_block = [seg2.update(block.slice(a, a + 50)) for a in range(0, len(t), 50)]
    per_block.append(seg2.finish())
    assert [e for evs in per_block for e in evs] == events
    together = [evs for evs in per_block if any(isinstance(e, RepEvent) for e in evs)]
    assert [[round(e.start_s) for e in evs if isinstance(e, RepEvent)] for evs in together] == [
        [50, 70],
        [130, 137],
    ]


def test_segmenter_counts_doubtful_reps_that_only_confirm_each_other_from_three_in_a_row() -> None:
    # Clamshells (range 25-55 deg). Two partial reps 6 s apart, 25 s from anything:
    # two turns of a fidget, not counted. Three partial reps 6 s apart: a set done
    # short of the prescription, all counted (the first two come out with the third).
    rate = 50.0
    t = np.arange(0, 110.0, 1 / rate)
    starts = [5.0, 11.0, 40.0, 46.0, 52.0]
    primary = np.asarray(sum(_ramp_rep(t, c, 12.0, 1.5, 1.0) for c in starts))
    events = _segment_whole_and_chunked(t, primary, "clamshell", 31)
    reps = [e for e in events if isinstance(e, RepEvent)]
    assert [r.start_s for r in reps] == [pytest.approx(c, abs=0.3) for c in starts[2:]]
    assert all("partial" in r.flags for r in reps)
    assert [r.index for r in reps] == [0, 1, 2]
    sets = [e for e in events if isinstance(e, SetEvent)]
    assert [s.reps for s in sets] == [3]


@pytest.mark.parametrize(
    ("extra_starts", "counted"),
    [
        ([], 0),  # the set alone
        ([75.0], 0),  # one more rep on its own, 15 s after the set: settling, not a rep
        ([75.0, 81.0], 2),  # two more in rhythm: the patient going on, both counted
        ([62.0], 1),  # one more, 2 s after the last: still in rhythm, counted at once
    ],
)
def test_segmenter_holds_back_a_lone_rep_after_the_set_is_done(
    extra_starts: list[float], counted: int
) -> None:
    # Seated 90-90 foot lifts: 10 reps a set, range 8-30 deg, 1.5 s each way. Ten
    # reps 5 s apart (the last ends at 59 s), then the extra reps.
    ex = "seated-90-90-foot-lift"
    cap = Targets.from_exercise(LIB[ex]).reps_per_set
    assert cap == 10
    rate = 50.0
    t = np.arange(0, 100.0, 1 / rate)
    starts = [5.0 + 5.0 * k for k in range(cap)] + extra_starts
    primary = np.asarray(sum(_ramp_rep(t, c, 20.0, 1.5, 0.0) for c in starts))
    reps = [e for e in _segment_whole_and_chunked(t, primary, ex, 41) if isinstance(e, RepEvent)]
    assert [r.start_s for r in reps] == [pytest.approx(c, abs=0.3) for c in starts[: cap + counted]]
    assert all(r.flags == () for r in reps)
    # Without a prescription (`auto`) nothing marks the set as done: the extra rep counts.
    if extra_starts == [75.0]:
        auto = _segment_whole_and_chunked(t, primary, None, 42)
        assert sum(isinstance(e, RepEvent) for e in auto) == cap + 1


def test_segmenter_does_not_judge_the_tempo_of_a_phase_samples_were_lost_in() -> None:
    # Three clamshells at the prescribed tempo; the second one's way back is lost in a
    # 3 s disconnection. The angle jumps across the gap: that rep is flagged data_gap,
    # not too fast, and the others are not flagged at all.
    rate = 50.0
    t = np.arange(0, 40.0, 1 / rate)
    primary = sum(_ramp_rep(t, c, 35.0, 1.5, 1.0) for c in (5.0, 15.0, 25.0))
    keep = ~((t > 17.0) & (t < 20.0))
    t, primary = t[keep], np.asarray(primary)[keep]
    still = np.abs(np.gradient(primary, t)) < 1.0
    seg = Segmenter(rate, Targets.from_exercise(LIB["clamshell"]))
    reps = [
        e
        for e in seg.update(_angle_block(t, primary, still)) + seg.finish()
        if isinstance(e, RepEvent)
    ]
    assert [[str(f) for f in r.flags] for r in reps] == [[], ["data_gap"], []]


def test_smoothness_of_a_minimum_jerk_movement_is_its_known_value() -> None:
    # A minimum-jerk movement of amplitude A over D: the integral of squared jerk is
    # 720 A^2 / D^5 and the peak speed 1.875 A / D, so the dimensionless jerk (times
    # D^3 / v_peak^2) is 720 / 1.875^2 = 204.8 and the log dimensionless jerk -5.32,
    # whatever A, D or the sample rate.
    from hipsense.motion._segmentation import _ldlj

    for amplitude, duration, rate in ((30.0, 1.5, 200.0), (5.0, 4.0, 50.0)):
        t = np.arange(0.0, duration + 1e-9, 1.0 / rate)
        x = t / duration
        th = amplitude * x**3 * (10 - 15 * x + 6 * x**2)
        assert _ldlj(t, th) == pytest.approx(-math.log(720 / 1.875**2), abs=0.05)
    # Jerkier is further from 0: the same movement with a tremor on it.
    tremor = 0.3 * np.sin(2 * np.pi * 8.0 * t)
    assert _ldlj(t, th + tremor) < _ldlj(t, th) - 1.0


def test_short_block_reductions_equal_numpy() -> None:
    rng = np.random.default_rng(11)
    for n in range(1, 40):
        x = rng.normal(size=n)
        assert largest(x) == float(x.max())
        ints = rng.integers(-5, 5, size=n)
        assert largest(ints) == float(ints.max())
        for p in (0.0, 0.1, 0.5, 1.0):
            mask = rng.random(n) < p
            assert any_true(mask) == bool(mask.any())
            hits = np.flatnonzero(mask)
            assert first_true(mask) == (int(hits[0]) if hits.size else -1)
    x = np.array([1.0, np.nan, 3.0])
    assert math.isnan(largest(x))  # as x.max(): NaN wins
    assert first_true(np.zeros(0, bool)) == -1


def test_median_helper_equals_numpy() -> None:
    from hipsense.motion._segmentation import _median

    rng = np.random.default_rng(9)
    for n in range(1, 60):
        x = rng.normal(size=n)
        assert _median(x) == float(np.median(x))


def test_fast_quaternion_helpers_agree_with_the_general_ones() -> None:
    rng = np.random.default_rng(4)
    q = rng.normal(size=(500, 4))
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    p = q[17]
    np.testing.assert_allclose(quat_lmul(p, q), quat_mul(p, q), rtol=0, atol=1e-15)
    # Row by row the same bits however many rows: streaming needs that.
    np.testing.assert_array_equal(
        np.concatenate([quat_lmul(p, q[:7]), quat_lmul(p, q[7:])]), quat_lmul(p, q)
    )
    # Reference: rotations built as swing * twist from known angles.
    axis = np.array([0.3, -0.5, 0.81])
    axis /= np.linalg.norm(axis)
    perp = np.cross(axis, [1.0, 0.0, 0.0])
    perp /= np.linalg.norm(perp)
    twist_rad = rng.uniform(-3.0, 3.0, size=500)
    swing_rad = rng.uniform(0.0, 3.0, size=500)
    swing_axes = np.array(
        [rotate(axis_angle_quat(axis, np.array([a]))[0], perp) for a in rng.uniform(0, 6.28, 500)]
    )
    swings = np.array(
        [axis_angle_quat(v, np.array([b]))[0] for v, b in zip(swing_axes, swing_rad, strict=True)]
    )
    q = quat_mul(swings, axis_angle_quat(axis, twist_rad))
    # The angles, and which way the swing goes (its axis times its angle, in e1 and
    # e2), whichever sign q has.
    e2 = np.cross(axis, perp)
    basis = np.stack([axis, perp, e2])
    tw, sw, xy = twist_swing_plane(q, plane_frame(basis))
    np.testing.assert_allclose(tw, twist_rad, atol=1e-9)
    np.testing.assert_allclose(sw, swing_rad, atol=1e-9)
    rv = swing_axes * swing_rad[:, None]
    np.testing.assert_allclose(xy, np.stack([rv @ perp, rv @ e2], axis=1), atol=1e-9)
    np.testing.assert_allclose(twist_swing_plane(-q, plane_frame(basis))[2], xy, atol=1e-12)
    # Blocks of 1 to 97 rows: short blocks take `lmul_apply`'s path for few rows.
    parts = [twist_swing_plane(q[a:b], plane_frame(basis)) for a, b in _splits(500, 4)]
    for k in range(3):
        np.testing.assert_array_equal(np.concatenate([p[k] for p in parts]), (tw, sw, xy)[k])
    # Measured from a reference pose in the same map: as from p * q in two steps.
    ref = quat_conj(q[3])
    one = twist_swing_plane(q, plane_frame(basis, ref))
    two = twist_swing_plane(quat_lmul(ref, q), plane_frame(basis))
    for k in range(3):
        np.testing.assert_allclose(one[k], two[k], atol=1e-12)
