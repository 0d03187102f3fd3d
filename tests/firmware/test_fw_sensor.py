"""The firmware's control-point state machine and status, read back by hipsense's decoder."""

import pytest
from hipsense_fw import protocol as fw
from hipsense_fw.sensor import Sensor

import hipsense.protocol as hp
from tests.firmware._drive import Loop

START_RAW = bytes([0x01, 1])
START_QUAT = bytes([0x01, 2])
START_RAW_QUAT = bytes([0x01, 3])
STOP = bytes([0x02])


def _result(resp: bytes) -> int:
    r = hp.decode_response(resp)
    return int(r.result)


def _status(s: Sensor) -> hp.SensorStatus:
    return hp.decode_status(s.status())


def test_power_up_status_says_unsynced_and_idle() -> None:
    s = Sensor(firmware=(1, 2, 3), backlog_packets=64)
    st = _status(s)
    assert (st.protocol_major, st.protocol_minor) == (1, 1)
    assert st.firmware == (1, 2, 3)
    assert (st.rate_hz, st.accel_range_g, st.gyro_range_dps) == (100, 8, 1000)
    assert not st.streaming
    assert st.battery_pct is None
    assert st.errors == hp.ErrorFlag.CLOCK_UNSYNCED
    assert st.backlog_packets == 64
    assert len(s.status()) == fw.STATUS_SIZE


def test_time_sync_clears_unsynced_and_echoes_token_and_clock() -> None:
    s = Sensor()
    s.status_changed = False
    resp = hp.decode_response(s.command(bytes.fromhex("0578563412"), 2**32 + 5))
    assert resp.ok
    assert (resp.sync_token, resp.sensor_time_us) == (0x12345678, 5)  # clock wraps at 2^32
    assert _status(s).errors == hp.ErrorFlag(0)
    assert s.status_changed


def test_configuration_is_applied_through_the_board_and_shown_in_status() -> None:
    applied: list[tuple[int, int, int]] = []

    def configure(rate: int, accel: int, gyro: int) -> bool:
        applied.append((rate, accel, gyro))
        return True

    s = Sensor(configure=configure)
    assert _result(s.command(bytes([0x03, 200, 0]), 0)) == hp.ResultCode.SUCCESS
    assert _result(s.command(bytes([0x04, 16, 0xD0, 0x07]), 0)) == hp.ResultCode.SUCCESS
    assert applied == [(200, 8, 1000), (200, 16, 2000)]
    st = _status(s)
    assert (st.rate_hz, st.accel_range_g, st.gyro_range_dps) == (200, 16, 2000)
    assert s.period_us == 5000


def test_imu_refusing_a_setting_fails_the_command_and_flags_it() -> None:
    def configure(rate: int, accel: int, gyro: int) -> bool:
        if gyro == 125:
            raise OSError("I2C NACK")
        return rate != 25

    s = Sensor(configure=configure)
    assert _result(s.command(bytes([0x03, 25, 0]), 0)) == hp.ResultCode.OPERATION_FAILED
    assert _status(s).errors & hp.ErrorFlag.CONFIG_REJECTED
    assert _status(s).rate_hz == 100  # unchanged
    assert _result(s.command(bytes([0x03, 50, 0]), 0)) == hp.ResultCode.SUCCESS
    assert not _status(s).errors & hp.ErrorFlag.CONFIG_REJECTED
    assert _result(s.command(bytes([0x04, 2, 125, 0]), 0)) == hp.ResultCode.OPERATION_FAILED
    assert _status(s).errors & hp.ErrorFlag.CONFIG_REJECTED
    assert _result(s.command(bytes([0x04, 3, 0xE8, 0x03]), 0)) == hp.ResultCode.INVALID_PARAMETER
    assert _status(s).errors & hp.ErrorFlag.CONFIG_REJECTED


def test_configuring_while_streaming_is_not_permitted() -> None:
    s = Sensor()
    s.connect(244)
    s.command(START_RAW, 0)
    assert _status(s).streaming
    for cmd in (bytes([0x03, 50, 0]), bytes([0x04, 4, 0xF4, 0x01])):
        assert _result(s.command(cmd, 0)) == hp.ResultCode.NOT_PERMITTED
    st = _status(s)
    assert (st.rate_hz, st.accel_range_g, st.gyro_range_dps) == (100, 8, 1000)
    assert st.errors & hp.ErrorFlag.CONFIG_REJECTED
    s.command(STOP, 0)
    assert _result(s.command(bytes([0x03, 50, 0]), 0)) == hp.ResultCode.SUCCESS


def test_raw_quat_does_not_fit_mtu_23() -> None:
    s = Sensor()
    s.connect()  # MTU 23 until the host asks for more
    assert _result(s.command(START_RAW_QUAT, 0)) == hp.ResultCode.INVALID_PARAMETER
    assert not s.streaming
    assert _result(s.command(START_QUAT, 0)) == hp.ResultCode.SUCCESS
    s.command(STOP, 0)
    s.set_att_payload(28)  # MTU 31: one RAW_QUAT sample
    assert _result(s.command(START_RAW_QUAT, 0)) == hp.ResultCode.SUCCESS


def test_a_board_that_does_not_fuse_refuses_quaternion_kinds() -> None:
    s = Sensor(fuses=False)
    s.connect(244)
    for cmd in (START_QUAT, START_RAW_QUAT):
        assert _result(s.command(cmd, 0)) == hp.ResultCode.INVALID_PARAMETER
    assert _result(s.command(START_RAW, 0)) == hp.ResultCode.SUCCESS


def test_start_with_the_same_kind_changes_nothing() -> None:
    loop = Loop(Sensor())
    loop.sensor.connect(244)
    loop.command(START_RAW)
    loop.run(55_000)  # 5 samples in the packet being filled
    assert _result(loop.command(START_RAW)) == hp.ResultCode.SUCCESS
    loop.run(140_000)  # 14 more: one full packet of 19
    loop.command(STOP)
    loop.drain()
    sizes = [hp.decode(p, hp.StreamFormat()).count for p, _ in loop.sent]
    assert sizes == [19]


def test_start_with_another_kind_restarts_with_the_next_sequence_number() -> None:
    loop = Loop(Sensor())
    loop.sensor.connect(244)
    loop.command(START_RAW)
    loop.run(250_000)  # 19 + 6 samples
    assert _result(loop.command(START_QUAT)) == hp.ResultCode.SUCCESS
    loop.run(300_000)
    loop.command(STOP)
    loop.drain()
    pkts = [hp.decode(p, hp.StreamFormat()) for p, _ in loop.sent]
    assert [(p.seq, p.kind, p.count) for p in pkts] == [
        (0, hp.PayloadKind.RAW, 19),
        (1, hp.PayloadKind.RAW, 6),  # the old kind's last samples, sent as they are
        (2, hp.PayloadKind.QUAT, 29),
        (3, hp.PayloadKind.QUAT, 1),
    ]
    assert _status(loop.sensor).kind == hp.PayloadKind.QUAT
    # The new stream starts on the next sample time: no sample is sent twice.
    assert pkts[2].timestamp_us > pkts[1].t_us[-1]


def test_stop_sends_the_partial_packet_and_keeps_the_counter() -> None:
    loop = Loop(Sensor())
    loop.sensor.connect(244)
    loop.command(START_RAW)
    loop.run(70_000)
    loop.command(STOP)
    assert not _status(loop.sensor).streaming
    loop.run(100_000)  # not streaming: nothing sampled
    loop.command(START_RAW)
    loop.run(30_000)
    loop.command(STOP)
    loop.drain()
    pkts = [hp.decode(p, hp.StreamFormat()) for p, _ in loop.sent]
    assert [(p.seq, p.count) for p in pkts] == [(0, 7), (1, 3)]
    assert pkts[1].timestamp_us == 180_000  # sample times stay on the 10 ms grid


def test_identify_lasts_the_seconds_asked() -> None:
    s = Sensor()
    assert _result(s.command(bytes([0x06, 3]), 1_000_000)) == hp.ResultCode.SUCCESS
    assert s.identifying(3_999_999)
    assert not s.identifying(4_000_000)


@pytest.mark.parametrize(
    ("pct", "shown", "low"), [(None, None, False), (9, 9, True), (10, 10, False), (150, 100, False)]
)
def test_battery_and_low_battery_flag(pct: int | None, shown: int | None, low: bool) -> None:
    s = Sensor()
    s.set_battery(pct)
    st = _status(s)
    assert st.battery_pct == shown
    assert bool(st.errors & hp.ErrorFlag.LOW_BATTERY) == low


def test_imu_fault_flag() -> None:
    s = Sensor()
    s.set_imu_fault(True)
    assert _status(s).errors & hp.ErrorFlag.IMU_FAULT
    s.set_imu_fault(False)
    assert not _status(s).errors & hp.ErrorFlag.IMU_FAULT


def test_a_late_loop_loses_samples_flags_overflow_and_cuts_the_packet() -> None:
    loop = Loop(Sensor())
    loop.sensor.connect(244)
    loop.command(START_RAW)
    loop.run(50_000)  # samples at 10..50 ms
    loop.now_us += 35_000  # the loop stalls: 60, 70 and 80 ms are missed
    loop.run(10_000)
    assert _status(loop.sensor).errors & hp.ErrorFlag.FIFO_OVERFLOW
    assert loop.sensor.samples_missed == 3
    loop.run(200_000)
    loop.command(STOP)
    loop.drain()
    pkts = [hp.decode(p, hp.StreamFormat()) for p, _ in loop.sent]
    assert [(p.timestamp_us, p.count) for p in pkts[:2]] == [(10_000, 5), (90_000, 19)]
    # A new stream starts with a clean flag.
    loop.command(START_RAW)
    assert not _status(loop.sensor).errors & hp.ErrorFlag.FIFO_OVERFLOW


def test_empty_and_unknown_writes_are_answered() -> None:
    s = Sensor()
    assert s.command(b"", 0) == bytes([0x80, 0x00, 0x02])
    assert s.command(bytes([0x80]), 0) == bytes([0x80, 0x80, 0x02])
    assert s.command(bytes([0x05, 1, 2]), 0) == bytes([0x80, 0x05, 0x03])
