"""`hipsense demo`: the service with one simulated sensor, printing each rep as it is measured.

The demo is `_service.Service` as `hipsense run` runs it: its options become the daemon's
settings (one simulated sensor), the simulated patient does the exercise (or each of a
program's, a session each), and a sink prints what is measured, the summaries and the
reports written.
"""

import math
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from pydantic import ValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource
from rich.console import Console
from rich.text import Text

from hipsense._text import counted, flags_text
from hipsense.exercises import ExerciseError, ExerciseKind, load_library
from hipsense.history import write_report
from hipsense.link import SimulatedLink
from hipsense.motion import Calibration, HoldEvent, MotionEvent, RepEvent, SetEvent
from hipsense.mqtt import BrokerConfig, BrokerConfigError
from hipsense.session import load_programs

from ._config import (
    BrokerSettings,
    ConfigError,
    DaemonSettings,
    HomeAssistantSettings,
    SensorSettings,
    SimulatedSensor,
)
from ._live_view import view_console
from ._service import SensorRun, Service, Sink, Stream, simulated_link

__all__ = ["DemoOptions", "demo_settings", "run_demo"]


_DEMO_SENSOR = "sim-1"
_DEMO_PATIENT = "demo-patient"
_OPTIONS = {"rate_hz": "--rate", "url": "--broker", "ca_file": "--broker-ca"}
"""The command line option of a setting, where its name is not the option's."""


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
    patient_id: str | None = None
    """The simulated patient's pseudonymous id; None: `demo-patient` with a program, else
    none."""
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


@dataclass(frozen=True)
class _Step:
    exercise: str
    variant: str | None
    sets: int
    reps: int
    hold_s: float | None
    sides: tuple[str, ...] = ("right",)


def _steps(options: DemoOptions) -> list[_Step]:
    library = load_library()
    if options.program is None:
        # An unknown id or variant fails here, before anything starts.
        library[options.exercise].variant(options.variant)
        return [_Step(options.exercise, options.variant, options.sets, options.reps, None)]
    programs = load_programs(library=library)
    try:
        program = programs[options.program]
    except KeyError:
        raise ExerciseError(
            f"--program: expected one of {', '.join(sorted(programs))}, got {options.program!r}"
        ) from None
    return [
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


class _DemoSettings(DaemonSettings):
    """The daemon's settings from the demo's options alone: no HIPSENSE_* variable."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)


def demo_settings(options: DemoOptions) -> DaemonSettings:
    """The service's settings that run the demo: one simulated sensor, raw samples kept."""
    _broker_config(options.broker_url, options.broker_ca)  # "--broker: ..." if it is bad
    try:
        sensor = SensorSettings(
            id=_DEMO_SENSOR,
            simulated=SimulatedSensor(
                exercise=options.exercise,
                reps=options.reps,
                sets=options.sets,
                speed=options.speed,
                seed=options.seed,
                loss=options.loss,
            ),
            exercise=None if options.program else options.exercise,
            variant=None if options.program else options.variant,
            patient_id=options.patient_id or (_DEMO_PATIENT if options.program else None),
            program=options.program,
            rate_hz=options.rate_hz,
        )
        return _DemoSettings(
            state_dir=options.state_dir,
            gateway_id=options.gateway_id,
            keep_raw_samples=True,
            broker=BrokerSettings(url=options.broker_url, ca_file=options.broker_ca),
            home_assistant=HomeAssistantSettings(enabled=options.home_assistant),
            sensors=[sensor],
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        name = str(first["loc"][-1]) if first["loc"] else ""
        option = _OPTIONS.get(name, f"--{name.replace('_', '-')}") if name else "demo"
        raise ConfigError(f"{option}: {first['msg']}, got {first.get('input')!r}") from exc


def _streams(options: DemoOptions, steps: list[_Step]) -> Iterator[Stream]:
    """The simulated patient doing each step, simulated when its session is about to start."""
    library = load_library()
    for i, step in enumerate(steps):
        faults: dict[str, list[int]] = {}
        for kind, rep in options.faults:
            if 1 <= rep <= step.reps:
                faults.setdefault(kind, []).append(rep - 1)
        link, truth = simulated_link(
            _DEMO_SENSOR,
            exercise=step.exercise,
            variant=step.variant,
            reps=step.reps,
            sets=step.sets,
            sides=step.sides,
            faults=faults,
            hold_s=step.hold_s,
            seed=options.seed,
            rate_hz=options.rate_hz,
            mtu=options.mtu,
            loss=options.loss,
            speed=options.speed,
        )
        session_id = options.session_id
        if session_id and len(steps) > 1:
            session_id = f"{session_id}-{i + 1}"
        yield Stream(
            link,
            library[step.exercise],
            step.variant,
            hold_s=step.hold_s,
            session_id=session_id,
            truth=truth,
        )


class _Printer(Sink):
    """The demo's output: each rep as it is measured, the summaries, the reports."""

    def __init__(self, options: DemoOptions, steps: list[_Step], console: Console) -> None:
        self.options = options
        self.console = console
        """The console the service's live view draws on: lines printed scroll above it."""
        self.reports: list[Path] = []
        self._steps = iter(steps)
        self._step = steps[0]
        self._shown = 0

    def say(self, text: str) -> None:
        """A line above the live view (plain when the console is no terminal)."""
        self.console.print(Text(text), soft_wrap=not self.console.is_terminal)

    def started(self, service: Service, where: str) -> None:
        for line in ("hipsense demo", f"  broker  {where}", f"  topics  {service.topics.prefix}/#"):
            self.say(line)

    def session_started(self, service: Service, sensor: SensorRun) -> None:
        self._step = step = next(self._steps)
        exercise, pipeline, link = sensor.exercise, sensor.pipeline, sensor.link
        assert exercise is not None
        assert pipeline is not None
        assert isinstance(link, SimulatedLink)
        speed = self.options.speed
        shown_speed = "as fast as possible" if math.isinf(speed) else f"x{speed:g}"
        what = "holds" if exercise.kind is ExerciseKind.HOLD else "reps"
        self.say(
            f"{exercise.name} ({exercise.id}): {step.sets} x {step.reps} {what}"
            f"{' per side' if len(step.sides) > 1 else ''} simulated, "
            f"{link.duration_s:.0f} s at {shown_speed}; session {pipeline.session_id}"
        )
        self._shown = len(sensor.tracker.completed) if sensor.tracker is not None else 0

    def event(self, service: Service, sensor: SensorRun, event: MotionEvent) -> None:
        line = _line(event)
        if line is not None:
            self.say(line)
        if sensor.tracker is not None:
            for done in sensor.tracker.completed[self._shown :]:
                self.say(f"  -> {done}")
            self._shown = len(sensor.tracker.completed)

    def session_ended(self, service: Service, sensor: SensorRun) -> None:
        pipeline, truth = sensor.pipeline, sensor.stream.truth
        assert pipeline is not None
        assert truth is not None
        summary = pipeline.summary(last_seq=-1)
        what = "reps" if truth["kind"] == "reps" else "holds"
        simulated = truth["rep_count"] if truth["kind"] == "reps" else truth["hold_count"]
        mean_rom = "—" if summary.mean_rom_deg is None else f"{summary.mean_rom_deg:.1f} deg"
        sets = ", ".join(str(n) for n in summary.reps_per_set) or "none"
        self.say(
            f"summary: {counted(summary.rep_count, 'rep')}, {counted(summary.hold_count, 'hold')} "
            f"(simulated {simulated} {what}), sets: {sets}, mean ROM {mean_rom}, "
            f"flags: {flags_text(summary.flags)}"
        )
        if summary.adherence_pct is not None or summary.program_adherence_pct is not None:
            self.say(
                f"  session adherence {_pct(summary.adherence_pct)}, quality "
                f"{_pct(summary.quality_pct)}; program adherence so far "
                f"{_pct(summary.program_adherence_pct)}"
            )
        if pipeline.samples:  # a session never begun is not in the history
            sid = pipeline.session_id
            path = service.state_dir / "reports" / f"{sid}.html"
            self.reports.append(write_report(service.history, sid, path))

    def command(self, service: Service, text: str) -> None:
        self.say(f"  command: {text}")

    def finished(self, service: Service) -> None:
        tracker = service.sensors[_DEMO_SENSOR].tracker if service.sensors else None
        if tracker is not None:
            quality = tracker.quality()
            self.say(
                f"program {self.options.program}: program adherence "
                f"{_pct(100 * tracker.adherence())}, program quality "
                f"{_pct(None if quality is None else 100 * quality)}"
            )
            for text in [*tracker.advice(), *tracker.notes]:
                self.say(f"  {text}")
        s = service.publisher.stats
        self.say(
            f"published {counted(s.published, 'message')} ({counted(s.live_sent, 'live frame')}); "
            f"{len(service.outbox)} left in the outbox {service.state_dir / 'outbox.db'}"
        )
        for path in self.reports:
            self.say(f"report: {path}")


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value:.0f} %"


async def run_demo(options: DemoOptions, out: TextIO | Console = sys.stdout) -> int:
    """Simulate, measure and publish a session (or a program); print it as it happens.

    On a terminal a live line (the angle against the target, the count) stays under
    the printed reps; elsewhere the printed lines are plain.
    """
    steps = _steps(options)
    settings = demo_settings(options)
    console = out if isinstance(out, Console) else view_console(out)
    service = Service(
        settings,
        live=console,
        sink=_Printer(options, steps, console),
        streams=lambda _cfg: _streams(options, steps),
        one_session_per_stream=True,
        plain_view=False,
    )
    return await service.run()
