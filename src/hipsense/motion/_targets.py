"""What a rep or hold is judged against: the exercise's range, dosage and cues."""

from dataclasses import dataclass
from typing import Literal

from hipsense.exercises import Exercise, ExerciseKind, FormCheck, axis_from_vertical_deg

__all__ = ["Targets"]

_DEFAULT_PHASE_S = 1.5
_SETTLED_MARGIN_S = 10.0
"""A held position ends within seconds of its prescription; a patient who has settled
somewhere stays there longer."""
_AUTO_HOLD_S = 10.0
"""What `auto` allows for a hold at a rep's top, not knowing the prescription: the
longest the library prescribes for a rep (a deep hip rotator's small arc, "hold for 10
seconds, repeat up to 10 times")."""
_HOLD_CHECKED_S = 0.5
"""A prescribed hold shorter than this is a pause at the top, not judged."""
_HOLD_MIN_RATIO = 0.2
_TOP_MAX_RATIO = 1.75
"""Beyond this times the top of the range is not a rep (standing up from the chair a
seated exercise is done in: 80 deg where the range ends at 40)."""
_TOP_MAX_DEG = 180.0
_REST_MAX_DEG = 12.0
"""A rep starts from the start position: the rest poses of a real set stay within a few
degrees of each other; walking and getting up start further away."""


@dataclass(frozen=True)
class Targets:
    """Thresholds for one exercise (or `auto` for an unknown one), with units."""

    exercise_id: str
    kind: Literal["reps", "hold"]
    detect_deg: float
    """Smallest excursion counted as a rep (partial reps are counted and flagged)."""
    target_min_deg: float
    target_max_deg: float
    outward_phase: Literal["concentric", "eccentric"]
    outward_s: float
    """Prescribed duration of the phase away from neutral."""
    return_s: float
    hold_s: float
    """Prescribed time at end range (0: none)."""
    check_hold: bool
    check_eccentric: bool
    too_fast_ratio: float = 0.5
    """A phase shorter than this share of its prescribed duration is too fast."""
    too_fast_dps: float | None = None
    off_plane_deg: float = 12.0
    off_plane_floor_deg: float = 3.0
    off_plane_ratio: float = 0.35
    """Also off the plane: more than `off_plane_floor_deg` and this share of the range."""
    partial_ratio: float = 0.8
    hold_short_ratio: float = 0.7
    """A rep's time at end range shorter than this share of the prescribed hold is short."""
    held_short_ratio: float = 0.85
    """A held position (isometric hold, stretch) is judged on its time alone: shorter
    than this share of the prescription is short."""
    eccentric_fast_s: float | None = None
    auto: bool = False
    axis_from_vertical_deg: float | None = None
    """The library's angle between the movement axis and the vertical at the start
    position (None: `auto`, unknown)."""

    @classmethod
    def from_exercise(cls, ex: Exercise, variant: str | None = None) -> "Targets":
        """Targets from the library entry and, if given, one of its variants."""
        d = ex.variant(variant)
        limits = {c.check: c.limit for c in ex.cues}
        conc = d.tempo.concentric_s or ex.dosage.tempo.concentric_s or _DEFAULT_PHASE_S
        ecc = d.tempo.eccentric_s or ex.dosage.tempo.eccentric_s or _DEFAULT_PHASE_S
        outward, back = (conc, ecc) if ex.outward_phase == "concentric" else (ecc, conc)
        partial = limits.get(FormCheck.PARTIAL)
        return cls(
            exercise_id=ex.id,
            kind="hold" if ex.kind is ExerciseKind.HOLD else "reps",
            # Partial reps (down to about a third of the target) must still count: for a
            # pelvic drop (4 deg minimum) that is 1.3 deg. 1 deg is still well above the
            # sway at rest, and a lone partial rep is held back until another confirms it.
            detect_deg=max(1.0, 0.25 * ex.rom.target_min_deg),
            target_min_deg=ex.rom.target_min_deg,
            target_max_deg=ex.rom.target_max_deg,
            outward_phase=ex.outward_phase,
            outward_s=outward,
            return_s=back,
            hold_s=d.hold_s,
            check_hold=d.hold_s >= _HOLD_CHECKED_S,
            check_eccentric=FormCheck.ECCENTRIC_FAST in limits,
            too_fast_dps=limits.get(FormCheck.TOO_FAST),
            off_plane_deg=limits.get(FormCheck.OFF_PLANE) or 12.0,
            partial_ratio=partial if partial is not None and partial <= 1 else 0.8,
            eccentric_fast_s=limits.get(FormCheck.ECCENTRIC_FAST),
            axis_from_vertical_deg=axis_from_vertical_deg(ex),
        )

    @classmethod
    def automatic(cls) -> "Targets":
        """Count reps about the dominant axis of an exercise the library does not know."""
        return cls(
            exercise_id="auto",
            kind="reps",
            # The library's own floor: an unknown exercise may be done with a small range
            # (real low-amplitude raises move 2-3 deg, well above the noise at rest).
            detect_deg=1.5,
            target_min_deg=5.0,
            target_max_deg=180.0,
            outward_phase="concentric",
            outward_s=_DEFAULT_PHASE_S,
            return_s=_DEFAULT_PHASE_S,
            hold_s=0.0,
            check_hold=False,
            check_eccentric=False,
            partial_ratio=0.0,
            auto=True,
        )

    @property
    def rest_max_deg(self) -> float:
        """Furthest from neutral a rep may start: 12 deg, or half the top of the range."""
        return max(_REST_MAX_DEG, 0.5 * self.target_max_deg)

    @property
    def top_max_deg(self) -> float:
        """Furthest from neutral a rep may go, however badly done (none in `auto`)."""
        return _TOP_MAX_DEG if self.auto else _TOP_MAX_RATIO * self.target_max_deg

    @property
    def hold_min_s(self) -> float:
        """A held position is at least this long: a fifth of the prescribed hold.

        Less is the limb passing through it while settling in, not a hold cut short.
        """
        return _HOLD_MIN_RATIO * self.hold_s

    @property
    def settled_s(self) -> float:
        """Still for longer than this away from the start is not a hold but a new rest.

        Twice the prescribed hold, and at least the hold plus `_SETTLED_MARGIN_S`; in
        `auto`, of the longest hold the library prescribes for a rep.
        """
        hold = _AUTO_HOLD_S if self.auto else self.hold_s
        return max(2.0 * hold, hold + _SETTLED_MARGIN_S)
