"""A simulated thigh sensor doing clamshells, as native-protocol packets.

This is the stream the README's main command decodes. The exercise-aware simulator with
ground truth (kinematics per exercise, form faults, link effects) builds on the same
pieces: `_rotation` for orientation and `Packetizer` for the wire format.
"""

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from hipsense.protocol import GRAVITY_M_S2, PayloadKind, StreamFormat, quantize_raw

from ._packetizer import Packetizer
from ._rotation import axis_angle_quat, interval_rates, min_jerk, quat_conj, quat_mul, rotate

__all__ = ["DemoSensor"]

F64Array = NDArray[np.float64]


@dataclass
class DemoSensor:
    """Clamshell reps (side-lying hip external rotation) seen by a thigh IMU.

    Each rep: 1.2 s up to `rom_deg`, a `hold_s` pause at the top, 1.8 s down, 2 s rest,
    after `lead_s` of lying still. The sensor sits on the lateral thigh, tilted by a fixed
    mounting error, with white gyro and accelerometer noise and a constant gyro bias.
    """

    fmt: StreamFormat = field(default_factory=StreamFormat)
    rom_deg: float = 40.0
    hold_s: float = 2.0
    lead_s: float = 3.0
    seed: int = 0
    att_payload: int = 244
    drop_ratio: float = 0.01

    def __post_init__(self) -> None:
        self._rng = np.random.default_rng(self.seed)
        self.packetizer = Packetizer(
            kind=PayloadKind.RAW, att_payload=self.att_payload, period_us=self.fmt.period_us
        )
        self._n = 0
        mount_axis = np.array([0.3, -0.8, 0.5])
        self._mount = axis_angle_quat(mount_axis, np.array(np.deg2rad(12.0)))
        self._gyro_bias = self._rng.normal(0.0, 0.01, 3)
        self.rep_s = 1.2 + self.hold_s + 1.8 + 2.0

    def angle_deg(self, t_s: F64Array) -> F64Array:
        """Hip external rotation at times `t_s`, degrees."""
        t = np.asarray(t_s) - self.lead_s
        phase = np.mod(t, self.rep_s)
        up = min_jerk(phase / 1.2)
        down = 1.0 - min_jerk((phase - 1.2 - self.hold_s) / 1.8)
        shape = np.where(phase < 1.2 + self.hold_s, up, down)
        return np.where(t < 0, 0.0, self.rom_deg * shape)

    def samples(self, n: int) -> tuple[F64Array, F64Array, F64Array]:
        """The next `n` samples: time (s), specific force (m/s^2) and rate (rad/s)."""
        dt = 1.0 / self.fmt.rate_hz
        t = (self._n + np.arange(n + 1, dtype=np.float64)) * dt
        # Side-lying: the thigh's long axis is horizontal, rotation is about it.
        q_body = axis_angle_quat(np.array([1.0, 0.0, 0.0]), np.deg2rad(self.angle_deg(t)))
        q = quat_mul(q_body, self._mount)  # sensor-to-world
        up = np.array([0.0, 0.0, GRAVITY_M_S2])
        acc = rotate(quat_conj(q[:-1]), np.broadcast_to(up, (n, 3)))
        # Body rate from consecutive orientations, expressed in the sensor frame.
        gyr = interval_rates(q, dt)
        acc = acc + self._rng.normal(0.0, 0.02, (n, 3))
        gyr = gyr + self._gyro_bias + self._rng.normal(0.0, 0.003, (n, 3))
        self._n += n
        return t[:-1], acc, gyr

    def packets(self, n: int) -> list[bytes]:
        """Packets carrying the next `n` samples, some dropped as on a busy radio."""
        _, acc, gyr = self.samples(n)
        out = self.packetizer.packets(quantize_raw(acc, gyr, self.fmt))
        keep = self._rng.random(len(out)) >= self.drop_ratio
        return [p for p, k in zip(out, keep, strict=True) if k]
