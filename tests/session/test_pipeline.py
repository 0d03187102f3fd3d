"""SessionPipeline: the same events and live frames whatever the grouping; agrees with truth."""

import dataclasses
import itertools
from functools import cache

import numpy as np
import pytest

from hipsense.exercises import load_library
from hipsense.motion import Flag, MotionEvent, RepEvent
from hipsense.protocol import SampleBlock, StreamFormat, StreamReassembler
from hipsense.session import SessionPipeline
from hipsense_sim import LinkSpec, ScenarioSpec, SetSpec, SimulationResult, simulate

REPS = (6, 5)


@cache
def _session() -> SimulationResult:
    spec = ScenarioSpec(
        name="pipeline",
        exercise="clamshell",
        seed=11,
        sets=[SetSpec(reps=n, rest_after_s=50.0) for n in REPS],
        link=LinkSpec(loss_ratio=0.01),
    )
    return simulate(spec, load_library()["clamshell"])


def _items(result: SimulationResult) -> list[object]:
    r = StreamReassembler(StreamFormat(rate_hz=result.spec.imu.rate_hz))
    d = result.delivery
    return [*r.push_many(d.packets, d.arrival_s), *r.flush()]


def _split(block: SampleBlock, cuts: list[int]) -> list[SampleBlock]:
    """The block cut into consecutive pieces at `cuts` (sample indices)."""
    out = []
    bounds = [0, *cuts, block.count]
    for a, b in itertools.pairwise(bounds):
        if b <= a:
            continue
        out.append(
            dataclasses.replace(
                block,
                seq_first=block.seq_first,
                t_sensor_us=block.t_sensor_us[a:b],
                t_host_s=block.t_host_s[a:b],
                acc_m_s2=None if block.acc_m_s2 is None else block.acc_m_s2[a:b],
                gyr_rad_s=None if block.gyr_rad_s is None else block.gyr_rad_s[a:b],
                quat=None if block.quat is None else block.quat[a:b],
            )
        )
    return out


def _run(items: list[object], take_every: int) -> tuple[list[MotionEvent], SessionPipeline, list]:
    p = SessionPipeline(session_id="s-1", sensor_id="sim-1", rate_hz=100, exercise=_lib())
    events: list[MotionEvent] = []
    frames = []
    for i, item in enumerate(items):
        events += p.feed(item)  # type: ignore[arg-type]
        if i % take_every == 0 and (f := p.take_live(max_points=10**6)) is not None:
            frames.append(f)
    events += p.finish()
    if (f := p.take_live(max_points=10**6)) is not None:
        frames.append(f)
    return events, p, frames


@cache
def _lib():  # type: ignore[no-untyped-def]
    return load_library()["clamshell"]


@pytest.mark.parametrize("seed", [1, 2])
def test_any_grouping_gives_the_same_events_and_live_frames(seed: int) -> None:
    items = _items(_session())
    rng = np.random.default_rng(seed)
    pieces: list[object] = []
    for item in items:
        if isinstance(item, SampleBlock) and item.count > 1:
            k = int(rng.integers(0, 4))
            cuts = sorted(int(c) for c in rng.integers(1, item.count, size=k))
            pieces += _split(item, cuts)
        else:
            pieces.append(item)
    whole, p_whole, f_whole = _run(items, take_every=1)
    cut, p_cut, f_cut = _run(pieces, take_every=int(rng.integers(1, 9)))
    assert len(pieces) > len(items)
    assert [repr(e) for e in cut] == [repr(e) for e in whole]
    t_whole = np.concatenate([f.t_s for f in f_whole])
    t_cut = np.concatenate([f.t_s for f in f_cut])
    np.testing.assert_array_equal(t_cut, t_whole)
    np.testing.assert_array_equal(
        np.concatenate([f.angle_deg for f in f_cut]),
        np.concatenate([f.angle_deg for f in f_whole]),
    )
    assert p_cut.summary(last_seq=3) == p_whole.summary(last_seq=3).model_copy(
        update={"started_at": p_cut.started_at}
    )


def test_agrees_with_the_simulated_truth() -> None:
    result = _session()
    events, p, frames = _run(_items(result), take_every=5)
    reps = [e for e in events if isinstance(e, RepEvent)]
    truth = result.truth
    # Reference: the simulator's ground truth (counts exact, ROM within 3 deg per rep).
    assert len(reps) == truth["rep_count"] == sum(REPS)
    summary = p.summary(last_seq=len(events) - 1)
    assert summary.rep_count == sum(REPS)
    assert summary.reps_per_set == list(REPS)
    # A rep across lost samples is flagged (and not trusted); the others measure the ROM.
    for rep, true in zip(reps, truth["reps"], strict=True):
        spans_gap = any(
            g["start_s"] < true["end_s"] and g["end_s"] > true["start_s"] for g in truth["gaps"]
        )
        assert (Flag.DATA_GAP in rep.flags) == spans_gap
        if not spans_gap:
            assert rep.rom_deg == pytest.approx(true["rom_deg"], abs=3.0)
    assert summary.mean_rom_deg == pytest.approx(float(np.mean([r.rom_deg for r in reps])), 0.01)
    assert sum(summary.flags.values()) == sum(len(r.flags) for r in reps)
    # Live frames: one sample per 50 ms of stream time, in order, none twice: the first
    # angle of each 50 ms (from the first angle on, once the start position is found),
    # within one of the stages' sample intervals of its start (they run at 50 Hz here),
    # save where lost packets emptied it.
    t = np.concatenate([f.t_s for f in frames])
    slots = np.floor(t / p.live_period_s)
    assert np.all(np.diff(slots) >= 1)
    late = t - slots * p.live_period_s
    assert np.mean(late < 1.0 / p.core.stage_rate_hz) > 0.95
    assert t.shape[0] > 0.95 * (slots[-1] - slots[0] + 1)
    assert t[-1] > result.recording.duration_s - 1.0
    # Lost packets are counted as gaps.
    assert p.tally.gaps > 0
    assert p.tally.lost_samples > 0
