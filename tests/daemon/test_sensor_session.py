"""What `sensors/{sensor_id}/session` says as a session's events come (SessionStatus)."""

from hipsense.daemon._sensor_session import SessionStatus
from hipsense.motion import Calibration, RepEvent, SetEvent


def rep(index: int, set_index: int, rom_deg: float) -> RepEvent:
    return RepEvent(
        index=index, set_index=set_index, start_s=0.0, peak_s=1.0, end_s=2.0, rom_deg=rom_deg,
        concentric_s=1.0, hold_s=0.0, eccentric_s=1.0, rest_before_s=None,
        peak_velocity_dps=40.0, smoothness=-6.5, max_off_plane_deg=2.0, flags=(),
        confidence=0.9,
    )  # fmt: skip


def calibration() -> Calibration:
    return Calibration(
        t_s=1.0, reason="axis", neutral_quat=(1.0, 0.0, 0.0, 0.0), gravity_sensor=(0, 0, 1)
    )


def test_states_and_counts_follow_the_events() -> None:
    s = SessionStatus(sensor_id="s1", session_id="x-1", exercise="clamshell")
    first = s.message()
    assert (first.state, first.set_index, first.set_reps, first.last_rom_deg) == (
        "calibrating", 0, 0, None,
    )  # fmt: skip
    assert s.update([]) is None  # nothing changed: nothing to publish
    m = s.update([calibration()])
    assert m is not None and m.state == "exercising" and m.set_reps == 0
    m = s.update([rep(0, 0, 41.26), rep(1, 0, 38.0)])  # a burst: one message
    assert m is not None and (m.set_reps, m.rep_count, m.last_rom_deg) == (2, 2, 38.0)
    m = s.update([SetEvent(index=0, start_s=0.0, end_s=9.0, reps=2, holds=0)])
    assert m is not None and (m.state, m.set_index, m.set_reps, m.rep_count) == (
        "resting", 1, 0, 2,
    )  # fmt: skip
    m = s.update([rep(2, 1, 44.44)])
    assert m is not None and (m.state, m.set_index, m.set_reps, m.last_rom_deg) == (
        "exercising", 1, 1, 44.4,
    )  # fmt: skip
    # A rep of a set already closed (recovered from the backlog) counts in the session only.
    m = s.update([rep(3, 0, 30.0)])
    assert m is not None and (m.set_index, m.set_reps, m.rep_count) == (1, 1, 4)
    assert s.end().state == "ended"
