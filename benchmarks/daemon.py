"""The daemon's CPU, latency and memory with simulated 100 Hz sensors, on one core.

    .venv/bin/python benchmarks/daemon.py cpu [--sensors 1,10,50] [--seconds 20]
    .venv/bin/python benchmarks/daemon.py capacity [--seconds 20]
    .venv/bin/python benchmarks/daemon.py latency [--reps 60]
    .venv/bin/python benchmarks/daemon.py memory [--hours 8]
    .venv/bin/python benchmarks/daemon.py rss [--seconds 30]

Everything the daemon does per sensor runs here as in `hipsense run`: the simulated link
(native-protocol packets, reassembly), the session pipeline (motion core), the durable
outbox and the MQTT publisher, sending to a real mosquitto that this script starts on a
free port (a separate process, so its CPU is not counted). Targets (issue: daemon):
CPU <= 1 % of one core per 100 Hz sensor; >= 50 sensors in real time on one core; rep
event p99 <= 50 ms after the sample that completes the rep arrives; RSS <= 120 MB with
one sensor, flat (< 5 MB growth) over a simulated 8-hour session.
"""

import argparse
import asyncio
import contextlib
import getpass
import math
import os
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiomqtt

from _common import pin_one_core
from hipsense.daemon import run_session
from hipsense.exercises import load_library
from hipsense.link import SimulatedLink, StreamItem
from hipsense.motion import RepEvent
from hipsense.mqtt import BrokerConfig, MqttPublisher, Outbox, Topics
from hipsense.protocol import SampleBlock
from hipsense.session import SessionPipeline
from hipsense_sim import LinkSpec, ScenarioSpec, SetSpec, SimulationResult, simulate


def rss_mb() -> float:
    """Resident set size of this process now."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


@contextlib.contextmanager
def mosquitto() -> Iterator[str]:
    """A mosquitto on a free loopback port; yields its URL."""
    binary = shutil.which("mosquitto") or shutil.which("mosquitto", path="/usr/sbin")
    if binary is None:
        raise SystemExit("mosquitto is needed (script/test installs it)")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with tempfile.TemporaryDirectory() as d:
        conf = Path(d) / "m.conf"
        conf.write_text(
            f"listener {port} 127.0.0.1\nallow_anonymous true\nuser {getpass.getuser()}\n"
            "log_dest none\nmax_queued_messages 100000\n"
        )
        proc = subprocess.Popen([binary, "-c", str(conf)], stderr=subprocess.DEVNULL)
        try:
            for _ in range(200):
                with socket.socket() as s:
                    if s.connect_ex(("127.0.0.1", port)) == 0:
                        break
                time.sleep(0.02)
            yield f"mqtt://127.0.0.1:{port}"
        finally:
            proc.terminate()
            proc.wait(10)


def session(reps: int, seed: int, sets: int = 1) -> SimulationResult:
    spec = ScenarioSpec(
        name=f"bench-{seed}",
        exercise="clamshell",
        seed=seed,
        sets=[SetSpec(reps=reps, rest_after_s=30.0) for _ in range(sets)],
        link=LinkSpec(loss_ratio=0.01),
    )
    return simulate(spec, load_library()["clamshell"])


async def run_sensors(
    url: str, results: list[SimulationResult], speed: float, workdir: Path
) -> tuple[float, float, float]:
    """Run one session per result at once; return (wall s, cpu s, worst overrun s).

    The overrun is how long after its data ended (in real time) a session finished: near
    zero when the daemon keeps up, growing when it falls behind.
    """
    exercise = load_library()["clamshell"]
    outbox = Outbox(workdir / f"outbox-{len(results)}.db")
    overruns: list[float] = []
    async with MqttPublisher(BrokerConfig(url=url), Topics("gw-bench"), outbox) as pub:
        while not pub.connected:  # noqa: ASYNC110 -- a benchmark polls what it measures
            await asyncio.sleep(0.01)
        loop = asyncio.get_running_loop()

        async def one(i: int, result: SimulationResult) -> None:
            link = SimulatedLink(result, sensor_id=f"s-{i}", speed=speed)
            pipeline = SessionPipeline(
                session_id=f"bench-{i}", sensor_id=f"s-{i}", rate_hz=100, exercise=exercise
            )
            t0 = loop.time()
            async with link:
                async for _ in run_session(link, pipeline, pub):
                    pass
            if math.isfinite(speed):
                overruns.append(loop.time() - t0 - link.duration_s / speed)

        wall0, cpu0 = time.perf_counter(), time.process_time()
        async with asyncio.TaskGroup() as tg:
            for i, r in enumerate(results):
                tg.create_task(one(i, r))
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    outbox.close()
    return wall, cpu, max(overruns, default=0.0)


def cmd_cpu(args: argparse.Namespace) -> None:
    reps = max(4, int(args.seconds / 5.5))
    print(f"CPU of the daemon per simulated 100 Hz sensor, real time, {pin_one_core()}")
    with mosquitto() as url, tempfile.TemporaryDirectory() as d:
        for n in (int(x) for x in args.sensors.split(",")):
            results = [session(reps, seed=i) for i in range(n)]
            seconds = max(r.recording.duration_s for r in results)
            wall, cpu, overrun = asyncio.run(run_sensors(url, results, 1.0, Path(d)))
            print(
                f"  {n:3d} sensors, {seconds:5.1f} s of data: CPU {100 * cpu / wall:5.2f} % "
                f"of one core, {100 * cpu / wall / n:5.3f} % per sensor; sessions ended "
                f"{overrun:+.2f} s after their data"
            )


def cmd_capacity(args: argparse.Namespace) -> None:
    print(f"Sensors one daemon keeps up with in real time, {pin_one_core()}")
    reps = max(4, int(args.seconds / 5.5))
    with mosquitto() as url, tempfile.TemporaryDirectory() as d:
        # Cost of a sensor-second when nothing waits: the upper bound to verify.
        results = [session(reps, seed=i) for i in range(20)]
        data_s = sum(r.recording.duration_s for r in results)
        _, cpu, _ = asyncio.run(run_sensors(url, results, math.inf, Path(d)))
        bound = int(data_s / cpu)
        print(f"  {cpu / data_s * 1e3:.2f} ms of CPU per sensor-second: at most {bound} sensors")
        n = bound
        while n > 0:
            results = [session(reps, seed=i % 20) for i in range(n)]
            wall, cpu, overrun = asyncio.run(run_sensors(url, results, 1.0, Path(d)))
            kept_up = overrun < 1.0
            print(
                f"  {n:4d} sensors in real time: CPU {100 * cpu / wall:5.1f} %, sessions ended "
                f"up to {overrun:5.2f} s after their data -> "
                f"{'keeps up' if kept_up else 'falls behind'}"
            )
            if kept_up:
                break
            n = int(n * 0.8)


async def _latency(url: str, result: SimulationResult, workdir: Path) -> list[float]:
    """Delay from the arrival of the block that completed a rep to its event at a subscriber."""
    exercise = load_library()["clamshell"]
    arrived: dict[int, float] = {}
    received: dict[int, float] = {}
    loop = asyncio.get_running_loop()
    ready = asyncio.Event()

    async def subscriber() -> None:
        async with aiomqtt.Client("127.0.0.1", int(url.rsplit(":", 1)[1])) as c:
            await c.subscribe("hipsense/v1/gw-lat/sessions/+/events", qos=1)
            ready.set()
            async for m in c.messages:
                import json

                ev = json.loads(bytes(m.payload))["event"]  # type: ignore[arg-type]
                if ev["kind"] == "rep":
                    received[ev["index"]] = loop.time()

    outbox = Outbox(workdir / "lat.db")
    async with asyncio.TaskGroup() as tg:
        sub = tg.create_task(subscriber())
        await ready.wait()
        async with MqttPublisher(BrokerConfig(url=url), Topics("gw-lat"), outbox) as pub:
            link = SimulatedLink(result, sensor_id="s-1", speed=1.0)
            pipeline = SessionPipeline(
                session_id="lat-1", sensor_id="s-1", rate_hz=100, exercise=exercise
            )
            last_arrival = 0.0

            async def stamped() -> AsyncIterator[StreamItem]:
                nonlocal last_arrival
                async for item in link.items():
                    if isinstance(item, SampleBlock):
                        last_arrival = loop.time()
                    yield item

            async with link:
                async for ev in run_session(link, pipeline, pub, items=stamped()):
                    if isinstance(ev, RepEvent):
                        arrived[ev.index] = last_arrival
            while len(received) < len(arrived):  # noqa: ASYNC110
                await asyncio.sleep(0.01)
        sub.cancel()
    outbox.close()
    return [received[i] - arrived[i] for i in arrived]


def cmd_latency(args: argparse.Namespace) -> None:
    result = session(args.reps, seed=3)
    with mosquitto() as url, tempfile.TemporaryDirectory() as d:
        delays = sorted(asyncio.run(_latency(url, result, Path(d))))
    p99 = delays[min(len(delays) - 1, math.ceil(0.99 * len(delays)) - 1)]
    print(
        f"Rep event latency over {len(delays)} reps (real time, loopback mosquitto): from the "
        f"arrival of the block that completes the rep to the event at a subscriber: median "
        f"{statistics.median(delays) * 1e3:.1f} ms, p99 {p99 * 1e3:.1f} ms, max "
        f"{delays[-1] * 1e3:.1f} ms"
    )


def cmd_memory(args: argparse.Namespace) -> None:
    print(f"RSS of the daemon with one sensor, {args.hours:g} simulated hours at high speed")
    start = rss_mb()
    # One hour of exercise, replayed: 8 hours of simulation at once would measure the
    # simulator's arrays, not the daemon.
    hour = session(100, seed=7, sets=6)
    with mosquitto() as url, tempfile.TemporaryDirectory() as d:
        marks = []

        async def run() -> None:
            exercise = load_library()["clamshell"]
            outbox = Outbox(Path(d) / "mem.db")
            async with MqttPublisher(BrokerConfig(url=url), Topics("gw-mem"), outbox) as pub:
                for h in range(int(args.hours)):
                    link = SimulatedLink(hour, sensor_id="s-1", speed=math.inf)
                    pipeline = SessionPipeline(
                        session_id=f"mem-{h}", sensor_id="s-1", rate_hz=100, exercise=exercise
                    )
                    async with link:
                        async for _ in run_session(link, pipeline, pub):
                            pass
                    while len(outbox):  # noqa: ASYNC110
                        await asyncio.sleep(0.05)
                    marks.append(rss_mb())
                    print(
                        f"  after hour {h + 1}: RSS {marks[-1]:6.1f} MB "
                        f"({hour.recording.duration_s / 3600:.2f} h of data each)"
                    )
            outbox.close()

        asyncio.run(run())
    print(
        f"  RSS at start {start:.1f} MB (imports, one simulated hour in memory); "
        f"growth from hour 1 to hour {len(marks)}: {marks[-1] - marks[0]:+.1f} MB"
    )


def cmd_rss(args: argparse.Namespace) -> None:
    """RSS of a real `hipsense run` process with one sensor, sampled while it runs.

    The sensor is a BLE one on the emulated BlueZ (a simulated sensor would add the
    simulator's arrays to the daemon's memory).
    """
    from hipsense_sim.bluez import PrivateBus

    with (
        mosquitto() as url,
        tempfile.TemporaryDirectory() as d,
        PrivateBus() as bus,
    ):
        emulator = subprocess.Popen(
            [shutil.which("python") or "python", "-m", "hipsense_sim.bluez", "--bus", bus.address],
            stdout=subprocess.PIPE,
        )
        assert emulator.stdout is not None
        emulator.stdout.readline()
        config = Path(d) / "h.toml"
        config.write_text(
            f'state_dir = "{d}/state"\n[broker]\nurl = "{url}"\n[[sensors]]\nid = "s-1"\n'
            'ble = "C0:FF:EE:00:48:53"\nexercise = "clamshell"\n'
        )
        proc = subprocess.Popen(
            [shutil.which("hipsense") or "hipsense", "run", "--config", str(config)],
            stderr=subprocess.DEVNULL,
            env=bus.env(),
        )
        samples = []
        try:
            for _ in range(int(args.seconds)):
                time.sleep(1.0)
                status = Path(f"/proc/{proc.pid}/status").read_text()
                kb = next(int(x.split()[1]) for x in status.splitlines() if x.startswith("VmRSS"))
                samples.append(kb / 1024)
        finally:
            proc.terminate()
            proc.wait(30)
            emulator.terminate()
            emulator.wait(10)
    print(
        f"RSS of `hipsense run` with one BLE 100 Hz sensor (emulated BlueZ) over {len(samples)} s: "
        f"after 2 s {samples[1]:.1f} MB, max {max(samples):.1f} MB, last {samples[-1]:.1f} MB"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="what", required=True)
    c = sub.add_parser("cpu")
    c.add_argument("--sensors", default="1,10,50")
    c.add_argument("--seconds", type=float, default=30.0)
    c.set_defaults(func=cmd_cpu)
    k = sub.add_parser("capacity")
    k.add_argument("--seconds", type=float, default=30.0)
    k.set_defaults(func=cmd_capacity)
    lat = sub.add_parser("latency")
    lat.add_argument("--reps", type=int, default=60)
    lat.set_defaults(func=cmd_latency)
    m = sub.add_parser("memory")
    m.add_argument("--hours", type=float, default=8)
    m.set_defaults(func=cmd_memory)
    r = sub.add_parser("rss")
    r.add_argument("--seconds", type=float, default=30)
    r.set_defaults(func=cmd_rss)
    args = ap.parse_args()
    os.environ.setdefault("PYTHONHASHSEED", "0")
    args.func(args)


if __name__ == "__main__":
    main()
