"""What the benchmark scripts share: one-core pinning and the real dataset."""

import os
from pathlib import Path

import numpy as np

from hipsense.recording import Recording

DATASET_DIR = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "uci_pt_s1"
"""The real thigh-IMU recordings (../shared/datasets/uci_pt_s1, see its FORMAT.md)."""
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
