"""What the benchmark scripts share: one-core pinning, the real datasets, resampling."""

import os
from pathlib import Path

import numpy as np

from hipsense.recording import Recording

_DATASETS_ROOT = Path(__file__).resolve().parents[2] / "shared" / "datasets"
DATASETS = {"s1": _DATASETS_ROOT / "uci_pt_s1", "s2": _DATASETS_ROOT / "uci_pt_s2"}
"""The real thigh-IMU recordings, one folder per subject (../shared/datasets/uci_pt_s*,
see their FORMAT.md): the same protocol done by two people."""
DATASET_DIR = DATASETS["s1"]
"""Subject 1 alone, for the scripts that compare one recording (sim_vs_real.py)."""
DATASET_RATE_HZ = 25.0


def pin_one_core() -> str:
    """Run on one CPU, as the targets are per core; say which."""
    try:
        cpu = min(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {cpu})
        return f"pinned to CPU {cpu}"
    except (AttributeError, OSError):
        return "not pinned"


def load_dataset_file(path: Path) -> Recording:
    """One dataset signal file as a raw recording (time index n -> (n - 1) / 25 s)."""
    a = np.loadtxt(path, delimiter=";", skiprows=1)
    return Recording(
        time_s=(a[:, 0] - 1) / DATASET_RATE_HZ,
        acc_m_s2=a[:, 1:4],
        gyr_rad_s=a[:, 4:7],
        quat=None,
        metadata={"source": str(path)},
    )


def overlap(a0: float, a1: float, b0: float, b1: float) -> float:
    """How long the spans [a0, a1] and [b0, b1] share (s), 0 if they are apart."""
    return max(0.0, min(a1, b1) - max(a0, b0))


def resample(rec: Recording, rate_hz: float, factor: float = 1.0) -> Recording:
    """`rec` done `factor` times as slowly, sampled at `rate_hz` from its first sample.

    The time axis is stretched by `factor` and the movement's rates divided by it. The
    gyro's bias (VQF's offline estimate, sample by sample) is the sensor's, not the
    movement's, and stays as recorded: a person moving twice as fast does not double
    their unit's bias (dividing it too turned subject 2's 2.7 deg/s into 5.4 at x0.5).

    Slowed down (`factor` > 1), the accelerometer keeps gravity and has its linear (and
    centripetal) part divided by `factor` squared, as a movement done that much slower
    would (gravity in the sensor frame from VQF's offline 6D orientation, see
    `_GRAVITY_TAU_ACC_S`). Sped up, it is left as recorded: multiplying the linear part
    would multiply the error of that gravity estimate too, so a sped-up variant
    understates the accelerometer's kicks.

    The accelerometer is interpolated linearly; the gyro is resampled by its integral
    (each new sample is the mean rate over its own sample interval), so the result turns
    through the same angles as the recording: plain interpolation at a lower rate skips
    short peaks of rate, and the limb would not come back to where it started (a few
    degrees per rep at 0.7x). At a higher rate the same integral gives a linear
    interpolation, smoothed over one new sample interval.
    """
    t = rec.time_s[0] + (rec.time_s - rec.time_s[0]) * factor
    if factor == 1.0:
        gyr, acc = rec.gyr_rad_s, rec.acc_m_s2
    else:
        quat, bias = _offline(rec)
        gyr = (rec.gyr_rad_s - bias) / factor + bias
        acc = _slowed_acc(rec, quat, factor) if factor > 1.0 else rec.acc_m_s2
    grid = t[0] + np.arange(0.0, float(t[-1] - t[0]), 1.0 / rate_hz)
    # Trapezoid integral of the rate, read at the edges of each new sample interval.
    area = np.concatenate(
        [np.zeros((1, 3)), np.cumsum(0.5 * (gyr[1:] + gyr[:-1]) * np.diff(t)[:, None], axis=0)]
    )
    lo = np.clip(grid - 0.5 / rate_hz, t[0], t[-1])
    hi = np.clip(grid + 0.5 / rate_hz, t[0], t[-1])

    def interp(x: np.ndarray, at: np.ndarray) -> np.ndarray:
        return np.stack([np.interp(at, t, x[:, i]) for i in range(3)], axis=1)

    return Recording(
        time_s=grid,
        acc_m_s2=interp(acc, grid),
        gyr_rad_s=(interp(area, hi) - interp(area, lo)) / (hi - lo)[:, None],
        quat=None,
        metadata=rec.metadata,
    )


_GRAVITY_TAU_ACC_S = 0.5
"""VQF's accelerometer time constant for the gravity a slowed variant keeps. Where the
limb is still the accelerometer reads gravity alone, and the variant must read the same
there. With VQF's default 3 s, the estimate follows the gyro through a hold, and where a
unit's gyro and accelerometer disagree (subject 2: an accelerometer whose magnitude
varies with the pose by 1 m/s^2) it strays from the still accelerometer by up to 20 deg
(95th percentile per recording: s1 0.4-1.0 deg, s2 1.7-19.7 deg). With 0.5 s: s1 0.4-1.0,
s2 0.5-1.4 deg."""


def _offline(rec: Recording) -> tuple[np.ndarray, np.ndarray]:
    """Gravity's orientation of `rec` (`_GRAVITY_TAU_ACC_S`) and VQF's gyro bias estimate
    (its default settings), per sample."""
    import vqf  # the project's orientation library

    dt = float(np.median(np.diff(rec.time_s)))
    gyr = np.ascontiguousarray(rec.gyr_rad_s, dtype=np.float64)
    acc = np.ascontiguousarray(rec.acc_m_s2, dtype=np.float64)
    bias = vqf.offlineVQF(gyr, acc, None, dt)["bias"]
    quat = vqf.offlineVQF(gyr, acc, None, dt, params={"tauAcc": _GRAVITY_TAU_ACC_S})["quat6D"]
    return np.asarray(quat), np.asarray(bias)


def _slowed_acc(rec: Recording, quat: np.ndarray, factor: float) -> np.ndarray:
    """The accelerometer of `rec` done `factor` times as slowly, on its own samples;
    `quat` is its orientation (`_offline`)."""
    from hipsense._quat import quat_conj, rotate

    acc = np.asarray(rec.acc_m_s2, dtype=np.float64)
    g = float(np.median(np.linalg.norm(acc, axis=1)))
    up = rotate(quat_conj(quat), np.broadcast_to([0.0, 0.0, g], acc.shape))
    return np.asarray(up + (acc - up) / factor**2)
