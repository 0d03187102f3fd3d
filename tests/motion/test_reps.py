"""Reps from angles: detection, measurement, acceptance and sets (the `Segmenter`).

Fed planned angles directly, without a sensor: chunked equals whole (events and the
decision trace); phases and ranges measured against the plan across scales (2 to
100 deg, phases of 0.4 to 10 s) on one code path; each acceptance rule by the behaviour
it stands for.
"""

from dataclasses import replace

import numpy as np
import pytest
from scipy.signal import butter, lfilter, lfilter_zi

from hipsense.exercises import load_library
from hipsense.motion import AngleBlock, Flag, RepEvent, Segmenter, SetEvent, Targets
from hipsense.motion._measure import _peak_speed

from .planned import Rep, angle, min_jerk

RATE = 50.0
NOISE_DEG = 0.02
LIB = load_library()
# An exercise the library does not know, prescribing 4 s phases: 10 s ones are slow,
# not implausibly so (three times the prescription both ways is).
SLOW_AUTO = replace(Targets.automatic(), outward_s=4.0, return_s=4.0)


def _block(theta: np.ndarray, off: np.ndarray | None = None, seed: int = 0) -> AngleBlock:
    """The reference stage's output for a planned angle: low-passed (2nd-order
    Butterworth at 3 Hz, as `ReferenceSettings.lowpass_hz`), at rest below 4 deg/s."""
    rng = np.random.default_rng(seed)
    t = np.arange(theta.shape[0]) / RATE
    theta = theta + rng.normal(0.0, NOISE_DEG, theta.shape)
    b, a = butter(2, 3.0, fs=RATE)
    lp = lfilter(b, a, theta, zi=lfilter_zi(b, a) * theta[0])[0]
    still = np.abs(np.diff(lp, prepend=lp[0])) * RATE < 4.0
    off = np.zeros_like(theta) if off is None else off
    return AngleBlock(t, theta, off, lp, still, np.zeros(t.shape, dtype=bool), 0)


def _run(
    seg: Segmenter, block: AngleBlock, sizes: list[int] | None = None, seed: int = 0
) -> list[object]:
    rng = np.random.default_rng(seed)
    out: list[object] = []
    a, n = 0, len(block)
    while a < n:
        b = n if sizes is None else min(n, a + int(rng.choice(sizes)))
        part = AngleBlock(
            block.t_s[a:b],
            block.primary_deg[a:b],
            block.off_plane_deg[a:b],
            block.lowpass_deg[a:b],
            block.still[a:b],
            block.gap[a:b],
            block.reference,
        )
        out += seg.update(part)
        a = b
    return out + seg.finish()


def _reps(events: list[object]) -> list[RepEvent]:
    return [e for e in events if isinstance(e, RepEvent)]


def _scales() -> tuple[np.ndarray, list[dict[str, float]]]:
    """Three sets, each on its own scale: 2 deg raises, fast 100 deg ones (0.4 s phases),
    slow 30 deg ones (10 s phases)."""
    low = [Rep(2.0, out_s=1.0, hold_s=0.5, back_s=1.0)] * 7 + [Rep(2.0, rest_s=30.0)]
    fast = [Rep(100.0, out_s=0.4, hold_s=0.2, back_s=0.4, rest_s=1.0)] * 7
    fast += [Rep(100.0, out_s=0.4, hold_s=0.2, back_s=0.4, rest_s=30.0)]
    slow = [Rep(30.0, out_s=10.0, hold_s=1.0, back_s=10.0, rest_s=2.0)] * 4
    _, theta, plan = angle([*low, *fast, *slow], RATE)
    return theta, plan


def test_segmenter_chunked_equals_whole_events_and_trace() -> None:
    theta, _ = _scales()
    block = _block(theta)

    def events_and_trace(sizes: list[int] | None, seed: int) -> tuple[list[object], list[object]]:
        seg = Segmenter(RATE, SLOW_AUTO)
        seg.trace = []
        events = _run(seg, block, sizes, seed)
        return events, list(seg.trace)

    whole = events_and_trace(None, 0)
    assert len(_reps(whole[0])) == 20
    for seed, sizes in enumerate(([1, 2, 3], [7, 20, 64], [97, 333, 1000])):
        assert events_and_trace(sizes, seed) == whole


def test_one_code_path_measures_2_to_100_deg_and_phases_of_0_4_to_10_s() -> None:
    # Reference: the plan itself. Tolerances: range within 5 % + 0.2 deg (the sway added
    # is 0.05 deg); phases within 0.15 s (the 5 % speed threshold on a minimum-jerk
    # phase falls 0.1 s inside its ends at 1 s, proportionally more at 10 s: 0.6 s).
    theta, plan = _scales()
    events = _run(Segmenter(RATE, SLOW_AUTO), _block(theta))
    reps = _reps(events)
    assert [s.reps for s in events if isinstance(s, SetEvent)] == [8, 8, 4]
    for got, want in zip(reps, plan, strict=True):
        assert got.rom_deg == pytest.approx(want["rom_deg"], rel=0.05, abs=0.2)
        out_s = want["top_s"] - want["start_s"]
        back_s = want["end_s"] - want["leave_s"]
        tol = 0.15 + 0.05 * out_s
        assert got.concentric_s == pytest.approx(out_s, abs=tol)
        assert got.eccentric_s == pytest.approx(back_s, abs=tol)
        assert got.hold_s == pytest.approx(want["leave_s"] - want["top_s"], abs=tol)
        assert got.start_s == pytest.approx(want["start_s"], abs=tol)


def test_a_bounce_off_the_bed_after_a_rep_is_no_rep() -> None:
    # Ten degrees: enough to start a candidate (a quarter of the set's range), under half
    # the rep it follows (`half_ratio`). Smaller bounces do not even start one.
    bounce = Rep(10.0, out_s=0.3, hold_s=0.0, back_s=0.3)
    reps = [Rep(30.0), Rep(30.0, rest_s=0.1), bounce, Rep(30.0), Rep(30.0)]
    _, theta, _ = angle(reps, RATE)
    seg = Segmenter(RATE, Targets.automatic())
    seg.trace = []
    got = _reps(_run(seg, _block(theta)))
    assert len(got) == 4
    assert any(what.startswith("rebound") for _, what in seg.trace)


@pytest.mark.parametrize(("way_s", "counted"), [(0.2, 4), (0.4, 5)])
def test_a_quick_recoil_after_a_rep_is_no_rep_whatever_its_range(
    way_s: float, counted: int
) -> None:
    # Twenty degrees, more than half the rep it follows: a bounce off the landing is told
    # by being over sooner than a voluntary rep can be (twice `min_phase_s`, 0.6 s), not
    # by its range. Out and back in 0.8 s, the same movement is a quick rep, and counts.
    recoil = Rep(20.0, out_s=way_s, hold_s=0.0, back_s=way_s)
    reps = [Rep(30.0), Rep(30.0, rest_s=0.1), recoil, Rep(30.0), Rep(30.0)]
    _, theta, _ = angle(reps, RATE)
    seg = Segmenter(RATE, Targets.automatic())
    seg.trace = []
    got = _reps(_run(seg, _block(theta)))
    assert len(got) == counted
    assert any(what.startswith("rebound") for _, what in seg.trace) == (counted == 4)


def test_a_phase_is_the_movement_that_turns_the_limb_not_a_quicker_kick() -> None:
    # The way back of a fast rep: 17 deg at up to 44 deg/s; then, as the next rep sets
    # off, the accelerometer's kick: 54 deg/s for 0.1 s, 3 deg (speeds at 25 Hz, the
    # shapes of subject 2's e3 test at 0.75x tempo, 84.5-87.2 s). Its peak speed is the
    # way back's, whatever is quicker; a bell of comparable angle still goes by speed.
    rate = 25.0
    way_back = 44.0 * np.sin(np.linspace(0.0, np.pi, 17))  # 17 deg over 0.68 s
    kick = np.array([20.0, 54.0, 20.0])  # 3.8 deg over 0.12 s
    speed = np.concatenate([[0.0], way_back, np.zeros(30), kick, [-5.0]])
    assert sum(way_back) / rate == pytest.approx(17.0, abs=1.0)
    assert _peak_speed(speed, 0.5) == 1 + 8
    alike = np.concatenate([[0.0], way_back, np.zeros(5), 1.2 * way_back, [0.0]])
    assert _peak_speed(alike, 0.5) == 1 + 17 + 5 + 8


def test_one_small_movement_in_a_set_is_not_a_rep_but_a_small_set_after_a_wide_one_is() -> None:
    # The leg settling between reps of 30 deg (4 deg, once) is dropped; after ten reps of
    # 30 deg, a block of ten of 5 deg (a low-amplitude set) is counted whole.
    settle = [Rep(30.0)] * 5 + [Rep(4.0)] + [Rep(30.0)] * 5
    _, theta, _ = angle(settle, RATE)
    seg = Segmenter(RATE, Targets.automatic())
    seg.trace = []
    assert len(_reps(_run(seg, _block(theta)))) == 10
    assert any("small for the set" in what for _, what in seg.trace)

    _, theta, _ = angle([*[Rep(30.0)] * 9, Rep(30.0, rest_s=5.0), *[Rep(5.0)] * 10], RATE)
    got = _reps(_run(Segmenter(RATE, Targets.automatic()), _block(theta)))
    assert len(got) == 20
    assert [round(r.rom_deg) for r in got[10:]] == [5] * 10


def test_walking_swings_both_ways_and_counts_nothing() -> None:
    # The thigh swings about its rest level, forwards and back, 0.9 steps a second.
    t = np.arange(0.0, 40.0, 1.0 / RATE)
    walk = 22.0 * np.sin(2 * np.pi * 0.9 * t) * np.clip(np.minimum(t - 2.0, 38.0 - t), 0, 1)
    seg = Segmenter(RATE, Targets.automatic())
    seg.trace = []
    assert _reps(_run(seg, _block(walk))) == []
    assert any("below the rest level" in what for _, what in seg.trace)


def test_a_lone_doubtful_movement_is_dropped_and_one_before_reps_is_counted() -> None:
    # Off the plane as far as along it: flagged off_plane. Alone it is more likely
    # reaching than a rep; followed by reps in rhythm it is the set's first.
    targets = Targets.from_exercise(LIB["side-lying-hip-abduction"])  # holds of 5 s

    def first_off_plane(rest_s: float) -> tuple[list[RepEvent], list[tuple[float, str]]]:
        reps = [Rep(30.0, hold_s=5.0, rest_s=rest_s), *[Rep(30.0, hold_s=5.0)] * 4]
        _, theta, plan = angle(reps, RATE)
        t = np.arange(theta.shape[0]) / RATE
        first = (t >= plan[0]["start_s"]) & (t <= plan[0]["end_s"])
        off = np.where(first, 0.5 * theta, 0.0)
        seg = Segmenter(RATE, targets)
        seg.trace = []
        return _reps(_run(seg, _block(theta, off))), list(seg.trace)

    alone, trace = first_off_plane(20.0)
    assert len(alone) == 4
    assert any("none confirmed them" in what for _, what in trace)
    in_rhythm, _ = first_off_plane(1.5)
    assert len(in_rhythm) == 5
    assert [str(f) for f in in_rhythm[0].flags] == ["off_plane"]


def test_a_short_movement_that_does_not_start_and_end_where_the_set_does_is_not_its_rep() -> None:
    # A movement short of the prescription (10 deg, no hold: partial, hold cut short)
    # 7 s before a set of 30 deg raises held 5 s. Ending where it started, where the set's
    # reps start, it is the set's first rep done short and counts with them. Ending 4 deg
    # below where it started (fidgeting, the limb wandering before it settles) it is no
    # rep of that set, whose reps confirm it no more than they are like it.
    targets = Targets.from_exercise(LIB["side-lying-hip-abduction"])

    def short_first(ends_deg: float) -> tuple[list[RepEvent], list[tuple[float, str]]]:
        t, set_theta, _ = angle([Rep(30.0, hold_s=5.0)] * 4, RATE, lead_s=12.0)
        short = 10.0 * min_jerk((t - 2.0) / 1.5) - (10.0 - ends_deg) * min_jerk((t - 3.5) / 1.5)
        # Settling back to the start position after it, slowly (no rep: under the floor).
        short -= ends_deg * min_jerk((t - 7.0) / 2.0)
        seg = Segmenter(RATE, targets)
        seg.trace = []
        return _reps(_run(seg, _block(set_theta + short))), list(seg.trace)

    from_the_start, _ = short_first(0.0)
    assert len(from_the_start) == 5
    assert {str(f) for f in from_the_start[0].flags} >= {"partial", "hold_short"}
    from_elsewhere, trace = short_first(-4.0)
    assert len(from_elsewhere) == 4
    assert all(r.rom_deg == pytest.approx(30.0, abs=1.0) for r in from_elsewhere)
    assert any("not of the set of the rep after" in what for _, what in trace)


def _off_plane_run(reps: list[Rep]) -> tuple[list[RepEvent], list[tuple[float, str]]]:
    """Every movement tilted off the plane by half its angle (flagged off_plane)."""
    _, theta, _ = angle(reps, RATE, lead_s=20.0)
    seg = Segmenter(RATE, Targets.from_exercise(LIB["side-lying-hip-abduction"]))
    seg.trace = []
    return _reps(_run(seg, _block(theta, 0.5 * theta))), list(seg.trace)


def test_a_set_done_alike_off_the_plane_is_counted_with_no_rep_before_it() -> None:
    # A patient who compensates (the pelvis rolls back on every raise) does every rep
    # the same way: the set counts, each rep flagged, though no rep in the plane came
    # first to confirm them (the set opening a recording, or its start cut off).
    reps, _ = _off_plane_run([Rep(30.0, hold_s=5.0, rest_s=1.5)] * 6)
    assert len(reps) == 6
    assert all(Flag.OFF_PLANE in r.flags for r in reps)


def test_fidgeting_off_the_plane_never_confirms_itself() -> None:
    # Fidgeting turns every way, by any amount, for any time: no two movements alike.
    fidgets = [
        Rep(8.0, out_s=0.6, hold_s=0.0, back_s=0.6, rest_s=1.0),
        Rep(30.0, out_s=2.0, hold_s=5.0, back_s=2.0, rest_s=1.0),
        Rep(12.0, out_s=0.5, hold_s=0.5, back_s=0.5, rest_s=1.0),
        Rep(35.0, out_s=1.5, hold_s=4.0, back_s=1.5, rest_s=1.0),
        Rep(9.0, out_s=0.7, hold_s=0.0, back_s=0.7, rest_s=1.0),
    ]
    reps, trace = _off_plane_run(fidgets)
    assert reps == []
    assert any("held: doubtful, off_plane" in what for _, what in trace)


def test_a_rep_starts_from_where_the_limb_paused_on_its_way_out() -> None:
    # After a wide set the leg is put down a little higher than it started (8 deg up,
    # straight after the last rep, at rest there 3 s) and a low-amplitude set of 12 deg
    # goes on from there: every rep of it counts, from the level it rests at, and the
    # step up to that level is no rep. A hold at the top is no such pause: over half
    # way up already.
    wide = [Rep(30.0, hold_s=2.0)] * 4 + [Rep(30.0, hold_s=2.0, rest_s=0.1)]
    step = Rep(0.0, out_s=0.5, hold_s=0.0, back_s=0.01, rest_s=3.0, base_deg=8.0)
    low = [Rep(12.0, hold_s=2.0, base_deg=8.0)] * 10
    _, theta, plan = angle([*wide, step, *low], RATE)
    seg = Segmenter(RATE, Targets.automatic())
    got = _reps(_run(seg, _block(theta)))
    assert len(got) == 15
    for rep, want in zip(got[5:], plan[6:], strict=True):
        assert rep.rom_deg == pytest.approx(12.0, abs=0.5)
        assert rep.start_s == pytest.approx(want["start_s"], abs=0.2)


def test_a_window_begun_on_the_last_reps_way_back_is_measured_from_the_rest() -> None:
    # A rep's window may begin where the last one's way back was still settling: the
    # angle rising fast (60 deg/s) out of a 3 deg undershoot, then a rest, then the rep
    # (35 deg/s at its peak). The fastest sample is the window's first, the last
    # movement's; the rep's own bell peaks inside the window, so its onset is where it
    # left the rest (from the window's first sample, its range was 3 deg).
    from hipsense.motion._measure import measure, smoother

    settings = Segmenter(RATE, Targets.automatic()).settings
    t_s = np.arange(int(5.0 * RATE)) / RATE
    settle = -3.0 * np.clip(1.0 - t_s / 0.1, 0.0, 1.0) ** 2
    start_s, out_s, back_s = 1.5, 0.8, 0.8
    leave_s = start_s + out_s + 0.2
    rep = 15.0 * (min_jerk((t_s - start_s) / out_s) - min_jerk((t_s - leave_s) / back_s))
    th = settle + rep
    peak = int(th.argmax())
    end = round((leave_s + back_s + 0.3) * RATE)
    zeros = np.zeros_like(th)
    m = measure(
        t_s, th, zeros, zeros != 0, peak, end, Targets.automatic(), settings, RATE,
        smoother(RATE, settings),
    )  # fmt: skip
    assert m is not None
    assert isinstance(m.event, RepEvent)
    assert m.event.start_s == pytest.approx(start_s, abs=0.1)
    assert m.event.rom_deg == pytest.approx(15.0, abs=1.0)


@pytest.mark.parametrize(("cut_s", "counted"), [(0.5, 5), (-0.1, 6)])
def test_a_rep_under_way_when_the_stream_begins_is_not_counted(cut_s: float, counted: int) -> None:
    # Six 20 deg reps with 1.5 s phases. The stream begins 0.5 s into the first one's way
    # out (moving at 20 deg/s, faster than a limb at rest): its start was not seen, and it
    # is not counted. Begun 0.1 s before the limb sets off, the first rep is counted,
    # from its onset.
    lead_s = 2.0
    _, theta, plan = angle([Rep(20.0)] * 6, RATE, lead_s=lead_s)
    theta = theta[round((lead_s + cut_s) * RATE) :]
    reps = _reps(_run(Segmenter(RATE, Targets.automatic()), _block(theta), [1, 13, 50]))
    assert len(reps) == counted
    starts = [p["start_s"] - lead_s - cut_s for p in plan[len(plan) - counted :]]
    assert [r.start_s for r in reps] == pytest.approx(starts, abs=0.3)


def test_samples_lost_as_a_rep_sets_off_are_lost_within_it() -> None:
    # Samples lost 0.1 s after a 1.5 s phase began, while it still moved at 6 % of its
    # peak speed: before the first sample fast enough to tell the phase from the rest,
    # but after the onset that is measured, so within the rep.
    lead_s = 2.0
    _, theta, plan = angle([Rep(20.0)] * 3, RATE, lead_s=lead_s)
    block = _block(theta)
    gap = np.zeros(len(block), dtype=bool)
    gap[round((plan[1]["start_s"] + 0.1) * RATE)] = True
    block = AngleBlock(
        block.t_s, block.primary_deg, block.off_plane_deg, block.lowpass_deg, block.still,
        gap, block.reference,
    )  # fmt: skip
    reps = _reps(_run(Segmenter(RATE, Targets.automatic()), block))
    assert len(reps) == 3
    assert [Flag.DATA_GAP in r.flags for r in reps] == [False, True, False]


def _measured_whole(t_s: np.ndarray, th: np.ndarray, rate: float) -> RepEvent:
    """`measure` of a window holding one whole rep (`auto`), from its highest sample."""
    from hipsense.motion._measure import measure, smoother

    settings = Segmenter(rate, Targets.automatic()).settings
    zeros = np.zeros_like(th)
    m = measure(
        t_s, th, zeros, zeros != 0, int(th.argmax()), th.shape[0] - 1, Targets.automatic(),
        settings, rate, smoother(rate, settings),
    )  # fmt: skip
    assert m is not None
    assert isinstance(m.event, RepEvent)
    return m.event


def test_a_rep_that_does_not_stop_at_its_top_is_measured_to_it() -> None:
    # A too-fast rep's shape as subject 2 did it (prone extension, 25 Hz, every other
    # sample): a jerk off the rest, the way up in steps, a kick at the top, straight
    # back. Its way out peaks in speed early, so half the time between its two peak
    # speeds is on its way up and down: the top is the level near the highest sample
    # (17 deg once smoothed), with no hold, not the median of that time (12.5 deg, held
    # for 0.6 s).
    rate = 25.0
    every_other = np.array([
        0.1, 0.1, 0.1, 0.0, 0.0, 0.0, -0.1, 0.0, 0.1, 0.0, -0.7, -1.3, 2.6, 3.6, 3.1, 2.3,
        4.9, 4.2, 5.0, 8.8, 11.2, 12.3, 11.8, 12.6, 14.9, 17.0, 17.2, 13.1, 10.6, 11.9,
        12.3, 9.4, 5.5, 4.3, 2.0, -2.4, -10.1, -6.3, -2.7, -0.4,
    ])  # fmt: skip
    th = np.interp(
        np.arange(2 * every_other.size - 1) / 2, np.arange(every_other.size), every_other
    )
    t_s = np.arange(th.shape[0]) / rate
    rep = _measured_whole(t_s, th, rate)
    assert rep.rom_deg == pytest.approx(17.0, abs=1.0)
    assert rep.hold_s < 0.2


def test_the_top_of_a_held_rep_is_the_level_held_not_the_kicks_around_it() -> None:
    # A 20 deg rep out in 0.6 s, held 3 s, back in 0.6 s; the accelerometer's kicks
    # overshoot by 3 deg for 0.15 s as the limb arrives and leaves.
    hold_s = 3.0
    t_s = np.arange(int((3.0 + hold_s) * RATE)) / RATE
    start_s, phase_s = 1.0, 0.6
    leave_s = start_s + phase_s + hold_s
    th = 20.0 * (min_jerk((t_s - start_s) / phase_s) - min_jerk((t_s - leave_s) / phase_s))
    for at_s in (start_s + phase_s, leave_s):
        th += 3.0 * np.clip(1.0 - np.abs(t_s - at_s) / 0.075, 0.0, None)
    rep = _measured_whole(t_s, th, RATE)
    assert rep.rom_deg == pytest.approx(20.0, abs=1.0)
    assert rep.hold_s == pytest.approx(hold_s, abs=0.4)
