"""The motion core's building blocks and its orientation stage: chunked equals whole, and
agreement with a reference (scipy, VQF's own behaviour, the simulator's truth)."""

import math

import numpy as np
import pytest
from scipy import ndimage, signal

from hipsense._quat import dot3, fixed_matmul3, quat_conj, rotate
from hipsense.motion import CoreSettings, MotionCore, OrientationEstimator, OrientationSettings
from hipsense.motion._decimate import Decimator
from hipsense.motion._filters import (
    Biquad,
    Lowpass,
    any_true,
    butter2_lowpass,
    counts_since,
    first_true,
    gradient,
    largest,
    median,
    percentiles,
    run_lengths,
    trailing_min,
    trailing_min_from,
)
from hipsense_sim import ImuSpec, ScenarioSpec, SetSpec, SimulationResult, simulate

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


@pytest.mark.parametrize("seed", [0, 1])
def test_counts_since_chunked_equal_whole_and_a_plain_loop(seed: int) -> None:
    rng = np.random.default_rng(seed)
    reset = rng.random(1000) < 0.05
    mask = ~reset & (rng.random(1000) < 0.6)
    whole = counts_since(mask, reset, 3)
    carry, pieces = 3, []
    for a, b in _splits(1000, seed + 7):
        c = counts_since(mask[a:b], reset[a:b], carry)
        carry = int(c[-1])
        pieces.append(c)
    np.testing.assert_array_equal(np.concatenate(pieces), whole)
    expected, count = np.zeros(1000, int), 3  # plain loop as the reference
    for i in range(1000):
        count = 0 if reset[i] else count + int(mask[i])
        expected[i] = count
    np.testing.assert_array_equal(whole, expected)


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


def test_smoothness_of_a_minimum_jerk_movement_is_its_known_value() -> None:
    # A minimum-jerk movement of amplitude A over D: the integral of squared jerk is
    # 720 A^2 / D^5 and the peak speed 1.875 A / D, so the dimensionless jerk (times
    # D^3 / v_peak^2) is 720 / 1.875^2 = 204.8 and the log dimensionless jerk -5.32,
    # whatever A, D or the sample rate.
    from hipsense.motion._measure import _ldlj

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


def test_the_quick_statistics_equal_numpys_bit_for_bit() -> None:
    """The measurement's and the search's shortcuts give numpy's own bits.

    On the lengths a rep or a search window has, on even and uneven time steps (a real
    unit's clock jitters), with ties (a unit's angles repeat to its resolution).
    """
    rng = np.random.default_rng(5)
    for n in [*range(2, 40), *rng.integers(40, 3000, size=60).tolist()]:
        x = rng.normal(scale=30.0, size=n)
        if n % 3 == 0:
            x = np.round(x, 1)
        even = 7.0 + np.arange(n) / 25.0
        uneven = np.cumsum(rng.uniform(0.03, 0.05, size=n))
        for t in (even, uneven):
            assert np.array_equal(gradient(x, t), np.gradient(x, t))
        for pct in ((2.0, 98.0), (0.0, 100.0), (25.0, 75.0)):
            assert percentiles(x, pct) == tuple(float(v) for v in np.percentile(x, pct))
        assert float(median(x)) == float(np.median(x))


def test_the_projections_are_the_same_bits_for_one_row_as_for_many() -> None:
    """A stream cut into one-sample blocks projects each sample as the whole stream does.

    (`v @ m` does not: numpy takes another path for a single row.) Against the matrix
    product, within rounding.
    """
    rng = np.random.default_rng(11)
    v = rng.normal(size=(997, 12))[:, 3:6]  # a strided view, as the history's columns are
    m = np.linalg.qr(rng.normal(size=(3, 3)))[0]
    whole = fixed_matmul3(v, m)
    rows = np.concatenate([fixed_matmul3(v[i : i + 1], m) for i in range(v.shape[0])])
    assert np.array_equal(rows, whole)
    np.testing.assert_allclose(whole, v @ m, rtol=0, atol=1e-15)
    one = np.concatenate([dot3(v[i : i + 1], m[:, 2]) for i in range(v.shape[0])])
    assert np.array_equal(one, dot3(v, m[:, 2]))
    np.testing.assert_allclose(one, v @ m[:, 2], rtol=0, atol=1e-15)


def _stream_with_gaps(rate_hz: float, n: int, seed: int) -> np.ndarray:
    """Rows of time and three noisy columns, with samples lost here and there."""
    rng = np.random.default_rng(seed)
    idx = np.arange(n, dtype=np.float64)
    for lost_at, lost_n in ((137, 1), (411, 7), (412 + 250, 30)):
        idx[lost_at:] += lost_n
    t = idx / rate_hz
    return np.column_stack([t, rng.normal(size=(n, 3))])


def _decimated(dec: Decimator, rows: np.ndarray, splits: list[tuple[int, int]]) -> np.ndarray:
    parts = [dec.update(rows[a:b]) for a, b in splits] + [dec.flush()]
    return np.concatenate([p for p in parts if p.shape[0]])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_decimator_chunked_equals_whole_bit_for_bit(seed: int) -> None:
    rows = _stream_with_gaps(200.0, 1000, seed)
    whole = _decimated(Decimator(4, 200.0), rows, [(0, rows.shape[0])])
    chunked = _decimated(Decimator(4, 200.0), rows, _splits(rows.shape[0], seed))
    assert np.array_equal(chunked, whole)


def test_decimator_means_groups_that_never_span_lost_samples() -> None:
    # Reference: numpy's mean of each run between gaps, cut in groups of four (the last
    # of a run as it is). Tolerance: rounding only (1e-12).
    rows = _stream_with_gaps(200.0, 1000, 0)
    got = _decimated(Decimator(4, 200.0), rows, [(0, rows.shape[0])])
    cuts = np.flatnonzero(np.diff(rows[:, 0]) > 1.5 / 200.0) + 1
    want = [
        run[a : a + 4].mean(axis=0)
        for run in np.split(rows, cuts)
        for a in range(0, run.shape[0], 4)
    ]
    assert got.shape == (len(want), 4)
    assert len(cuts) == 3  # the three gaps are there to be kept
    assert np.allclose(got, np.array(want), rtol=0, atol=1e-12)


def test_decimator_of_one_passes_rows_through() -> None:
    rows = _stream_with_gaps(25.0, 100, 0)
    dec = Decimator(1, 25.0)
    assert dec.update(rows) is rows
    assert dec.flush().shape[0] == 0


@pytest.mark.parametrize(("rate_hz", "stage_hz"), [(25.0, 25.0), (60.0, 60.0), (200.0, 50.0)])
def test_the_stages_after_orientation_run_at_50_hz_or_the_rate_below_it(
    rate_hz: float, stage_hz: float
) -> None:
    core = MotionCore(rate_hz, None, settings=CoreSettings())
    assert core.stage_rate_hz == stage_hz
    assert core.reference.rate_hz == core.segmenter.rate_hz == stage_hz
