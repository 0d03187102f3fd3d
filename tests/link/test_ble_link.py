"""The BLE link end to end: real bleak, the emulated BlueZ on a private D-Bus."""

import asyncio
import contextlib
import dataclasses
import re
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import numpy as np
import pytest

from hipsense.link import BleLink, BleLinkError, BleLinkSettings, scan
from hipsense.protocol import Gap, MalformedPacket, SampleBlock, StreamFormat
from hipsense_sim.bluez import PrivateBus, sensor_source
from tests.brokers import until

from .conftest import SENSOR, Emulator

FAST = BleLinkSettings(scan_timeout_s=5.0, backoff_base_s=0.1, backoff_max_s=1.0)


@dataclass
class Received:
    blocks: list[SampleBlock] = field(default_factory=list)
    gaps: list[Gap] = field(default_factory=list)
    malformed: list[MalformedPacket] = field(default_factory=list)

    @property
    def samples(self) -> int:
        return sum(b.count for b in self.blocks)


@contextlib.asynccontextmanager
async def streaming(link: BleLink) -> AsyncIterator[Received]:
    got = Received()

    async def consume() -> None:
        async for item in link.items():
            if isinstance(item, SampleBlock):
                got.blocks.append(item)
            elif isinstance(item, Gap):
                got.gaps.append(item)
            else:
                got.malformed.append(item)

    task = asyncio.create_task(consume())
    try:
        yield got
    finally:
        await asyncio.sleep(0)
        if task.done():
            task.result()


def assert_same_as_sent(got: Received, fmt: StreamFormat) -> None:
    """Every sample that arrived is the one the sensor sampled at that instant; the rest
    of the span is exactly what the reported gaps say was lost."""
    src = sensor_source(0, fmt.rate_hz, fmt.accel_range_g, fmt.gyro_range_dps)
    k = np.concatenate([b.t_sensor_us for b in got.blocks]) // fmt.period_us
    acc = np.concatenate([b.acc_m_s2 for b in got.blocks if b.acc_m_s2 is not None])
    gyr = np.concatenate([b.gyr_rad_s for b in got.blocks if b.gyr_rad_s is not None])
    expected = src[k % src.shape[0]]
    np.testing.assert_allclose(acc, expected[:, :3] * fmt.accel_lsb_m_s2, rtol=0, atol=1e-9)
    np.testing.assert_allclose(gyr, expected[:, 3:] * fmt.gyro_lsb_rad_s, rtol=0, atol=1e-12)
    assert np.all(np.diff(k) > 0), "in order, no sample twice"
    span = int(k[-1] - k[0] + 1)
    assert span == len(k) + sum(g.lost_samples for g in got.gaps)


async def test_scan_lists_the_emulated_sensor(emulator: Emulator) -> None:
    found = await scan(1.5)
    assert [(s.address, s.name) for s in found] == [(SENSOR, "hipsense-4853")]
    assert -70 <= found[0].rssi_dbm <= -50
    assert found[0].battery_pct == 87


async def test_stream_heals_after_link_loss_and_a_stall_then_stops_cleanly(
    emulator: Emulator,
) -> None:
    async with BleLink(SENSOR, settings=FAST) as link, streaming(link) as got:
        await until(lambda: got.samples >= 300, 20)  # 3 s at 100 Hz
        assert link.att_payload == 244
        assert link.telemetry.connected
        assert link.telemetry.battery_pct == 87
        assert link.telemetry.rssi_dbm is not None
        assert -70 <= link.telemetry.rssi_dbm <= -50
        assert 4 <= link.telemetry.packets_per_s <= 7  # 19 samples a packet at 100 Hz

        # Link loss: BlueZ says Connected=false; the link reconnects by itself and the
        # sensor sends what it kept meanwhile (protocol 1.1 backlog), so nothing is lost.
        await emulator.drop_link(0.5)
        await until(lambda: link.telemetry.reconnects == 1, 20)
        before = got.samples
        await until(lambda: got.samples >= before + 200, 20)
        assert got.gaps == [], "the backlog covered the time without a link"
        assert (await emulator.counts())["replayed"] > 0

        # Stall: connected, but the sensor sends nothing; the watchdog restarts the link.
        await emulator.stall(2.5)
        await until(lambda: link.telemetry.stalls == 1, 20)
        await until(lambda: link.telemetry.reconnects == 2, 20)
        before = got.samples
        await until(lambda: got.samples >= before + 200, 20)
        assert len(got.gaps) == 1, "what the stalled sensor never sent is a gap"
    assert not link.telemetry.connected
    counts = await emulator.counts()
    assert counts["link_drops"] == 1
    assert counts["stalls"] == 1
    assert got.malformed == []
    assert_same_as_sent(got, link.fmt)
    # Clean stop: the sensor was told to stop and the link closed, so nothing more goes out.
    sent = counts["packets_sent"]
    await asyncio.sleep(0.6)
    assert (await emulator.counts())["packets_sent"] == sent


async def test_a_sensor_without_backlog_leaves_a_gap_of_the_time_it_was_away(
    emulator: Emulator,
) -> None:
    await emulator.set_backlog(0)  # a protocol 1.0 sensor: it stops streaming when alone
    async with BleLink(SENSOR, settings=FAST) as link, streaming(link) as got:
        await until(lambda: got.samples >= 200, 20)
        await emulator.drop_link(1.0)
        await until(lambda: link.telemetry.reconnects == 1, 20)
        before = got.samples
        await until(lambda: got.samples >= before + 200, 20)
    assert len(got.gaps) == 1
    assert got.gaps[0].lost_samples >= 100  # at least the second the link was down
    assert (await emulator.counts())["replayed"] == 0
    assert_same_as_sent(got, link.fmt)


@pytest.mark.parametrize("emulator", [23], indirect=True)
async def test_mtu_23_sends_one_sample_a_packet(emulator: Emulator) -> None:
    async with BleLink(SENSOR, settings=FAST) as link, streaming(link) as got:
        await until(lambda: got.samples >= 300, 20)
        assert link.att_payload == 20
        stream = link.telemetry.stream
        assert stream is not None
        assert stream.packets == stream.samples  # one sample a packet, none lost
        assert 80 <= link.telemetry.packets_per_s <= 120
    assert_same_as_sent(got, link.fmt)


async def test_loss_duplicates_and_malformed_packets_are_counted_as_injected(
    emulator: Emulator,
) -> None:
    # A watchdog longer than the silence that 4 lost packets and a held-back burst make.
    patient = dataclasses.replace(FAST, stall_min_s=5.0)
    async with BleLink(SENSOR, settings=patient) as link, streaming(link) as got:
        await until(lambda: got.samples >= 100, 20)
        await emulator.inject(lose=4, duplicate=6, malformed=3)
        await asyncio.sleep(2.5)
        await emulator.burst(8)  # a backlog delivered back to back
        await asyncio.sleep(2.5)
        before = got.samples
        await until(lambda: got.samples >= before + 100, 20)  # the stream goes on
    counts = await emulator.counts()
    stream = link.telemetry.stream
    assert stream is not None
    print(
        f"\ninjected: lost {counts['lost_packets']}, duplicates {counts['duplicates']}, "
        f"malformed {counts['malformed']}; telemetry: lost {stream.lost_packets}, "
        f"duplicates {stream.duplicates}, malformed {stream.malformed}, "
        f"loss {link.telemetry.loss_pct:.2f} %"
    )
    assert (stream.lost_packets, stream.duplicates, stream.malformed) == (4, 6, 3)
    assert len(got.malformed) == 3
    assert link.telemetry.queue_overflows == 0
    assert (link.telemetry.reconnects, link.telemetry.stalls) == (0, 0)
    assert_same_as_sent(got, link.fmt)


async def test_hipsense_scan_finds_the_emulated_sensor(
    emulator: Emulator, private_bus: PrivateBus
) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "hipsense", "scan", "--timeout", "1.5",
        stdout=asyncio.subprocess.PIPE, env=private_bus.env(),
    )  # fmt: skip
    out, _ = await proc.communicate()
    assert proc.returncode == 0
    lines = out.decode().splitlines()
    assert lines[0].split() == ["address", "kind", "name", "RSSI", "battery"]
    assert re.fullmatch(rf"{SENSOR}  hipsense +hipsense-4853 +-\d\d dBm +87 %", lines[1])


async def test_a_decode_task_that_dies_ends_the_stream_with_an_error(emulator: Emulator) -> None:
    # Whatever kills the decoding task (here a fault planted in the reassembler), the
    # consumer gets an error naming the task, never a stream that just ends.
    async with BleLink(SENSOR, settings=FAST) as link:

        def broken(*_: object) -> list[object]:
            raise RuntimeError("planted fault")

        items = link.items()
        await anext(items)  # streaming
        link._reassembler.push_many = broken  # type: ignore[method-assign]

        async def drain() -> None:
            async with asyncio.timeout(10):
                async for _ in items:
                    pass

        with pytest.raises(BleLinkError, match=r"decode task died.*planted fault"):
            await drain()


async def test_a_sensor_not_found_at_start_is_looked_for_again(
    emulator: Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    # Switched off or out of range when the service starts: the link keeps looking
    # (with backoff) instead of ending; it may come back.
    settings = BleLinkSettings(scan_timeout_s=0.5, backoff_base_s=0.05, backoff_max_s=0.2)
    async with BleLink("C0:FF:EE:00:00:01", settings=settings) as link:
        items = link.items()
        nxt = asyncio.ensure_future(anext(items))
        await until(lambda: sum("retrying in" in r.getMessage() for r in caplog.records) >= 2, 20)
        assert not nxt.done()  # no error, no end: still looking
        nxt.cancel()
        with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
            await nxt
    assert any("expected it to advertise" in r.getMessage() for r in caplog.records)
