"""A whole session as hipsense's BLE link runs it (link/_ble.py `_setup`), bytes only.

The host side uses hipsense's own command encoder, response and status decoders and
reassembler; the sensor side is the firmware's state machine. Section 7 of the protocol:
read the status, configure or resume, time sync, start; reconnect and resume; power-up.
"""

import numpy as np
from hipsense_fw.sensor import Sensor

import hipsense.protocol as hp
from tests.firmware._drive import Loop, counts_of, fed_arrays

FMT = hp.StreamFormat(rate_hz=50, accel_range_g=4, gyro_range_dps=500)


class Host:
    """The host's half of a connection, step by step as hipsense's BLE link does it."""

    def __init__(self) -> None:
        self.r = hp.StreamReassembler(FMT)
        self.items: list[hp.StreamItem] = []
        self.received = 0
        self.resumed_from: int | None = None

    def command(self, loop: Loop, cmd: hp.ControlCommand) -> hp.ControlResponse:
        resp = hp.decode_response(loop.command(hp.encode_command(cmd)))
        assert resp.request == hp.encode_command(cmd)[0]
        assert resp.ok, (cmd, resp)
        return resp

    def setup(self, loop: Loop, att_payload: int = 244) -> None:
        loop.sensor.connect(att_payload)
        status = hp.decode_status(loop.sensor.status())
        self.r.reconnected(
            loop.host_s() - loop.latency_s,
            sensor_restarted=hp.ErrorFlag.CLOCK_UNSYNCED in status.errors,
        )
        seq = self.r.resume_seq
        same = (status.rate_hz, status.accel_range_g, status.gyro_range_dps, status.kind) == (
            FMT.rate_hz,
            FMT.accel_range_g,
            FMT.gyro_range_dps,
            hp.PayloadKind.RAW,
        )
        resume = (
            seq
            if seq is not None and status.streaming and status.backlog_packets and same
            else None
        )
        self.resumed_from = resume
        if resume is None:
            self.command(loop, hp.StopStreaming())
            self.command(loop, hp.SetRate(FMT.rate_hz))
            self.command(loop, hp.SetRanges(FMT.accel_range_g, FMT.gyro_range_dps))
        token = 0xC0FFEE
        sync = self.command(loop, hp.TimeSync(token))
        assert sync.sync_token == token
        assert sync.sensor_time_us == loop.now_us % 2**32
        self.command(loop, hp.StartStreaming(hp.PayloadKind.RAW, resume))

    def receive(self, loop: Loop) -> None:
        new = loop.sent[self.received :]
        self.received = len(loop.sent)
        for p, host_s in new:
            self.items += self.r.push(p, host_s)

    def gaps(self) -> list[hp.Gap]:
        return [i for i in self.items if isinstance(i, hp.Gap)]

    def blocks(self) -> list[hp.SampleBlock]:
        return [i for i in self.items if isinstance(i, hp.SampleBlock)]


def test_configure_stream_drop_reconnect_resume_stop() -> None:
    loop = Loop(Sensor(), now_us=3_000_000)
    host = Host()
    host.setup(loop)
    assert host.resumed_from is None
    st = hp.decode_status(loop.sensor.status())
    assert (st.rate_hz, st.accel_range_g, st.gyro_range_dps) == (50, 4, 500)
    assert st.streaming and not st.errors  # TIME_SYNC cleared CLOCK_UNSYNCED
    loop.run(4_000_000)
    host.receive(loop)
    loop.sensor.disconnect(loop.now_us)  # walked out of range for 6 s
    loop.run(6_000_000)
    host.setup(loop)
    assert host.resumed_from is not None  # status said: same stream, still open
    loop.run(2_000_000)
    host.command(loop, hp.StopStreaming())
    loop.drain()
    host.receive(loop)
    host.items += host.r.flush()
    assert host.gaps() == []
    assert host.r.stats.restarts == 0 and host.r.stats.lost_packets == 0
    got, t = counts_of(host.blocks(), FMT)
    want, t_fed = fed_arrays(loop)
    assert len(want) == 600
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(np.diff(t), np.diff(t_fed))


def test_a_sensor_that_powered_up_is_a_restart_for_the_host() -> None:
    loop = Loop(Sensor(), now_us=50_000_000)
    host = Host()
    host.setup(loop)
    loop.run(2_000_000)
    host.receive(loop)
    # Battery swapped: a new firmware instance, its clock from zero, CLOCK_UNSYNCED set.
    loop.sensor.disconnect(loop.now_us)
    host_gone_s = loop.host_s()
    loop.sensor = Sensor()
    loop.host_offset_s += loop.now_us / 1e6 + 3.0  # the host clock ran on
    loop.now_us = 1_000_000
    host.setup(loop)
    assert host.resumed_from is None  # the status does not show the old stream
    loop.run(2_000_000)
    host.receive(loop)
    host.items += host.r.flush()
    gaps = host.gaps()
    assert [g.reason for g in gaps] == ["restart"]
    assert gaps[0].start_host_s < host_gone_s < gaps[0].end_host_s
    assert host.r.stats.restarts == 1
    # Every sample sent arrives; a power cut loses only the packet being filled.
    sent = sum(hp.decode(p, FMT).count for p, _ in loop.sent)
    assert sum(b.count for b in host.blocks()) == sent
    assert len(loop.fed) - sent == 2 * (100 % 19)  # two unfinished packets of 5
