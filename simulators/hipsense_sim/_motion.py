"""The motion of the thigh over a session, on a fine time grid, with its ground truth.

A session is built segment by segment (still periods, the phases of each rep, holds,
rests, non-exercise motion, side switches). Every segment appends the sensor's
orientation (sensor to world) and position (metres, world) on a grid of `grid_hz`, and
the truth records where each rep, hold, set and non-exercise period lies.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from hipsense.exercises import Exercise, ExerciseKind

from ._kinematics import Side, mounting_quat, neutral_thigh_quat
from ._rotation import axis_angle_quat, interval_rates, min_jerk, quat_conj, quat_mul, rotate
from ._spec import FaultKind, NonExerciseSpec, ScenarioSpec, SetSpec

__all__ = ["GridSink", "Motion", "body_rates", "build_motion", "grid_rates", "stream_motion"]

F64Array = NDArray[np.float64]
GridSink = Callable[[F64Array, F64Array, F64Array], None]
"""Takes the next grid rows of a session as they are built: `q_ws`, `pos_m`, `primary_deg`."""
_DEFAULT_PHASE_S = 1.5
"""A phase's duration where the library prescribes none."""
# The flag definitions of docs/motion.md, which `derive_faults` labels by.
_TOO_FAST_SHARE = 0.5
"""A phase shorter than this share of its prescription is too fast."""
_SPEED_LIMIT_MARGIN = 1.5
"""Too fast also when the peak speed is over this many times the exercise's limit."""
_PARTIAL_SHARE = 0.8
"""A range under this share of the target minimum is partial."""
_HOLD_SHORT_SHARE = 0.7
_HOLD_SHORT_SHARE_HOLDS = 0.85
"""A hold shorter than these shares of its prescription is short (reps; holds)."""
# The strap sits 25 cm down the thigh from the hip joint, on its lateral skin, 7 cm out.
_STRAP_THIGH_M = np.array([0.25, 0.0, 0.07])


@dataclass
class Motion:
    """Sensor orientation and position on a uniform grid, with the truth."""

    grid_hz: float
    q_ws: F64Array
    """(n, 4) sensor-to-world quaternions."""
    pos_m: F64Array
    """(n, 3) sensor position in the world."""
    primary_deg: F64Array
    """(n,) planned primary angle (NaN outside exercise segments)."""
    truth: dict[str, Any]

    @property
    def t_s(self) -> F64Array:
        """Grid times."""
        return np.arange(self.q_ws.shape[0]) / self.grid_hz


@dataclass
class _Builder:
    spec: ScenarioSpec
    exercise: Exercise
    grid_hz: float
    rng: np.random.Generator
    sink: GridSink
    n: int = 0
    last_q: F64Array | None = None
    last_p: F64Array | None = None
    """The last grid row handed to the sink (a side switch starts from it)."""
    side: Side = "right"
    level: float = 0.0
    """The resting level the thigh is at, deg from the start position (rest_drift_deg)."""
    reps: list[dict[str, Any]] = field(default_factory=list)
    holds: list[dict[str, Any]] = field(default_factory=list)
    sets: list[dict[str, Any]] = field(default_factory=list)
    non_exercise: list[dict[str, Any]] = field(default_factory=list)
    side_switches: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._place(self.spec.sets[0].side if self.spec.sets else "right")

    # -- pose of the current side --------------------------------------------------

    def _place(self, side: Side) -> None:
        self.side = side
        self.level = 0.0
        ex = self.exercise
        self.q_neutral = neutral_thigh_quat(ex, side)
        self.q_mount = mounting_quat(side, self.spec.misalignment_deg, self.rng)
        self.axis = np.array(ex.axis_for(side))
        # Off-plane compensation (rolling the pelvis) tilts the thigh about an axis
        # perpendicular to the movement axis.
        other = np.array([0.0, 0.0, 1.0]) if abs(self.axis[2]) < 0.9 else np.array([1, 0, 0.0])
        self.off_axis = np.cross(self.axis, other)
        self.off_axis /= np.linalg.norm(self.off_axis)
        lateral = 1.0 if side == "right" else -1.0
        self.strap_t = _STRAP_THIGH_M * np.array([1.0, 1.0, lateral])

    @property
    def t(self) -> float:
        return self.n / self.grid_hz

    def _pose(
        self,
        theta_deg: F64Array,
        phi_deg: F64Array | None = None,
        q_pert: F64Array | None = None,
        hip_m: F64Array | None = None,
    ) -> tuple[F64Array, F64Array]:
        """Sensor orientation and position for the thigh at these angles."""
        m = theta_deg.shape[0]
        q_move = axis_angle_quat(self.axis, np.deg2rad(theta_deg))
        if phi_deg is not None:
            q_move = quat_mul(q_move, axis_angle_quat(self.off_axis, np.deg2rad(phi_deg)))
        q_wt = quat_mul(self.q_neutral, q_move)
        if q_pert is not None:
            q_wt = quat_mul(q_pert, q_wt)
        pos = rotate(q_wt, np.broadcast_to(self.strap_t, (m, 3)))
        if hip_m is not None:
            pos = pos + hip_m
        return quat_mul(q_wt, np.broadcast_to(self.q_mount, (m, 4))), pos

    def _emit(
        self,
        theta_deg: F64Array,
        phi_deg: F64Array | None = None,
        q_pert: F64Array | None = None,
        hip_m: F64Array | None = None,
        planned: bool = True,
    ) -> None:
        q, pos = self._pose(theta_deg, phi_deg, q_pert, hip_m)
        self._put(q, pos, theta_deg if planned else np.full(theta_deg.shape[0], np.nan))

    def _put(self, q: F64Array, pos: F64Array, primary_deg: F64Array) -> None:
        self.sink(q, pos, primary_deg)
        # Copies: a view would keep the whole segment alive after the sink dropped it.
        self.last_q, self.last_p = q[-1].copy(), pos[-1].copy()
        self.n += q.shape[0]

    def _samples(self, seconds: float) -> int:
        return max(1, round(seconds * self.grid_hz))

    def _tremor(self, m: int, *, at_rest: bool = False) -> F64Array:
        """Small involuntary motion about the held angle, degrees.

        Holding a position against gravity: physiological tremor (8-12 Hz) and a slow
        sway of `tremor_deg`. The thigh is heavy, so tremor is a few thousandths of a
        degree (leg tremor of ~0.03 m/s^2 at 0.25 m from the hip is ~0.002 deg at 10 Hz).
        Lying or sitting at rest the limb is supported: breathing rocks it slowly and no
        muscle holds it, so there is no tremor.
        """
        amp = self.spec.tremor_deg
        if amp == 0:
            return np.zeros(m)
        tt = np.arange(m) / self.grid_hz
        f1 = self.rng.uniform(8, 12)
        f2 = self.rng.uniform(0.2, 0.35) if at_rest else self.rng.uniform(0.2, 0.6)
        ph = self.rng.uniform(0, 2 * np.pi, 2)
        # Fades in and out so that neighbouring segments join without a step.
        env = min_jerk(np.minimum(tt, tt[-1] - tt) / 0.4)
        # Centred on the held angle: the envelope, not an offset, makes it start at zero.
        sway = (0.3 if at_rest else 1.0) * amp * np.sin(2 * np.pi * f2 * tt + ph[1])
        tremor = 0.0 if at_rest else 0.03 * amp * np.sin(2 * np.pi * f1 * tt + ph[0])
        return np.asarray(env * (tremor + sway), dtype=np.float64)

    def still(self, seconds: float) -> None:
        m = self._samples(seconds)
        self._emit(self.level + self._tremor(m, at_rest=True))

    def rest(self, seconds: float) -> None:
        """A rest between reps or sets: still, or restless (sway, a drifting level)."""
        spec = self.spec
        if spec.rest_sway_deg == 0 and spec.rest_drift_deg == 0:
            self.still(seconds)
            return
        m = self._samples(seconds)
        new_level = self.level
        if spec.rest_drift_deg > 0:
            new_level = _reflect(
                self.level + self.rng.normal(0, spec.rest_drift_deg / 4), spec.rest_drift_deg
            )
        # The level moves over the whole rest: a leg settling, not a movement.
        x = (np.arange(m) + 1.0) / m
        theta = self.level + (new_level - self.level) * min_jerk(x)
        phi = np.zeros(m)
        if spec.rest_sway_deg > 0:
            theta = theta + self._sway(m, spec.rest_sway_deg)
            phi = self._sway(m, spec.rest_sway_deg)
        self._emit(theta + self._tremor(m, at_rest=True), phi)
        self.level = new_level

    def _sway(self, m: int, amp_deg: float) -> F64Array:
        """Slow restless wandering within +-amp_deg, starting and ending at zero.

        Knots drawn within the bound, joined by minimum-jerk blends (which stay between
        their ends), under an envelope in [0, 1]: the bound holds at every sample.
        """
        seconds = m / self.grid_hz
        n_knots = max(2, int(seconds * self.rng.uniform(0.1, 0.5)) + 2)
        knots = self.rng.uniform(-amp_deg, amp_deg, n_knots)
        x = np.linspace(0, n_knots - 1, m)
        i = np.minimum(x.astype(int), n_knots - 2)
        s = min_jerk(x - i)
        wander = knots[i] * (1 - s) + knots[i + 1] * s
        tt = np.arange(m) / self.grid_hz
        # Eases in and out over up to a second: no velocity step at the rest's ends.
        ramp_s = min(1.0, seconds / 3)
        env = min_jerk(np.minimum(tt, tt[-1] - tt) / ramp_s)
        return np.asarray(env * wander, dtype=np.float64)

    def _sag(self, m: int, arrival_deg: float) -> tuple[F64Array, float]:
        """How far the held angle has sunk at each hold sample, and by how much in all.

        A minimum-jerk sink sampled at the middle of each interval: symmetric, so the
        median level over the hold is exactly half way down.
        """
        sag_deg = self.spec.hold_sag * arrival_deg
        if sag_deg == 0:
            return np.zeros(m), 0.0
        return sag_deg * min_jerk((np.arange(m) + 0.5) / m), sag_deg

    def _derived_faults(
        self, rom: float, outward_s: float, return_s: float, hold_s: float, peak_dps: float
    ) -> set[FaultKind]:
        """The faults a planned rep has by the flag definitions of docs/motion.md."""
        ex = self.exercise
        dosage = ex.variant(self.spec.variant)
        concentric_p = dosage.tempo.concentric_s or ex.dosage.tempo.concentric_s or _DEFAULT_PHASE_S
        eccentric_p = dosage.tempo.eccentric_s or ex.dosage.tempo.eccentric_s or _DEFAULT_PHASE_S
        concentric_s, eccentric_s = (
            (outward_s, return_s) if ex.outward_phase == "concentric" else (return_s, outward_s)
        )
        limits = {c.check.value: c.limit for c in ex.cues}
        checks_eccentric = "eccentric_fast" in limits
        out: set[FaultKind] = set()
        speed_limit = limits.get("too_fast")
        if (
            concentric_s < _TOO_FAST_SHARE * concentric_p
            or (not checks_eccentric and eccentric_s < _TOO_FAST_SHARE * eccentric_p)
            or (speed_limit is not None and peak_dps > _SPEED_LIMIT_MARGIN * speed_limit)
        ):
            out.add("too_fast")
        if checks_eccentric:
            limit_s = max(_TOO_FAST_SHARE * eccentric_p, limits["eccentric_fast"] or 0.0)
            if eccentric_s < limit_s:
                out.add("eccentric_fast")
        if rom > ex.rom.target_max_deg:
            out.add("too_much_range")
        partial = limits.get("partial")
        share = partial if partial is not None and partial <= 1 else _PARTIAL_SHARE
        if rom < share * ex.rom.target_min_deg:
            out.add("partial")
        if dosage.hold_s >= 0.5 and hold_s < _HOLD_SHORT_SHARE * dosage.hold_s:
            out.add("hold_short")
        return out

    # -- a rep ---------------------------------------------------------------------

    def rep(self, set_index: int, index: int, st: SetSpec, faults: set[FaultKind]) -> None:
        spec, ex = self.spec, self.exercise
        dosage = ex.variant(spec.variant)
        n_in_set = st.reps
        rv, tv = spec.rom_variability, spec.tempo_variability
        rom = (spec.rom_deg or ex.rom.typical_deg) * self.rng.uniform(1 - rv, 1 + rv)
        rom *= 1.0 - spec.fatigue * index / max(1, n_in_set - 1)
        rom = min(rom, ex.rom.target_max_deg * 0.97)
        rom = max(rom, ex.rom.target_min_deg * 1.05)
        rom *= st.rom_scale
        outward_s = spec.concentric_s or dosage.tempo.concentric_s or _DEFAULT_PHASE_S
        return_s = spec.eccentric_s or dosage.tempo.eccentric_s or _DEFAULT_PHASE_S
        if ex.outward_phase == "eccentric":
            outward_s, return_s = return_s, outward_s
        outward_s *= self.rng.uniform(1 - tv, 1 + tv) * st.tempo_scale
        return_s *= self.rng.uniform(1 - tv, 1 + tv) * st.tempo_scale
        hold_s = _first_set(st.hold_s, spec.hold_s, dosage.hold_s)
        hold_s *= self.rng.uniform(0.95, 1.1) if hold_s else 1.0
        phi_gain = 0.04
        derived: set[FaultKind] = set()
        if "too_fast" in faults:
            outward_s, return_s = outward_s * 0.3, return_s * 0.3
            # Swinging through also cuts the pause at the top and rushes the lowering: label
            # what the rep then is, where the exercise prescribes a pause or a slow phase.
            if hold_s >= 0.5:
                derived.add("hold_short")
            if any(c.check.value == "eccentric_fast" for c in ex.cues):
                derived.add("eccentric_fast")
            hold_s = min(hold_s, 0.2)
        if "too_much_range" in faults:
            rom = ex.rom.target_max_deg * self.rng.uniform(1.25, 1.45)
        if "partial" in faults:
            rom = ex.rom.target_min_deg * self.rng.uniform(0.35, 0.6)
        if "off_plane" in faults:
            phi_gain = self.rng.uniform(0.6, 0.9)
        if "hold_short" in faults and hold_s:
            hold_s *= self.rng.uniform(0.2, 0.45)
        eccentric_fault = "eccentric_fast" in faults
        if eccentric_fault:
            if ex.outward_phase == "eccentric":
                outward_s *= 0.3
            else:
                return_s *= 0.3
        hesitation_s = 0.0
        if self.rng.random() < spec.hesitation_ratio:
            hesitation_s = self.rng.uniform(0.3, 0.7)

        t0 = self.t
        base = self.level
        m_out = self._samples(outward_s)
        x = np.arange(1, m_out + 1) / m_out
        up = min_jerk(x)
        if hesitation_s:
            # A pause part way up: the angle stalls for a moment, then goes on.
            k = self._samples(hesitation_s)
            split = int(m_out * self.rng.uniform(0.3, 0.6))
            up = np.concatenate([up[:split], np.full(k, up[split]), up[split:]])
        # Off the plane in proportion to the excursion from the resting level.
        exc_up = rom * up
        self._emit(base + exc_up, phi_gain * exc_up)
        t_top = self.t
        sag_deg = 0.0
        if hold_s > 0:
            m_hold = self._samples(hold_s)
            sunk, sag_deg = self._sag(m_hold, rom)
            exc_hold = rom - sunk + self._tremor(m_hold)
            self._emit(base + exc_hold, phi_gain * exc_hold)
        t_hold_end = self.t
        m_back = self._samples(return_s)
        exc_back = (rom - sag_deg) * (1.0 - min_jerk(np.arange(1, m_back + 1) / m_back))
        self._emit(base + exc_back, phi_gain * exc_back)
        t_end = self.t
        outward = t_top - t0
        back = t_end - t_hold_end
        concentric_s, eccentric_s = (
            (outward, back) if ex.outward_phase == "concentric" else (back, outward)
        )
        # The range is the median level over the hold: half way down a sagging one.
        rom_held = rom - sag_deg / 2
        peak_dps = self.grid_hz * max(
            float(np.abs(np.diff(exc_up, prepend=0.0)).max()),
            float(np.abs(np.diff(exc_back, prepend=rom - sag_deg)).max()),
        )
        if spec.derive_faults:
            derived |= self._derived_faults(rom_held, outward, back, t_hold_end - t_top, peak_dps)
        self.reps.append(
            {
                "index": len(self.reps),
                "set": set_index,
                "index_in_set": index,
                "side": self.side,
                "start_s": t0,
                "top_s": t_top,
                "peak_s": (t_top + t_hold_end) / 2,
                "hold_end_s": t_hold_end,
                "end_s": t_end,
                "rom_deg": rom_held,
                "arrival_deg": rom,
                "sag_deg": sag_deg,
                "base_deg": base,
                "peak_dps": peak_dps,
                "off_plane_deg": phi_gain * rom_held,
                "outward_s": outward,
                "return_s": back,
                "concentric_s": concentric_s,
                "hold_s": t_hold_end - t_top,
                "eccentric_s": eccentric_s,
                "hesitation_s": hesitation_s,
                "faults": sorted(faults | derived),
            }
        )

    def hold(self, set_index: int, index: int, st: SetSpec, faults: set[FaultKind]) -> None:
        """A held position: move in, hold still (tremor; sinking if it sags), move back."""
        spec, ex = self.spec, self.exercise
        dosage = ex.variant(spec.variant)
        target = (spec.rom_deg or ex.rom.typical_deg) * self.rng.uniform(0.9, 1.1)
        target *= st.rom_scale
        hold_s = _first_set(st.hold_s, spec.hold_s, dosage.hold_s)
        hold_s *= self.rng.uniform(1.0, 1.1)
        if "hold_short" in faults:
            hold_s *= self.rng.uniform(0.3, 0.6)
        t0 = self.t
        base = self.level
        m_in = self._samples(self.rng.uniform(1.5, 3.0) * st.tempo_scale)
        exc_in = target * min_jerk(np.arange(1, m_in + 1) / m_in)
        self._emit(base + exc_in, 0.04 * exc_in)
        t_start = self.t
        m_hold = self._samples(hold_s)
        sunk, sag_deg = self._sag(m_hold, target)
        exc_hold = target - sunk + self._tremor(m_hold)
        self._emit(base + exc_hold, 0.04 * exc_hold)
        t_stop = self.t
        m_out = self._samples(self.rng.uniform(1.5, 3.0) * st.tempo_scale)
        exc_out = (target - sag_deg) * (1.0 - min_jerk(np.arange(1, m_out + 1) / m_out))
        self._emit(base + exc_out, 0.04 * exc_out)
        if (
            spec.derive_faults
            and dosage.hold_s > 0
            and t_stop - t_start < _HOLD_SHORT_SHARE_HOLDS * dosage.hold_s
        ):
            faults = faults | {"hold_short"}
        self.holds.append(
            {
                "index": len(self.holds),
                "set": set_index,
                "index_in_set": index,
                "side": self.side,
                "enter_s": t0,
                "start_s": t_start,
                "end_s": t_stop,
                "exit_s": self.t,
                "hold_s": t_stop - t_start,
                "target_deg": target - sag_deg / 2,
                "arrival_deg": target,
                "sag_deg": sag_deg,
                "base_deg": base,
                "faults": sorted(faults),
            }
        )

    # -- motion that is not exercise ---------------------------------------------------

    def non_exercise_motion(self, ne: NonExerciseSpec) -> None:
        t0 = self.t
        m = self._samples(ne.duration_s)
        tt = np.arange(m) / self.grid_hz
        rng = self.rng
        # Eases in and out with zero slope at both ends: no velocity step at the joins.
        env = np.sin(np.pi * np.clip(tt / max(ne.duration_s, 1e-9), 0, 1)) ** 2
        cranial = rotate(self.q_neutral, np.array([0.0, 0.0, 1.0]))  # a thigh-fixed direction
        hip = None
        match ne.kind:
            case "adjust-pillow" | "fidget":
                scale = 12.0 if ne.kind == "adjust-pillow" else 5.0
                pert = self._smooth_random_rotation(m, scale, 0.6)
            case "reach-phone":
                roll = rng.uniform(20, 40) * env
                axis = rotate(self.q_neutral, np.array([1.0, 0.0, 0.0]))
                pert = axis_angle_quat(np.cross(axis, cranial) + 1e-9, np.deg2rad(roll))
            case "walk":
                # Thigh swings in flexion about 0.9 Hz; the hip bobs twice a step.
                f = rng.uniform(0.8, 1.0)
                taper = min_jerk(np.minimum(tt, ne.duration_s - tt))
                swing = 22.0 * np.sin(2 * np.pi * f * tt) * taper
                lat = rotate(self.q_neutral, np.array([0.0, 0.0, 1.0]))
                pert = axis_angle_quat(lat, np.deg2rad(swing))
                hip = np.zeros((m, 3))
                hip[:, 2] = 0.03 * np.sin(4 * np.pi * f * tt) * taper
                # Out to the other room and back: the walk ends where it started.
                hip[:, 1] = 0.1 * ne.duration_s * (1 - np.cos(2 * np.pi * tt / ne.duration_s))
            case "sit-down" | "stand-up":
                lat = rotate(self.q_neutral, np.array([0.0, 0.0, 1.0]))
                angle = 80.0 * env
                pert = axis_angle_quat(lat, np.deg2rad(angle))
        self._emit(
            self.level + self._tremor(m, at_rest=True), q_pert=pert, hip_m=hip, planned=False
        )
        self.non_exercise.append({"kind": ne.kind, "start_s": t0, "end_s": self.t})

    def _smooth_random_rotation(self, m: int, scale_deg: float, hz: float) -> F64Array:
        """Random slow rotations about all axes, easing in and out, as quaternions."""
        n_knots = max(4, int(m / self.grid_hz * hz) + 2)
        knots = self.rng.normal(0, scale_deg, size=(n_knots, 3))
        knots[0] = knots[-1] = 0
        x = np.linspace(0, n_knots - 1, m)
        i = np.minimum(x.astype(int), n_knots - 2)
        s = min_jerk(x - i)[:, None]
        rv = np.deg2rad(knots[i] * (1 - s) + knots[i + 1] * s)
        angle = np.linalg.norm(rv, axis=1)
        axis = np.where(angle[:, None] > 1e-12, rv / np.maximum(angle, 1e-12)[:, None], [1, 0, 0])
        half = angle / 2
        return np.concatenate([np.cos(half)[:, None], np.sin(half)[:, None] * axis], axis=1)

    def switch_side(self, side: Side) -> None:
        """Roll over and move the sensor to the other thigh: ~10 s of handling."""
        t0 = self.t
        if self.last_q is None or self.last_p is None:
            raise ValueError("a side switch needs motion before it")
        q_from, p_from = self.last_q, self.last_p
        self._place(side)
        # Where the sensor will be at the start of the new side, still.
        q_start, p_start = self._pose(np.zeros(1))
        q_to, p_to = q_start[0], p_start[0]
        m = self._samples(self.rng.uniform(8.0, 12.0))
        x = min_jerk(np.linspace(0, 1, m))
        dot = float(np.dot(q_from, q_to))
        q_to = q_to if dot >= 0 else -q_to
        q = q_from[None, :] * (1 - x[:, None]) + q_to[None, :] * x[:, None]
        q /= np.linalg.norm(q, axis=1, keepdims=True)
        wobble = self._smooth_random_rotation(m, 25.0, 0.8)
        q = quat_mul(wobble, q)
        p = p_from[None, :] * (1 - x[:, None]) + p_to[None, :] * x[:, None]
        p += 0.05 * np.sin(np.pi * x)[:, None] * np.array([0.3, 0.5, 1.0])
        self._put(q, p, np.full(m, np.nan))
        self.side_switches.append({"start_s": t0, "end_s": self.t, "to_side": side})


def build_motion(
    spec: ScenarioSpec, exercise: Exercise, grid_hz: float, rng: np.random.Generator
) -> Motion:
    """Lay out the whole session on a grid of `grid_hz`."""
    q: list[F64Array] = []
    p: list[F64Array] = []
    a: list[F64Array] = []

    def keep(q_ws: F64Array, pos_m: F64Array, primary_deg: F64Array) -> None:
        q.append(q_ws)
        p.append(pos_m)
        a.append(primary_deg)

    _, truth = stream_motion(spec, exercise, grid_hz, rng, keep)
    return Motion(grid_hz, np.concatenate(q), np.concatenate(p), np.concatenate(a), truth)


def stream_motion(
    spec: ScenarioSpec,
    exercise: Exercise,
    grid_hz: float,
    rng: np.random.Generator,
    sink: GridSink,
) -> tuple[int, dict[str, Any]]:
    """Lay out the session on a grid of `grid_hz`, handing it to `sink` segment by segment.

    Returns the number of grid rows and the truth. Draws from `rng` exactly as
    `build_motion` does, so the same generator state gives the same rows.
    """
    b = _Builder(spec, exercise, grid_hz, rng, sink)
    for ne in spec.non_exercise:
        if ne.at == "start":
            b.still(1.0)
            b.non_exercise_motion(ne)
    # No lead (lead_s 0): the first rep begins with the stream.
    if spec.lead_s > 0:
        b.still(spec.lead_s)
    between = [ne for ne in spec.non_exercise if ne.at == "between-sets"]
    for s_index, s in enumerate(spec.sets):
        if s.side != b.side:
            b.switch_side(s.side)
            if spec.lead_s > 0:
                b.still(spec.lead_s)
        set_start = b.t
        faults_of = {i: {k for k, idx in s.faults.items() if i in idx} for i in range(s.reps)}
        rest_s = _first_set(s.rest_between_reps_s, spec.rest_between_reps_s)
        for i in range(s.reps):
            if exercise.kind is ExerciseKind.HOLD:
                b.hold(s_index, i, s, faults_of[i])
            else:
                b.rep(s_index, i, s, faults_of[i])
            rest = rest_s * rng.uniform(0.7, 1.4)
            if rng.random() < spec.long_pause_ratio:
                rest += rng.uniform(5.0, 15.0)
            if exercise.kind is ExerciseKind.HOLD:
                rest += 2.0
            b.rest(rest)
        b.sets.append(
            {"index": s_index, "side": s.side, "start_s": set_start, "end_s": b.t, "reps": s.reps}
        )
        if s_index < len(spec.sets) - 1:
            b.rest(s.rest_after_s * 0.5)
            if between:
                b.non_exercise_motion(between[s_index % len(between)])
            b.rest(s.rest_after_s * 0.5)
    b.still(2.0)
    for ne in spec.non_exercise:
        if ne.at == "end":
            b.non_exercise_motion(ne)
            b.still(1.0)
    truth = {
        "reps": b.reps,
        "holds": b.holds,
        "sets": b.sets,
        "non_exercise": b.non_exercise,
        "side_switches": b.side_switches,
    }
    return b.n, truth


def _first_set(*values: float | None) -> float:
    """The first value that is set (a set's own, then the scenario's, then the default)."""
    return next(v for v in values if v is not None)


def _reflect(x: float, top: float) -> float:
    """`x` folded back into [0, top], as a random walk between two walls."""
    x = abs(x)
    if x > top:
        x = 2 * top - x
    return min(max(x, 0.0), top)


def body_rates(motion: Motion) -> tuple[F64Array, F64Array]:
    """Angular rate (rad/s) and specific force (m/s^2) in the sensor frame, on the grid.

    Both come from central differences of the orientation and the position.
    """
    n = motion.q_ws.shape[0]
    return grid_rates(motion.q_ws, motion.pos_m, 0, n, n, motion.grid_hz)


def grid_rates(
    q_ws: F64Array, pos_m: F64Array, lo: int, hi: int, n_grid: int, grid_hz: float
) -> tuple[F64Array, F64Array]:
    """`body_rates` of grid rows [lo, hi) of a session of `n_grid` rows.

    `q_ws` and `pos_m` hold the rows [max(lo - 1, 0), min(hi + 1, n_grid)): the central
    differences need one neighbour each side. Every row comes out with the bits it has
    when the whole session is done at once, so a session can go through in pieces.
    """
    dt = 1.0 / grid_hz
    s0 = max(lo - 1, 0)
    if q_ws.shape[0] != min(hi + 1, n_grid) - s0 or pos_m.shape[0] != q_ws.shape[0]:
        raise ValueError(
            f"grid rows: expected {min(hi + 1, n_grid) - s0} rows for [{lo}, {hi}), "
            f"found {q_ws.shape[0]} and {pos_m.shape[0]}"
        )
    w_mid = interval_rates(q_ws, dt)  # rate over each interval, at its midpoint
    # Interior rows average the intervals either side; the session's ends take their one.
    a, b = max(lo, 1), min(hi, n_grid - 1)
    w = np.empty((hi - lo, 3))
    if b > a:
        w[a - lo : b - lo] = 0.5 * (w_mid[a - 1 - s0 : b - 1 - s0] + w_mid[a - s0 : b - s0])
    if lo == 0:
        w[0] = w_mid[0]
    if hi == n_grid:
        w[-1] = w_mid[-1]
    p = pos_m
    acc = np.zeros((hi - lo, 3))
    if b > a:
        acc[a - lo : b - lo] = (
            p[a + 1 - s0 : b + 1 - s0] - 2 * p[a - s0 : b - s0] + p[a - 1 - s0 : b - 1 - s0]
        ) / dt**2
    f_world = acc + np.array([0.0, 0.0, 9.80665])
    f_sensor = rotate(quat_conj(q_ws[lo - s0 : hi - s0]), f_world)
    return w, f_sensor
