"""`hipsense demo`: a simulated session end to end, from sensor to broker."""

import asyncio
import contextlib
import math
import secrets
import signal
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from pydantic import ValidationError

from hipsense.exercises import load_library
from hipsense.link import SimulatedLink
from hipsense.motion import Calibration, HoldEvent, MotionEvent, RepEvent, SetEvent
from hipsense.mqtt import (
    BrokerConfig,
    BrokerConfigError,
    EmbeddedBroker,
    MqttPublisher,
    Outbox,
    Topics,
    utc_now,
)
from hipsense.session import SessionPipeline

from ._session_runner import run_session
from ._state import default_state_dir, gateway_id, prepare

__all__ = ["DemoOptions", "run_demo"]


@dataclass(frozen=True)
class DemoOptions:
    """What `hipsense demo` simulates and where it publishes."""

    exercise: str = "clamshell"
    variant: str | None = None
    reps: int = 10
    sets: int = 2
    speed: float = 10.0
    """Times real time; `math.inf` as fast as possible."""
    broker_url: str | None = None
    """None: an embedded broker on loopback."""
    broker_ca: Path | None = None
    state_dir: Path | None = None
    gateway_id: str | None = None
    session_id: str | None = None
    seed: int = 0
    rate_hz: int = 100
    mtu: int = 247
    loss: float = 0.01


def new_session_id() -> str:
    """A unique, sortable, meaningless session id."""
    return f"{utc_now():%Y%m%dT%H%M%S}-{secrets.token_hex(3)}"


@contextlib.asynccontextmanager
async def _broker(url: str | None, ca_file: Path | None) -> AsyncIterator[tuple[BrokerConfig, str]]:
    if url is not None:
        try:
            config = BrokerConfig(url=url, ca_file=ca_file)
        except ValidationError as exc:
            raise BrokerConfigError(f"--broker: {exc.errors()[0]['msg']}") from exc
        yield config, f"{config.host}:{config.port}{' (TLS)' if config.tls else ''}"
        return
    async with EmbeddedBroker() as embedded:
        yield embedded.config, f"{embedded.config.url} (embedded; WebSockets {embedded.ws_url})"


def _line(ev: MotionEvent) -> str | None:
    if isinstance(ev, RepEvent):
        flags = " ".join(str(f) for f in ev.flags) or "ok"
        return (
            f"  rep {ev.index + 1:3d}  set {ev.set_index + 1}  {ev.end_s:7.1f} s  "
            f"ROM {ev.rom_deg:5.1f} deg  up {ev.concentric_s:4.1f} s  "
            f"hold {ev.hold_s:4.1f} s  down {ev.eccentric_s:4.1f} s  "
            f"conf {ev.confidence:.2f}  {flags}"
        )
    if isinstance(ev, HoldEvent):
        flags = " ".join(str(f) for f in ev.flags) or "ok"
        return (
            f"  hold {ev.index + 1:2d}  set {ev.set_index + 1}  {ev.end_s:7.1f} s  "
            f"{ev.hold_s:5.1f} s at {ev.angle_deg:5.1f} deg  "
            f"on target {ev.on_target_pct:3.0f} %  {flags}"
        )
    if isinstance(ev, SetEvent):
        return f"  set {ev.index + 1} done: {ev.reps} reps, {ev.holds} holds"
    if isinstance(ev, Calibration) and ev.reason != "axis":
        return f"  calibrated at {ev.t_s:.1f} s ({ev.reason})"
    return None


async def _answer_commands(
    publisher: MqttPublisher, pipeline: SessionPipeline, stop: asyncio.Event, out: TextIO
) -> None:
    """Carry out what a simulated session can: calibrate and stop."""
    while True:
        command = await publisher.commands.get()
        req = command.request.request
        if req.command == "calibrate":
            pipeline.core.calibrate()
            command.reply(session_id=pipeline.session_id)
            print("  command: calibrate", file=out, flush=True)
        elif req.command == "stop_session" and req.session_id == pipeline.session_id:
            command.reply(session_id=pipeline.session_id)
            print("  command: stop", file=out, flush=True)
            stop.set()
        elif req.command == "stop_session":
            command.reply(
                ok=False,
                error=f"session_id: expected {pipeline.session_id!r}, got {req.session_id!r}",
            )
        else:
            command.reply(
                ok=False,
                error=f"{req.command}: the demo runs one simulated session; it cannot "
                "start or change one",
            )


async def run_demo(options: DemoOptions, out: TextIO = sys.stdout) -> int:
    """Simulate, measure and publish one session; print it as it happens."""
    from hipsense_sim import ImuSpec, LinkSpec, ScenarioSpec, SetSpec, simulate

    library = load_library()
    exercise = library[options.exercise]
    spec = ScenarioSpec(
        name=f"demo-{options.exercise}",
        exercise=options.exercise,
        variant=options.variant,
        seed=options.seed,
        sets=[
            SetSpec(reps=options.reps, side="right", rest_after_s=20.0) for _ in range(options.sets)
        ],
        imu=ImuSpec(rate_hz=options.rate_hz),
        link=LinkSpec(mtu=options.mtu, loss_ratio=options.loss),
    )
    result = simulate(spec, exercise)
    state_dir = prepare(options.state_dir or default_state_dir())
    gw = options.gateway_id or gateway_id(state_dir)
    session_id = options.session_id or new_session_id()
    topics = Topics(gw)
    outbox = Outbox(state_dir / "outbox.db")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        async with (
            _broker(options.broker_url, options.broker_ca) as (broker, where),
            MqttPublisher(broker, topics, outbox) as publisher,
            SimulatedLink(result, sensor_id="sim-1", speed=options.speed) as link,
        ):
            pipeline = SessionPipeline(
                session_id=session_id,
                sensor_id=link.sensor_id,
                rate_hz=link.fmt.rate_hz,
                exercise=exercise,
                variant=options.variant,
            )
            speed = "as fast as possible" if math.isinf(options.speed) else f"x{options.speed:g}"
            print(
                f"hipsense demo: {exercise.name} ({exercise.id}), {options.sets} x "
                f"{options.reps} reps simulated, {link.duration_s:.0f} s at {speed}\n"
                f"  broker  {where}\n"
                f"  topics  {topics.prefix}/#   session {session_id}",
                file=out,
                flush=True,
            )
            async with asyncio.TaskGroup() as tg:
                commands = tg.create_task(
                    _answer_commands(publisher, pipeline, stop, out), name="hipsense-demo-commands"
                )
                async for ev in run_session(link, pipeline, publisher, stop=stop):
                    line = _line(ev)
                    if line is not None:
                        print(line, file=out, flush=True)
                commands.cancel()
            summary = pipeline.summary(last_seq=-1)
            truth = result.truth
            print(
                f"summary: {summary.rep_count} reps (simulated {truth['rep_count']}), "
                f"{summary.hold_count} holds, sets {summary.reps_per_set}, mean ROM "
                f"{summary.mean_rom_deg} deg, flags "
                f"{ {str(k): v for k, v in summary.flags.items()} or 'none' }",
                file=out,
                flush=True,
            )
        s = publisher.stats
        print(
            f"published {s.published} messages ({s.live_sent} live frames); "
            f"{len(outbox)} left in the outbox {state_dir / 'outbox.db'}",
            file=out,
            flush=True,
        )
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        outbox.close()
    return 0
