"""The motion core: samples in, calibrations, reps, holds and sets out."""

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from hipsense._errors import HipsenseError
from hipsense.exercises import Exercise
from hipsense.recording import Recording

from ._decimate import Decimator
from ._events import HoldEvent, RepEvent, SetEvent
from ._orientation import OrientationEstimator, OrientationSettings
from ._reference import AngleBlock, Calibration, ReferenceTracker, up_in_sensor
from ._reps import Segmenter
from ._settings import ReferenceSettings, SegmenterSettings
from ._targets import Targets

__all__ = [
    "MAX_RATE_HZ",
    "MIN_RATE_HZ",
    "Analysis",
    "CoreSettings",
    "MotionCore",
    "MotionEvent",
    "MotionInputError",
    "analyze",
]

F64Array = NDArray[np.float64]
MotionEvent = Calibration | RepEvent | HoldEvent | SetEvent
_QUAT_COLS = 4
"""A pose's columns, last in the decimated rows (`MotionCore._stages`)."""
_TINY_M_S2 = 1e-9
"""An accelerometer reading of zero (free fall, a broken sensor) has no direction."""
MIN_RATE_HZ = 20.0
"""Below this, reps of 0.5 s (swinging through) are a handful of samples."""
MAX_RATE_HZ = 2000.0
"""No wearable IMU streams faster (common parts stop at 1.6 kHz; the protocol at 200 Hz);
far beyond it a few-hertz low-pass has its poles too close to one to stay stable."""


class MotionInputError(HipsenseError, ValueError):
    """Samples the motion core cannot work with; says what was expected and found."""


@dataclass(frozen=True)
class CoreSettings:
    """Settings of every stage; the defaults are the product's."""

    orientation: OrientationSettings = field(default_factory=OrientationSettings)
    reference: ReferenceSettings = field(default_factory=ReferenceSettings)
    segmentation: SegmenterSettings = field(default_factory=SegmenterSettings)
    batch_s: float = 0.25
    """Samples are taken through the stages this much at a time: each pass costs a
    fixed share (a radio's 20-sample blocks at 200 Hz are 0.1 s), and a rep's event is
    out 1.5 s after its end at the latest, of which this is a fraction."""
    stage_rate_hz: float = 50.0
    """After orientation, samples are averaged in groups of the largest whole number that
    keeps at least this rate (`_decimate.py`): the thigh's movement has nothing above a
    few hertz (phases of 0.35 s at the fastest), 200 Hz shows the stages no more of it
    than 50 Hz, and costs them four times as much."""


class MotionCore:
    """Pure, synchronous and streaming: feed blocks of any size, get events.

    `update(t_s, gyr_rad_s=..., acc_m_s2=...)` for raw 6-axis input (fused by VQF), or
    `update(t_s, quat=...)` for a sensor's own fused quaternions. `finish()` at the end
    of the stream; `reset()` to start over with the same settings. Feeding a stream in
    blocks of any size gives the same events as feeding it whole.
    """

    def __init__(
        self,
        rate_hz: float,
        exercise: Exercise | None = None,
        *,
        variant: str | None = None,
        settings: CoreSettings | None = None,
    ) -> None:
        """The core for one exercise (None: `auto`) at `rate_hz`."""
        self.rate_hz = float(rate_hz)
        self.exercise = exercise
        self.settings = settings if settings is not None else CoreSettings()
        self.targets = (
            Targets.from_exercise(exercise, variant)
            if exercise is not None
            else Targets.automatic()
        )
        tg = self.targets
        self.orientation = OrientationEstimator(self.rate_hz, self.settings.orientation)
        factor = max(1, int(self.rate_hz // self.settings.stage_rate_hz))
        self._decimator = Decimator(factor, self.rate_hz)
        self.stage_rate_hz = self.rate_hz / factor
        """The rate the reference and the segmenter see (`CoreSettings.stage_rate_hz`)."""
        self.reference = ReferenceTracker(
            self.stage_rate_hz,
            self.settings.reference,
            floor_deg=tg.detect_deg,
            rest_max_deg=tg.rest_max_deg,
            top_max_deg=tg.top_max_deg,
            settled_s=tg.settled_s,
            hold_s=tg.hold_s,
            single_movement=tg.kind == "hold",
            hold_min_s=tg.hold_min_s,
            end_band_ratio=self.settings.segmentation.scale_ratio,
            axis_from_vertical_deg=tg.axis_from_vertical_deg,
        )
        self.segmenter = Segmenter(
            self.stage_rate_hz,
            tg,
            self.settings.segmentation,
            rest_max_deg=tg.rest_max_deg,
            settled_s=tg.settled_s,
            rest_min_s=self.settings.reference.rest_min_s,
            pause_s=self.settings.reference.pause_s,
            still_dps=self.settings.reference.still_dps,
        )
        # Raw input is fused (VQF) only where the heading may be needed: an axis close to
        # the vertical, or `auto`, whose axis is not known. Elsewhere gravity measures
        # every angle and the gyroscope's fusion is not needed.
        vertical = self.settings.reference.vertical_axis_deg
        tilt = tg.axis_from_vertical_deg
        self._fuses = tilt is None or tilt < vertical
        self._batch_n = max(1, round(self.settings.batch_s * self.rate_hz))
        self.reset()

    def reset(self) -> None:
        """Forget everything measured; settings and exercise stay."""
        self.orientation.reset()
        self._decimator.reset()
        self._last_quat: F64Array | None = None  # the last fused pose, sign-aligned
        # What the decimator's rows hold: the accelerometer (raw input), poses.
        self._layout = (True, False)
        self.reference.reset()
        self.segmenter.reset()
        self.last_angles = AngleBlock.empty()
        self._queue: list[tuple[F64Array, F64Array, F64Array | None]] = []
        self._queued = 0
        self._raw_queued = False
        self._done: list[MotionEvent] = []  # completed by a pass `calibrate` forced

    def calibrate(self) -> None:
        """Take the next sample as the neutral start position."""
        self._done += self._run_queue() + self._flush()
        self.reference.calibrate()

    def update(
        self,
        t_s: F64Array,
        *,
        gyr_rad_s: F64Array | None = None,
        acc_m_s2: F64Array | None = None,
        quat: F64Array | None = None,
    ) -> list[MotionEvent]:
        """Take a block of samples; return the events it completed, in stream order.

        Blocks are taken through the stages `CoreSettings.batch_s` at a time: the events
        of a short block may come with a later one (or `finish()`), never out of order.
        """
        t = np.asarray(t_s, dtype=np.float64)
        first: F64Array
        second: F64Array | None
        if quat is not None:
            first, second = np.asarray(quat, dtype=np.float64), None
            if first.ndim != 2 or first.shape[1] != 4:
                raise ValueError(f"quat: expected an (n, 4) array, got {first.shape}")
        elif gyr_rad_s is not None and acc_m_s2 is not None:
            first = np.asarray(gyr_rad_s, dtype=np.float64)
            second = np.asarray(acc_m_s2, dtype=np.float64)
            if second.shape != first.shape or second.ndim != 2 or second.shape[1] != 3:
                raise ValueError(
                    "gyr_rad_s, acc_m_s2: expected two (n, 3) arrays, got "
                    f"{first.shape}, {second.shape}"
                )
        else:
            raise ValueError("update: expected gyr_rad_s and acc_m_s2, or quat")
        if first.shape[0] != t.shape[0]:
            raise ValueError(f"t_s: expected {first.shape[0]} times, got {t.shape[0]}")
        events, self._done = self._done, []
        if self._queue and self._raw_queued != (second is not None):
            events += self._run_queue()
        self._queue.append((t, first, second))
        self._queued += t.shape[0]
        self._raw_queued = second is not None
        if self._queued >= self._batch_n:
            events += self._run_queue()
        return events

    def _run_queue(self) -> list[MotionEvent]:
        """Take the samples waiting through the stages, as one block."""
        if not self._queue:
            return []
        parts, self._queue, self._queued = self._queue, [], 0
        if len(parts) == 1:
            t, first, second = parts[0]
        else:
            t = np.concatenate([p[0] for p in parts])
            first = np.concatenate([p[1] for p in parts])
            raw = [p[2] for p in parts if p[2] is not None]
            second = np.concatenate(raw) if raw else None
        return self._run(t, first, second)

    def _run(self, t: F64Array, first: F64Array, second: F64Array | None) -> list[MotionEvent]:
        """One block through the stages: `first` quaternions, or rates with `second`."""
        fused: F64Array | None
        if second is None:
            ori = self.orientation.update_quat(first, t)
            fused, gyr = ori.quat, ori.gyr_rad_s
            down = None  # gravity comes from the poses
        else:
            down, gyr = second, first
            fused = None
            if self._fuses:
                ori = self.orientation.update_raw(gyr, down, t)
                fused, gyr = ori.quat, ori.gyr_rad_s
        events: list[MotionEvent] = []
        layout = (down is not None, fused is not None)
        if layout != self._layout:
            # Rows of another kind (raw and quaternions, mixed): the group waiting first.
            events += self._flush()
            self._layout = layout
        cols = [t[:, None], gyr]
        if down is not None:
            cols.append(down)
        if fused is not None:
            cols.append(self._aligned(fused))
        return events + self._stages(self._decimator.update(np.hstack(cols)))

    def _aligned(self, quat: F64Array) -> F64Array:
        """The poses, each with the sign nearest the one before.

        q and -q are one pose, and only alike signs average to the pose between them.
        """
        prev = quat[:1] if self._last_quat is None else self._last_quat
        both = np.concatenate([prev, quat])
        flips = np.cumprod(np.where(np.sum(both[1:] * both[:-1], axis=1) < 0, -1.0, 1.0))
        out = quat * flips[:, None]
        self._last_quat = out[-1:].copy()
        return np.asarray(out, np.float64)

    def _flush(self) -> list[MotionEvent]:
        """The samples of the decimator's unfinished group through the stages."""
        return self._stages(self._decimator.flush())

    def _stages(self, rows: F64Array) -> list[MotionEvent]:
        """Decimated rows through the reference and the segmenter.

        Columns: time, gyro (3), the accelerometer (3) for raw input, poses (4) if fused
        (`_layout`).
        """
        if rows.shape[0] == 0:
            return []
        raw, has_poses = self._layout
        t = np.ascontiguousarray(rows[:, 0])
        gyr = np.ascontiguousarray(rows[:, 1:4])
        fused: F64Array | None = None
        if has_poses:
            q = rows[:, -_QUAT_COLS:]
            fused = np.ascontiguousarray(q / np.linalg.norm(q, axis=1, keepdims=True))
        if raw:
            acc = rows[:, 4:7]
            # np.linalg.norm's own arithmetic, without its dispatch (a block's share).
            norm = np.sqrt(np.add.reduce(acc * acc, axis=1, keepdims=True))
            up = acc / np.maximum(norm, _TINY_M_S2)
        else:
            assert fused is not None
            up = up_in_sensor(fused)
        events: list[MotionEvent] = []
        for item in self.reference.update(t, up, fused, gyr):
            if isinstance(item, Calibration):
                events.append(item)
            else:
                self.last_angles = item
                events += self.segmenter.update(item)
        return events

    def finish(self) -> list[MotionEvent]:
        """End of stream: the samples still waiting, then what is still open."""
        events, self._done = self._done, []
        return events + self._run_queue() + self._flush() + list(self.segmenter.finish())


@dataclass(frozen=True)
class Analysis:
    """Everything the core found in a recording."""

    exercise: str
    rate_hz: float
    duration_s: float
    reps: list[RepEvent]
    holds: list[HoldEvent]
    sets: list[SetEvent]
    calibrations: list[Calibration]

    def summary(self) -> dict[str, Any]:
        """Counts and means for a report."""
        flags: dict[str, int] = {}
        events: list[RepEvent | HoldEvent] = [*self.reps, *self.holds]
        for ev in events:
            for f in ev.flags:
                flags[str(f)] = flags.get(str(f), 0) + 1

        def mean(values: Iterable[float]) -> float | None:
            v = list(values)
            return round(float(np.mean(v)), 3) if v else None

        axis = next((c for c in reversed(self.calibrations) if c.axis_sensor is not None), None)
        return {
            "exercise": self.exercise,
            "duration_s": round(self.duration_s, 3),
            "rep_count": len(self.reps),
            "hold_count": len(self.holds),
            "set_count": len(self.sets),
            "reps_per_set": [s.reps for s in self.sets],
            "mean_rom_deg": mean(r.rom_deg for r in self.reps),
            "mean_hold_s": mean([*(r.hold_s for r in self.reps), *(h.hold_s for h in self.holds)]),
            "mean_concentric_s": mean(r.concentric_s for r in self.reps),
            "mean_eccentric_s": mean(r.eccentric_s for r in self.reps),
            "flags": dict(sorted(flags.items())),
            "axis_quality": None if axis is None else round(axis.axis_quality, 3),
        }

    def to_dict(self) -> dict[str, Any]:
        """The JSON document of `hipsense analyze --json`."""
        return {
            "schema": "hipsense.analysis/1",
            "reps": [r.to_dict() for r in self.reps],
            "holds": [h.to_dict() for h in self.holds],
            "sets": [s.to_dict() for s in self.sets],
            "calibrations": [
                {
                    "t_s": c.t_s,
                    "reason": c.reason,
                    "axis_sensor": c.axis_sensor,
                    "axis_quality": c.axis_quality,
                    "gravity_sensor": c.gravity_sensor,
                }
                for c in self.calibrations
            ],
            "summary": self.summary(),
        }


def analyze(
    recording: Recording,
    exercise: Exercise | None = None,
    *,
    variant: str | None = None,
    settings: CoreSettings | None = None,
    block_size: int | None = None,
) -> Analysis:
    """Run the core over a whole recording (in blocks of `block_size`, or at once).

    Uses the recording's quaternions when it has them, else its raw samples. The rate is
    the median sample interval's.
    """
    t = recording.time_s
    if t.shape[0] < 2:
        raise MotionInputError(f"recording: expected at least 2 samples, got {t.shape[0]}")
    rate = float(np.round(1.0 / float(np.median(np.diff(t))), 3))
    if not MIN_RATE_HZ <= rate <= MAX_RATE_HZ:
        raise MotionInputError(
            f"recording: expected a sample rate of {MIN_RATE_HZ:g} to {MAX_RATE_HZ:g} Hz, "
            f"got {rate:g} Hz"
        )
    core = MotionCore(rate, exercise, variant=variant, settings=settings)
    n = t.shape[0]
    step = n if block_size is None else block_size
    events: list[MotionEvent] = []
    for a in range(0, n, step):
        b = min(n, a + step)
        if recording.quat is not None:
            events += core.update(t[a:b], quat=recording.quat[a:b])
        else:
            events += core.update(
                t[a:b], gyr_rad_s=recording.gyr_rad_s[a:b], acc_m_s2=recording.acc_m_s2[a:b]
            )
    events += core.finish()
    return Analysis(
        exercise=core.targets.exercise_id,
        rate_hz=rate,
        duration_s=float(t[-1] - t[0]),
        reps=[e for e in events if isinstance(e, RepEvent)],
        holds=[e for e in events if isinstance(e, HoldEvent)],
        sets=[e for e in events if isinstance(e, SetEvent)],
        calibrations=[e for e in events if isinstance(e, Calibration)],
    )
