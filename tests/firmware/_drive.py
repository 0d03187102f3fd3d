"""Drive the firmware's Sensor on a simulated clock, as code.py's main loop does."""

from dataclasses import dataclass, field

import numpy as np
from hipsense_fw.sensor import Sensor

import hipsense.protocol as hp


def raw_at(k: int) -> tuple[int, int, int, int, int, int]:
    """Deterministic, sign-mixed counts for sample index k (both bytes of every int16)."""
    return tuple(((k * 7919 + j * 104729 + 12345) % 65536) - 32768 for j in range(6))  # type: ignore[return-value]


@dataclass
class Loop:
    """The board's main loop without the board: a sensor, its clock, what it sent."""

    sensor: Sensor
    now_us: int = 0
    latency_s: float = 0.015
    """Host time a notification arrives after the loop sends it."""
    host_offset_s: float = 1000.0
    fed: list[tuple[int, tuple[int, ...]]] = field(default_factory=list)
    """(sensor time, raw counts) of every sample handed to the sensor."""
    sent: list[tuple[bytes, float]] = field(default_factory=list)
    """Packets notified, with the host time they arrive."""

    def host_s(self) -> float:
        return self.host_offset_s + self.now_us / 1e6 + self.latency_s

    def command(self, data: bytes) -> bytes:
        return self.sensor.command(data, self.now_us)

    def run(self, duration_us: int, step_us: int | None = None, send: bool = True) -> None:
        """Advance the clock, sampling when due and sending what is due after each step."""
        step = step_us or self.sensor.period_us
        end = self.now_us + duration_us
        while self.now_us < end:
            self.now_us = min(self.now_us + step, end)
            s = self.sensor
            s.poll(self.now_us)
            if s.sample_due(self.now_us):
                k = self.now_us // s.period_us
                raw = raw_at(k)
                s.add_sample(raw, self.now_us)
                self.fed.append((self.now_us - self.now_us % s.period_us, raw))
            if send:
                self.drain()

    def drain(self) -> None:
        while (p := self.sensor.next_packet()) is not None:
            self.sent.append((bytes(p), self.host_s()))
            self.sensor.packet_sent()


def fed_arrays(loop: Loop) -> tuple[np.ndarray, np.ndarray]:
    """The counts and sensor times of every sample the loop handed to the sensor."""
    t = np.array([t for t, _ in loop.fed], dtype=np.int64)
    return np.array([raw for _, raw in loop.fed], dtype=np.int64), t


def counts_of(blocks: list[hp.SampleBlock], fmt: hp.StreamFormat) -> tuple[np.ndarray, np.ndarray]:
    """Raw counts back from the SI units of RAW blocks, and their unwrapped sensor times."""
    acc = np.concatenate([b.acc_m_s2 for b in blocks if b.acc_m_s2 is not None])
    gyr = np.concatenate([b.gyr_rad_s for b in blocks if b.gyr_rad_s is not None])
    counts = np.hstack([acc / fmt.accel_lsb_m_s2, gyr / fmt.gyro_lsb_rad_s])
    return np.rint(counts).astype(np.int64), np.concatenate([b.t_sensor_us for b in blocks])
