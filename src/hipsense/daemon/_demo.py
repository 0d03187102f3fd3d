"""`hipsense demo`: a simulated session end to end, from sensor to broker."""

import asyncio
import contextlib
import math
import signal
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from pydantic import ValidationError
from rich.console import Console

from hipsense._text import counted, flags_text
from hipsense.exercises import ExerciseError, ExerciseKind, load_library
from hipsense.history import History, write_report
from hipsense.link import SimulatedLink
from hipsense.motion import Calibration, HoldEvent, MotionEvent, RepEvent, SetEvent
from hipsense.mqtt import (
    BrokerConfig,
    BrokerConfigError,
    EmbeddedBroker,
    MqttPublisher,
    Outbox,
    Topics,
)
from hipsense.session import PrescriptionTracker, SessionPipeline, load_programs

from ._home_assistant import demo_discovery
from ._live_view import HoldClock, LiveView, Row, view_console, view_of
from ._session_runner import close_interrupted, run_session
from ._state import default_state_dir, gateway_id, new_session_id, outbox_broker, prepare

__all__ = ["DemoOptions", "run_demo"]


_DEMO_SENSOR = "sim-1"


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
    program: str | None = None
    """A program of configs/programs: each of its exercises as a session, tracked."""
    faults: tuple[tuple[str, int], ...] = ()
    """Form faults the simulated patient makes, as (kind, rep number from 1) in every set."""
    rate_hz: int = 100
    mtu: int = 247
    loss: float = 0.01
    home_assistant: bool = True
    """Announce the simulated sensor to Home Assistant (MQTT discovery)."""


def _broker_config(url: str | None, ca_file: Path | None) -> BrokerConfig | None:
    """The --broker given, checked; None for the embedded broker."""
    if url is None:
        return None
    try:
        return BrokerConfig(url=url, ca_file=ca_file)
    except ValidationError as exc:
        raise BrokerConfigError(f"--broker: {exc.errors()[0]['msg']}") from exc


@contextlib.asynccontextmanager
async def _broker(
    config: BrokerConfig | None, state_dir: Path
) -> AsyncIterator[tuple[BrokerConfig, str]]:
    if config is not None:
        yield config, f"{config.host}:{config.port}{' (TLS)' if config.tls else ''}"
        return
    async with EmbeddedBroker(state_dir=state_dir) as embedded:
        yield embedded.config, f"{embedded.config.url} (embedded; WebSockets {embedded.ws_url})"


def _line(ev: MotionEvent) -> str | None:
    if isinstance(ev, RepEvent):
        flags = flags_text(ev.flags, "ok")
        return (
            f"  rep {ev.index + 1:3d}  set {ev.set_index + 1}  {ev.end_s:7.1f} s  "
            f"ROM {ev.rom_deg:5.1f} deg  up {ev.concentric_s:4.1f} s  "
            f"hold {ev.hold_s:4.1f} s  down {ev.eccentric_s:4.1f} s  "
            f"conf {ev.confidence:.2f}  {flags}"
        )
    if isinstance(ev, HoldEvent):
        flags = flags_text(ev.flags, "ok")
        return (
            f"  hold {ev.index + 1:2d}  set {ev.set_index + 1}  {ev.end_s:7.1f} s  "
            f"{ev.hold_s:5.1f} s at {ev.angle_deg:5.1f} deg  "
            f"on target {ev.on_target_pct:3.0f} %  {flags}"
        )
    if isinstance(ev, SetEvent):
        return f"  set {ev.index + 1} done: {counted(ev.reps, 'rep')}, {counted(ev.holds, 'hold')}"
    if isinstance(ev, Calibration) and ev.reason != "axis":
        return f"  calibrated at {ev.t_s:.1f} s ({ev.reason})"
    return None


async def _answer_commands(
    publisher: MqttPublisher, pipeline: SessionPipeline, stop: asyncio.Event, out: LiveView
) -> None:
    """Carry out what a simulated session can: calibrate and stop."""
    while True:
        command = await publisher.next_command()
        req = command.request.request
        if req.command == "calibrate":
            pipeline.core.calibrate()
            command.reply(session_id=pipeline.session_id)
            out.print("  command: calibrate")
        elif req.command == "stop_session" and req.session_id == pipeline.session_id:
            command.reply(session_id=pipeline.session_id)
            out.print("  command: stop")
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


@dataclass(frozen=True)
class _Step:
    exercise: str
    variant: str | None
    sets: int
    reps: int
    hold_s: float | None
    sides: tuple[str, ...] = ("right",)


def _steps(options: DemoOptions) -> tuple[list[_Step], PrescriptionTracker | None]:
    library = load_library()
    if options.program is None:
        library[options.exercise]  # an unknown id fails here, before anything starts
        return [_Step(options.exercise, options.variant, options.sets, options.reps, None)], None
    programs = load_programs(library=library)
    try:
        program = programs[options.program]
    except KeyError:
        raise ExerciseError(
            f"--program: expected one of {', '.join(sorted(programs))}, got {options.program!r}"
        ) from None
    tracker = PrescriptionTracker(program.prescription("demo-patient"), library)
    steps = [
        _Step(
            line.exercise,
            line.variant,
            line.sets,
            line.reps,
            line.hold_s or None,
            ("right", "left") if line.side == "both" else (line.side,),
        )
        for line in program.exercises
    ]
    return steps, tracker


class _OnShow:
    """The session the live line shows (none between sessions)."""

    def __init__(self) -> None:
        self.session: tuple[SimulatedLink, SessionPipeline, HoldClock] | None = None

    def rows(self) -> list[Row]:
        if self.session is None:
            return []
        link, pipeline, clock = self.session
        return [view_of(link.sensor_id, pipeline, clock, connected=link.telemetry.connected)]


async def run_demo(options: DemoOptions, out: TextIO | Console = sys.stdout) -> int:
    """Simulate, measure and publish a session (or a program); print it as it happens.

    On a terminal a live line (the angle against the target, the count) stays under
    the printed reps; elsewhere the printed lines are plain.
    """
    steps, tracker = _steps(options)
    on_show = _OnShow()
    view = LiveView(on_show.rows, out if isinstance(out, Console) else view_console(out))
    state_dir = prepare(options.state_dir or default_state_dir())
    gw = options.gateway_id or gateway_id(state_dir)
    topics = Topics(gw)
    configured = _broker_config(options.broker_url, options.broker_ca)
    outbox = Outbox(state_dir / "outbox.db", broker=outbox_broker(configured))
    history = History(state_dir / "history.db")
    reports: list[Path] = []
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        close_interrupted(history, outbox, topics)  # sessions a killed demo left open
        async with (
            _broker(configured, state_dir) as (broker, where),
            MqttPublisher(
                broker,
                topics,
                outbox,
                discovery=demo_discovery(
                    topics, state_dir, _DEMO_SENSOR, enabled=options.home_assistant
                ),
            ) as publisher,
        ):
            for line in ("hipsense demo", f"  broker  {where}", f"  topics  {topics.prefix}/#"):
                view.print(line)
            drawing = asyncio.create_task(view.run()) if view.terminal else None
            try:
                for i, step in enumerate(steps):
                    if stop.is_set():
                        break
                    session_id = options.session_id or new_session_id()
                    if options.session_id and len(steps) > 1:
                        session_id = f"{options.session_id}-{i + 1}"
                    await _demo_session(
                        options, step, session_id, publisher, tracker, stop, view, on_show, history
                    )
                    path = state_dir / "reports" / f"{session_id}.html"
                    reports.append(write_report(history, session_id, path))
            finally:
                if drawing is not None:
                    drawing.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await drawing
            if tracker is not None:
                quality = tracker.quality()
                view.print(
                    f"program {options.program}: adherence {100 * tracker.adherence():.0f} %, "
                    f"quality {'—' if quality is None else f'{100 * quality:.0f} %'}"
                )
                for text in [*tracker.advice(), *tracker.notes]:
                    view.print(f"  {text}")
        s = publisher.stats
        view.print(
            f"published {counted(s.published, 'message')} ({counted(s.live_sent, 'live frame')}); "
            f"{len(outbox)} left in the outbox {state_dir / 'outbox.db'}"
        )
        for path in reports:
            view.print(f"report: {path}")
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        outbox.close()
        history.close()
    return 0


async def _demo_session(
    options: DemoOptions,
    step: _Step,
    session_id: str,
    publisher: MqttPublisher,
    tracker: PrescriptionTracker | None,
    stop: asyncio.Event,
    out: LiveView,
    on_show: _OnShow,
    history: History,
) -> None:
    from hipsense_sim import ImuSpec, LinkSpec, ScenarioSpec, SetSpec, simulate

    exercise = load_library()[step.exercise]
    faults: dict[str, list[int]] = {}
    for kind, rep in options.faults:
        if 1 <= rep <= step.reps:
            faults.setdefault(kind, []).append(rep - 1)
    spec = ScenarioSpec(
        name=f"demo-{step.exercise}",
        exercise=step.exercise,
        variant=step.variant,
        seed=options.seed,
        sets=[
            SetSpec(reps=step.reps, side=side, rest_after_s=45.0, faults=faults)
            for side in step.sides
            for _ in range(step.sets)
        ],
        hold_s=step.hold_s,
        imu=ImuSpec(rate_hz=options.rate_hz),
        link=LinkSpec(mtu=options.mtu, loss_ratio=options.loss),
    )
    result = simulate(spec, exercise)
    async with SimulatedLink(result, sensor_id=_DEMO_SENSOR, speed=options.speed) as link:
        pipeline = SessionPipeline(
            session_id=session_id,
            sensor_id=link.sensor_id,
            rate_hz=link.fmt.rate_hz,
            exercise=exercise,
            variant=step.variant,
            patient_id=None if tracker is None else tracker.prescription.patient_id,
            tracker=tracker,
        )
        speed = "as fast as possible" if math.isinf(options.speed) else f"x{options.speed:g}"
        what = "holds" if exercise.kind is ExerciseKind.HOLD else "reps"
        out.print(
            f"{exercise.name} ({exercise.id}): {step.sets} x {step.reps} {what}"
            f"{' per side' if len(step.sides) > 1 else ''} simulated, "
            f"{link.duration_s:.0f} s at {speed}; session {session_id}"
        )
        hold_s = exercise.dosage.hold_s if step.hold_s is None else step.hold_s
        on_show.session = (link, pipeline, HoldClock(hold_s, pipeline.core.targets.target_min_deg))
        async with asyncio.TaskGroup() as tg:
            commands = tg.create_task(
                _answer_commands(publisher, pipeline, stop, out), name="hipsense-demo-commands"
            )
            shown = len(tracker.completed) if tracker is not None else 0
            async for ev in run_session(
                link, pipeline, publisher, stop=stop, history=history, keep_raw=True
            ):
                line = _line(ev)
                if line is not None:
                    out.print(line)
                if tracker is not None:
                    for done in tracker.completed[shown:]:
                        out.print(f"  -> {done}")
                    shown = len(tracker.completed)
            commands.cancel()
        on_show.session = None  # the session's line goes; its summary is printed instead
        summary = pipeline.summary(last_seq=-1)
        truth = result.truth
        simulated = truth["rep_count"] if truth["kind"] == "reps" else truth["hold_count"]
        mean_rom = "—" if summary.mean_rom_deg is None else f"{summary.mean_rom_deg:.1f} deg"
        sets = ", ".join(str(n) for n in summary.reps_per_set) or "none"
        out.print(
            f"summary: {counted(summary.rep_count, 'rep')}, {counted(summary.hold_count, 'hold')} "
            f"(simulated {simulated} {what}), sets: {sets}, mean ROM {mean_rom}, "
            f"flags: {flags_text(summary.flags)}"
        )
