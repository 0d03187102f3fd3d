"""`hipsense run`: the service. Sensor links -> sessions -> the publisher, in one TaskGroup.

Each sensor has a task that keeps its link open and runs one session after another on
its stream (a command can end a session and start the next with another exercise).
SIGTERM or SIGINT: every open session closes its last rep and set and queues its
summary, the outbox is flushed, "offline" is published, and the daemon exits 0.
"""

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

from rich.console import Console

from hipsense._errors import HipsenseError
from hipsense._text import counted
from hipsense.exercises import Exercise, load_library
from hipsense.history import History
from hipsense.link import SensorLink, SimulatedLink, StreamItem
from hipsense.mqtt import Command, EmbeddedBroker, MqttPublisher, Outbox, Topics
from hipsense.session import PrescriptionTracker, SessionPipeline, load_programs

from ._config import DaemonSettings, SensorSettings
from ._home_assistant import discovery_for
from ._live_view import HoldClock, LiveView, Row, view_console, view_of
from ._session_runner import close_interrupted, run_session, sensor_state
from ._state import default_state_dir, gateway_id, new_session_id, outbox_broker, prepare

__all__ = ["run_daemon"]

log = logging.getLogger("hipsense.daemon")
_END: Any = object()


@dataclass
class _Sensor:
    """A sensor's link, its current session, and how to end that session."""

    config: SensorSettings
    link: SensorLink
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


def _make_link(cfg: SensorSettings) -> SensorLink:
    if cfg.ble is not None:
        from hipsense.sensor_kinds import LinkRequest, get_kind

        return get_kind(cfg.kind).make_link(LinkRequest(cfg.ble, cfg.id, cfg.stream_rate_hz))
    from hipsense_sim import ImuSpec, LinkSpec, ScenarioSpec, SetSpec, simulate

    sim = cfg.simulated
    assert sim is not None
    spec = ScenarioSpec(
        name=f"sensor-{cfg.id}",
        exercise=sim.exercise,
        seed=sim.seed,
        sets=[SetSpec(reps=sim.reps, rest_after_s=45.0) for _ in range(sim.sets)],
        imu=ImuSpec(rate_hz=cfg.stream_rate_hz),
        link=LinkSpec(loss_ratio=sim.loss),
    )
    return SimulatedLink(
        simulate(spec, load_library()[sim.exercise]), sensor_id=cfg.id, speed=sim.speed
    )


async def _queued(queue: asyncio.Queue[Any]) -> AsyncIterator[StreamItem]:
    """One session's view of the sensor's stream; cancelling a read loses nothing."""
    while True:
        item = await queue.get()
        if item is _END:
            queue.put_nowait(_END)  # the next session sees the end too
            return
        yield item


class Daemon:
    """The running service; `run()` until stopped."""

    def __init__(self, settings: DaemonSettings, *, live: Console | TextIO | None = None) -> None:
        self.settings = settings
        console = live if isinstance(live, Console) or live is None else view_console(live)
        self.view = None if console is None else LiveView(self._view_rows, console)
        """The terminal view (None: none)."""
        self.library = load_library()
        self.stop = asyncio.Event()
        self.sensors: dict[str, _Sensor] = {}
        self._clocks: dict[tuple[str, str], HoldClock] = {}

    async def run(self) -> int:
        """Serve until a signal (or every simulated stream ends); return the exit status."""
        s = self.settings
        state_dir = prepare(s.state_dir or default_state_dir())
        gw = s.gateway_id or gateway_id(state_dir)
        topics = Topics(gw, s.broker.topic_prefix)
        configured = s.broker.config(client_id=f"hipsense-{gw}")
        outbox = Outbox(state_dir / "outbox.db", broker=outbox_broker(configured))
        self.history = History(state_dir / "history.db")
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._on_signal, sig)
        try:
            # Sessions a killed gateway left open: ended, marked interrupted, summary queued.
            close_interrupted(self.history, outbox, topics)
            async with contextlib.AsyncExitStack() as stack:
                broker = configured
                if broker is None:
                    embedded = await stack.enter_async_context(EmbeddedBroker(state_dir=state_dir))
                    broker = embedded.config
                    log.info("no broker configured: embedded broker on %s", broker.url)
                discovery = discovery_for(
                    s.home_assistant,
                    topics,
                    state_dir,
                    s.sensors,
                    lambda: {sid: sensor.link for sid, sensor in self.sensors.items()},
                )
                pub = await stack.enter_async_context(
                    MqttPublisher(broker, topics, outbox, discovery=discovery)
                )
                log.info("gateway %s publishing under %s/", gw, topics.prefix)
                async with asyncio.TaskGroup() as tg:
                    commands = tg.create_task(
                        _loud("hipsense-commands", self._commands(pub)), name="hipsense-commands"
                    )
                    view = None
                    if self.view is not None:
                        view = tg.create_task(
                            _loud("hipsense-view", self.view.run()), name="hipsense-view"
                        )
                    tasks = [
                        tg.create_task(
                            _loud(f"hipsense-{cfg.id}", self._sensor_loop(cfg, pub)),
                            name=f"hipsense-{cfg.id}",
                        )
                        for cfg in s.sensors
                    ]
                    await asyncio.gather(*tasks)
                    commands.cancel()
                    if view is not None:
                        view.cancel()
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

    def _view_rows(self) -> Sequence[Row]:
        rows: list[Row] = []
        for sid, sensor in self.sensors.items():
            p = sensor.pipeline
            if p is None:
                rows.append(f"{sid:<12} connecting...")
                continue
            ex = sensor.exercise
            key = (p.session_id, ex.id if ex else "auto")
            clock = self._clocks.get(key)
            if clock is None:
                hold = ex.dosage.hold_s if ex else 0.0
                clock = self._clocks[key] = HoldClock(hold, p.core.targets.target_min_deg)
            connected = sensor.link.telemetry.connected
            rows.append(view_of(sid, p, clock, connected=connected))
        return rows

    def _on_signal(self, sig: signal.Signals) -> None:
        log.info("%s: finishing the open sessions", sig.name)
        self.stop.set()
        for sensor in self.sensors.values():
            sensor.end_session.set()

    async def _sensor_loop(self, cfg: SensorSettings, pub: MqttPublisher) -> None:
        link = _make_link(cfg)
        sensor = _Sensor(cfg, link, patient_id=cfg.patient_id, variant=cfg.variant)
        sensor.exercise = self.library[cfg.exercise] if cfg.exercise else None
        if cfg.simulated is not None and cfg.exercise is None:
            sensor.exercise = self.library[cfg.simulated.exercise]
        if cfg.program is not None:
            program = load_programs(library=self.library)[cfg.program]
            sensor.tracker = PrescriptionTracker(
                program.prescription(cfg.patient_id or "unassigned"), self.library
            )
            if cfg.exercise is None and cfg.simulated is None:
                sensor.exercise = self.library[program.exercises[0].exercise]
        self.sensors[cfg.id] = sensor
        async with link, asyncio.TaskGroup() as tg:
            pump = tg.create_task(self._pump(sensor), name=f"hipsense-{cfg.id}-pump")
            watch = tg.create_task(
                self._watch_link(sensor, pub), name=f"hipsense-{cfg.id}-link-state"
            )
            while not self.stop.is_set():
                await self._one_session(sensor, pub)
                if pump.done():
                    break  # the stream ended for good (a simulated session is over)
            pump.cancel()
            watch.cancel()
        if sensor.failed is not None:
            # Its state says why (retained), then the service ends naming it: a link
            # that cannot heal is not retried for ever.
            pub.publish_sensor_state(sensor_state(link, pub.outbox, self.history))
            raise sensor.failed

    async def _watch_link(self, sensor: _Sensor, pub: MqttPublisher, period_s: float = 1.0) -> None:
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

    async def _pump(self, sensor: _Sensor) -> None:
        try:
            async for item in sensor.link.items():
                await sensor.queue.put(item)
        except HipsenseError as exc:
            sensor.failed = exc
            sensor.end_session.set()
        finally:
            sensor.queue.put_nowait(_END)

    async def _one_session(self, sensor: _Sensor, pub: MqttPublisher) -> None:
        sensor.end_session.clear()
        if self.stop.is_set():
            sensor.end_session.set()
        session_id = new_session_id()
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
        finally:
            await items.aclose()  # type: ignore[attr-defined]
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
            for t in targets:
                if t.pipeline is not None:
                    t.pipeline.core.calibrate()
            command.reply()
        elif req.command == "stop_session":
            sensor = self._by_session(req.session_id)
            sensor.end_session.set()
            command.reply(session_id=req.session_id)
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

    def _sensor(self, sensor_id: str) -> _Sensor:
        try:
            return self.sensors[sensor_id]
        except KeyError:
            known = ", ".join(sorted(self.sensors)) or "none"
            raise KeyError(f"sensor_id: expected one of {known}, got {sensor_id!r}") from None

    def _first_sensor(self) -> _Sensor:
        if not self.sensors:
            raise KeyError("sensor_id: expected a running sensor, found none")
        return next(iter(self.sensors.values()))

    def _by_session(self, session_id: str) -> _Sensor:
        for sensor in self.sensors.values():
            if sensor.pipeline is not None and sensor.pipeline.session_id == session_id:
                return sensor
        live = ", ".join(
            s.pipeline.session_id for s in self.sensors.values() if s.pipeline is not None
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


async def run_daemon(settings: DaemonSettings, *, live: Console | TextIO | None = None) -> int:
    """Run the service until SIGTERM / SIGINT; draw the terminal view on `live` if given.

    On a terminal the lines are redrawn in place; elsewhere each change is a plain line.
    """
    return await Daemon(settings, live=live).run()
