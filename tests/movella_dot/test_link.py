"""MovellaDotLink end to end: real bleak, the emulated DOT on a private D-Bus."""

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import numpy as np
import pytest
from bleak import BleakScanner

from hipsense.exercises import load_library
from hipsense.link import BleLinkError, SensorLink
from hipsense.motion import RepEvent
from hipsense.movella_dot import (
    MovellaDotLink,
    MovellaDotSettings,
    PayloadMode,
    is_movella_dot,
)
from hipsense.protocol import Gap, MalformedPacket, PayloadKind, SampleBlock, StreamFormat
from hipsense.session import SessionPipeline
from hipsense_sim.bluez import sensor_source
from hipsense_sim.bluez._movella_dot import dot_session, dot_values
from tests.brokers import until
from tests.link.conftest import Emulator

from .conftest import DOT, SESSION_REPS

WRAP = 1 << 32


def fast(rate_hz: int = 60, mode: PayloadMode = PayloadMode.RATE_QUANTITIES) -> MovellaDotSettings:
    return MovellaDotSettings(
        rate_hz=rate_hz, mode=mode, scan_timeout_s=5.0, backoff_base_s=0.1, backoff_max_s=1.0
    )


@dataclass
class Received:
    items: list[SampleBlock | Gap | MalformedPacket] = field(default_factory=list)
    first_s: float | None = None

    @property
    def blocks(self) -> list[SampleBlock]:
        return [i for i in self.items if isinstance(i, SampleBlock)]

    @property
    def gaps(self) -> list[Gap]:
        return [i for i in self.items if isinstance(i, Gap)]

    @property
    def samples(self) -> int:
        return sum(b.count for b in self.blocks)


@contextlib.asynccontextmanager
async def streaming(link: SensorLink) -> AsyncIterator[Received]:
    got = Received()

    async def consume() -> None:
        async for item in link.items():
            if got.first_s is None and isinstance(item, SampleBlock):
                got.first_s = time.monotonic()
            got.items.append(item)

    task = asyncio.create_task(consume())
    try:
        yield got
    finally:
        await asyncio.sleep(0)
        if task.done():
            task.result()


def assert_session_samples(got: Received, rate_hz: int, *, first_link: bool = True) -> None:
    """Each sample is the session's at its instant; the span is samples plus gaps.

    The emulated DOT plays its session from the first sample it ever sent, so on the
    first link of an emulator each sample can be looked up by its time since the first.
    """
    u = np.concatenate([b.t_sensor_us for b in got.blocks])
    k = np.round(u * rate_hz / 1e6).astype(np.int64)
    assert np.all(np.diff(k) > 0), "in order, no sample twice"
    assert int(k[-1] - k[0] + 1) == len(k) + sum(g.lost_samples for g in got.gaps)
    # Samples sit on one output-rate grid (its phase is where the host's unwrapping
    # began), unwrapped past 2^32 without a step.
    phase = u - np.round(k * 1e6 / rate_hz)
    np.testing.assert_array_less(np.abs(phase - np.median(phase)), 1.5)
    acc = np.concatenate([b.acc_m_s2 for b in got.blocks if b.acc_m_s2 is not None])
    gyr = np.concatenate([b.gyr_rad_s for b in got.blocks if b.gyr_rad_s is not None])
    assert acc.shape == gyr.shape == (len(u), 3)
    if first_link:
        expected_acc, expected_gyr = dot_values((u - u[0]) * 1e-6, rate_hz)
        # float32 on the air; deg/s there, rad/s here.
        np.testing.assert_allclose(acc, expected_acc, rtol=1e-6, atol=1e-5)
        np.testing.assert_allclose(gyr, expected_gyr, rtol=1e-6, atol=1e-6)


async def test_scan_tells_a_dot_by_its_advertisement(dot_emulator: Emulator) -> None:
    found = await BleakScanner.discover(timeout=1.5, return_adv=True)
    dots = [(d.address, a.local_name) for d, a in found.values() if is_movella_dot(a)]
    assert dots == [(DOT, "Xsens DOT")]
    (adv,) = [a for d, a in found.values() if d.address == DOT]
    assert 0x0886 in adv.manufacturer_data


async def test_delivered_rate_follows_the_configured_rate(
    dot_emulator: Emulator, capsys: pytest.CaptureFixture[str]
) -> None:
    figures = []
    for rate_hz in (10, 20, 30, 60):
        async with MovellaDotLink(DOT, settings=fast(rate_hz)) as link, streaming(link) as got:
            await until(lambda: got.first_s is not None, 20)
            await asyncio.sleep(0.5)
            n0, t0 = got.samples, time.monotonic()
            await asyncio.sleep(3.0)
            window_s = time.monotonic() - t0
            delivered = (got.samples - n0) / window_s
            figures.append((rate_hz, delivered, link.telemetry.packets_per_s, window_s))
            assert link.fmt.rate_hz == rate_hz
            assert link.telemetry.battery_pct == 87
            assert link.firmware_version == "2.6.0"
            assert delivered == pytest.approx(rate_hz, rel=0.1)
            assert link.telemetry.packets_per_s == pytest.approx(rate_hz, rel=0.1)
            assert got.gaps == []
            assert_session_samples(got, rate_hz, first_link=rate_hz == 10)
            h = np.concatenate([b.t_host_s for b in got.blocks])
            # Mapped host times run at the output rate, whatever the arrival jitter.
            assert np.median(np.diff(h)) == pytest.approx(1 / rate_hz, rel=0.02)
    with capsys.disabled():
        for rate_hz, delivered, pps, window_s in figures:
            print(
                f"\nDOT {rate_hz:2d} Hz configured: {delivered:.2f} samples/s delivered over "
                f"{window_s:.1f} s (telemetry {pps:.1f}/s)"
            )


async def test_reconnect_after_link_drop_and_stall_yields_gaps_and_goes_on(
    dot_emulator: Emulator, capsys: pytest.CaptureFixture[str]
) -> None:
    async with MovellaDotLink(DOT, settings=fast(60)) as link, streaming(link) as got:
        await until(lambda: got.samples >= 120, 20)
        assert link.telemetry.connected
        await dot_emulator.drop_link(1.0)
        await until(lambda: link.telemetry.reconnects == 1, 20)
        before = got.samples
        await until(lambda: got.samples >= before + 120, 20)
        assert len(got.gaps) == 1
        drop = got.gaps[0]
        assert drop.reason == "loss"
        # A DOT stops measuring when its link drops: at least the second out of range.
        assert drop.lost_samples >= 60
        # Back within the outage, the failed Connect, and one backoff.
        assert drop.duration_s < 3.0
        assert drop.duration_s == pytest.approx((drop.lost_samples + 1) / 60, rel=0.05)

        await dot_emulator.stall(2.0)
        await until(lambda: link.telemetry.stalls == 1, 20)
        await until(lambda: link.telemetry.reconnects == 2, 20)
        before = got.samples
        await until(lambda: got.samples >= before + 120, 20)
        assert len(got.gaps) == 2
        assert got.gaps[1].reason == "loss"
    counts = await dot_emulator.counts()
    with capsys.disabled():
        for why, g in zip(("1.0 s link drop", "2.0 s stall"), got.gaps, strict=True):
            print(
                f"\nDOT 60 Hz, {why}: Gap {g.reason}, {g.lost_samples} samples lost, "
                f"{g.duration_s:.2f} s between the samples either side"
            )
    assert not link.telemetry.connected
    assert counts["link_drops"] == 1 and counts["stalls"] == 1
    assert [i for i in got.items if isinstance(i, MalformedPacket)] == []
    assert_session_samples(got, 60)
    u = np.concatenate([b.t_sensor_us for b in got.blocks])
    assert u[0] < WRAP < u[-1], "the DOT's clock wrapped during the test"
    stream = link.telemetry.stream
    assert stream is not None and stream.gaps == 2
    # Clean stop: the DOT was told to stop, so nothing more goes out.
    sent = counts["packets_sent"]
    await asyncio.sleep(0.5)
    assert (await dot_emulator.counts())["packets_sent"] == sent


async def test_lost_and_garbled_notifications_are_gaps_and_malformed_items(
    dot_emulator: Emulator,
) -> None:
    async with MovellaDotLink(DOT, settings=fast(30)) as link, streaming(link) as got:
        await until(lambda: got.samples >= 30, 20)
        await dot_emulator.inject(lose=4, malformed=2)
        before = got.samples
        await until(lambda: got.samples >= before + 30, 20)
    bad = [i for i in got.items if isinstance(i, MalformedPacket)]
    assert len(bad) == 2
    assert "expected 28 or 40 (RATE_QUANTITIES) bytes, got 7" in str(bad[0].error)
    assert [g.lost_samples for g in got.gaps] == [4]
    assert_session_samples(got, 30)


async def test_custom_mode_5_streams_raw_and_quaternion(dot_emulator: Emulator) -> None:
    async with (
        MovellaDotLink(DOT, settings=fast(20, PayloadMode.CUSTOM_MODE_5)) as link,
        streaming(link) as got,
    ):
        await until(lambda: got.samples >= 20, 20)
    b = got.blocks[0]
    assert b.quat is not None and b.acc_m_s2 is not None and b.gyr_rad_s is not None
    np.testing.assert_allclose(b.quat, np.tile([1.0, 0, 0, 0], (b.count, 1)))


def _native_reps(reps: int) -> int:
    """The same session as the native emulated sensor sends it, through the pipeline."""
    fmt = StreamFormat(100, 16, 2000)
    raw = sensor_source(0, fmt.rate_hz, fmt.accel_range_g, fmt.gyro_range_dps, reps)
    p = SessionPipeline(
        session_id="native", sensor_id="native", rate_hz=fmt.rate_hz,
        exercise=load_library()["clamshell"],
    )  # fmt: skip
    n = raw.shape[0]
    for a in range(0, n, 19):  # 19 samples a packet, as at MTU 247
        k = np.arange(a, min(n, a + 19))
        p.feed(
            SampleBlock(
                seq_first=a, seq_last=int(k[-1]), kind=PayloadKind.RAW,
                t_sensor_us=k * fmt.period_us, t_host_s=k / fmt.rate_hz,
                acc_m_s2=raw[k, :3] * fmt.accel_lsb_m_s2,
                gyr_rad_s=raw[k, 3:] * fmt.gyro_lsb_rad_s, quat=None,
            )
        )  # fmt: skip
    p.finish()
    return len(p.tally.reps)


async def test_a_simulated_session_counts_the_same_reps_as_the_native_path(
    dot_session_emulator: Emulator, capsys: pytest.CaptureFixture[str]
) -> None:
    """The whole emulated session (3 clamshells, real time) through link and pipeline."""
    t_s, _, _ = dot_session(0, SESSION_REPS)
    duration_us = round((t_s[-1] + 0.01) * 1e6)
    pipeline: SessionPipeline | None = None
    fed = 0
    async with MovellaDotLink(DOT, settings=fast(60)) as link:
        pipeline = SessionPipeline(
            session_id="dot", sensor_id=link.sensor_id, rate_hz=link.fmt.rate_hz,
            exercise=load_library()["clamshell"],
        )  # fmt: skip
        first_us: int | None = None
        async for item in link.items():
            if not isinstance(item, SampleBlock):
                pipeline.feed(item)
                continue
            if first_us is None:
                first_us = int(item.t_sensor_us[0])
            keep = item.t_sensor_us - first_us < duration_us
            if keep.all():
                pipeline.feed(item)
                fed += item.count
                continue
            n = int(np.count_nonzero(keep))
            if n:
                pipeline.feed(_head(item, n))
                fed += n
            break
    pipeline.finish()
    dot_reps = len(pipeline.tally.reps)
    native = _native_reps(SESSION_REPS)
    with capsys.disabled():
        print(f"\nDOT 60 Hz via the emulator: {dot_reps} reps from {fed} samples", end="")
        print(f"; the native path at 100 Hz: {native} reps")
    assert pipeline.tally.gaps == 0 and pipeline.tally.malformed == 0
    assert fed == pytest.approx(t_s[-1] * 60, abs=2)
    assert dot_reps == native == SESSION_REPS
    assert all(isinstance(r, RepEvent) for r in pipeline.tally.reps)


def _head(block: SampleBlock, n: int) -> SampleBlock:
    return SampleBlock(
        seq_first=block.seq_first, seq_last=block.seq_first + n - 1, kind=block.kind,
        t_sensor_us=block.t_sensor_us[:n], t_host_s=block.t_host_s[:n],
        acc_m_s2=None if block.acc_m_s2 is None else block.acc_m_s2[:n],
        gyr_rad_s=None if block.gyr_rad_s is None else block.gyr_rad_s[:n],
        quat=None if block.quat is None else block.quat[:n],
    )  # fmt: skip


async def test_a_decode_task_that_dies_ends_the_stream_with_an_error(
    dot_emulator: Emulator,
) -> None:
    # Whatever kills the decoding task (here a fault planted in the timeline), the
    # consumer gets an error naming the task, never a stream that just ends.
    async with MovellaDotLink(DOT, settings=fast(60)) as link:

        def broken(*_: object) -> list[object]:
            raise RuntimeError("planted fault")

        items = link.items()
        await anext(items)  # streaming
        link._timeline.push = broken  # type: ignore[method-assign]

        async def drain() -> None:
            async with asyncio.timeout(10):
                async for _ in items:
                    pass

        with pytest.raises(BleLinkError, match=r"decode task died.*planted fault"):
            await drain()
