"""The firmware's orientation filter: sensor frame to an Earth frame with z up."""

import math

import numpy as np
import pytest
from hipsense_fw.fusion import Mahony
from hipsense_fw.sensor import Sensor

import hipsense.protocol as hp

ONE_G = 4096  # counts at ±8 g


def _rotate(q: tuple[float, ...], v: tuple[float, float, float]) -> np.ndarray:
    w, x, y, z = q
    r = np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
            [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
            [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
        ]
    )
    return r @ np.array(v)


@pytest.mark.parametrize(
    "acc",
    [(0, 0, ONE_G), (ONE_G, 0, 0), (0, -ONE_G, 0), (2896, 0, 2896), (0, 0, -ONE_G)],
    ids=["flat", "x-up", "y-down", "45deg", "upside-down"],
)
def test_rest_reading_turns_up_onto_z(acc: tuple[int, int, int]) -> None:
    f = Mahony()
    for _ in range(50):
        f.update((*acc, 0, 0, 0), 1000, 0.01)
    up = _rotate(f.q, tuple(a / math.hypot(*acc) for a in acc))  # type: ignore[arg-type]
    np.testing.assert_allclose(up, [0, 0, 1], atol=1e-6)


def test_gyro_about_z_integrates_to_the_angle_turned() -> None:
    """45 °/s about the vertical for 2 s: a quarter turn of heading, tilt untouched."""
    f = Mahony()
    rate = round(45 / 1000 * 32768)  # counts at ±1000 °/s
    for _ in range(200):
        f.update((0, 0, ONE_G, 0, 0, rate), 1000, 0.01)
    x_axis = _rotate(f.q, (1.0, 0.0, 0.0))
    turned = math.degrees(math.atan2(x_axis[1], x_axis[0]))
    # One sample initialises from the accelerometer; 199 integrate the rate.
    assert turned == pytest.approx(199 * 0.01 * rate * 1000 / 32768, abs=0.05)


def test_accelerometer_pulls_a_tilted_estimate_back() -> None:
    f = Mahony(kp=2.0)
    f.update((0, 0, ONE_G, 0, 0, 0), 1000, 0.01)
    f.q = (math.cos(0.15), math.sin(0.15), 0.0, 0.0)  # 17° off about x
    for _ in range(500):
        f.update((0, 0, ONE_G, 0, 0, 0), 1000, 0.01)
    np.testing.assert_allclose(_rotate(f.q, (0.0, 0.0, 1.0)), [0, 0, 1], atol=1e-3)


def test_sensor_streams_the_fused_quaternion() -> None:
    s = Sensor()
    s.connect(244)
    s.command(bytes([0x01, 3]), 0)
    t = 0
    for _ in range(22):
        t += s.period_us
        s.add_sample((ONE_G, 0, 0, 0, 0, 0), t)  # lying on its side, x up
    p = s.next_packet()
    assert p is not None
    pkt = hp.decode(bytes(p), hp.StreamFormat())
    assert pkt.kind == hp.PayloadKind.RAW_QUAT and pkt.count == 11
    assert pkt.quat is not None
    np.testing.assert_allclose(_rotate(tuple(pkt.quat[-1]), (1.0, 0.0, 0.0)), [0, 0, 1], atol=2e-4)
