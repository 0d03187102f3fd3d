"""Measuring a rep or a hold: a pure function of the samples of one candidate.

The angle is smoothed without phase lag (`measure_lowpass_hz`); its speed then shows two
bells, the way out and the way back. Each phase's ends are where its speed falls below
`phase_speed_ratio` of its peak near the bottom or the top, given back the time a
minimum-jerk movement spends below that ratio, and bounded by the bell itself (a
minimum-jerk movement spends 54 % of its duration above half its peak speed, which noise
barely moves). The range of motion is the level held at the top (its median over the
top `top_ratio` of the excursion) above the onset's. Flags follow the exercise's targets.
"""

import math
from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray

from ._events import Flag, HoldEvent, RepEvent
from ._filters import Biquad, butter2_lowpass, gradient, largest, median, true_runs
from ._settings import SegmenterSettings
from ._targets import Targets

__all__ = ["Measured", "measure", "smoother"]

F64Array = NDArray[np.float64]
_NYQUIST_SHARE = 0.4
_MEDIAN_MIN_N = 3
"""Fewer samples than this make no level and no phases."""
_RUSHED_PEAK_RATIO = 1.5
"""A smooth movement over a duration peaks at this times its mean speed (between a
constant speed's 1 and a minimum-jerk movement's 1.875)."""
_SPEED_LIMIT_RATIO = 1.5
"""A rep faster than this times the exercise's speed limit is too fast, however long."""
_BROKEN_S = 0.5
"""A held position is broken when the angle leaves its band for longer than this."""
_JERK_MIN_N = 5
"""Jerk needs three differences: fewer samples have no smoothness."""
_FILTFILT_MIN_N = 15
"""Fewer samples than this are too few to smooth forwards and backwards."""
_HOLD_BAND_RATIO = 0.15
"""A held position's tolerance grows with the angle held (15 %, the band physiotherapists
accept for a stretch)."""


class Measured(NamedTuple):
    """A measured candidate: the event, and what acceptance judges it by."""

    event: RepEvent | HoldEvent
    onset_deg: float
    """Angle at the onset (from neutral)."""
    end_deg: float
    moving_s: float
    """Time spent moving (out and back, without the hold)."""
    swept_off_deg: float
    """How far the off-plane tilt moved during it."""
    under_way_dps: float
    """Its speed at the first sample given, if already moving out there (else 0): its
    onset may not have been seen."""


class _Phases(NamedTuple):
    onset: float
    top: float
    leave: float
    end: float
    i_on: int
    i_end: int
    i_top: int
    i_leave: int
    v_out: float
    v_back: float
    under_way_dps: float
    """Its speed at the first sample, if it was moving out from there (no slow sample
    before the way out), else 0."""


def measure(
    t: F64Array,
    th: F64Array,
    off: F64Array,
    gap: NDArray[np.bool_],
    peak: int,
    end: int,
    targets: Targets,
    settings: SegmenterSettings,
    rate_hz: float,
    lowpass: Biquad,
) -> Measured | None:
    """Measure the candidate whose samples are given (`peak`, `end`: indices in them).

    `lowpass` is the zero-phase smoothing (`smoother(rate_hz, settings)`).
    """
    smooth = _smooth(th, lowpass)
    ph = _phases(t, smooth, peak, end, targets, settings)
    if ph is None:
        return None
    top = smooth[ph.i_top : ph.i_leave + 1]
    # The rest it left, not the dip of its own kick as it set off (see `_phases`).
    rest = smooth[: ph.i_on + 1]
    base = float(median(rest)) if rest.shape[0] >= _MEDIAN_MIN_N else float(smooth[ph.i_on])
    high = float(top.max()) if top.shape[0] else float(smooth[ph.i_top])
    # The level held between arrival and departure, not the highest sample (`_phases`).
    level = float(median(top)) if top.shape[0] >= _MEDIAN_MIN_N else high
    rom = level - base
    seg = slice(ph.i_on, ph.i_end + 1)
    tilt = _smooth(off, lowpass)[seg]
    off_deg = float(tilt.max() - tilt[0]) if tilt.shape[0] else 0.0
    swept = float(np.abs(tilt - tilt[0]).max()) if tilt.shape[0] else 0.0
    # Samples lost between where it began and where it ended (the phases' times, not
    # their slow samples: a gap as it sets off or comes to rest is within the rep).
    lost = bool(gap[(t > ph.onset) & (t <= ph.end)].any())
    outward = ph.top - ph.onset
    back = ph.end - ph.leave
    hold = max(0.0, ph.leave - ph.top)
    moving = outward + back
    if targets.kind == "hold":
        return Measured(
            _hold(smooth, ph, rom, off_deg, lost, targets, settings, rate_hz),
            base,
            float(smooth[ph.i_end]),
            moving,
            swept,
            ph.under_way_dps,
        )
    flags = _flags(ph, rom, off_deg, gap, lost, outward, back, hold, targets)
    conc, ecc = (outward, back) if targets.outward_phase == "concentric" else (back, outward)
    rep = RepEvent(
        index=0,
        set_index=0,
        start_s=ph.onset,
        peak_s=(ph.top + ph.leave) / 2,
        end_s=ph.end,
        rom_deg=rom,
        concentric_s=conc,
        hold_s=hold,
        eccentric_s=ecc,
        rest_before_s=None,
        peak_velocity_dps=max(ph.v_out, ph.v_back),
        smoothness=_ldlj(t[seg], smooth[seg]),
        max_off_plane_deg=off_deg,
        flags=flags,
        confidence=_confidence(rom, off_deg, lost, targets.detect_deg),
        top_s=ph.top,
        hold_end_s=ph.leave,
    )
    return Measured(rep, base, float(smooth[ph.i_end]), moving, swept, ph.under_way_dps)


def smoother(rate_hz: float, settings: SegmenterSettings) -> Biquad:
    """The zero-phase smoothing of `measure` (below the Nyquist rate at any rate)."""
    cutoff = min(settings.measure_lowpass_hz, _NYQUIST_SHARE * rate_hz)
    return Biquad(*butter2_lowpass(cutoff, rate_hz))


def _smooth(th: F64Array, lowpass: Biquad) -> F64Array:
    if th.shape[0] <= _FILTFILT_MIN_N:
        return th
    return lowpass.filtfilt(th)


def _top_band(exc: float, targets: Targets, s: SegmenterSettings) -> float:
    """How far below the top the end range reaches."""
    band = max(s.top_ratio * exc, 1.0)
    if targets.kind == "hold":
        band = max(band, s.noise_deg, _HOLD_BAND_RATIO * exc)
    return min(band, 0.5 * exc)


def _phases(
    t: F64Array, th: F64Array, peak: int, end: int, targets: Targets, s: SegmenterSettings
) -> _Phases | None:
    """Onset, arrival at the top, departure from it, and end (s), with their indices."""
    n = th.shape[0]
    end = min(end, n - 1)
    if end < _MEDIAN_MIN_N:
        return None
    v = gradient(th, t)
    ip = int(th[: end + 1].argmax())
    if ip == 0 or ip >= end:
        return None
    io = _peak_speed(v[: ip + 1], s.half_ratio)
    ib = ip + _peak_speed(-v[ip : end + 1], s.half_ratio)
    v_out, v_back = float(v[io]), float(-v[ib])
    if v_out <= 0 or v_back <= 0:
        return None
    f = s.phase_speed_ratio
    tail = _min_jerk_tau(f)
    top = float(th[ip])
    low_out = float(th[: ip + 1].min())
    low_back = float(th[ip : end + 1].min())
    # The end range is the band below the level the limb keeps near the top between its
    # two peak speeds, not below the highest sample: a fast arrival and departure
    # overshoot by the accelerometer's kick (up to half of g at 200 deg/s, 0.3 m from the
    # hip), while the limb held still in between reads gravity alone. Near the top: a rep
    # that does not stop there spends half its time between the peak speeds on its way.
    between = th[io : ib + 1]
    near = between[between >= top - _top_band(top - low_out, targets, s)]
    held = min(top, float(median(near))) if near.shape[0] >= _MEDIAN_MIN_N else top
    band = _top_band(held - low_out, targets, s)
    # Onset: the last slow sample near the bottom before the way out's peak speed.
    near_bottom = th[: io + 1] <= low_out + s.top_ratio * (top - low_out)
    slow = np.flatnonzero((v[: io + 1] < f * v_out) & near_bottom)
    i_on = int(slow[-1]) if slow.size else 0
    # End: the first slow sample near the bottom after the way back's peak speed.
    near_end = th[ib : end + 1] <= low_back + s.top_ratio * (top - low_back)
    settled = np.flatnonzero((v[ib : end + 1] > -f * v_back) & near_end)
    i_end = ib + int(settled[0]) if settled.size else end
    # The top: slow and within the end-range band, between the two peak speeds.
    at_top = between >= held - band
    arrive = np.flatnonzero((v[io : ib + 1] < f * v_out) & at_top)
    leave = np.flatnonzero((v[io : ib + 1] > -f * v_back) & at_top)
    i_top = io + int(arrive[0]) if arrive.size else ip
    i_leave = io + int(leave[-1]) if leave.size else ip
    i_leave = max(i_leave, i_top)
    b_out = _bell(t, v, io)
    b_back = _bell(t, -v, ib)
    d_out = b_out[1] if b_out is not None else 0.0
    d_back = b_back[1] if b_back is not None else 0.0
    onset = float(t[i_on]) - tail * d_out
    finish = float(t[i_end]) + tail * d_back
    arrival = float(t[i_top]) + tail * d_out
    departure = float(t[i_leave]) - tail * d_back
    if b_out is not None:
        onset = min(onset, b_out[0] - d_out / 2)
    if b_back is not None:
        finish = max(finish, b_back[0] + d_back / 2)
    if departure < arrival:
        # No hold: the two movements meet at the top, where their bells meet.
        meet = (arrival + departure) / 2
        if b_out is not None and b_back is not None:
            bells = (b_out[0] + d_out / 2 + b_back[0] - d_back / 2) / 2
            if onset < bells < finish:
                meet = bells
        arrival = departure = meet
    return _Phases(
        onset,
        arrival,
        departure,
        finish,
        i_on,
        i_end,
        i_top,
        i_leave,
        v_out,
        v_back,
        0.0 if slow.size else float(v[0]),
    )


def _flags(
    ph: _Phases,
    rom: float,
    off: float,
    gap: NDArray[np.bool_],
    lost: bool,
    outward: float,
    back: float,
    hold: float,
    tg: Targets,
) -> tuple[Flag, ...]:
    flags: list[Flag] = []
    # A phase next to lost samples is not known to be fast or short: the angle jumps
    # across the gap (data_gap says so instead).
    out_seen = not gap[ph.i_on : ph.i_leave + 2].any()
    back_seen = not gap[(ph.i_on + ph.i_top) // 2 : ph.i_end + 2].any()
    concentric = tg.outward_phase == "concentric"
    conc, ecc = (outward, back) if concentric else (back, outward)
    conc_seen, ecc_seen = (out_seen, back_seen) if concentric else (back_seen, out_seen)
    v_conc, v_ecc = (ph.v_out, ph.v_back) if concentric else (ph.v_back, ph.v_out)
    conc_limit = tg.too_fast_ratio * (tg.outward_s if concentric else tg.return_s)
    ecc_limit = tg.too_fast_ratio * (tg.return_s if concentric else tg.outward_s)

    def rushed(seen: bool, duration: float, limit: float, v: float) -> bool:
        # Short, and as fast as a smooth movement over the limit would be at its peak
        # (1.5 x the mean speed): tremor blurs where a small rep starts and ends, not its
        # speed.
        return seen and duration < limit and v >= _RUSHED_PEAK_RATIO * rom / limit

    fast = rushed(conc_seen, conc, conc_limit, v_conc) or (
        not tg.check_eccentric and rushed(ecc_seen, ecc, ecc_limit, v_ecc)
    )
    if (
        tg.too_fast_dps is not None
        and max(ph.v_out, ph.v_back) > _SPEED_LIMIT_RATIO * tg.too_fast_dps
    ):
        fast = fast or not lost
    if fast and not tg.auto:
        flags.append(Flag.TOO_FAST)
    if rom > tg.target_max_deg:
        flags.append(Flag.TOO_MUCH_RANGE)
    if rom < tg.partial_ratio * tg.target_min_deg:
        flags.append(Flag.PARTIAL)
    if off > tg.off_plane_deg or (off > tg.off_plane_floor_deg and off > tg.off_plane_ratio * rom):
        flags.append(Flag.OFF_PLANE)
    if tg.check_hold and hold < tg.hold_short_ratio * tg.hold_s and back_seen:
        flags.append(Flag.HOLD_SHORT)
    if tg.check_eccentric:
        limit = ecc_limit if tg.eccentric_fast_s is None else max(ecc_limit, tg.eccentric_fast_s)
        if rushed(ecc_seen, ecc, limit, v_ecc):
            flags.append(Flag.ECCENTRIC_FAST)
    if lost:
        flags.append(Flag.DATA_GAP)
    return tuple(flags)


def _hold(
    smooth: F64Array,
    ph: _Phases,
    rom: float,
    off: float,
    lost: bool,
    tg: Targets,
    s: SegmenterSettings,
    rate_hz: float,
) -> HoldEvent:
    seg = smooth[ph.i_top : ph.i_leave + 1]
    level = float(median(seg)) if seg.shape[0] else rom
    band = max(s.noise_deg, _HOLD_BAND_RATIO * rom)
    inside = np.abs(seg - level) <= band
    starts, stops = true_runs(~inside)
    broken = int(np.count_nonzero(stops - starts >= round(_BROKEN_S * rate_hz)))
    hold = max(0.0, ph.leave - ph.top)
    flags: list[Flag] = []
    if tg.check_hold and hold < tg.held_short_ratio * tg.hold_s:
        flags.append(Flag.HOLD_SHORT)
    if rom > tg.target_max_deg:
        flags.append(Flag.TOO_MUCH_RANGE)
    if off > tg.off_plane_deg:
        flags.append(Flag.OFF_PLANE)
    if lost:
        flags.append(Flag.DATA_GAP)
    return HoldEvent(
        index=0,
        set_index=0,
        start_s=ph.top,
        end_s=ph.leave,
        hold_s=hold,
        angle_deg=rom,
        on_target_pct=float(100.0 * inside.mean()) if seg.shape[0] else 0.0,
        stability_deg=float(seg.std()) if seg.shape[0] else 0.0,
        broken=broken,
        flags=tuple(flags),
        confidence=_confidence(rom, off, lost, tg.detect_deg),
        enter_s=ph.onset,
        exit_s=ph.end,
    )


def _peak_speed(speed: F64Array, ratio: float) -> int:
    """Where a movement's speed peaks (the highest of its maxima that move it far).

    Of the maxima inside the window, those whose movement covers at least `ratio` of
    the angle the largest one covers.

    A speed highest at the window's edge belongs to a movement the window cut (the last
    rep's way back still settling where this one's window begins), not to a bell of its
    own; if there is no maximum inside, the highest sample. A maximum's movement is the
    run of speed one way around it: the accelerometer's kick as a fast rep lands, or as
    the next one sets off, can be quicker than the rep's own way back, but it turns the
    angle by a few degrees, not by the range.
    """
    inside = speed[1:-1]
    peaks = np.flatnonzero((inside >= speed[:-2]) & (inside >= speed[2:])) + 1
    if not peaks.size:
        return int(speed.argmax())
    starts, stops = true_runs(speed > 0)
    if starts.size:
        # The angle each run of speed one way covers, given to each maximum in it.
        area = np.add.reduceat(np.maximum(speed, 0.0), starts)
        run = np.maximum(np.searchsorted(starts, peaks, side="right") - 1, 0)
        covered = np.where(peaks < stops[run], area[run], 0.0)
        peaks = peaks[covered >= ratio * largest(covered)]
    return int(peaks[speed[peaks].argmax()])


def _min_jerk_tau(level: float) -> float:
    """Share of a minimum-jerk movement before its speed first reaches `level` x peak."""
    return (1.0 - math.sqrt(1.0 - math.sqrt(level))) / 2.0


def _bell(t: F64Array, speed: F64Array, i_peak: int) -> tuple[float, float] | None:
    """Middle and duration of the movement whose speed peaks at `i_peak`.

    From its half-peak crossings (interpolated): a minimum-jerk movement is above half
    its peak speed for 54 % of its duration.
    """
    cut = 0.5 * speed[i_peak]
    below_l = np.flatnonzero(speed[:i_peak] < cut)
    below_r = np.flatnonzero(speed[i_peak:] < cut)
    if below_l.size == 0 or below_r.size == 0:
        return None
    a = int(below_l[-1])
    b = i_peak + int(below_r[0])
    t_l = t[a] + (cut - speed[a]) / (speed[a + 1] - speed[a]) * (t[a + 1] - t[a])
    t_r = t[b - 1] + (speed[b - 1] - cut) / (speed[b - 1] - speed[b]) * (t[b] - t[b - 1])
    width = 1.0 - 2.0 * _min_jerk_tau(0.5)
    return float((t_l + t_r) / 2), float((t_r - t_l) / width)


def _ldlj(t: F64Array, th: F64Array) -> float:
    """Log dimensionless jerk of an angle trajectory (closer to 0 is smoother)."""
    if t.shape[0] < _JERK_MIN_N:
        return 0.0
    dt = np.diff(t)
    if not (dt > 0).all():
        return 0.0
    v = np.diff(th) / dt
    acc = np.diff(v) / (0.5 * (dt[1:] + dt[:-1]))
    jerk = np.diff(acc) / dt[1:-1]
    duration = float(t[-1] - t[0])
    v_peak = float(np.abs(v).max())
    if v_peak <= 0:
        return 0.0
    integral = float(np.sum(jerk**2 * dt[1:-1]))
    return -math.log(max(integral * duration**3 / v_peak**2, 1e-12))


def _confidence(rom: float, off: float, gap: bool, detect: float) -> float:
    """0-1: how sure the event is a well-measured rep of this exercise."""
    c = min(1.0, rom / (2.0 * detect))
    c *= 1.0 - 0.5 * min(1.0, off / max(rom, 1e-9))
    if gap:
        c *= 0.5
    return round(float(c), 3)
