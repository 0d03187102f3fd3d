"""Settings of segmentation: detection, measurement and acceptance, in one place.

Each is a named tuning constant with its unit and the reason for its value; the stages
that use them are `_detect.py`, `_measure.py` and `_reps.py`.
"""

from dataclasses import dataclass

__all__ = ["SegmenterSettings"]


@dataclass(frozen=True)
class SegmenterSettings:
    """Detection, measurement and acceptance of reps (angles in deg, times in s)."""

    # -- detection -------------------------------------------------------------------
    scale_ratio: float = 0.25
    """Of the set's typical rep: a rise smaller than a quarter of the reps around it
    starts no candidate, and a rep smaller than that is doubtful (a rebound, the leg
    settling). A low-amplitude block after a wide one is a third of it or more on the
    real recordings; effort within a set varies less (fatigue takes 15-30 %)."""
    half_ratio: float = 0.5
    """Below half its excursion, a rep is on its way back; a bounce of the limb straight
    after a rep returns less than half its way."""
    back_ratio: float = 0.35
    """Within this share of its excursion from its start, the limb is back at the start
    (real rest levels creep up by a quarter of a small rep's range); a rep starts and
    ends no further than this share of its range below the rest it started from (walking
    and rocking swing to both sides of it)."""
    min_phase_s: float = 0.3
    """No voluntary movement of the thigh is quicker (the fastest reps take 0.35-0.5 s a
    way): a dip at the top that comes back sooner is a heel bouncing or the
    accelerometer's kick as the leg stops; a whole rep that quick is no rep."""
    settled_low_s: float = 2.0
    """Half way back but not near the start: a pause on the way down is shorter."""
    baseline_window_s: float = 3.0
    """The rest level is the lowest angle of this trailing window: it follows a slow
    drift of the rest pose instead of remembering one low dip for ever."""
    run_reps: int = 3
    """Reps that make a set's pattern: its typical range is the median of its last few,
    and this many doubtful ones in a row confirm each other (a patient doing every rep
    short of the prescription still does a set; two turns of a fidget are no set)."""
    set_gap_s: float = 25.0
    """Longer than this without a rep, a new set begins: its scale is not the last one's."""
    # -- measurement -----------------------------------------------------------------
    measure_lowpass_hz: float = 4.0
    """Zero-phase smoothing before the phases are read: keeps a 0.4 s phase's shape."""
    phase_speed_ratio: float = 0.05
    """A phase starts and ends where its speed is this share of its peak (given back the
    time a minimum-jerk movement spends below it)."""
    top_ratio: float = 0.2
    """End range: within this share of the excursion of the top (at least 1 deg, or the
    hold's tolerance band for held positions, up to half the excursion)."""
    # -- acceptance ------------------------------------------------------------------
    noise_deg: float = 2.0
    """Angles this small are within the sway and wobble of a real thigh at rest; also a
    held position's tolerance (or 15 % of the angle held, if larger)."""
    off_plane_max_ratio: float = 1.0
    """Swinging off the plane further than this share of the range about the axis (plus
    `noise_deg`) is not a rep of the exercise, however badly done."""
    max_tempo_ratio: float = 3.0
    """Slower than this times the tempo both ways is not a rep (rolling over)."""
    rebound_s: float = 1.0
    """A rep smaller than `half_ratio` of the one just before, begun within this of its
    end, is the limb bouncing back (a heel off the bed): a new rep, however small,
    comes after at least a moment's pause."""
    lone_rep_s: float = 10.0
    """A doubtful rep counts only if another rep comes within this of its end: one such
    movement on its own is more likely shifting or reaching than an exercise."""
