"""Cut a sampled IMU stream into native-protocol packets, as sensor firmware does."""

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from hipsense.protocol import PayloadKind, encode, max_samples_per_packet

__all__ = ["Packetizer"]


@dataclass
class Packetizer:
    """Turns int16 sample counts into IMU data packets of at most `att_payload` bytes.

    Keeps the running sequence number and sensor clock between calls, so feeding a
    stream in pieces gives the packets it would give whole, as long as every piece is a
    multiple of the packet size (a sensor sends full packets only).
    """

    kind: PayloadKind = PayloadKind.RAW
    att_payload: int = 244
    period_us: int = 10_000
    seq: int = 0
    timestamp_us: int = 0

    def __post_init__(self) -> None:
        self.samples_per_packet = max_samples_per_packet(self.kind, self.att_payload)
        if self.samples_per_packet == 0:
            raise ValueError(
                f"att_payload: kind {self.kind.name} needs at least "
                f"{8 + self.kind.sample_size} bytes, got {self.att_payload}"
            )

    def packets(
        self,
        raw: NDArray[np.int16] | None = None,
        quat_q14: NDArray[np.int16] | None = None,
        *,
        timestamps_us: NDArray[np.int64] | None = None,
    ) -> list[bytes]:
        """Encode samples into packets; a last partial packet is sent as it is.

        `timestamps_us` gives the sensor clock of each sample (a drifting or jittery
        clock); by default samples are `period_us` apart from the running clock.
        """
        n = len(raw) if raw is not None else len(quat_q14) if quat_q14 is not None else 0
        if timestamps_us is None:
            timestamps_us = self.timestamp_us + np.arange(n, dtype=np.int64) * self.period_us
        out = []
        step = self.samples_per_packet
        for start in range(0, n, step):
            stop = min(start + step, n)
            out.append(
                encode(
                    self.kind,
                    self.seq,
                    int(timestamps_us[start]),
                    raw=None if raw is None else raw[start:stop],
                    quat_q14=None if quat_q14 is None else quat_q14[start:stop],
                )
            )
            self.seq += 1
        if n:
            self.timestamp_us = int(timestamps_us[-1]) + self.period_us
        return out
