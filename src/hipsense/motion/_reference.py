"""The reference: the start position and the movement axis, found from the movements.

A thigh rests on its support between reps, and every rep turns it about one axis and
back. The reference stage keeps the samples in one bounded backlog until it has seen
that: movements that turn the thigh about one axis (`planar_max`), out from one end of
their range and back to it at least `returns_min` times, with the limb at rest there at
least once. That end is the start position (neutral), the axis is the movements' own,
and the angles of every sample in the backlog are released at once, measured from it.

Angles are measured from gravity wherever gravity can see them: the direction of "up"
in the sensor's frame (the accelerometer, or the sensor's own fused orientation) turns
about the movement axis by the rep's angle, whatever the gyroscope's bias or drift.
Only a movement about an axis within `vertical_axis_deg` of the vertical (the library's
anatomy says which; in `auto` mode the gyroscope does) is measured by the heading of the
fused orientation instead. The sensor may sit at any rotation on the thigh.

States: *searching* (samples go to the backlog; a search runs every `search_every_s` of
samples) and *referenced* (samples come out as angles). A referenced stream goes back to
searching when the limb rests, longer in all than any hold and without coming back to
neutral, somewhere no rep starts (further than a rep may start from neutral, nearer the
far end of the movements' range), or settles off the movement plane: a reposition, the
other side, a slipped strap, or a neutral first taken at the top of held reps.
`calibrate()` takes the next sample as neutral.
"""

import math
from collections import deque
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from hipsense._quat import dot3, fixed_matmul3, quat_conj, rotate

from ._decimate import GAP_STEPS
from ._filters import (
    Biquad,
    Lowpass,
    butter2_lowpass,
    counts_since,
    first_true,
    median,
    percentiles,
    run_lengths,
    true_runs,
)
from ._settings import ReferenceSettings

__all__ = ["AngleBlock", "Calibration", "Reference", "ReferenceSettings", "ReferenceTracker"]

F64Array = NDArray[np.float64]
BoolArray = NDArray[np.bool_]
_UP = np.array([0.0, 0.0, 1.0])
_HALF_TURN_DEG = 180.0
_SEARCH_HZ = 25.0
"""The search looks at means over samples at about this rate: a thigh's voluntary
movements lie below 3 Hz, and the real recordings are sampled at 25 Hz."""
_NYQUIST_SHARE = 0.4
_TINY = 1e-12
_COARSE_NCOL = 12
_FLOOR_SPREAD = 0.25
"""Gravity's spread (root mean square, deg) over movements worth a reference is at least
this share of the smallest range that counts: reps' tops and rests spread it by about
a third of their range or more."""
_VERTICAL_SPREAD = 0.5
"""`auto`: gravity spread less than this share of the floor while the gyroscope turns is
a movement about the vertical."""
_MOVES_MIN = 2
"""Movements from rest to rest over which gyroscope and gravity are compared, at least."""
_LEVEL_DEG = 90.0 - 1e-9
"""An axis this close to level is level."""
_NEARER_FAR = 0.5
"""A pose further from neutral than this share of the movements' range is nearer their
far end."""
_SPAN_PCT = (2.0, 98.0)
"""The movements' range is between these percentiles of their angles: a kick or a
moment's overshoot is no end of it."""
_FILTFILT_MIN_N = 15
"""Fewer samples than this are too few to smooth forwards and backwards."""


@dataclass(frozen=True)
class Calibration:
    """A new reference: neutral pose and movement axis."""

    t_s: float
    reason: Literal["still", "explicit", "reposition", "axis"]
    """`axis`: the first reference of the stream; `reposition`: a later one, after the
    limb settled elsewhere; `explicit`: neutral taken at `calibrate()`. (`still` is not
    emitted: no reference is taken from a still start alone.)"""
    neutral_quat: tuple[float, float, float, float]
    gravity_sensor: tuple[float, float, float]
    """Unit vector of 'up' in the sensor frame at neutral."""
    axis_sensor: tuple[float, float, float] | None = None
    axis_quality: float = 0.0
    """How planar the movements were, 0 to 1 (1 - spread across / spread along)."""
    reference: int = 0
    """Counts up with every new reference; angles carry it in `AngleBlock.reference`."""


@dataclass(frozen=True, eq=False)
class AngleBlock:
    """Angles of samples, measured from a reference."""

    t_s: F64Array
    primary_deg: F64Array
    """Rotation about the movement axis from neutral, positive in the working direction."""
    off_plane_deg: F64Array
    """How far the limb is tilted out of the movement plane, from neutral."""
    lowpass_deg: F64Array
    """`primary_deg` low-passed (causal, `lowpass_hz`), restarted with each reference."""
    still: BoolArray
    gap: BoolArray
    """Samples were lost just before this one."""
    reference: int
    recovered: bool = False
    """Released from the backlog when the reference was found (not live)."""

    @staticmethod
    def empty() -> "AngleBlock":
        """A block without samples."""
        z = np.empty(0)
        b = np.empty(0, dtype=bool)
        return AngleBlock(z, z, z, z, b, b, -1)

    def __len__(self) -> int:
        return int(self.t_s.shape[0])


@dataclass(frozen=True, eq=False)
class Reference:
    """Neutral and axis, and how angles are measured from them."""

    mode: Literal["gravity", "heading"]
    axis: F64Array
    """Unit movement axis in the sensor frame, positive in the working direction."""
    e1: F64Array
    e2: F64Array
    """Gravity mode: the plane at right angles to the axis (angle = atan2(u.e2, u.e1))."""
    primary0_deg: float
    """The angle of neutral in that basis (heading mode: the neutral heading)."""
    elevation0_deg: float
    """Gravity mode: elevation of up above the plane at neutral."""
    up0: F64Array
    quat0: F64Array
    sign: float
    """Heading mode: +1 or -1, the working direction."""
    quality: float
    gyro_sign: float = 0.0
    """Gravity mode: how the rate about the axis turns the angle (+1 or -1), where the
    gyroscope agrees with gravity (`gyro_agreement`); 0: gravity alone."""
    gyro_bias_dps: float = 0.0
    """The rate about the axis at rest, taken off."""
    range_deg: float = math.inf
    """The range of the movements it was found from (inf: not found from movements)."""

    def elevation(self, up: F64Array) -> F64Array:
        """Signed tilt (deg) out of the movement plane from neutral.

        Heading mode: the tilt of up from neutral's.
        """
        return self.angles(up, np.broadcast_to(self.quat0, (up.shape[0], 4)))[2]

    def angles(self, up: F64Array, quat: F64Array) -> tuple[F64Array, F64Array, F64Array]:
        """Primary angle, off-plane angle and signed tilt out of the plane (deg).

        Of samples given as up (n, 3) and fused poses (n, 4).
        """
        if self.mode == "gravity":
            # The three projections in one fixed-order product: the same bits however the
            # stream is cut (tests/motion check it).
            p = fixed_matmul3(up, self._basis_t)
            raw = np.degrees(np.arctan2(p[:, 1], p[:, 0]))
            rise = np.degrees(np.arctan2(p[:, 2], np.hypot(p[:, 0], p[:, 1])))
            rise -= self.elevation0_deg
            raw -= self.primary0_deg
            return _wrap(raw), np.abs(rise), rise
        tilt = np.degrees(np.arccos(np.clip(dot3(up, self.up0), -1.0, 1.0)))
        return self.sign * _wrap(_heading_deg(quat) - self.primary0_deg), tilt, tilt

    @property
    def _basis_t(self) -> F64Array:
        """Columns e1, e2, axis (made once per reference)."""
        basis = self.__dict__.get("_basis_columns")
        if basis is None:
            basis = np.ascontiguousarray(np.stack([self.e1, self.e2, self.axis], axis=1))
            object.__setattr__(self, "_basis_columns", basis)
        return np.asarray(basis, np.float64)


class _History:
    """The last samples, by absolute index.

    Times, up, poses, rates, lost samples, and the angles measured from the current
    reference.
    """

    def __init__(self, keep: int) -> None:
        self.keep = keep
        self.cols = np.empty((2 * keep + 1024, _NCOL))
        self.n = 0
        self.first = 0
        """Absolute index of the first row kept."""

    def extend(self, k: int) -> F64Array:
        """Append k rows; return them, to be filled in place."""
        if self.n + k > self.cols.shape[0]:
            # Keep `keep` rows before the new ones: a search at any sample of the block
            # sees as far back as the block's first one does.
            drop = max(0, self.n - self.keep)
            kept = self.cols[drop : self.n].copy()
            if kept.shape[0] + k > self.cols.shape[0]:
                self.cols = np.empty((2 * (kept.shape[0] + k), _NCOL))
            self.cols[: kept.shape[0]] = kept
            self.n = kept.shape[0]
            self.first += drop
        self.n += k
        return self.cols[self.n - k : self.n]

    @property
    def end(self) -> int:
        return self.first + self.n

    def span(self, start: int, stop: int) -> F64Array:
        """Rows from absolute `start` (or the oldest kept) to `stop` (exclusive)."""
        start = max(start, self.first)
        return self.cols[start - self.first : stop - self.first]


# History columns: t, up (3), fused pose (4), rate (3), samples lost before, and, measured
# from the current reference, the low-passed primary angle, the tilt out of the plane and
# whether at rest.
_T, _U, _Q, _W, _GAP = 0, slice(1, 4), slice(4, 8), slice(8, 11), 11
_LP, _RISE, _STILL = 12, 13, 14
_NCOL = 15
_HALF = 0.5


class _Coarse:
    """The search's view of the stream: means over groups of k samples, up low-passed.

    Columns: t (of each group's last sample), up (3), pose (4), rate (3), and jitter:
    the mean square of up's change from sample to sample (rad^2), which a limb held up by
    its muscles shows (physiological tremor, 8-12 Hz) and a limb resting on its support
    does not.
    """

    def __init__(self, keep: int, lowpass: Lowpass) -> None:
        self.keep = keep
        self.cols = np.empty((2 * keep + 64, _COARSE_NCOL))
        self.n = 0
        self.first = -1
        self.start_group = -1
        """The group the search began at; `first` the group of row 0."""
        self.lowpass = lowpass

    def restart(self, group: int, lowpass: Lowpass) -> None:
        self.n = 0
        self.first = self.start_group = group
        self.lowpass = lowpass

    @property
    def end_group(self) -> int:
        return self.first + self.n

    def add(
        self, t: F64Array, up: F64Array, quat: F64Array, gyr: F64Array, jitter: F64Array
    ) -> None:
        m = t.shape[0]
        if self.n + m > self.cols.shape[0]:
            drop = max(0, self.n - self.keep)
            self.cols[: self.n - drop] = self.cols[drop : self.n].copy()
            self.n -= drop
            self.first += drop
            if self.n + m > self.cols.shape[0]:
                grown = np.empty((2 * (self.n + m), _COARSE_NCOL))
                grown[: self.n] = self.cols[: self.n]
                self.cols = grown
        rows = self.cols[self.n : self.n + m]
        rows[:, 0] = t
        rows[:, 1:4] = up
        rows[:, 4:8] = quat
        rows[:, 8:11] = gyr
        rows[:, 11] = jitter
        self.n += m

    def latest(self, m: int) -> tuple[F64Array, F64Array, F64Array, F64Array]:
        """The last m groups' up, poses, rates and jitter, as fresh arrays."""
        rows = np.array(self.cols[max(0, self.n - m) : self.n])
        return rows[:, 1:4], rows[:, 4:8], rows[:, 8:11], rows[:, 11]


def _coarsen(
    rows: F64Array, k: int, lowpass: Lowpass, before: F64Array | None
) -> tuple[F64Array, F64Array, F64Array, F64Array, F64Array]:
    """Means over whole groups of k history rows, from the first.

    Times, up low-passed and normalised, the groups' last poses, mean rates, and jitter
    (`_Coarse`). `before` is the row before the first, if there is one.
    """
    m = rows.shape[0] // k
    # A fresh array: its sums add in the same order wherever the rows lie in memory.
    block = np.array(rows[: m * k]).reshape(m, k, _NCOL)
    raw = block[:, :, _U].reshape(m * k, 3)
    prev = np.concatenate([(raw[:1] if before is None else before[None, _U]), raw[:-1]])
    jitter = np.sum((raw - prev) ** 2, axis=1).reshape(m, k).mean(axis=1)
    up = lowpass(block[:, :, _U].mean(axis=1))
    up /= np.maximum(np.linalg.norm(up, axis=1, keepdims=True), _TINY)
    return (
        np.array(block[:, -1, _T]),
        up,
        np.array(block[:, -1, _Q]),
        block[:, :, _W].mean(axis=1),
        jitter,
    )


class ReferenceTracker:
    """Finds the reference and turns samples into angles (see the module's docstring).

    `update(...)` returns, in stream order, the angle blocks and calibrations the block
    completed. `floor_deg` is the smallest range worth a reference (the exercise's
    detection floor); `rest_max_deg` how far from neutral a rep may start;
    `top_max_deg` the furthest a rep may go; `settled_s` longer than any prescribed
    hold; `hold_s` the prescribed hold; `single_movement` that one hold is a whole set,
    held at least `hold_min_s`; `end_band_ratio` how near an end of the movements' range
    a pose is at it;
    `axis_from_vertical_deg` the library's angle between axis and vertical (None:
    `auto`, unknown).
    """

    def __init__(
        self,
        rate_hz: float,
        settings: ReferenceSettings | None = None,
        *,
        floor_deg: float = 1.5,
        rest_max_deg: float = 12.0,
        top_max_deg: float = 180.0,
        settled_s: float = 20.0,
        hold_s: float = 0.0,
        single_movement: bool = False,
        hold_min_s: float = 0.0,
        end_band_ratio: float = 0.35,
        axis_from_vertical_deg: float | None = None,
    ) -> None:
        self.rate_hz = float(rate_hz)
        self.settings = s = settings if settings is not None else ReferenceSettings()
        self.floor_deg = floor_deg
        self.rest_max_deg = rest_max_deg
        self.top_max_deg = top_max_deg
        self.end_band_ratio = end_band_ratio
        self.axis_from_vertical_deg = axis_from_vertical_deg
        self._settled_n = max(2, round(settled_s * self.rate_hz))
        self._moved_n = max(2, round((hold_s + s.pause_s) * self.rate_hz))
        self._moved_rest_n = max(2, round(s.pause_s * self.rate_hz))
        self._rest_n = max(1, round(s.rest_min_s * self.rate_hz))
        self._returns_min = 1 if single_movement else s.returns_min
        self._hold_min_n = round(hold_min_s * self.rate_hz) if single_movement else 0
        # The search sees means over k samples (about `_SEARCH_HZ`); it runs at whole
        # numbers of them.
        self._k = max(1, round(self.rate_hz / _SEARCH_HZ))
        self._search_n = self._k * max(1, round(s.search_every_s * self.rate_hz / self._k))
        # A set of held positions needs one whole hold in view, with the rests around it.
        self._backlog_n = round(max(s.backlog_s, 2.0 * settled_s) * self.rate_hz)
        self._window_n = round(max(s.axis_window_s, settled_s) * self.rate_hz)
        # At rest is judged on the angle's change over half the shortest rest: over one
        # sample, a poor unit's noise (0.5 deg per sample) moves the angle faster than
        # `still_dps`; over a fifth of a second it cannot.
        self._still_lag = max(1, round(0.5 * s.rest_min_s * self.rate_hz))
        self._still_step = s.still_dps * self._still_lag / self.rate_hz
        self._agree = math.cos(math.radians(s.axis_agree_deg))
        self._find_lp = Biquad(
            *butter2_lowpass(min(s.lowpass_hz, _NYQUIST_SHARE * rate_hz), rate_hz)
        )
        self.reset()

    def reset(self) -> None:
        """Forget the reference, the history and every filter's state."""
        self._angle_lp = Lowpass(self.settings.lowpass_hz, self.rate_hz)
        self._rise_lp = Lowpass(self.settings.lowpass_hz, self.rate_hz)
        self._blend_lp = Lowpass(self.settings.gyro_lowpass_hz, self.rate_hz)
        self._turned = 0.0
        self._hist = _History(self._backlog_n)
        self._last_t: float | None = None
        self.reference: Reference | None = None
        self._index = -1
        self._explicit = False
        self._search_from = 0  # absolute index the search looks from (no reference)
        self._coarse = _Coarse(self._backlog_n // self._k + 1, self._coarse_lowpass())
        self._opens_at_rest = True  # the search's first sample is a rest pose
        self._ref_from = 0  # first sample measured from the current reference
        self._bins: deque[tuple[float, ...]] = deque()
        self._bin_total = [0.0, 0.0, 0.0, 0.0, 0.0, 0.0]
        self._lp_tail: F64Array | None = None
        self._rise_tail: F64Array | None = None
        self._still_run = 0
        self._away_run = 0
        self.calibration: Calibration | None = None
        self.trace: list[tuple[float, str]] | None = None
        """Set to a list to record each decision: (time, what was decided)."""

    def calibrate(self) -> None:
        """Take the next sample as neutral."""
        self._explicit = True

    def _note(self, t_s: float, what: str) -> None:
        if self.trace is not None:
            self.trace.append((t_s, what))

    # -- streaming -----------------------------------------------------------------

    def update(
        self, t_s: F64Array, up: F64Array, quat: F64Array | None, gyr_rad_s: F64Array
    ) -> list[AngleBlock | Calibration]:
        """Take a block; return what it completed, in stream order.

        Times (n,), up in the sensor frame (n, 3), fused poses (n, 4) (None: not fused,
        no heading) and rates (n, 3).
        """
        n = t_s.shape[0]
        out: list[AngleBlock | Calibration] = []
        if n == 0:
            return out
        prev = t_s[0] if self._last_t is None else self._last_t
        self._last_t = float(t_s[-1])
        begin = self._hist.end
        rows = self._hist.extend(n)
        rows[:, _T] = t_s
        rows[:, _U] = up
        if quat is not None:
            rows[:, _Q] = quat
        else:
            rows[:, _Q] = np.nan
        rows[:, _W] = gyr_rad_s
        gap = rows[:, _GAP]
        gap[0] = t_s[0] - prev
        np.subtract(t_s[1:], t_s[:-1], out=gap[1:])
        np.greater(gap, GAP_STEPS / self.rate_hz, out=gap)
        at = begin
        end = begin + n
        while at < end:
            if self._explicit:
                self._explicit = False
                out.append(self._take_neutral(at))
            if self.reference is None:
                at = self._search_until(at, end, out)
            else:
                at = self._measure(at, end, out)
        return out

    def _ticks(self, start: int, stop: int) -> range:
        """Search ticks among absolute samples start to stop: (j + 1) % search_n == 0."""
        return range(start + (-(start + 1)) % self._search_n, stop, self._search_n)

    def _search_until(self, start: int, stop: int, out: list[AngleBlock | Calibration]) -> int:
        """Search at the ticks of samples start to stop.

        Where a reference is found, the samples after it are measured.
        """
        for j in self._ticks(start, stop):
            self._coarse_until(j + 1)
            if self._search(j + 1, out):
                return j + 1
        return stop

    def _coarse_lowpass(self) -> Lowpass:
        return Lowpass(self.settings.lowpass_hz, self.rate_hz / self._k, channels=3)

    def _coarse_until(self, stop: int) -> None:
        """Means of the search's groups of k samples complete by sample `stop`."""
        c = self._coarse
        first_group = -(-self._search_from // self._k)
        if c.first < 0 or c.start_group != first_group:
            c.restart(first_group, self._coarse_lowpass())
        begin = max(c.end_group, first_group) * self._k
        if stop - begin >= self._k:
            before = _row(self._hist.span(begin - 1, begin)) if begin > self._hist.first else None
            c.add(*_coarsen(self._hist.span(begin, stop), self._k, c.lowpass, before))

    def _measure(
        self, start: int, stop: int, out: list[AngleBlock | Calibration], *, live: bool = True
    ) -> int:
        """Angles of samples start to stop.

        Stops early where the limb has gone where no rep goes (searching again), or
        (`live`) where its movements need a new axis.
        """
        ref = self.reference
        assert ref is not None
        r = self._hist.span(start, stop)
        primary, off, rise = ref.angles(r[:, _U], r[:, _Q])
        if ref.gyro_sign:
            primary = self._blend(primary, r[:, _W], ref)
        lp_before = self._angle_lp.state()
        lp = self._angle_lp(primary)
        rise_before = self._rise_lp.state()
        lagged = self._lag_rows(lp)
        lagged_rise = _lagged(self._rise_lp(rise), self._still_lag, self._rise_tail)
        still = self._still(lagged, lagged_rise)
        runs = run_lengths(still, self._still_run)
        r[:, _LP] = lp
        r[:, _RISE] = rise
        r[:, _STILL] = still
        # Somewhere no rep goes: behind neutral, beyond the range, or at rest further off
        # the plane than along it (at rest: the accelerometer's kicks as a fast movement
        # starts and stops are no pose).
        far_off = off > self.settings.reposition_deg
        gone = (lp < -self.rest_max_deg) | (lp > self.top_max_deg)
        if far_off[far_off.argmax()]:
            gone |= far_off & still & (off > lp)
        k = first_true(gone)
        # At rest away from neutral for longer, in all, than any hold, without coming
        # back to it: further than a rep may start, or nearer the far end of the
        # movements' range than neutral. A rep comes back to neutral (into the band
        # where a pose is at that end) and a hold is one stay at the top; between sets
        # a limb settles, and its reps start, on its support, and its small reps there
        # go part of the way towards the top.
        far = min(self.rest_max_deg, _NEARER_FAR * ref.range_deg)
        away = np.abs(lp) > far
        back = np.abs(lp) <= self.end_band_ratio * ref.range_deg
        away_runs = counts_since(still & away, back, self._away_run)
        if runs[runs.argmax()] >= self._moved_n:
            # At rest off the plane for longer than a rep's top is held.
            moved = runs >= self._moved_n
            j = first_true((moved & far_off) | (away_runs >= self._settled_n))
            k = j if k < 0 or 0 <= j < k else k
        n = r.shape[0] if k < 0 else k + 1
        # Not while measuring again what a new reference released: the past's ticks were
        # checked when they were live.
        switched = self._check(start, start + n) if live else None
        if switched is not None:
            n = switched[2] - start
            k = -1
            if switched[1] < 0:
                # The same reference, now blended with the gyroscope from here on: the
                # angle's low-pass goes on from sample n.
                self._angle_lp.restore(lp_before)
                self._angle_lp(primary[:n])
                self._rise_lp.restore(rise_before)
                self._rise_lp(rise[:n])
                self.reference = switched[0]
                self._blend_lp = Lowpass(self.settings.gyro_lowpass_hz, self.rate_hz)
                self._turned = 0.0
                switched = None
        self._still_run = int(runs[n - 1])
        self._away_run = int(away_runs[n - 1])
        self._lp_tail = lagged[n : n + self._still_lag]
        self._rise_tail = lagged_rise[n : n + self._still_lag]
        out.append(
            AngleBlock(
                r[:n, _T].copy(),
                primary[:n],
                off[:n],
                lp[:n],
                still[:n],
                r[:n, _GAP] != 0,
                self._index,
            )
        )
        if switched is not None:
            self._start(*switched, out)
        elif k >= 0:
            # Look for the reference again from where the limb last rested at neutral:
            # the movement that took it here may be a rep about a new axis.
            self._note(float(r[k, _T]), "reference lost: the limb is where no rep goes")
            self.reference = None
            self._search_from = self._last_rest_at_neutral(start + n)
            self._opens_at_rest = True
        return start + n

    def _blend(self, gravity: F64Array, gyr: F64Array, ref: Reference) -> F64Array:
        """The gravity angle below `gyro_lowpass_hz`, the gyroscope's above it."""
        # In a fixed order: the same bits however the stream is cut.
        rate = ref.gyro_sign * (np.degrees(dot3(gyr, ref.axis)) - ref.gyro_bias_dps)
        steps = np.empty(rate.shape[0] + 1)
        steps[0] = self._turned
        np.divide(rate, self.rate_hz, out=steps[1:])
        # Added one by one from the carried total: the same sums however the stream is cut.
        turned = np.cumsum(steps)[1:]
        self._turned = float(turned[-1])
        return np.asarray(turned + self._blend_lp(gravity - turned), np.float64)

    def _last_rest_at_neutral(self, stop: int) -> int:
        """The sample after the limb's last rest near neutral before `stop`.

        Measured from the current reference; `stop` if the limb did not rest there since
        the reference began.
        """
        rows = self._hist.span(self._ref_from, stop)
        near = (rows[:, _STILL] != 0) & (np.abs(rows[:, _LP]) < self.floor_deg)
        near &= np.abs(rows[:, _RISE]) < self.floor_deg
        hits = np.flatnonzero(near)
        return stop if not hits.size else stop - rows.shape[0] + int(hits[-1])

    def _lag_rows(self, lp: F64Array) -> F64Array:
        """The last `_still_lag` angles before `lp`, then `lp` (`_lagged`)."""
        return _lagged(lp, self._still_lag, self._lp_tail)

    def _still(self, lagged: F64Array, lagged_rise: F64Array) -> BoolArray:
        """At rest: the limb turned slower than `still_dps` over the lag, any way.

        `lagged`, `lagged_rise`: the low-passed angle and tilt out of the plane, with the
        `_still_lag` before them (`_lagged`). Along the axis or across it: a limb moving
        across the plane is not at rest.
        """
        lag = self._still_lag
        along = lagged[lag:] - lagged[:-lag]
        across = lagged_rise[lag:] - lagged_rise[:-lag]
        return np.asarray(along * along + across * across < self._still_step**2)

    def _search(self, stop: int, out: list[AngleBlock | Calibration]) -> bool:
        """Look for a reference in the samples from the search's start to `stop`.

        If there is none, also in those since each rest of `pause_s`, earliest first: what
        came before may have been the limb being put in place (turning over, fidgeting).
        """
        c = self._coarse
        groups = c.latest(self._backlog_n // self._k)
        first = (c.end_group - groups[0].shape[0]) * self._k
        opened = self._opens_at_rest and c.end_group - groups[0].shape[0] == c.start_group
        found = self._find(*groups, opened)
        if found is None:
            for cut in self._rests(groups[0]):
                up, quat, gyr, jitter = (g[cut:] for g in groups)
                found = self._find(up, quat, gyr, jitter, True)
                if found is not None:
                    first += cut * self._k
                    break
        if found is None:
            return False
        self._start(found[0], first + found[1] * self._k, stop, out)
        return True

    def _rests(self, up: F64Array) -> list[int]:
        """Where (in coarse samples) each of the limb's rests of `pause_s` began."""
        lag = max(1, self._still_lag // self._k)
        ahead = np.concatenate([up[lag:], np.repeat(up[-1:], min(lag, up.shape[0]), axis=0)])
        step = np.sqrt(np.sum((ahead - up) ** 2, axis=1))[:-1]
        starts, stops = true_runs(step < math.radians(self._still_step))
        long_enough = np.flatnonzero(stops - starts >= self._moved_rest_n / self._k)
        return [int(starts[i]) + 1 for i in long_enough]

    def _check(self, start: int, stop: int) -> tuple[Reference, int, int] | None:
        """Whether the movements up to each tick still turn about the reference's axis.

        If they mostly move across its plane instead (a set done another way, a wrong
        first axis), the reference is found again from them, and the samples since are
        measured again from it: returns the new reference, the first sample to measure
        from it, and the end of the tick it was found at. (First -1: the same reference,
        the gyroscope found to agree with gravity at that tick.)
        """
        ref = self.reference
        assert ref is not None
        if ref.mode != "gravity":
            return None
        for j in self._ticks(start, stop):
            self._bin(j + 1)
            if not ref.gyro_sign and (j + 1 - self._ref_from) % self._window_n < self._search_n:
                # Not yet agreed: compared again over the latest movements, once a window;
                # if they agree now, the angles from the next sample on are blended.
                fitted = self._gyro_fit(ref, self._hist.span(j + 1 - self._window_n, j + 1))
                if fitted.gyro_sign:
                    self._note(float(self._hist.cols[j - self._hist.first, _T]), "gyroscope agrees")
                    return fitted, -1, j + 1
            if len(self._bins) * self._search_n < self._search_n + 1:
                continue
            across = self._across_bins()
            if across is None or math.cos(across) >= self._agree:
                continue
            # Found again from the latest movements only: they must show the new axis
            # (`returns_min` of them) on their own.
            a = max(self._hist.first, j + 1 - self._window_n)
            a += (-a) % self._k
            before = _row(self._hist.span(a - 1, a)) if a > self._hist.first else None
            groups = _coarsen(self._hist.span(a, j + 1), self._k, self._coarse_lowpass(), before)
            found = self._find(*groups[1:], False)
            if found is None or abs(float(found[0].axis @ ref.axis)) >= self._agree:
                continue
            t = float(groups[0][-1])
            self._note(t, f"movements {math.degrees(across):.0f} deg off the axis: a new axis")
            first = a + found[1] * self._k
            # The new set may have begun before the latest window: found over the whole
            # backlog about the same axis, it is measured from where it began there.
            b = self._hist.first + (-self._hist.first) % self._k
            if b < a:
                before = _row(self._hist.span(b - 1, b)) if b > self._hist.first else None
                whole = _coarsen(self._hist.span(b, j + 1), self._k, self._coarse_lowpass(), before)
                earlier = self._find(*whole[1:], False)
                if (
                    earlier is not None
                    and abs(float(earlier[0].axis @ found[0].axis)) >= self._agree
                    and b + earlier[1] * self._k < first
                ):
                    return earlier[0], b + earlier[1] * self._k, j + 1
            return found[0], first, j + 1
        return None

    def _bin(self, stop: int) -> None:
        """Sums over the moving samples of the tick that ends at `stop`.

        `_moments` of their primary and tilt (for the window's main direction).
        """
        a = max(self._ref_from, stop - self._search_n)
        recent = np.array(self._hist.span(a, stop)[:, _LP : _STILL + 1])
        moving = recent[:, 2] < _HALF
        sums = _moments(recent[moving, 0], recent[moving, 1])
        self._bins.append(sums)
        total = self._bin_total
        for c in range(len(sums)):
            total[c] += sums[c]
        while len(self._bins) * self._search_n > self._window_n:
            old = self._bins.popleft()
            for c in range(len(old)):
                total[c] -= old[c]

    def _across_bins(self) -> float | None:
        return self._direction(*self._bin_total)

    def _direction(
        self, saa: float, see: float, sae: float, count: float, sa: float, se: float
    ) -> float | None:
        """The main direction (rad) of a path, from its sums.

        In the plane at right angles to neutral's up: 0 along the axis's path, pi / 2
        across it; None if it moved too little to tell. About the path's own mean: a
        limb resting off the plane and stirring there has not moved across it.
        """
        if count < self._search_n:
            return None
        ma, me = sa / count, se / count
        caa, cee, cae = saa - count * ma * ma, see - count * me * me, sae - count * ma * me
        if (caa + cee) / count < self.floor_deg**2:
            return None
        return 0.5 * math.atan2(2.0 * cae, caa - cee)

    def _find(
        self,
        up_lp: F64Array,
        quat: F64Array,
        gyr: F64Array,
        jitter: F64Array,
        opens_at_rest: bool,
    ) -> tuple[Reference, int] | None:
        """A reference from the search's coarse samples, and the first to measure from it.

        The samples: up low-passed, poses, rates, jitter. None if there is no reference.

        `opens_at_rest`: the first sample is a rest pose (the stream's start, or where the
        limb settled when the last reference was lost).
        """
        s = self.settings
        k = self._k
        n = up_lp.shape[0]
        rate = self.rate_hz / k
        if n < s.search_every_s * rate:
            return None
        w0 = max(0, n - round(self._window_n / k))
        basis = self._axis(up_lp[w0:], gyr[w0:], rate)
        if basis is None:
            return None
        mode, axis, e1, e2, quality = basis
        if mode == "gravity":
            phi = np.degrees(np.arctan2(dot3(up_lp, e2), dot3(up_lp, e1)))
            elev = np.degrees(np.arcsin(np.clip(dot3(up_lp, axis), -1.0, 1.0)))
        else:
            # Headings from the window's first pose's; neutral's is turned back into the
            # fused frame's below, as measuring finds it.
            heading0 = float(_heading_deg(quat[w0 : w0 + 1])[0])
            phi = _wrap(_heading_deg(quat) - heading0)
            elev = np.zeros(n)
        # The structure (ends, rests, returns) over all the rows; the axis from the latest.
        side = self._neutral_side(phi, jitter, opens_at_rest, rate)
        if side is None:
            if w0 > 0 and self._outside_latest(phi, w0):
                # A one-off movement before the latest window (the limb put in place)
                # set an end of the range the latest movements do not reach: the
                # structure of the latest window alone.
                found = self._find(up_lp[w0:], quat[w0:], gyr[w0:], jitter[w0:], False)
                return None if found is None else (found[0], found[1] + w0)
            return None
        level, sign, first_rest, still, rests = side
        span = self._range(phi)
        near = np.abs(phi - level) <= self.end_band_ratio * span
        near_k = int(np.flatnonzero(near)[-1])
        up0 = _unit(up_lp[near_k])
        if mode == "heading":
            # Off the plane: up's tilt from neutral's, as measuring finds it.
            elev = np.degrees(np.arccos(np.clip(dot3(up_lp, up0), -1.0, 1.0)))
        elev0 = float(elev[near_k])
        # Released from the first rest on the start position's side (what came before it
        # was no rep from there), and after the limb was last where no rep goes (as measuring
        # would find it: behind neutral, beyond the range, at rest further off the plane
        # than along it), from its next rest at neutral.
        release = first_rest
        along = sign * (phi - level)
        tilt = np.abs(elev - elev0)
        gone = (along < -self.rest_max_deg) | (along > self.top_max_deg)
        gone |= still & (tilt > s.reposition_deg) & (tilt > along)
        last_gone = np.flatnonzero(gone)
        if last_gone.size:
            later = rests[rests > last_gone[-1]]
            if not later.size:
                return None
            release = max(release, int(later[0]))
        if mode == "gravity":
            e2 = e2 * sign
            level *= sign
            axis = axis * sign
        else:
            level = float(_wrap(np.array([level + heading0]))[0])
        ref = Reference(
            mode=mode,
            axis=axis,
            e1=e1,
            e2=e2,
            primary0_deg=level,
            elevation0_deg=elev0 * (sign if mode == "gravity" else 1.0),
            up0=up0,
            quat0=_pose(quat[near_k], up0),
            sign=sign if mode == "heading" else 1.0,
            quality=quality,
            range_deg=span,
        )
        return ref, release

    def _outside_latest(self, phi: F64Array, w0: int) -> bool:
        """Whether the movements from `w0` on stay out of an end band of all of `phi`."""
        lo, hi = _ends(phi)
        lo_w, hi_w = _ends(phi[w0:])
        band = self.end_band_ratio * float(hi - lo)
        return bool(lo_w > lo + band or hi_w < hi - band)

    def _axis(
        self, up: F64Array, gyr: F64Array, rate: float
    ) -> tuple[Literal["gravity", "heading"], F64Array, F64Array, F64Array, float] | None:
        """The movement axis and plane from gravity's path (or the heading), or None."""
        s = self.settings
        mean = _unit(up.mean(axis=0))
        d = up - mean
        vals, vecs = np.linalg.eigh(np.einsum("ij,ik->jk", d, d))
        along = vecs[:, 2]
        spread = math.degrees(math.sqrt(max(vals[2], 0.0) / up.shape[0]))
        planar = vals[1] / vals[2] if vals[2] > 0 else math.inf
        across = _unit(_cross(mean, along))
        tilt = self.axis_from_vertical_deg
        rates = self._rate_axis(gyr, rate)
        if tilt is None:
            # `auto`: the gyroscope's axis, where gravity agrees with it (a gyroscope
            # mounted askew from its accelerometer does not); a vertical one if gravity
            # barely moves while the limb turns.
            tilt = 90.0
            if rates is not None:
                flat = rates - float(rates @ mean) * mean
                vertical = math.degrees(math.acos(min(1.0, abs(float(rates @ mean)))))
                if (
                    spread < _VERTICAL_SPREAD * self.floor_deg
                    or abs(float(_unit(flat) @ across)) >= self._agree
                ):
                    tilt = vertical
        if tilt < s.vertical_axis_deg:
            if rates is None and self.axis_from_vertical_deg is None:
                return None
            return "heading", mean, mean, mean, 1.0
        if planar > s.planar_max or spread < _FLOOR_SPREAD * self.floor_deg:
            return None
        axis = across
        if tilt < _LEVEL_DEG:
            # Tilted towards the vertical: which way, the gyroscope says.
            rate_up = dot3(gyr, mean)
            rate_across = dot3(gyr, across)
            side = 1.0 if float(np.sum(rate_up * rate_across)) >= 0 else -1.0
            axis = _unit(
                math.sin(math.radians(tilt)) * across + side * math.cos(math.radians(tilt)) * mean
            )
        e1 = _unit(mean - float(mean @ axis) * axis)
        e2 = _cross(axis, e1)
        return "gravity", axis, e1, e2, float(1.0 - planar)

    def _rate_axis(self, gyr: F64Array, rate: float) -> F64Array | None:
        """The rates' main axis (sensor frame), if the limb turned."""
        # Less the window's median rate: reps turn both ways, so the median is what the
        # gyroscope reads when the limb does not turn (its bias, 2-3 deg/s at start-up on
        # a real unit), and a bias alone would pass for a steady turn about its own axis.
        gyr = gyr - median(gyr)
        speed = np.sqrt(dot3(gyr * gyr, np.ones(3)))
        moving = gyr[speed > math.radians(self.settings.still_dps)]
        if moving.shape[0] < self.settings.search_every_s * rate:
            return None
        _, vecs = np.linalg.eigh(np.einsum("ij,ik->jk", moving, moving))
        return np.asarray(vecs[:, 2], np.float64)

    def _range(self, phi: F64Array) -> float:
        lo, hi = _ends(phi)
        return hi - lo

    def _neutral_side(
        self, phi: F64Array, jitter: F64Array, opens_at_rest: bool, rate: float
    ) -> tuple[float, float, int, BoolArray, NDArray[np.intp]] | None:
        """Where the start position is, and where the limb rests.

        Neutral's level, the working direction (+1 up the angle), the first sample at
        rest on its side of the range's middle, which samples are at rest, and the indices
        of those at rest at neutral.
        None if there is no start position yet.

        The start position is the end of the range the limb goes out from and comes back
        to (`returns_min` times), resting there at least once. Of the two ends, the one
        where it rested longer than any hold; else the one where it rests quieter
        (supported, not held up by its muscles: `quiet_ratio`); else the one the backlog
        opened at, if it opened at rest; else the one it rested at longer. An exercise
        that is one held position needs the hold at the other end (`hold_min_s`).
        """
        s = self.settings
        lo, hi = _ends(phi)
        span = hi - lo
        if span < self.floor_deg:
            return None
        band = self.end_band_ratio * span
        at_lo = phi <= lo + band
        at_hi = phi >= hi - band
        # Rest: the angle moving slower than still_dps (on the low-passed path) for at
        # least rest_min_s.
        lag = max(1, self._still_lag // self._k)
        slow = np.abs(phi - _lagged(phi, lag, None)[:-lag]) < self._still_step
        # The length of the run of slow samples each lies in: the run so far, plus what
        # is left of it.
        run = run_lengths(slow, 0) + run_lengths(slow[::-1], 0)[::-1] - 1
        still = slow & (run >= s.rest_min_s * rate)
        ends = np.where(at_lo, -1, np.where(at_hi, 1, 0))
        # The ends visited in turn: each end-other-end is a movement out and back.
        visits = ends[ends != 0]
        turns = visits[np.flatnonzero(np.diff(visits, prepend=0))]
        back = turns[2:][turns[2:] == turns[:-2]]
        returns = {e: int(np.count_nonzero(back == e)) for e in (-1, 1)}
        dwell = {e: int(np.sum(still & (ends == e))) for e in (-1, 1)}
        longest = {e: _longest_run(still & (ends == e)) for e in (-1, 1)}
        # Seen from a hold's end, the same movements come back to the start one time
        # fewer: where the limb rested longer than any hold is the start position once
        # the movements show one (out of a hold and back to it `returns_min` times).
        settled = self._settled_n * rate / self.rate_hz
        fewer = max(1, self._returns_min - 1)
        candidates = [
            e
            for e in (-1, 1)
            if dwell[e] > 0
            and (
                returns[e] >= self._returns_min
                or (
                    returns[-e] >= self._returns_min
                    and returns[e] >= fewer
                    and longest[e] >= settled
                )
            )
        ]
        if not candidates:
            return None
        if len(candidates) == 1:
            side = candidates[0]
        elif max(longest.values()) >= settled and (longest[-1] != longest[1]):
            side = -1 if longest[-1] > longest[1] else 1
        else:
            tremor = {e: float(median(jitter[still & (ends == e)])) for e in (-1, 1)}
            if tremor[-1] * s.quiet_ratio <= tremor[1]:
                side = -1
            elif tremor[1] * s.quiet_ratio <= tremor[-1]:
                side = 1
            elif opens_at_rest and ends[0] != 0:
                side = int(ends[0])
            else:
                side = -1 if dwell[-1] >= dwell[1] else 1
        if longest[-side] < self._hold_min_n * rate / self.rate_hz:
            return None
        mask = still & (ends == side)
        level = float(median(phi[mask]))
        # Measured from the first rest on neutral's side of the range's middle, or from the
        # opening if it rested there: between rests, a resting level drifts by more than
        # the end band (real people: 3-12 deg over a block, on ranges of 9-40 deg).
        start_end = hi if side > 0 else lo
        homeward = side * (phi - start_end) > -_NEARER_FAR * span
        first = 0 if opens_at_rest and homeward[0] else int((still & homeward).argmax())
        return level, float(-side), first, still, np.flatnonzero(mask)

    # -- references ----------------------------------------------------------------

    def _start(
        self, ref: Reference, first: int, stop: int, out: list[AngleBlock | Calibration]
    ) -> None:
        """Take a found reference at sample `stop`.

        Samples `first` to `stop` are measured from it again, marked as recovered.
        """
        t_now = float(self._hist.cols[stop - 1 - self._hist.first, _T])
        self._index += 1
        if ref.mode == "gravity":
            # Compared over all the movements the reference was found from.
            ref = self._gyro_fit(ref, self._hist.span(min(first, stop - self._window_n), stop))
        self.reference = ref
        cal = Calibration(
            t_s=t_now,
            reason="axis" if self._index == 0 else "reposition",
            neutral_quat=_tuple4(ref.quat0),
            gravity_sensor=_tuple3(ref.up0),
            axis_sensor=_tuple3(ref.axis),
            axis_quality=ref.quality,
            reference=self._index,
        )
        self.calibration = cal
        out.append(cal)
        self._note(
            t_now,
            f"reference {self._index} ({ref.mode}), quality {ref.quality:.2f}"
            + (", gyroscope agrees" if ref.gyro_sign else ""),
        )
        self._restart(first)
        at = first
        while at < stop and self.reference is ref:
            mark = len(out)
            at = self._measure(at, stop, out, live=False)
            for m in range(mark, len(out)):
                item = out[m]
                if isinstance(item, AngleBlock) and item.reference == self._index:
                    out[m] = replace(item, recovered=True)

    def _gyro_fit(self, ref: Reference, rows: F64Array) -> Reference:
        """The reference with the gyroscope's sign and bias, if it agrees with gravity.

        Compared from rest to rest, where gravity is exact: the rate about the axis,
        integrated over each movement between two rests, against the change of the
        gravity angle between them.
        """
        s = self.settings
        rows = np.array(rows)
        if rows.shape[0] <= _FILTFILT_MIN_N or not np.isfinite(rows[:, _W]).all():
            return ref
        angle = self._find_lp.filtfilt(ref.angles(rows[:, _U], rows[:, _Q])[0])
        slow = np.abs(np.gradient(angle)) * self.rate_hz < s.still_dps
        starts, stops = true_runs(slow)
        keep = stops - starts >= self._rest_n
        starts, stops = starts[keep], stops[keep]
        if starts.shape[0] <= _MOVES_MIN:
            return ref
        rate = np.degrees(dot3(rows[:, _W], ref.axis))
        bias = float(np.median(rate[slow]))
        turned = np.cumsum(rate - bias) / self.rate_hz
        mid = (starts + stops) // 2
        level = np.array([float(np.median(angle[a:b])) for a, b in zip(starts, stops, strict=True)])
        dg = np.diff(level)
        di = np.diff(turned[mid])
        moved = np.abs(dg) >= self.floor_deg
        if np.count_nonzero(moved) < _MOVES_MIN:
            return ref
        dg, di = dg[moved], di[moved]
        sxy, sxx, syy = float(dg @ di), float(di @ di), float(dg @ dg)
        if sxx <= 0 or syy <= 0:
            return ref
        gain = sxy / sxx
        agree = sxy / math.sqrt(sxx * syy)
        g = s.gyro_agreement
        if abs(agree) < g or not g <= abs(gain) <= 1.0 / g:
            return ref
        return replace(ref, gyro_sign=math.copysign(1.0, gain), gyro_bias_dps=bias)

    def _restart(self, at: int) -> None:
        """Angles from a new reference begin at absolute sample `at`."""
        self._angle_lp.reset()
        self._rise_lp.reset()
        self._blend_lp = Lowpass(self.settings.gyro_lowpass_hz, self.rate_hz)
        self._turned = 0.0
        self._lp_tail = None
        self._rise_tail = None
        self._still_run = 0
        self._away_run = 0
        self._ref_from = at
        self._bins = deque()
        self._bin_total = [0.0, 0.0, 0.0, 0.0, 0.0, 0.0]

    def _take_neutral(self, at: int) -> Calibration:
        """`calibrate()`: sample `at`'s pose is neutral (the axis stays, if known)."""
        row = self._hist.cols[at - self._hist.first]
        ref = self.reference
        up0 = _unit(row[_U])
        self._index += 1
        if ref is not None:
            primary, _, rise = ref.angles(up0[None, :], row[None, _Q])
            shift = float(primary[0]) * (1.0 if ref.mode == "gravity" else ref.sign)
            self.reference = ref = replace(
                ref,
                primary0_deg=ref.primary0_deg + shift,
                elevation0_deg=ref.elevation0_deg + float(rise[0]),
                up0=up0,
                quat0=_pose(row[_Q], up0),
            )
            self._restart(at)
        else:
            self._search_from = at
            self._opens_at_rest = True
        cal = Calibration(
            t_s=float(row[_T]),
            reason="explicit",
            neutral_quat=_tuple4(_pose(row[_Q], up0)),
            gravity_sensor=_tuple3(up0),
            axis_sensor=None if ref is None else _tuple3(ref.axis),
            axis_quality=0.0 if ref is None else ref.quality,
            reference=self._index,
        )
        self.calibration = cal
        return cal


def _lagged(x: F64Array, lag: int, before: F64Array | None) -> F64Array:
    """The `lag` values before `x`, then `x`: `x[i]` lies `lag` after the same index.

    `before`: the stream's `lag` values before this block; None where the stream begins
    here, and its first value stands in for them.
    """
    return np.concatenate([np.full(lag, x[0]) if before is None else before, x])


def _moments(a: F64Array, e: F64Array) -> tuple[float, float, float, float, float, float]:
    """The sums a path's main direction is found from (`_direction`).

    a^2, e^2, a x e, the count, a and e.
    """
    return (
        float(a @ a),
        float(e @ e),
        float(a @ e),
        float(a.shape[0]),
        float(a.sum()),
        float(e.sum()),
    )


def _row(rows: F64Array) -> F64Array | None:
    """The one row of a span, as a fresh array (None for an empty span)."""
    return np.array(rows[0]) if rows.shape[0] else None


def _pose(quat: F64Array, up: F64Array) -> F64Array:
    """The fused pose, or the pose that turns `up` to the vertical the shortest way.

    The latter where there is none (raw input not fused): heading unknown, taken as zero.
    """
    if np.isfinite(quat).all():
        return np.array(quat, dtype=np.float64)
    axis = _cross(up, _UP)
    half = 0.5 * math.atan2(float(np.linalg.norm(axis)), float(up @ _UP))
    norm = float(np.linalg.norm(axis))
    vec = axis / norm * math.sin(half) if norm > 0 else np.zeros(3)
    return np.array([math.cos(half), *vec])


def _heading_deg(quat: F64Array) -> F64Array:
    """Heading (deg) of sensor-to-world poses: their twist about the vertical."""
    return np.asarray(np.degrees(2.0 * np.arctan2(quat[:, 3], quat[:, 0])), np.float64)


def _ends(phi: F64Array) -> tuple[float, float]:
    """The two ends of the movements' range (`_SPAN_PCT`), in the angles' unit."""
    return percentiles(phi, _SPAN_PCT)


def _wrap(deg: F64Array) -> F64Array:
    """Angles into [-180, 180): most already are, and are returned as they are."""
    if deg.shape[0] and deg[deg.argmin()] >= -_HALF_TURN_DEG and deg[deg.argmax()] < _HALF_TURN_DEG:
        return deg
    return np.asarray((deg + _HALF_TURN_DEG) % (2 * _HALF_TURN_DEG) - _HALF_TURN_DEG, np.float64)


def _longest_run(mask: BoolArray) -> int:
    return int(run_lengths(mask, 0).max()) if mask.shape[0] else 0


def _cross(a: F64Array, b: F64Array) -> F64Array:
    """`np.cross` of two 3-vectors, bit for bit (without its general-shape dispatch)."""
    return np.array(
        [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]]
    )


def _unit(v: F64Array) -> F64Array:
    return np.asarray(v / np.linalg.norm(v), dtype=np.float64)


def _tuple3(v: F64Array) -> tuple[float, float, float]:
    return (float(v[0]), float(v[1]), float(v[2]))


def _tuple4(v: F64Array) -> tuple[float, float, float, float]:
    return (float(v[0]), float(v[1]), float(v[2]), float(v[3]))


def up_in_sensor(quat: F64Array) -> F64Array:
    """'Up' in the sensor frame of sensor-to-world poses (n, 4)."""
    return rotate(quat_conj(quat), np.broadcast_to(_UP, (quat.shape[0], 3)))
