"""Orientation from accelerometer and gyroscope counts: a Mahony complementary filter.

The quaternion maps sensor-frame vectors to an Earth frame with z up (PROTOCOL.md 3.2):
rotating the measured acceleration at rest by it gives +z. Heading drifts (there is no
magnetometer), which the protocol allows: hipsense uses rotation relative to a start pose.
Plain floats and `math`, so it runs on CircuitPython's single-precision floats.
"""

import math

_Q14 = 16384.0
_DEG = math.pi / 180.0


def _clip16(value):
    return -32768 if value < -32768 else 32767 if value > 32767 else value


class Mahony:
    """Gyro integration pulled towards the gravity direction with gain `kp` (1/s)."""

    def __init__(self, kp=1.0, ki=0.0):
        self.kp = kp
        self.ki = ki
        self.reset()

    def reset(self):
        """Forget the orientation; the next update starts from the accelerometer's tilt."""
        self.q = (1.0, 0.0, 0.0, 0.0)
        self._bias = (0.0, 0.0, 0.0)
        self._started = False

    def _tilt(self, ax, ay, az):
        # The shortest rotation taking the measured up direction (a) to +z.
        w = 1.0 + az
        if w < 1e-6:
            self.q = (0.0, 1.0, 0.0, 0.0)  # upside down: half a turn about x
            return
        n = math.sqrt(w * w + ay * ay + ax * ax)
        self.q = (w / n, ay / n, -ax / n, 0.0)

    def update(self, raw, gyro_range_dps, dt_s):
        """Advance by one sample of raw counts (ax, ay, az, gx, gy, gz) taken `dt_s` apart."""
        ax, ay, az = raw[0], raw[1], raw[2]
        scale = gyro_range_dps * _DEG / 32768.0
        gx, gy, gz = raw[3] * scale, raw[4] * scale, raw[5] * scale
        norm = math.sqrt(ax * ax + ay * ay + az * az)
        if norm > 0.0:
            ax, ay, az = ax / norm, ay / norm, az / norm
            if not self._started:
                self._tilt(ax, ay, az)
                self._started = True
                return
            w, x, y, z = self.q
            # Gravity's direction in the sensor frame as the orientation predicts it.
            vx = 2.0 * (x * z - w * y)
            vy = 2.0 * (w * x + y * z)
            vz = w * w - x * x - y * y + z * z
            ex = ay * vz - az * vy
            ey = az * vx - ax * vz
            ez = ax * vy - ay * vx
            if self.ki > 0.0:
                bx, by, bz = self._bias
                self._bias = (
                    bx + self.ki * ex * dt_s,
                    by + self.ki * ey * dt_s,
                    bz + self.ki * ez * dt_s,
                )
            bx, by, bz = self._bias
            gx += self.kp * ex + bx
            gy += self.kp * ey + by
            gz += self.kp * ez + bz
        w, x, y, z = self.q
        h = 0.5 * dt_s
        w, x, y, z = (
            w + h * (-x * gx - y * gy - z * gz),
            x + h * (w * gx + y * gz - z * gy),
            y + h * (w * gy - x * gz + z * gx),
            z + h * (w * gz + x * gy - y * gx),
        )
        n = math.sqrt(w * w + x * x + y * y + z * z)
        self.q = (w / n, x / n, y / n, z / n)

    def q14(self):
        """The orientation as (w, x, y, z) int16 in Q14 (16384 = 1.0)."""
        w, x, y, z = self.q
        return (
            _clip16(round(w * _Q14)),
            _clip16(round(x * _Q14)),
            _clip16(round(y * _Q14)),
            _clip16(round(z * _Q14)),
        )
