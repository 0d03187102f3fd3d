"""Settings of segmentation: detection, measurement and acceptance, in one place.

Each is a named tuning constant with its unit and the reason for its value. The
reference (`_reference.py`) takes `ReferenceSettings`; detection, measurement and
acceptance (`_detect.py`, `_measure.py`, `_reps.py`) take `SegmenterSettings`. A value
both need lives in one of them and is handed to the other by `MotionCore`.
"""

from dataclasses import dataclass

__all__ = ["ReferenceSettings", "SegmenterSettings"]


@dataclass(frozen=True)
class ReferenceSettings:
    """How the start position and the axis are found (angles in deg, times in s)."""

    lowpass_hz: float = 3.0
    """The angle's low-pass for finding rests and reps: voluntary thigh movements of
    0.4 s or longer lie below it; tremor (8-12 Hz) and the spikes of a heel landing on
    the bed lie above."""
    still_dps: float = 4.0
    """At rest: the low-passed angle turns slower than this. A resting thigh sways by a
    fraction of a degree per second, while the slowest prescribed phase (10 s for 40 deg)
    turns at 4 deg/s on average and faster in its middle. Judged over half `rest_min_s`:
    over one sample, a poor unit's noise (0.5-1 deg of tilt per sample) turns the angle
    faster than this at rest."""
    backlog_s: float = 60.0
    """Samples kept while no reference is known: the reps in them are recovered once
    one is. Fifteen slow reps with 5 s holds, or a whole set of quick ones."""
    search_every_s: float = 0.5
    """How often the backlog is searched: a reference comes at most this late."""
    axis_window_s: float = 30.0
    """The movements the axis is fitted to: the latest few reps, not what came before
    (fidgeting while getting settled)."""
    planar_max: float = 0.25
    """Movements about one axis move gravity along one line on the sphere: the spread
    across that line is at most this share of the spread along it (real thigh reps with
    their wobble: 0.02-0.2; fidgeting turns every way)."""
    returns_min: int = 3
    """Movements out from an end of the range and back to it before that end is taken for
    the start position: a reach, a roll or settling in goes out once. (One, for an
    exercise that is a single held position: its set may be one hold.)"""
    rest_min_s: float = 0.4
    """The limb rests at the start position at least this long, once: a walking or
    swinging thigh turns round in a few hundredths of a second."""
    quiet_ratio: float = 1.5
    """Resting on its support, a thigh's tremor is at most this share of what it is held
    up at a rep's top (both real subjects: 1.5 to 5 times; a simulated limb at rest has
    none)."""
    vertical_axis_deg: float = 30.0
    """An axis within this of the vertical turns gravity by less than half the rep's
    angle (sin 30 deg): such movements are measured by the fused heading."""
    reposition_deg: float = 20.0
    """Off the movement plane by this much, the limb is in another position: a
    referenced limb at rest this far off the plane has been repositioned."""
    axis_agree_deg: float = 30.0
    """The latest movements turning this far from the axis (over `axis_window_s`) are
    done about another axis: the reference is found again from them. A rep's own wobble
    and a compensating rep tilt the path by less, on average."""
    gyro_agreement: float = 0.9
    """The gyroscope refines the gravity angle where the two agree: the rate about the
    axis correlates with the angle's change by at least this, at a gain within this of
    one (a gyroscope mounted askew from its accelerometer, or mis-scaled, does not)."""
    gyro_lowpass_hz: float = 0.5
    """Where they agree, the angle is gravity's below this and the gyroscope's above it:
    the accelerometer's kicks as a fast movement starts and stops last 0.2-0.5 s, and
    gravity sets the level within a second."""
    pause_s: float = 2.0
    """A pause longer than this is a rest, not part of a movement: a limb at rest off the
    plane this long beyond the prescribed hold has been put somewhere else (the other
    thigh, another position); the search also looks from each such rest (what came
    before may have been the limb being put in place); a rep half way down this long
    has ended there."""


@dataclass(frozen=True)
class SegmenterSettings:
    """Detection, measurement and acceptance of reps (angles in deg, times in s)."""

    # -- detection -------------------------------------------------------------------
    scale_ratio: float = 0.25
    """Of the set's typical rep: a rise smaller than a quarter of the reps around it
    starts no candidate, and a rep smaller than that is doubtful (a rebound, the leg
    settling). A low-amplitude block after a wide one is a third of it or more on the
    real recordings; effort within a set varies less (fatigue takes 15-30 %). The
    reference's search likewise takes a pose within a quarter of the movements' range
    of an end of it to be at that end."""
    half_ratio: float = 0.5
    """Below half its excursion, a rep is on its way back; a bounce of the limb straight
    after a rep returns less than half its way. Reps of one pattern (doubtful ones off
    the plane confirming each other) differ in range and duration by less than a factor
    of two: a set's reps follow one instruction, while fidgeting turns by any amount."""
    back_ratio: float = 0.35
    """Within this share of its excursion from its start, the limb is back at the start
    (real rest levels creep up by a quarter of a small rep's range); a rep starts and
    ends no further than this share of its range below the rest it started from (walking
    and rocking swing to both sides of it)."""
    min_phase_s: float = 0.3
    """No voluntary movement of the thigh is quicker (the fastest reps take 0.35-0.5 s a
    way): a dip at the top that comes back sooner is a heel bouncing or the
    accelerometer's kick as the leg stops; a whole rep that quick is no rep, and right
    after a rep, a movement over in twice this is the limb recoiling from the landing."""
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
    phase_speed_ratio: float = 0.1
    """A phase starts and ends where its speed is this share of its peak (given back the
    time a minimum-jerk movement spends below it): a limb creeps into its end range and
    trembles there at 5-8 % of its peak speed for tenths of a second."""
    top_ratio: float = 0.2
    """End range: within this share of the excursion of the top (at least 1 deg, or the
    hold's tolerance band for held positions, up to half the excursion)."""
    # -- acceptance ------------------------------------------------------------------
    noise_deg: float = 2.0
    """Angles this small are within the sway and wobble of a real thigh at rest; also a
    held position's tolerance (or 15 % of the angle held, if larger), and how close the
    starts of reps done from one support (the limb lying on it between them) agree."""
    off_plane_max_ratio: float = 1.0
    """Swinging off the plane further than this share of the range about the axis (plus
    `noise_deg`) is not a rep of the exercise, however badly done."""
    rebound_s: float = 1.0
    """A rep begun within this of the end of the one just before, and smaller than
    `half_ratio` of it or over in less than twice `min_phase_s`, is the limb bouncing
    back (a heel off the bed, a recoil from the landing): a new rep, however small,
    comes after at least a moment's pause."""
    lone_rep_s: float = 10.0
    """A doubtful rep counts only if another rep comes within this of its end: one such
    movement on its own is more likely shifting or reaching than an exercise."""
