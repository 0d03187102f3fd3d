"""Neutral pose and movement axis, and the angles measured against them.

The strap may sit at any rotation on the thigh, so nothing here assumes a sensor axis.
The neutral pose is the first still period of `still_min_s` (or an explicit
`calibrate()`); the movement axis is the dominant rotation axis of the first movements
after it: the principal eigenvector of the sum of r r^T over the samples away from
neutral (r the rotation vector from neutral, in the neutral sensor frame), with the share
of that sum along it as the quality. Rotation vectors rather than angular velocities,
because real legs wobble: a 10 degree raise carries a few degrees of tremor and
correction whose rates are as large as the movement's own, while their angles stay small.
Its sign makes the first movement away from neutral positive. Samples between neutral and
axis are held back and released once the axis is known.
"""

import math
from dataclasses import dataclass, field, replace
from typing import Literal, NamedTuple

import numpy as np
from numpy.typing import NDArray

from hipsense._quat import (
    dot3,
    lmul_apply,
    lmul_matrix,
    plane_frame,
    quat_conj,
    quat_lmul,
    rotate,
    rotation_vector,
    twist_swing_plane,
)

from ._filters import Lowpass, any_true, first_true, largest, run_lengths

__all__ = ["AngleBlock", "AngleTracker", "Calibration", "CalibrationSettings"]

F64Array = NDArray[np.float64]
_DEG = 180.0 / np.pi
_MAX_CANDIDATES = 3
_AXIS_SCAN_N = 1024


@dataclass(frozen=True)
class CalibrationSettings:
    """How the neutral pose and the movement axis are found."""

    still_min_s: float = 1.5
    """A neutral pose is a still period at least this long."""
    neutral_bias_sigma_dps: float = 0.2
    """Raw input: the gyro bias is known once VQF's estimate is this certain (its first
    rest). Until then the heading drifts at the bias (up to a few deg/s), so a neutral
    pose taken then is re-taken when the bias becomes known while the limb is still in
    the same still period (the drift in between was no movement): held still
    `still_min_s` with the bias known, the neutral is taken again there."""
    still_speed_dps: float = 3.0
    """Still: low-passed angular speed below this (tremor and noise stay well under)."""
    still_lowpass_hz: float = 1.5
    move_speed_dps: float = 6.0
    """Samples turning faster than this count towards the rotation seen."""
    axis_min_angle_deg: float = 1.5
    """Only poses at least this far from neutral inform the axis (noise and drift stay
    under it)."""
    axis_min_rotation_deg: float = 20.0
    """Rotation (out and back) to see before the axis is trusted."""
    axis_min_quality: float = 0.85
    """Exercise movements are planar: at least this share of the rotation from neutral
    about one axis. Below it the motion seen was something else (fidgeting, getting
    settled, a neutral that was not the start position): neutral and axis are looked for
    again."""
    axis_sure_quality: float = 0.95
    axis_min_turning_quality: float = 0.9
    """Between `axis_min_quality` and `axis_sure_quality`, an axis is taken only if the
    movement's angular velocity is planar too (at least this share about one axis, within
    `axis_turning_within_deg` of the poses' axis: that axis is then taken), or the poses'
    axis is the one (within `axis_agree_deg`) seen from the previous neutral. Fidgeting
    can look planar by the poses it visits; it does not turn about one axis. A real
    movement measured from a neutral a little off the start position loses pose quality
    (and tilts the poses' axis) but still turns about one axis; a wobbly real leg turns
    every way (tremor) but keeps pose quality high, and repeats its axis (the axis is in
    the sensor's frame: it stays the same from one neutral to the next while the strap
    stays on)."""
    axis_turning_within_deg: float = 45.0
    axis_agree_deg: float = 20.0
    axis_max_refusals: int = 2
    """At most this many axes in a row are refused for being marginal: a real leg that
    wobbles more than these tests allow loses its first reps, not the session."""
    axis_back_ratio: float = 0.35
    """The axis is taken once the limb is back within this share of its furthest
    excursion from neutral."""
    axis_back_turn_deg: float = 3.0
    """Or, from neutral, back within `axis_back_ratio` and out again by this much the way
    it went before, without a still moment (a subject who goes from one rep straight into
    the next), if the rotation seen is planar beyond doubt (`axis_sure_quality`). Passing
    through neutral (walking) goes out the other way; fidgeting is not that planar; such
    turns are no sign, and are not counted as refused axes either."""
    axis_back_drift_deg: float = 2.0
    """Or back within this (the heading drifts by a degree or two over a few holds when
    the gyro bias is a tenth of a degree per second off), if that is at most half the
    furthest excursion: small isometric holds."""
    axis_max_wait_s: float = 90.0
    """After this long, take the axis from whatever motion there was."""
    reposition_deg: float = 20.0
    """A still pose this far off the movement plane (and further off it than along it)
    is a new start position: neutral and axis are found again."""
    settled_move_deg: float = 4.0
    """Before the axis is known, a pose this far from neutral held still for longer than
    any prescribed hold is the start position: neutral is taken again there."""
    reposition_after_deg: float = 8.0
    """After motion that no exercise rep makes (off the plane by `reposition_deg` and
    further off it than along it: turning over, moving the sensor to the other thigh),
    the first still pose at least this far from neutral is a new start position."""
    opening_still_s: float = 0.5
    """A stream that opens still this long (its pose within `axis_min_angle_deg` of the
    first) and moves before it has been still `still_min_s` opened at the start
    position: a subject who begins the first rep at once. The first still spell is then
    that rep's end-range hold. Once the axis is found (the limb went out and came back
    to that hold), if the opening pose lies, seen from neutral, where the excursion went
    (within `opening_within_ratio` of it, at least half as far), the far end of the
    excursion is the start position and the hold its top: neutral moves there, and the
    samples from the opening on are measured from it. A neutral taken in the opening
    itself lies there: the opening then says nothing."""
    opening_lead_s: float = 10.0
    """Only while the stream is at most this (plus `still_min_s`) old when its neutral is
    taken: the heading drifts until the gyro bias is known, so an older opening pose says
    little (and its samples are held back until the axis)."""
    opening_within_ratio: float = 0.75
    """How far (as a share of its distance from neutral along the excursion) the opening
    pose may lie off the line of the excursion (about 37 deg off it): the heading drifts
    at the gyro bias, 1-2 deg/s, until the bias is known (8.7 deg across 15.3 along after
    4 s at 2 deg/s, on a real recording), and a subject's first rep need not end where
    it began (7 deg off, on another)."""
    restore_deg: float = 5.0
    """After a new start position was taken while the axis was known, a still pose within
    this of the old one, before any new axis, undoes it: that was a pause on the way
    (at the top of a reach for the phone), and the old start position and axis hold."""


@dataclass(frozen=True)
class Calibration:
    """A new reference: neutral pose and, once known, the movement axis."""

    t_s: float
    reason: Literal["still", "explicit", "reposition", "axis"]
    neutral_quat: tuple[float, float, float, float]
    gravity_sensor: tuple[float, float, float]
    """Unit vector of 'up' in the sensor frame at neutral."""
    axis_sensor: tuple[float, float, float] | None = None
    axis_quality: float = 0.0
    """Share of the rotation from neutral about the axis, 0 to 1."""
    reference: int = 0
    """Counts up with every new neutral pose; angles carry it in `AngleBlock.reference`."""


@dataclass(frozen=True, eq=False)
class AngleBlock:
    """Angles of calibrated samples."""

    t_s: F64Array
    primary_deg: F64Array
    """Rotation about the movement axis from neutral, positive in the working direction."""
    off_plane_deg: F64Array
    """The rest of the rotation from neutral."""
    velocity_dps: F64Array
    """Angular velocity about the movement axis."""
    still: NDArray[np.bool_]
    reference: NDArray[np.int64]
    """Which calibration the samples are measured against (counts up)."""
    off_plane_xy_deg: F64Array
    """The off-plane rotation (n, 2) as a rotation vector in two fixed directions at
    right angles to the axis: which way the limb is off the plane, not only how far."""

    @staticmethod
    def empty() -> "AngleBlock":
        """A block without samples."""
        z = np.empty(0)
        return AngleBlock(z, z, z, z, np.empty(0, bool), np.empty(0, np.int64), np.empty((0, 2)))

    def slice(self, start: int, stop: int) -> "AngleBlock":
        """Samples start to stop (exclusive)."""
        return AngleBlock(
            self.t_s[start:stop],
            self.primary_deg[start:stop],
            self.off_plane_deg[start:stop],
            self.velocity_dps[start:stop],
            self.still[start:stop],
            self.reference[start:stop],
            self.off_plane_xy_deg[start:stop],
        )

    @staticmethod
    def concat(blocks: list["AngleBlock"]) -> "AngleBlock":
        """Join blocks in order."""
        if not blocks:
            return AngleBlock.empty()
        if len(blocks) == 1:
            return blocks[0]
        return AngleBlock(
            np.concatenate([b.t_s for b in blocks]),
            np.concatenate([b.primary_deg for b in blocks]),
            np.concatenate([b.off_plane_deg for b in blocks]),
            np.concatenate([b.velocity_dps for b in blocks]),
            np.concatenate([b.still for b in blocks]),
            np.concatenate([b.reference for b in blocks]),
            np.concatenate([b.off_plane_xy_deg for b in blocks]),
        )


class _Reach(NamedTuple):
    """Running values of a `_Sweep` over a block, sample by sample."""

    m: F64Array
    rotation_deg: F64Array
    peak_deg: F64Array
    dist_deg: F64Array
    closest_deg: F64Array
    """Nearest the pose came to the reference since it was last furthest from it."""
    onward: NDArray[np.bool_]
    """The pose is on the same side of the reference as when last furthest from it."""
    peak_r: F64Array

    def turned(self) -> F64Array:
        """Rotation seen: by the rate, or by the reach out and back.

        The reach counts for slow, small isometric moves, which the rate does not see.
        """
        return np.asarray(np.maximum(self.rotation_deg, 2.0 * self.peak_deg), np.float64)

    def came_back(
        self, min_rotation_deg: float, back_ratio: float, drift_deg: float
    ) -> NDArray[np.bool_]:
        """Turned one rep's worth and back within `back_ratio` of the furthest reach.

        Or back within `drift_deg`, if that is at most half the reach: small holds.
        """
        near = np.maximum(back_ratio * self.peak_deg, np.minimum(drift_deg, 0.5 * self.peak_deg))
        return (self.turned() >= min_rotation_deg) & (self.dist_deg <= near)

    def turned_back(
        self, min_rotation_deg: float, back_ratio: float, turn_deg: float
    ) -> NDArray[np.bool_]:
        """Turned one rep's worth and round near the reference without stopping.

        Back within `back_ratio` of the furthest reach since, and away again by `turn_deg`.
        """
        return (
            (self.turned() >= min_rotation_deg)
            & (self.closest_deg <= back_ratio * self.peak_deg)
            & (self.dist_deg >= self.closest_deg + turn_deg)
            & self.onward
        )


@dataclass
class _Sweep:
    """The rotation seen from one reference pose: axis sums, turning and reach."""

    m: F64Array = field(default_factory=lambda: np.zeros(9))
    rotation_deg: float = 0.0
    peak_deg: float = 0.0
    """Furthest pose from the reference so far."""
    closest_deg: float = math.inf
    """Nearest pose to the reference since the furthest."""
    peak_r: F64Array = field(default_factory=lambda: np.zeros(3))
    """Rotation vector of the furthest pose."""
    turning: bool = False
    """The last sample had turned back (`_Reach.turned_back`)."""

    def run(self, r: F64Array, steps: F64Array, min_angle_deg: float) -> _Reach:
        """Running axis sums, rotation, reach and distance over rotation vectors `r`."""
        dist = np.sqrt(r[:, 0] ** 2 + r[:, 1] ** 2 + r[:, 2] ** 2)
        outer = (r[:, :, None] * r[:, None, :]).reshape(-1, 9) * (dist >= min_angle_deg)[:, None]
        # Running sums that start from the carried total: the same additions in the same
        # order whatever the block sizes.
        m_cum = np.cumsum(np.concatenate([self.m[None, :], outer]), axis=0)[1:]
        rot_cum = np.cumsum(np.concatenate([[self.rotation_deg], steps]))[1:]
        peak = np.maximum.accumulate(np.concatenate([[self.peak_deg], dist]))[1:]
        # A running minimum that starts again at every new furthest pose, exactly (the
        # same whatever the blocks): on ranks, each stretch lowered below all before it.
        vals = np.concatenate([[self.closest_deg], dist])
        stretch = np.cumsum(np.concatenate([[False], dist >= peak]))
        order = np.argsort(vals, kind="stable")
        rank = np.empty_like(order)
        rank[order] = np.arange(vals.shape[0])
        step = vals.shape[0]
        lowest = np.minimum.accumulate(rank - step * stretch) + step * stretch
        at_peak = np.maximum.accumulate(np.where(dist >= peak, np.arange(dist.shape[0]), -1))
        peak_r = np.where((at_peak >= 0)[:, None], r[np.maximum(at_peak, 0)], self.peak_r)
        onward = np.einsum("ij,ij->i", r, peak_r) > 0.0
        return _Reach(m_cum, rot_cum, peak, dist, vals[order[lowest]][1:], onward, peak_r)

    def keep(self, reach: _Reach, k: int) -> None:
        """Carry the running values at sample k."""
        self.m = reach.m[k]
        self.rotation_deg = float(reach.rotation_deg[k])
        self.peak_deg = float(reach.peak_deg[k])
        self.closest_deg = float(reach.closest_deg[k])
        self.peak_r = reach.peak_r[k]


class _History:
    """The last `keep` poses before a block, and the block, as one contiguous view.

    Rows are appended into a preallocated array and moved down only when it is full, so
    a small block costs a copy of its own rows, not of the history.
    """

    def __init__(self, keep: int) -> None:
        self.keep = keep
        self.data = np.empty((4 * keep + 64, 4))
        self.start = 0
        self.stop = 0

    def add(self, quat: F64Array) -> F64Array:
        """Append a block; return the poses before it (up to `keep`) and the block."""
        n = quat.shape[0]
        begin = max(self.start, self.stop - self.keep)
        if self.stop + n > self.data.shape[0]:
            kept = self.data[begin : self.stop].copy()
            if kept.shape[0] + n > self.data.shape[0]:
                self.data = np.empty((2 * (kept.shape[0] + n), 4))
            self.data[: kept.shape[0]] = kept
            begin, self.stop = 0, kept.shape[0]
        self.data[self.stop : self.stop + n] = quat
        self.stop += n
        self.start = begin
        return self.data[begin : self.stop]


@dataclass
class _Candidate:
    """A still pose away from neutral that may be the real start position."""

    q: F64Array
    first: int
    """Index among the pending samples where its still spell began."""
    offset_deg: float = 0.0
    """How far from neutral it is."""
    sweep: _Sweep = field(default_factory=_Sweep)
    neutral_at_peak_deg: float = math.inf
    """Distance from neutral where the limb was furthest from this pose since."""


@dataclass
class _Samples:
    """Samples held back, block by block: times, sensor-to-world poses, rates, still."""

    t: list[F64Array] = field(default_factory=list)
    q: list[F64Array] = field(default_factory=list)
    w: list[F64Array] = field(default_factory=list)
    still: list[NDArray[np.bool_]] = field(default_factory=list)
    count: int = 0

    def add(self, t: F64Array, q: F64Array, w: F64Array, still: NDArray[np.bool_]) -> None:
        """Append a run of samples."""
        self.t.append(t)
        self.q.append(q)
        self.w.append(w)
        self.still.append(still)
        self.count += t.shape[0]

    def joined(self) -> tuple[F64Array, F64Array, F64Array, NDArray[np.bool_]]:
        """All of them, as four arrays (at least one run was added)."""
        return (
            np.concatenate(self.t),
            np.concatenate(self.q),
            np.concatenate(self.w),
            np.concatenate(self.still),
        )

    def drop_before(self, first: int) -> None:
        """Forget the samples before sample `first`."""
        t, q, w, still = self.joined()
        self.t, self.q, self.w, self.still = [t[first:]], [q[first:]], [w[first:]], [still[first:]]
        self.count -= first


@dataclass
class _Opening:
    """The pose a stream opened still at, and the samples from its start not released."""

    q: F64Array
    samples: _Samples


@dataclass
class _Pending(_Samples):
    """Samples after a neutral pose, waiting for the axis.

    Angles are taken from the neutral the search ends with.
    """

    sweep: _Sweep = field(default_factory=_Sweep)
    candidates: list[_Candidate] = field(default_factory=list)
    start_s: float | None = None


class AngleTracker:
    """Finds neutral and axis, then turns orientation into angle signals.

    `update(t_s, quat, gyr_rad_s)` takes blocks of sensor-to-world quaternions and
    bias-free angular velocity (sensor frame) and returns the calibrated samples that are
    ready, with any new `Calibration`s. `axis_sensor`, when given, fixes the movement
    axis (a unit vector in the sensor frame) instead of estimating it. A still pose
    beyond `max_primary_deg`, below `-reposition_deg`, or further off the plane than
    along it is a new start position; so is a pose at least `rest_max_deg` from neutral
    (`settled_move_deg` while the axis is looked for) held still for `settled_s` (longer
    than any prescribed hold: the patient has settled somewhere else, e.g. after turning
    over, when a pause on the way was taken for neutral), and the first still pose
    `reposition_after_deg` from neutral after motion no rep makes.
    """

    def __init__(
        self,
        rate_hz: float,
        settings: CalibrationSettings | None = None,
        *,
        axis_sensor: tuple[float, float, float] | None = None,
        min_rotation_deg: float | None = None,
        max_primary_deg: float = 180.0,
        settled_s: float = 20.0,
        rest_max_deg: float = 12.0,
    ) -> None:
        self.rate_hz = float(rate_hz)
        self.settings = settings if settings is not None else CalibrationSettings()
        self.fixed_axis = None if axis_sensor is None else _unit(np.asarray(axis_sensor, float))
        self.min_rotation_deg = (
            min_rotation_deg
            if min_rotation_deg is not None
            else self.settings.axis_min_rotation_deg
        )
        self.max_primary_deg = max_primary_deg
        self.rest_max_deg = rest_max_deg
        self._settled_n = max(2, round(settled_s * self.rate_hz))
        self._still_n = max(2, round(self.settings.still_min_s * self.rate_hz))
        self._speed_lp = Lowpass(self.settings.still_lowpass_hz, self.rate_hz)
        self._sigma_max = self.settings.neutral_bias_sigma_dps / _DEG
        self.reset()

    def reset(self) -> None:
        """Forget neutral, axis and all history."""
        self._speed_lp.reset()
        self._run = 0
        self._seen = 0  # samples taken so far: absolute indices for the three below
        self._last_unknown = -1  # last sample whose gyro bias was not known
        # First sample of the still period whose neutral was taken before the bias was
        # known, while that period lasts (see `neutral_bias_sigma_dps`).
        self._provisional: int | None = None
        self._last_unexplained = -1  # last sample moving in a way no rep moves
        self._last_spell = -1  # last sample of a still spell (still_min_s or longer)
        self._hist = _History(self._still_n)
        self._neutral = None
        self._axis: F64Array | None = None
        self._plane_of: F64Array | None = None  # the axis `_plane_basis` was made for
        self._plane_basis = np.eye(3)
        self._frame_of: tuple[F64Array, F64Array] | None = None  # axis and neutral of `_frame`
        self._frame_map = np.eye(4)
        self._pending: _Pending | None = None
        self._lead: _Samples | None = _Samples()  # until the first neutral pose
        # Where the stream opened, until the first axis (see `opening_still_s`).
        self._opening: _Opening | None = None
        self._last_axis: F64Array | None = None  # the last axis found, taken or not
        # Neutral, axis and its quality before a reposition, until a new axis is found.
        self._before: tuple[F64Array, F64Array, float] | None = None
        self._refused = 0  # marginal axes refused since the last one taken
        self._ref_fill = np.empty(0, dtype=np.int64)  # see `_references`
        self._reference = -1
        self._explicit = False
        self.calibration: Calibration | None = None

    @property
    def _neutral(self) -> F64Array | None:
        """Sensor-to-world pose of the start position, once found."""
        return self._neutral_q

    @_neutral.setter
    def _neutral(self, q: F64Array | None) -> None:
        self._neutral_q = q
        # Left multiplication by its inverse, built once per neutral pose.
        self._to_neutral: F64Array | None = None

    @property
    def _plane(self) -> F64Array:
        """Rows: the axis and two unit vectors at right angles to it and each other."""
        a = self._axis
        assert a is not None
        if self._plane_of is not a:
            # Any vector not near the axis will do; the least aligned basis vector is one.
            e = np.zeros(3)
            e[int(np.argmin(np.abs(a)))] = 1.0
            e1 = e - float(np.dot(e, a)) * a
            e1 /= np.linalg.norm(e1)
            self._plane_of, self._plane_basis = a, np.stack([a, e1, np.cross(a, e1)])
        return self._plane_basis

    @property
    def _frame(self) -> F64Array:
        """Sensor pose to the pose from neutral in the plane's terms (`plane_frame`)."""
        a, n = self._axis, self._neutral
        assert a is not None
        assert n is not None
        if self._frame_of is None or self._frame_of[0] is not a or self._frame_of[1] is not n:
            # One 4x4 map for "relative to neutral" and "in the plane's basis": each
            # sample is multiplied once instead of twice.
            self._frame_of, self._frame_map = (a, n), plane_frame(self._plane, quat_conj(n))
        return self._frame_map

    def calibrate(self) -> None:
        """Take the next sample's pose as neutral (the start position, held still)."""
        self._explicit = True

    # -- helpers -------------------------------------------------------------------

    def _set_neutral(self, t: float, q_window: F64Array, reason: str) -> Calibration:
        self._provisional = None
        if reason != "still" or self.fixed_axis is not None:
            self._lead = None
            self._opening = None
        if reason == "explicit":
            self._before = None
        self._neutral = _mean_pose(q_window)
        self._reference += 1
        self._last_unexplained = -1
        if self.fixed_axis is not None:
            self._axis = self.fixed_axis
            self._pending = None
        else:
            self._axis = None
            self._pending = _Pending(start_s=t)
        cal = Calibration(
            t_s=t,
            reason=reason,  # type: ignore[arg-type]
            neutral_quat=_tuple4(self._neutral),
            gravity_sensor=_up(self._neutral),
            axis_sensor=None if self._axis is None else _tuple3(self._axis),
            axis_quality=1.0 if self._axis is not None else 0.0,
            reference=self._reference,
        )
        self.calibration = cal
        return cal

    def _spell(self, hist_q: F64Array, off: int, j: int) -> F64Array:
        """The still_n poses up to the block's sample j (`hist_q[off]` is sample 0)."""
        return hist_q[off + j - self._still_n + 1 : off + j + 1]

    def _hold_back(
        self, t: F64Array, quat: F64Array, w: F64Array, still: NDArray[np.bool_]
    ) -> None:
        """Keep samples not released with the stream's opening.

        Before the first neutral, in the lead the opening is found in. Forgotten once the
        stream is too old for its opening to say anything.
        """
        s = self.settings
        most = round((s.still_min_s + s.opening_lead_s) * self.rate_hz)
        if self._lead is not None:
            self._lead.add(t, quat, w, still)
            if self._lead.count > most:
                self._lead = None
        elif self._opening is not None:
            self._opening.samples.add(t, quat, w, still)
            if self._opening.samples.count > most:
                self._opening = None

    def _take_opening(self) -> _Opening | None:
        """The stream's opening pose, and its samples so far, at its first neutral pose."""
        lead, self._lead = self._lead, None
        if lead is None or not lead.t:
            return None
        q = np.concatenate(lead.q)
        lead.q = [q]
        # Still by the pose, not the rate: until the gyro bias is known the rate carries
        # it (a bias of 2 deg/s and the noise flicker about the still threshold), while
        # over half a second the pose moves by a degree at most.
        turned = np.degrees(2.0 * np.arccos(np.minimum(1.0, np.abs(q @ q[0]))))
        away = np.flatnonzero(turned > self.settings.axis_min_angle_deg)
        opened = int(away[0]) if away.size else q.shape[0]
        if opened < round(self.settings.opening_still_s * self.rate_hz):
            return None
        return _Opening(_mean_pose(q[:opened]), lead)

    def _opened_at_start(self, q_all: F64Array) -> F64Array | None:
        """Neutral at the far end of the excursion, if it went back to the opening pose.

        `q_all`: the pending poses. None when the opening says nothing.
        """
        assert self._neutral is not None
        if self._opening is None or q_all.shape[0] == 0:
            return None
        s = self.settings
        to_neutral = quat_conj(self._neutral)
        r = rotation_vector(quat_lmul(to_neutral, q_all)) * _DEG
        dist = np.sqrt(r[:, 0] ** 2 + r[:, 1] ** 2 + r[:, 2] ** 2)
        far = int(np.argmax(dist))
        reach = float(dist[far])
        if reach <= 0.0:
            return None
        u = r[far] / reach
        r_open = rotation_vector(quat_lmul(to_neutral, self._opening.q[None, :]))[0] * _DEG
        along = float(r_open @ u)
        across = float(np.linalg.norm(r_open - along * u))
        if along < 0.5 * reach or across > s.opening_within_ratio * along:
            return None
        near = np.linalg.norm(r - r[far], axis=1) <= s.axis_back_drift_deg
        return _mean_pose(q_all[near])

    def _angles(
        self, t: F64Array, quat: F64Array, w: F64Array, still: NDArray[np.bool_]
    ) -> AngleBlock:
        """Angles of sensor-to-world poses `quat`, from neutral about the axis."""
        assert self._axis is not None
        twist, swing, swing_xy = twist_swing_plane(quat, self._frame, _DEG)
        return AngleBlock(
            t_s=t,
            primary_deg=twist,
            off_plane_deg=swing,
            velocity_dps=dot3(w, self._plane[0] * _DEG),
            still=still,
            reference=self._references(t.shape[0]),
            off_plane_xy_deg=swing_xy,
        )

    def _references(self, n: int) -> NDArray[np.int64]:
        """The current reference, n times (a read-only view while n fits)."""
        if self._ref_fill.shape[0] < n or (n and self._ref_fill[0] != self._reference):
            self._ref_fill = np.full(max(n, 1024), self._reference, dtype=np.int64)
            self._ref_fill.flags.writeable = False
        return self._ref_fill[:n]

    def _choose_axis(self, axis: F64Array, quality: float, p: _Pending) -> F64Array | None:
        """The movement axis from what was seen, or None (see `axis_sure_quality`).

        `axis` is the main axis of the poses from neutral, `quality` its share.
        """
        s = self.settings
        prev, self._last_axis = self._last_axis, axis
        if quality < s.axis_min_quality:
            return None
        chosen: F64Array | None = None
        if quality >= s.axis_sure_quality or self._refused >= s.axis_max_refusals:
            chosen = axis
        else:
            share, turning = _turning_axis(p.w, s.move_speed_dps / _DEG)
            if share >= s.axis_min_turning_quality and abs(float(turning @ axis)) >= math.cos(
                math.radians(s.axis_turning_within_deg)
            ):
                # The poses' axis is tilted by a neutral a little off the start position;
                # the velocity's is not (and with so little tremor it can be trusted).
                chosen = turning if float(turning @ axis) >= 0 else -turning
            elif prev is not None and abs(float(axis @ prev)) >= math.cos(
                math.radians(s.axis_agree_deg)
            ):
                chosen = axis
        self._refused = 0 if chosen is not None else self._refused + 1
        return chosen

    def _finish_axis(self, t_now: float) -> tuple[AngleBlock, Calibration | None]:
        p = self._pending
        assert p is not None
        assert self._neutral is not None
        m = p.sweep.m.reshape(3, 3)
        vals, vecs = np.linalg.eigh(m)
        axis = vecs[:, -1]
        quality = float(vals[-1] / vals.sum()) if vals.sum() > 0 else 0.0
        if self.fixed_axis is None:
            chosen = self._choose_axis(axis, quality, p)
            if chosen is None:
                # Not an exercise movement from this pose: drop what was seen, wait for
                # the next still start position.
                if p.t:
                    self._hold_back(*p.joined())
                self._pending = None
                self._neutral = None
                return AngleBlock.empty(), None
            axis = chosen
        self._before = None
        q_all = np.concatenate(p.q) if p.q else np.empty((0, 4))
        start = self._opened_at_start(q_all)
        o, self._opening = self._opening, None
        if start is not None:
            assert o is not None
            # The first still spell was the top of the first rep; the start position is
            # where the excursion from it went, and the first rep began at the opening.
            self._neutral = start
            assert self.calibration is not None
            self.calibration = replace(
                self.calibration, neutral_quat=_tuple4(start), gravity_sensor=_up(start)
            )
            lead = o.samples
            p.t, p.q, p.w, p.still = (
                [*lead.t, *p.t],
                [*lead.q, *p.q],
                [*lead.w, *p.w],
                [*lead.still, *p.still],
            )
            p.count += lead.count
            q_all = np.concatenate(p.q)
        q_rel = quat_lmul(quat_conj(self._neutral), q_all)
        if q_rel.shape[0]:
            # Sign: the pose furthest from neutral is the working direction.
            far = int(np.argmax(np.linalg.norm(q_rel[:, 1:], axis=1)))
            if q_rel[far, 1:] @ axis * np.sign(q_rel[far, 0] or 1.0) < 0:
                axis = -axis
        self._axis = axis
        self._pending = None
        block = AngleBlock.empty()
        if q_rel.shape[0]:
            block = self._angles(
                np.concatenate(p.t), q_all, np.concatenate(p.w), np.concatenate(p.still)
            )
        assert self.calibration is not None
        cal = Calibration(
            t_s=t_now,
            reason="axis",
            neutral_quat=self.calibration.neutral_quat,
            gravity_sensor=self.calibration.gravity_sensor,
            axis_sensor=_tuple3(axis),
            axis_quality=quality,
            reference=self._reference,
        )
        self.calibration = cal
        return block, cal

    # -- streaming -----------------------------------------------------------------

    def update(
        self,
        t_s: F64Array,
        quat: F64Array,
        gyr_rad_s: F64Array,
        bias_sigma_rad_s: F64Array | None = None,
    ) -> tuple[AngleBlock, list[Calibration]]:
        """Take a block; return the calibrated samples ready now and new calibrations.

        `bias_sigma_rad_s` (n,) is the uncertainty of the gyro bias taken off, for raw
        input (see `CalibrationSettings.neutral_bias_sigma_dps`).
        """
        n = t_s.shape[0]
        if n == 0:
            return AngleBlock.empty(), []
        s = self.settings
        g = gyr_rad_s
        speed = self._speed_lp(np.sqrt(np.add.reduce(g * g, axis=1)) * _DEG)
        still = speed < s.still_speed_dps
        runs = run_lengths(still, self._run)
        self._run = int(runs[-1])
        # The last still_n poses, for averaging a neutral pose that may start before this block.
        hist_q = self._hist.add(quat)
        off = hist_q.shape[0] - n
        first = self._seen  # absolute index of this block's first sample
        self._seen += n
        # The last sample before each one whose gyro bias was not known.
        last_unknown: NDArray[np.int64] | int = self._last_unknown
        sigma = bias_sigma_rad_s
        if sigma is not None and largest(sigma) > self._sigma_max:
            last_unknown = np.maximum.accumulate(
                np.where(sigma > self._sigma_max, first + np.arange(n), -1)
            )
            last_unknown = np.maximum(last_unknown, self._last_unknown)
            self._last_unknown = int(last_unknown[-1])

        out: list[AngleBlock] = []
        cals: list[Calibration] = []
        i = 0
        while i < n:
            if self._explicit:
                self._explicit = False
                cals.append(self._set_neutral(float(t_s[i]), quat[i : i + 1], "explicit"))
                continue
            if self._neutral is None:
                ready = np.flatnonzero(runs[i:] >= self._still_n)
                end = i + int(ready[0]) + 1 if ready.size else n
                self._hold_back(t_s[i:end], quat[i:end], gyr_rad_s[i:end], still[i:end])
                if ready.size == 0:
                    break
                j = i + int(ready[0])
                window = self._spell(hist_q, off, j)
                if self._lead is not None:
                    self._opening = self._take_opening()
                cals.append(self._set_neutral(float(t_s[j]), window, "still"))
                lu = last_unknown if isinstance(last_unknown, int) else int(last_unknown[j])
                if lu > first + j - self._still_n:
                    # Taken before the bias was known: re-taken if the spell lasts.
                    self._provisional = first + j - int(runs[j]) + 1
                i = j + 1
                continue
            if self._axis is None:
                settled = runs[i:] >= self._settled_n
                if self._to_neutral is None:
                    self._to_neutral = lmul_matrix(quat_conj(self._neutral))
                # A bounded look-ahead: the axis is usually found within seconds, and the
                # search's running sums carry over exactly, as between blocks.
                lim = min(n, i + _AXIS_SCAN_N)
                q_rel = lmul_apply(self._to_neutral, quat[i:lim])
                r = rotation_vector(q_rel) * _DEG
                # Settled somewhere else before any exercise movement: that is the start
                # position (a pause while fidgeting or reaching was taken for neutral).
                far = np.sqrt(r[:, 0] ** 2 + r[:, 1] ** 2 + r[:, 2] ** 2) > s.settled_move_deg
                moved = settled[: lim - i] & far
                retake = self._retake(i, lim, first, runs, last_unknown)
                if retake is not None:
                    moved |= retake
                stop = int(np.flatnonzero(moved)[0]) if moved.any() else q_rel.shape[0]
                if stop:
                    end = i + stop
                    i = self._collect(
                        i,
                        i + stop,
                        t_s,
                        quat,
                        r[:stop],
                        gyr_rad_s,
                        still,
                        runs,
                        hist_q,
                        off,
                        out,
                        cals,
                    )
                    # Back to the top of the loop whenever the search moved on: an axis,
                    # a dropped neutral, a new candidate, or no settling in this block.
                    if i < end or self._axis is not None or self._neutral is None:
                        continue
                    if not moved.any():
                        continue
                j = i
                window = self._spell(hist_q, off, j)
                again = retake is not None and bool(retake[stop])
                p_old = self._pending
                if again and p_old is not None and self._opening is not None:
                    # The same still spell: what was pending leads to the new neutral.
                    p_old.add(
                        t_s[j : j + 1], quat[j : j + 1], gyr_rad_s[j : j + 1], still[j : j + 1]
                    )
                    self._hold_back(*p_old.joined())
                cals.append(
                    self._set_neutral(float(t_s[j]), window, "still" if again else "reposition")
                )
                i = j + 1
                continue
            block = self._angles(t_s[i:], quat[i:], gyr_rad_s[i:], still[i:])
            # A still pose well off the plane is a new start position (side switch).
            prim, off_plane = block.primary_deg, block.off_plane_deg
            if largest(runs[i:]) < min(self._still_n, self._settled_n):
                # Moving (the common case): nothing can be a new start position yet.
                if largest(off_plane) > s.reposition_deg:
                    wild = (off_plane > s.reposition_deg) & (off_plane > np.abs(prim))
                    if any_true(wild):
                        self._last_unexplained = first + i + int(np.flatnonzero(wild)[-1])
                out.append(block)
                break
            wild = (off_plane > s.reposition_deg) & (off_plane > np.abs(prim))
            settled = runs[i:] >= self._settled_n
            spell = runs[i:] >= self._still_n
            unexplained = wild | (prim < -s.reposition_deg) | (prim > self.max_primary_deg)
            dist = np.sqrt(prim**2 + off_plane**2)
            far = dist > self.rest_max_deg
            # The first still spell after motion no rep makes, somewhere new.
            idx = first + i + np.arange(prim.shape[0])
            last_wild = np.maximum.accumulate(
                np.concatenate([[self._last_unexplained], np.where(wild, idx, -1)])
            )[1:]
            spells = np.maximum.accumulate(
                np.concatenate([[self._last_spell], np.where(spell, idx, -1)])
            )
            after_wild = spell & (last_wild > spells[:-1]) & (dist > s.reposition_after_deg)
            moved = (spell & unexplained) | (settled & far) | after_wild
            retake = self._retake(i, n, first, runs, last_unknown)
            if retake is not None:
                moved |= retake
            k = first_true(moved)
            if k >= 0:
                self._last_spell = int(spells[k + 1])
                out.append(block.slice(0, k))
                j = i + k
                window = self._spell(hist_q, off, j)
                assert self.calibration is not None
                assert self._neutral is not None
                again = retake is not None and bool(retake[k])
                if not again:
                    self._before = (self._neutral, self._axis, self.calibration.axis_quality)
                cals.append(
                    self._set_neutral(float(t_s[j]), window, "still" if again else "reposition")
                )
                i = j + 1
                continue
            self._last_unexplained = int(last_wild[-1])
            self._last_spell = int(spells[-1])
            out.append(block)
            break
        if self._provisional is not None and runs[-1] < first + n - self._provisional:
            self._provisional = None  # the still period ended: no later sample re-takes
        return AngleBlock.concat(out), cals

    def _retake(
        self,
        a: int,
        b: int,
        first: int,
        runs: NDArray[np.int64],
        last_unknown: NDArray[np.int64] | int,
    ) -> NDArray[np.bool_] | None:
        """Where, of block samples a to b, a neutral taken before the bias was known is due.

        Still since before that neutral was taken, and the bias known for `still_min_s`
        (None: no such neutral).
        """
        if self._provisional is None:
            return None
        idx = first + np.arange(a, b)
        lu = last_unknown if isinstance(last_unknown, int) else last_unknown[a:b]
        unbroken = runs[a:b] > idx - self._provisional
        return np.asarray(unbroken & (idx - lu >= self._still_n), dtype=np.bool_)

    def _collect(
        self,
        i: int,
        stop: int,
        t_s: F64Array,
        quat: F64Array,
        r: F64Array,
        w: F64Array,
        still: NDArray[np.bool_],
        runs: NDArray[np.int64],
        hist_q: F64Array,
        off: int,
        out: list[AngleBlock],
        cals: list[Calibration],
    ) -> int:
        """Add samples i to stop to the pending ones; finish the axis when enough was seen.

        `r` holds the rotation vectors (degrees) from neutral of the samples i to stop;
        `hist_q[off + j]` is the pose of the block's sample j, after the poses before it.

        An exercise movement goes out and comes back to where it started, so the axis is
        taken once the limb is back near neutral after enough rotation. When neutral was
        taken somewhere else (a pause while fidgeting or reaching), the limb comes back to
        another still pose instead: still poses away from neutral are candidates, and the
        first one that a movement leaves and returns to becomes neutral.
        """
        p = self._pending
        assert p is not None
        assert self._neutral is not None
        s = self.settings
        n = stop - i
        dt = 1.0 / self.rate_hz
        speed = np.linalg.norm(w[i:stop], axis=1) * _DEG
        steps = np.where(speed > s.move_speed_dps, speed * dt, 0.0)
        calm = still[i:stop]
        assert p.start_s is not None
        waited = t_s[i:stop] - p.start_s
        sums = p.sweep.run(r, steps, s.axis_min_angle_deg)
        turning = sums.turned_back(self.min_rotation_deg, s.axis_back_ratio, s.axis_back_turn_deg)
        turned = turning & ~np.concatenate([[p.sweep.turning], turning[:-1]])
        if any_true(turned):
            # Only a turn about an axis beyond doubt: a doubtful one waits for a rest.
            at = np.flatnonzero(turned)
            vals = np.linalg.eigvalsh(sums.m[at].reshape(-1, 3, 3))
            total = vals.sum(axis=1)
            sure = vals[:, -1] >= s.axis_sure_quality * np.where(total > 0, total, np.inf)
            turned[at[~sure]] = False
        ready = (
            (sums.came_back(self.min_rotation_deg, s.axis_back_ratio, s.axis_back_drift_deg) & calm)
            | turned
            | ((waited >= s.axis_max_wait_s) & (sums.turned() > 0))
        )
        distinct = sums.dist_deg >= 2.0 * s.axis_min_angle_deg
        cand_sums = []
        confirms = []
        cand_n_at_peak = []
        for c in p.candidates:
            rc = rotation_vector(quat_lmul(quat_conj(c.q), quat[i:stop])) * _DEG
            cs = c.sweep.run(rc, steps, s.axis_min_angle_deg)
            cand_sums.append(cs)
            # Where the limb turned back towards this pose: if that is at neutral (within
            # half the way between them), this pose is the top of a rep from neutral, not
            # the start (a subject who goes from one rep straight into the next is still
            # only at the tops). Passing through neutral on the way out does not count.
            at_peak = np.where(cs.dist_deg >= cs.peak_deg, np.arange(n), -1)
            last = np.maximum.accumulate(at_peak)
            n_at_peak = np.where(
                last >= 0, sums.dist_deg[np.maximum(last, 0)], c.neutral_at_peak_deg
            )
            cand_n_at_peak.append(n_at_peak)
            top_of_rep = n_at_peak <= 0.5 * c.offset_deg
            confirms.append(
                cs.came_back(self.min_rotation_deg, s.axis_back_ratio, s.axis_back_drift_deg)
                & calm
                & ~top_of_rep
            )
            distinct &= cs.dist_deg >= 2.0 * s.axis_min_angle_deg
        spell = (runs[i:stop] == self._still_n) & distinct

        def first(mask: NDArray[np.bool_]) -> int:
            hits = np.flatnonzero(mask)
            return int(hits[0]) if hits.size else n

        e_ready = first(ready)
        e_confirm = [first(c) for c in confirms]
        e_spell = first(spell)
        e = min([e_ready, e_spell, *e_confirm])
        k = min(e + 1, n)
        p.add(t_s[i : i + k], quat[i : i + k], w[i : i + k], still[i : i + k])
        p.sweep.keep(sums, k - 1)
        p.sweep.turning = bool(turning[k - 1])
        for c, cs, n_at_peak in zip(p.candidates, cand_sums, cand_n_at_peak, strict=True):
            c.sweep.keep(cs, k - 1)
            c.neutral_at_peak_deg = float(n_at_peak[k - 1])
        if e == n:
            return stop
        # Back at neutral and at a candidate at once (they are close, or the limb came
        # only part way back to neutral): the pose the limb is nearest is where it started.
        options = [(float(sums.dist_deg[e]), -1)] if e_ready == e else []
        options += [
            (float(cs.dist_deg[e]), j)
            for j, (cs, ec) in enumerate(zip(cand_sums, e_confirm, strict=True))
            if ec == e
        ]
        which = min(options)[1] if options else None
        if which == -1:
            self._emit_axis(float(t_s[i + e]), out, cals)
        elif which is not None:
            c = p.candidates[which]
            self._neutral = c.q
            assert self.calibration is not None
            self.calibration = replace(
                self.calibration, neutral_quat=_tuple4(c.q), gravity_sensor=_up(c.q)
            )
            # What came before its still spell was not done from the start position.
            p.drop_before(c.first)
            p.sweep = c.sweep
            p.candidates = []
            self._opening = None
            self._emit_axis(float(t_s[i + e]), out, cals)
        else:
            j = i + e
            q = _mean_pose(self._spell(hist_q, off, j))
            if self._before is not None and _angle_deg(q, self._before[0]) <= s.restore_deg:
                self._restore(float(t_s[j]), max(0, p.count - self._still_n), out, cals)
                return i + k
            p.candidates = [
                *p.candidates[-(_MAX_CANDIDATES - 1) :],
                _Candidate(
                    q,
                    max(0, p.count - self._still_n),
                    offset_deg=float(sums.dist_deg[e]),
                ),
            ]
        return i + k

    def _restore(
        self, t: float, first: int, out: list[AngleBlock], cals: list[Calibration]
    ) -> None:
        """Take back the start position and axis from before the last reposition.

        The pending samples from pending sample `first` (the still spell back at the old
        start position) on are released, measured against it; those before it (the way
        back from the pause) were not done from the start position.
        """
        p = self._pending
        assert p is not None
        assert self._before is not None
        neutral, axis, quality = self._before
        self._before = None
        self._neutral = neutral
        self._axis = axis
        self._reference += 1
        self._last_unexplained = -1
        self._pending = None
        p.drop_before(first)
        if p.q:
            out.append(self._angles(*p.joined()))
        cal = Calibration(
            t_s=t,
            reason="reposition",
            neutral_quat=_tuple4(neutral),
            gravity_sensor=_up(neutral),
            axis_sensor=_tuple3(axis),
            axis_quality=quality,
            reference=self._reference,
        )
        self.calibration = cal
        cals.append(cal)

    def _emit_axis(self, t: float, out: list[AngleBlock], cals: list[Calibration]) -> None:
        block, cal = self._finish_axis(t)
        out.append(block)
        if cal is not None:
            cals.append(cal)


def _turning_axis(w: list[F64Array], min_rad_s: float) -> tuple[float, F64Array]:
    """Main axis of the angular velocity and its share of the squared velocity.

    Over the samples turning faster than `min_rad_s` (the same whatever the blocks).
    """
    v = np.concatenate(w) if w else np.empty((0, 3))
    v = v[dot3(v * v, np.ones(3)) > min_rad_s**2]
    vals, vecs = np.linalg.eigh(v.T @ v)
    return (float(vals[-1] / vals.sum()) if vals.sum() > 0 else 0.0), vecs[:, -1]


def _up(q: F64Array) -> tuple[float, float, float]:
    """'Up' in the sensor frame at sensor-to-world pose q."""
    return _tuple3(rotate(quat_conj(q), np.array([0.0, 0.0, 1.0])))


def _angle_deg(p: F64Array, q: F64Array) -> float:
    """Angle (deg) of the rotation between two unit quaternions."""
    return float(np.degrees(2.0 * math.acos(min(1.0, abs(float(p @ q))))))


def _mean_pose(q_window: F64Array) -> F64Array:
    ref = q_window[-1]
    signs = np.where(q_window @ ref < 0, -1.0, 1.0)[:, None]
    mean = (q_window * signs).mean(axis=0)
    return np.asarray(mean / np.linalg.norm(mean), dtype=np.float64)


def _unit(v: F64Array) -> F64Array:
    return np.asarray(v / np.linalg.norm(v), dtype=np.float64)


def _tuple3(v: F64Array) -> tuple[float, float, float]:
    return (float(v[0]), float(v[1]), float(v[2]))


def _tuple4(v: F64Array) -> tuple[float, float, float, float]:
    return (float(v[0]), float(v[1]), float(v[2]), float(v[3]))
