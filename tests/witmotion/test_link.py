"""The WitMotion link end to end: real bleak, the emulated BlueZ serving a WitMotion unit."""

import asyncio
import contextlib
import dataclasses
import re
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import numpy as np
import pytest
from bleak import BleakClient, BleakScanner

from hipsense.exercises import load_library
from hipsense.link import BleLinkError, scan
from hipsense.protocol import GRAVITY_M_S2, Gap, MalformedPacket, SampleBlock
from hipsense.session import SessionPipeline
from hipsense.witmotion import (
    NOTIFY_CHAR_UUID,
    WRITE_CHAR_UUID,
    WitMotionDecoder,
    WitMotionLink,
    WitMotionSettings,
    encode_save,
    encode_set_rate,
    encode_unlock,
)
from hipsense_sim.bluez import PrivateBus, sensor_source
from tests.brokers import until
from tests.link.conftest import SENSOR, Emulator, start_emulator
from tests.movella_dot.conftest import DOT

from .conftest import REPS, WIT

FAST = WitMotionSettings(
    scan_timeout_s=5.0, connect_timeout_s=3.0, backoff_base_s=0.1, backoff_max_s=1.0
)
ACC_LSB = 16 * GRAVITY_M_S2 / 32768


@dataclass
class Received:
    items: list[SampleBlock | Gap | MalformedPacket] = field(default_factory=list)

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
async def streaming(link: WitMotionLink) -> AsyncIterator[Received]:
    got = Received()

    async def consume() -> None:
        async for item in link.items():
            got.items.append(item)

    task = asyncio.create_task(consume())
    try:
        yield got
    finally:
        await asyncio.sleep(0)
        if task.done():
            task.result()


def reps_of(blocks: list[SampleBlock], rate_hz: int) -> int:
    pipeline = SessionPipeline(
        session_id="s-1", sensor_id="wit", rate_hz=rate_hz, exercise=load_library()["clamshell"]
    )
    for b in blocks:
        pipeline.feed(b)
    pipeline.finish()
    return len(pipeline.tally.reps)


@pytest.mark.parametrize("witmotion", [50], indirect=True)
async def test_a_simulated_session_counts_the_same_reps_as_the_native_path(
    witmotion: Emulator,
) -> None:
    rate_hz = 50
    src = sensor_source(0, rate_hz, 16, 2000, REPS)
    n = src.shape[0]
    settings = dataclasses.replace(FAST, rate_hz=rate_hz)
    async with WitMotionLink(WIT, settings=settings) as link, streaming(link) as got:
        await until(lambda: got.samples >= n, 60)
        telemetry = dataclasses.replace(link.telemetry)
    assert got.gaps == [] and [i for i in got.items if isinstance(i, MalformedPacket)] == []
    blocks, left = [], n
    for b in got.blocks:  # exactly one pass of the session
        take = min(b.count, left)
        blocks.append(
            dataclasses.replace(
                b,
                t_sensor_us=b.t_sensor_us[:take],
                t_host_s=b.t_host_s[:take],
                acc_m_s2=None if b.acc_m_s2 is None else b.acc_m_s2[:take],
                gyr_rad_s=None if b.gyr_rad_s is None else b.gyr_rad_s[:take],
            )
        )
        left -= take
        if left == 0:
            break
    acc = np.concatenate([b.acc_m_s2 for b in blocks if b.acc_m_s2 is not None])
    # The samples of the saved rate, before the link set its own, were dropped: the
    # stream starts a little way into the session, and plays it round once from there.
    counts = np.round(acc / ACC_LSB).astype(np.int64)
    k0 = next(k for k in range(n) if np.array_equal(src[k : k + 8, :3], counts[:8]))
    assert k0 < rate_hz, "less than a second of the session went before the rate was set"
    src = np.roll(src, -k0, axis=0)
    np.testing.assert_allclose(acc, src[:, :3] * ACC_LSB, rtol=0, atol=1e-9)
    t_host = np.concatenate([b.t_host_s for b in blocks])
    assert np.all(np.diff(t_host) > 0)
    # The native path: the same samples, timed by a sensor clock at the nominal rate.
    native = SampleBlock(
        seq_first=0,
        seq_last=0,
        kind=blocks[0].kind,
        t_sensor_us=np.arange(n, dtype=np.int64) * 20_000,
        t_host_s=np.arange(n) / rate_hz,
        acc_m_s2=src[:, :3] * ACC_LSB,
        gyr_rad_s=src[:, 3:] * np.deg2rad(2000) / 32768,
        quat=None,
    )
    witmotion_reps, native_reps = reps_of(blocks, rate_hz), reps_of([native], rate_hz)
    span_s = t_host[-1] - t_host[0]
    print(
        f"\nsimulated session of {REPS} clamshells at {rate_hz} Hz: WitMotion link counted "
        f"{witmotion_reps} reps, native path {native_reps}; {n} samples over {span_s:.1f} s "
        f"host time ({n / span_s:.1f} samples/s delivered)"
    )
    assert witmotion_reps == native_reps == REPS
    assert telemetry.timing == "host" and telemetry.kind == "witmotion"
    assert telemetry.battery_pct == 90.0
    assert telemetry.delivered_rate_hz is not None
    assert 0.9 * rate_hz <= telemetry.delivered_rate_hz <= rate_hz
    assert link.sensor_rate_hz == rate_hz


async def test_the_delivered_rate_follows_the_rate_commands(witmotion: Emulator) -> None:
    device = await BleakScanner.find_device_by_address(WIT, timeout=5.0)
    assert device is not None
    measured: dict[int, float] = {}
    async with BleakClient(device) as client:
        decoder = WitMotionDecoder()
        arrivals: list[tuple[float, int]] = []
        client_cb = lambda _c, d: arrivals.append(  # noqa: E731
            (time.monotonic(), decoder.push(bytes(d)).samples.count)
        )
        await client.start_notify(NOTIFY_CHAR_UUID, client_cb)
        # Without an unlock the unit ignores a rate write.
        await client.write_gatt_char(WRITE_CHAR_UUID, encode_set_rate(100), response=True)
        await asyncio.sleep(0.3)
        assert (await witmotion.counts())["rate_hz"] == 10
        for rate in (10, 20, 50, 100, 200):
            for cmd in (encode_unlock(), encode_set_rate(rate), encode_save()):
                await client.write_gatt_char(WRITE_CHAR_UUID, cmd, response=True)
            await asyncio.sleep(0.5)
            arrivals.clear()
            await asyncio.sleep(2.0)
            span = arrivals[-1][0] - arrivals[0][0]
            measured[rate] = sum(c for _, c in arrivals[1:]) / span
    counts = await witmotion.counts()
    print("\nconfigured Hz -> delivered samples/s: " + ", ".join(
        f"{r} -> {v:.1f}" for r, v in measured.items()))  # fmt: skip
    for rate, got in measured.items():
        assert 0.9 * rate <= got <= 1.02 * rate, (rate, got)
    assert counts["saved_rate_hz"] == 200 and counts["saves"] == 5
    assert counts["ignored_writes"] == 1


@pytest.mark.parametrize("witmotion", [100], indirect=True)
async def test_a_dropped_link_reconnects_with_a_gap_and_goes_on(witmotion: Emulator) -> None:
    async with WitMotionLink(WIT, settings=FAST) as link, streaming(link) as got:
        await until(lambda: got.samples >= 200, 20)
        assert link.telemetry.connected
        # Garbled notifications come out as such and the stream goes on.
        await witmotion.inject(malformed=2)
        before = got.samples
        await until(lambda: got.samples >= before + 100, 20)
        malformed = [i for i in got.items if isinstance(i, MalformedPacket)]
        assert len(malformed) == 2
        assert "expected 0x55 at its start, got 0x20" in str(malformed[0].error)
        await witmotion.drop_link(1.0)
        t_drop = time.monotonic()
        await until(lambda: link.telemetry.reconnects == 1, 20)
        reconnect_s = time.monotonic() - t_drop
        before = got.samples
        await until(lambda: got.samples >= before + 200, 20)
        # The watchdog: connected but silent.
        await witmotion.stall(1.5)
        await until(lambda: link.telemetry.stalls == 1, 20)
        await until(lambda: link.telemetry.reconnects == 2, 20)
        before = got.samples
        await until(lambda: got.samples >= before + 100, 20)
    gaps = got.gaps
    print(
        f"\nreconnect after a 1.0 s drop: connected again {reconnect_s:.2f} s after it; "
        f"gaps: " + ", ".join(f"{g.duration_s:.2f} s / {g.lost_samples} samples" for g in gaps)
    )
    assert len(gaps) == 2
    first_gap = got.items.index(gaps[0])
    assert isinstance(got.items[first_gap - 1], SampleBlock)
    assert isinstance(got.items[first_gap + 1], SampleBlock)
    assert gaps[0].duration_s >= 1.0
    assert (
        0.8 * gaps[0].duration_s * 97 <= gaps[0].lost_samples + 1 <= 1.1 * gaps[0].duration_s * 100
    )
    t_host = np.concatenate([b.t_host_s for b in got.blocks])
    assert np.all(np.diff(t_host) > 0)
    t_us = np.concatenate([b.t_sensor_us for b in got.blocks])
    assert np.all(np.diff(t_us) > 0)
    stream = link.telemetry.stream
    assert stream is not None and (stream.gaps, stream.malformed) == (2, 2)
    assert not link.telemetry.connected


async def test_a_decode_task_that_dies_ends_the_stream_with_an_error(
    witmotion: Emulator,
) -> None:
    async with WitMotionLink(WIT, settings=FAST) as link:
        items = link.items()
        await anext(items)
        # The unit came saved at 10 Hz: the link set, saved and read back 100 Hz.
        assert link.sensor_rate_hz == 100
        counts = await witmotion.counts()
        assert (counts["rate_hz"], counts["saved_rate_hz"]) == (100, 100)

        def broken(_data: bytes) -> object:
            raise RuntimeError("planted fault")

        link._decoder.push = broken  # type: ignore[method-assign,assignment]

        async def drain() -> None:
            async with asyncio.timeout(10):
                async for _ in items:
                    pass

        with pytest.raises(BleLinkError, match=r"decode task died.*planted fault"):
            await drain()


async def test_scan_shows_the_kind_of_each_sensor(private_bus: PrivateBus) -> None:
    proc = await start_emulator(
        private_bus,
        "--sensor",
        f"{SENSOR}=hipsense-4853",
        "--sensor",
        f"witmotion:{WIT}=WT901BLE68",
        "--sensor",
        f"movella-dot:{DOT}=Xsens DOT",
    )
    try:
        found = await scan(1.5)
        assert sorted((s.address, s.kind, s.name) for s in found) == [
            (SENSOR, "hipsense", "hipsense-4853"),
            (DOT, "movella-dot", "Xsens DOT"),
            (WIT, "witmotion", "WT901BLE68"),
        ]
        cli = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "hipsense", "scan", "--timeout", "1.5",
            stdout=asyncio.subprocess.PIPE, env=private_bus.env(),
        )  # fmt: skip
        out, _ = await cli.communicate()
    finally:
        proc.terminate()
        await proc.wait()
    assert cli.returncode == 0
    header, *rows = out.decode().splitlines()
    assert header.split() == ["address", "kind", "name", "RSSI", "battery"]
    by_address = {row.split()[0]: row for row in rows}  # strongest first: either order
    assert len(by_address) == 3
    assert re.fullmatch(rf"{SENSOR}  hipsense +hipsense-4853 +-\d\d dBm +87 %", by_address[SENSOR])
    assert re.fullmatch(rf"{WIT}  witmotion +WT901BLE68 +-\d\d dBm +\?", by_address[WIT])
    assert re.fullmatch(rf"{DOT}  movella-dot +Xsens DOT +-\d\d dBm +\?", by_address[DOT])
