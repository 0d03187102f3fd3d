"""The service: sensor links -> sessions -> the publisher, in one TaskGroup.

One wiring for `hipsense run` and `hipsense demo`: the state folder, the outbox and the
history, the broker (embedded or configured), Home Assistant discovery, the signals, the
commands and the sensors' sessions are set up here and nowhere else. `hipsense run` is
the service built from its settings; `hipsense demo` is the same service with one
simulated sensor and a sink that prints what it measures.

Each sensor has a task that keeps its link open and runs one session after another on
its stream (a command can end a session and start the next with another exercise).
SIGTERM or SIGINT: every open session closes its last rep and set and queues its
summary, the outbox is flushed, "offline" is published, and the service exits 0.
"""

import asyncio
import contextlib
import logging
import signal
from collections.abc import (
    AsyncIterator,
    Callable,
    Coroutine,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from rich.console import Console

from hipsense._errors import HipsenseError
from hipsense._text import counted
from hipsense.exercises import Exercise, load_library
from hipsense.history import History
from hipsense.link import SensorLink, SimulatedLink, StreamItem
from hipsense.motion import MotionEvent
from hipsense.mqtt import Command, EmbeddedBroker, MqttPublisher, Outbox, Topics
from hipsense.session import PrescriptionTracker, SessionPipeline, load_programs

from ._config import DaemonSettings, SensorSettings
from ._home_assistant import discovery_for
from ._live_view import HoldClock, LiveView, Row, view_console, view_of
from ._session_runner import close_interrupted, run_session, sensor_state
from ._state import default_state_dir, gateway_id, new_session_id, outbox_broker, prepare

__all__ = ["SensorRun", "Service", "Sink", "Stream", "simulated_link"]

log = logging.getLogger("hipsense.daemon")
_END: Any = object()


@dataclass(frozen=True)
class Stream:
    """A link a sensor's sessions run on, and what its first session measures."""

    link: SensorLink
    exercise: Exercise | None
    """None counts reps about the dominant axis."""
    variant: str | None = None
    hold_s: float | None = None
    """The hold the live view counts down; None: the exercise's own."""
    session_id: str | None = None
    """The first session's id; None: a new one."""
    truth: Mapping[str, Any] | None = None
    """What a simulated patient did (hipsense_sim's truth), for a sink to compare with."""


@dataclass
class SensorRun:
    """A sensor's link, its current session, and how to end that session."""

    config: SensorSettings
    stream: Stream
    queue: asyncio.Queue[Any] = field(default_factory=lambda: asyncio.Queue(4096))
    exercise: Exercise | None = None
    variant: str | None = None
    patient_id: str | None = None
    pipeline: SessionPipeline | None = None
    tracker: PrescriptionTracker | None = None
    end_session: asyncio.Event = field(default_factory=asyncio.Event)
    session_ids: list[str] = field(default_factory=list)
    failed: HipsenseError | None = None
    """Why the link's stream ended for good, if it failed (no Bluetooth adapter...)."""
    measuring: bool = False
    """A session is running now (between `session_started` and `session_ended`)."""

    @property
    def link(self) -> SensorLink:
        """The link of the stream the sensor is on now."""
        return self.stream.link


class Sink:
    """What the service tells as it runs, besides its logs; this one tells nothing.

    `hipsense demo` prints through one (each rep as it is measured, the summaries).
    """

    def started(self, service: "Service", where: str) -> None:
        """The publisher is connected to the broker `where` names."""

    def session_started(self, service: "Service", sensor: SensorRun) -> None:
        """`sensor.pipeline` is a new session."""

    def event(self, service: "Service", sensor: SensorRun, event: MotionEvent) -> None:
        """`event` of the sensor's session is durably queued."""

    def session_ended(self, service: "Service", sensor: SensorRun) -> None:
        """The sensor's session is over: its summary is queued and stored."""

    def command(self, service: "Service", text: str) -> None:
        """A command was carried out (`text` says which)."""

    def finished(self, service: "Service") -> None:
        """Every sensor is done and the publisher closed (the outbox is still open)."""


def simulated_link(
    sensor_id: str,
    *,
    exercise: str,
    variant: str | None = None,
    reps: int,
    sets: int,
    sides: Sequence[str] = ("right",),
    faults: Mapping[str, list[int]] | None = None,
    hold_s: float | None = None,
    seed: int,
    rate_hz: int,
    mtu: int = 247,
    loss: float,
    speed: float,
) -> tuple[SimulatedLink, dict[str, Any]]:
    """A simulated patient doing `sets` x `reps` (per side), and what they did (truth).

    `faults`: rep indexes (from 0) of each form fault, in every set.
    """
    from hipsense_sim import ImuSpec, LinkSpec, ScenarioSpec, SetSpec, simulate

    spec = ScenarioSpec(
        name=f"{sensor_id}-{exercise}",
        exercise=exercise,
        variant=variant,
        seed=seed,
        sets=[
            SetSpec(reps=reps, side=side, rest_after_s=45.0, faults=dict(faults or {}))
            for side in sides
            for _ in range(sets)
        ],
        hold_s=hold_s,
        imu=ImuSpec(rate_hz=rate_hz),
        link=LinkSpec(mtu=mtu, loss_ratio=loss),
    )
    result = simulate(spec, load_library()[exercise])
    return SimulatedLink(result, sensor_id=sensor_id, speed=speed), result.truth


def _make_link(cfg: SensorSettings) -> SensorLink:
    if cfg.ble is not None:
        from hipsense.sensor_kinds import LinkRequest, get_kind

        return get_kind(cfg.kind).make_link(LinkRequest(cfg.ble, cfg.id, cfg.stream_rate_hz))
    sim = cfg.simulated
    assert sim is not None
    link, _ = simulated_link(
        cfg.id,
        exercise=sim.exercise,
        reps=sim.reps,
        sets=sim.sets,
        seed=sim.seed,
        rate_hz=cfg.stream_rate_hz,
        loss=sim.loss,
        speed=sim.speed,
    )
    return link


def configured_streams(cfg: SensorSettings) -> Iterator[Stream]:
    """The one stream of a configured sensor (`hipsense run`), and what it measures first.

    The exercise set, else the simulated one, else the program's first.
    """
    library = load_library()
    exercise = library[cfg.exercise] if cfg.exercise else None
    if cfg.simulated is not None and cfg.exercise is None:
        exercise = library[cfg.simulated.exercise]
    if cfg.program is not None and cfg.exercise is None and cfg.simulated is None:
        exercise = library[load_programs(library=library)[cfg.program].exercises[0].exercise]
    yield Stream(_make_link(cfg), exercise, cfg.variant)


async def _queued(queue: asyncio.Queue[Any]) -> AsyncIterator[StreamItem]:
    """One session's view of the sensor's stream; cancelling a read loses nothing."""
    while True:
        item = await queue.get()
        if item is _END:
            queue.put_nowait(_END)  # the next session sees the end too
            return
        yield item


class Service:
    """The running service; `run()` until stopped.

    `streams` gives each sensor's streams, one after another (default: its configured
    link). With `one_session_per_stream` (the demo) each stream is one session, a
    stop_session command ends the service, and no command starts or changes a session.
    `plain_view`: also print the view's lines when `live` is no terminal.
    """

    def __init__(
        self,
        settings: DaemonSettings,
        *,
        live: Console | TextIO | None = None,
        sink: Sink | None = None,
        streams: Callable[[SensorSettings], Iterable[Stream]] = configured_streams,
        one_session_per_stream: bool = False,
        plain_view: bool = True,
    ) -> None:
        self.settings = settings
        console = live if isinstance(live, Console) or live is None else view_console(live)
        self.view = None if console is None else LiveView(self._view_rows, console)
        """The terminal view (None: none)."""
        self.sink = sink if sink is not None else Sink()
        self.library = load_library()
        self.stop = asyncio.Event()
        self.sensors: dict[str, SensorRun] = {}
        self._streams = streams
        self._per_stream = one_session_per_stream
        self._plain_view = plain_view
        self._clocks: dict[tuple[str, str], HoldClock] = {}

    async def run(self) -> int:
        """Serve until a signal (or every simulated stream ends); return the exit status."""
        s = self.settings
        self.state_dir: Path = prepare(s.state_dir or default_state_dir())
        gw = s.gateway_id or gateway_id(self.state_dir)
        self.topics = topics = Topics(gw, s.broker.topic_prefix)
        configured = s.broker.config(client_id=f"hipsense-{gw}")
        self.outbox = outbox = Outbox(
            self.state_dir / "outbox.db", broker=outbox_broker(configured)
        )
        self.history = History(self.state_dir / "history.db")
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._on_signal, sig)
        try:
            # Sessions a killed gateway left open: ended, marked interrupted, summary queued.
            close_interrupted(self.history, outbox, topics)
            async with contextlib.AsyncExitStack() as stack:
                broker = configured
                if broker is None:
                    embedded = await stack.enter_async_context(
                        EmbeddedBroker(state_dir=self.state_dir)
                    )
                    broker = embedded.config
                    log.info("no broker configured: embedded broker on %s", broker.url)
                    where = f"{broker.url} (embedded; WebSockets {embedded.ws_url})"
                else:
                    where = f"{broker.host}:{broker.port}{' (TLS)' if broker.tls else ''}"
                discovery = discovery_for(
                    s.home_assistant,
                    topics,
                    self.state_dir,
                    s.sensors,
                    lambda: {sid: sensor.link for sid, sensor in self.sensors.items()},
                )
                pub = await stack.enter_async_context(
                    MqttPublisher(broker, topics, outbox, discovery=discovery)
                )
                self.publisher = pub
                log.info("gateway %s publishing under %s/", gw, topics.prefix)
                self.sink.started(self, where)
                await self._serve(pub)
            self.sink.finished(self)
        except* _TaskDiedError:
            # Each dead task said which it was and why (`_loud`); the others were stopped.
            status = 1
        else:
            status = 0
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
            outbox.close()
            self.history.close()
        log.info("stopped" if status == 0 else "stopped: a task died")
        return status

    async def _serve(self, pub: MqttPublisher) -> None:
        async with asyncio.TaskGroup() as tg:
            commands = tg.create_task(
                _loud("hipsense-commands", self._commands(pub)), name="hipsense-commands"
            )
            view = None
            if self.view is not None and (self.view.terminal or self._plain_view):
                view = tg.create_task(_loud("hipsense-view", self.view.run()), name="hipsense-view")
            tasks = [
                tg.create_task(
                    _loud(f"hipsense-{cfg.id}", self._sensor_loop(cfg, pub)),
                    name=f"hipsense-{cfg.id}",
                )
                for cfg in self.settings.sensors
            ]
            await asyncio.gather(*tasks)
            commands.cancel()
            if view is not None:
                view.cancel()

    def _view_rows(self) -> Sequence[Row]:
        rows: list[Row] = []
        for sid, sensor in self.sensors.items():
            if self._per_stream and not sensor.measuring:
                continue  # the demo: a session's line goes once its summary is printed
            p = sensor.pipeline
            if p is None:
                rows.append(f"{sid:<12} connecting...")
                continue
            ex = sensor.exercise
            key = (p.session_id, ex.id if ex else "auto")
            clock = self._clocks.get(key)
            if clock is None:
                hold = sensor.stream.hold_s
                if hold is None:
                    hold = ex.dosage.hold_s if ex else 0.0
                clock = self._clocks[key] = HoldClock(hold, p.core.targets.target_min_deg)
            connected = sensor.link.telemetry.connected
            rows.append(view_of(sid, p, clock, connected=connected))
        return rows

    def _on_signal(self, sig: signal.Signals) -> None:
        log.info("%s: finishing the open sessions", sig.name)
        self._stop_all()

    def _stop_all(self) -> None:
        self.stop.set()
        for sensor in self.sensors.values():
            sensor.end_session.set()

    async def _sensor_loop(self, cfg: SensorSettings, pub: MqttPublisher) -> None:
        streams = iter(self._streams(cfg))
        stream = next(streams)
        sensor = SensorRun(cfg, stream, patient_id=cfg.patient_id)
        if cfg.program is not None:
            program = load_programs(library=self.library)[cfg.program]
            sensor.tracker = PrescriptionTracker(
                program.prescription(cfg.patient_id or "unassigned"), self.library
            )
        self.sensors[cfg.id] = sensor
        while True:
            sensor.stream, sensor.queue = stream, asyncio.Queue(4096)
            sensor.exercise, sensor.variant = stream.exercise, stream.variant
            await self._serve_stream(sensor, pub)
            if sensor.failed is not None:
                # Its state says why (retained), then the service ends naming it: a link
                # that cannot heal is not retried for ever.
                pub.publish_sensor_state(sensor_state(sensor.link, pub.outbox, self.history))
                raise sensor.failed
            following = next(streams, None) if not self.stop.is_set() else None
            if following is None:
                return
            stream = following

    async def _serve_stream(self, sensor: SensorRun, pub: MqttPublisher) -> None:
        """Sessions on the sensor's stream until it ends (or the service stops)."""
        next_id = sensor.stream.session_id
        async with sensor.link, asyncio.TaskGroup() as tg:
            name = f"hipsense-{sensor.config.id}"
            pump = tg.create_task(self._pump(sensor), name=f"{name}-pump")
            watch = tg.create_task(self._watch_link(sensor, pub), name=f"{name}-link-state")
            while not self.stop.is_set():
                await self._one_session(sensor, pub, next_id or new_session_id())
                next_id = None
                if pump.done() or self._per_stream:
                    break  # the stream ended for good (a simulated session is over)
            pump.cancel()
            watch.cancel()

    async def _watch_link(
        self, sensor: SensorRun, pub: MqttPublisher, period_s: float = 1.0
    ) -> None:
        """Publish the sensor state when its link goes up or down.

        A session publishes it as items arrive; a link that dropped sends none, so without
        this `connected` (and Home Assistant's connectivity entity) would stay true until
        the sensor is back.
        """
        connected = sensor.link.telemetry.connected
        while True:
            await asyncio.sleep(period_s)
            if sensor.link.telemetry.connected != connected:
                connected = sensor.link.telemetry.connected
                pub.publish_sensor_state(sensor_state(sensor.link, pub.outbox, self.history))

    async def _pump(self, sensor: SensorRun) -> None:
        try:
            async for item in sensor.link.items():
                await sensor.queue.put(item)
        except HipsenseError as exc:
            sensor.failed = exc
            sensor.end_session.set()
        finally:
            sensor.queue.put_nowait(_END)

    async def _one_session(self, sensor: SensorRun, pub: MqttPublisher, session_id: str) -> None:
        sensor.end_session.clear()
        if self.stop.is_set():
            sensor.end_session.set()
        sensor.session_ids.append(session_id)
        pipeline = SessionPipeline(
            session_id=session_id,
            sensor_id=sensor.config.id,
            rate_hz=sensor.link.fmt.rate_hz,
            exercise=sensor.exercise,
            variant=sensor.variant,
            patient_id=sensor.patient_id,
            tracker=sensor.tracker,
        )
        sensor.pipeline = pipeline
        log.info("sensor %s: session %s (%s)", sensor.config.id, session_id, pipeline.exercise_id)
        self.sink.session_started(self, sensor)
        sensor.measuring = True
        items = _queued(sensor.queue)
        try:
            async for ev in run_session(
                sensor.link,
                pipeline,
                pub,
                stop=sensor.end_session,
                items=items,
                history=self.history,
                keep_raw=self.settings.keep_raw_samples,
            ):
                log.debug("sensor %s: %s", sensor.config.id, ev)
                self.sink.event(self, sensor, ev)
        finally:
            sensor.measuring = False
            await items.aclose()  # type: ignore[attr-defined]
        self.sink.session_ended(self, sensor)
        tally = pipeline.tally
        if pipeline.samples == 0:
            return  # never begun: run_session said so
        log.info(
            "sensor %s: session %s ended: %s, %s, %s",
            sensor.config.id,
            session_id,
            counted(len(tally.reps), "rep"),
            counted(len(tally.holds), "hold"),
            counted(len(tally.sets), "set"),
        )

    async def _commands(self, pub: MqttPublisher) -> None:
        """Carry out commands one at a time; every one is answered, none ends the task.

        A command is checked whole before anything changes: an unknown exercise,
        variant, sensor or session is an error reply and the sessions go on as they were.
        """
        while True:
            command = await pub.next_command()
            try:
                await self._carry_out(command, pub)
            except (HipsenseError, KeyError) as exc:
                why = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
                command.reply(ok=False, error=str(why))
            except Exception as exc:  # a bug must not end the service's command handling
                log.exception("command %s failed", command.request.request.command)
                command.reply(ok=False, error=f"internal error: {exc!r}")

    async def _carry_out(self, command: Command, pub: MqttPublisher) -> None:
        req = command.request.request
        if req.command == "calibrate":
            targets = [self._sensor(req.sensor_id)] if req.sensor_id else [*self.sensors.values()]
            live = [t.pipeline for t in targets if t.pipeline is not None]
            for pipeline in live:
                pipeline.core.calibrate()
            # The session calibrated, when that is one (as the demo always answered).
            command.reply(session_id=live[0].session_id if len(live) == 1 else None)
            self.sink.command(self, "calibrate")
        elif req.command == "stop_session":
            sensor = self._by_session(req.session_id)
            if self._per_stream:
                self._stop_all()  # its stream is that one session: nothing is left to do
            else:
                sensor.end_session.set()
            command.reply(session_id=req.session_id)
            self.sink.command(self, "stop")
        elif self._per_stream:
            command.reply(
                ok=False,
                error=f"{req.command}: the demo runs one simulated session; it cannot "
                "start or change one",
            )
        elif req.command == "change_exercise":
            sensor = self._by_session(req.session_id)
            exercise = self._exercise(req.exercise, req.variant)
            sensor.exercise, sensor.variant = exercise, req.variant
            sensor.end_session.set()
            command.reply(session_id=req.session_id)
        else:  # start_session
            prescription = req.prescription or pub.prescriptions.get(req.patient_id or "")
            if prescription is None:
                command.reply(
                    ok=False,
                    error=f"patient_id: expected a retained prescription for "
                    f"{req.patient_id!r}, found none",
                )
                return
            sensor = self._sensor(req.sensor_id) if req.sensor_id else self._first_sensor()
            for item in prescription.exercises:
                self._exercise(item.exercise, item.variant)
            tracker = PrescriptionTracker(prescription, self.library)
            first = prescription.exercises[0]
            sensor.exercise = self.library[first.exercise]
            sensor.variant = first.variant
            sensor.patient_id = prescription.patient_id
            sensor.tracker = tracker
            sensor.end_session.set()
            # The new session starts once the old one has closed.
            await asyncio.sleep(0.05)
            command.reply(session_id=sensor.session_ids[-1])

    def _exercise(self, exercise_id: str, variant: str | None) -> Exercise:
        """The library's exercise, checked to have the variant (ExerciseError if not)."""
        exercise = self.library[exercise_id]
        exercise.variant(variant)
        return exercise

    def _sensor(self, sensor_id: str) -> SensorRun:
        try:
            return self.sensors[sensor_id]
        except KeyError:
            known = ", ".join(sorted(self.sensors)) or "none"
            raise KeyError(f"sensor_id: expected one of {known}, got {sensor_id!r}") from None

    def _first_sensor(self) -> SensorRun:
        if not self.sensors:
            raise KeyError("sensor_id: expected a running sensor, found none")
        return next(iter(self.sensors.values()))

    def _by_session(self, session_id: str) -> SensorRun:
        for sensor in self.sensors.values():
            if sensor.pipeline is not None and sensor.pipeline.session_id == session_id:
                return sensor
        live = ", ".join(
            repr(s.pipeline.session_id) for s in self.sensors.values() if s.pipeline is not None
        )
        raise KeyError(
            f"session_id: expected a live session ({live or 'none'}), got {session_id!r}"
        )


class _TaskDiedError(Exception):
    """A service task ended by an exception; the task logged it."""


async def _loud(name: str, work: Coroutine[Any, Any, Any]) -> Any:
    """Run `work`; if it raises, log which task died and why, and end the service."""
    try:
        return await work
    except Exception as exc:
        # A HipsenseError says what was wrong in its message; anything else is a bug,
        # and its traceback is what a report needs.
        trace = None if isinstance(exc, HipsenseError) else exc
        log.error("task %s died: %s", name, exc if trace is None else repr(exc), exc_info=trace)
        raise _TaskDiedError(name) from exc
