"""`hipsense run`: settings from TOML and environment, and a clean stop on SIGTERM."""

import asyncio
import io
import json
import os
import re
import signal
import sys
from pathlib import Path

import pytest

from hipsense.daemon import ConfigError, load_settings
from tests.brokers import Mosquitto, Subscriber, running, until
from tests.conftest import ROOT


def test_the_example_settings_load() -> None:
    settings = load_settings(ROOT / "configs" / "hipsense.example.toml")
    assert settings.sensors[0].ble == "hipsense-4853"
    assert settings.broker.url is None  # the embedded broker
    assert settings.log_format == "text"


def test_environment_overrides_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "h.toml"
    path.write_text('log_level = "info"\n[[sensors]]\nid = "a"\nble = "hipsense"\n')
    monkeypatch.setenv("HIPSENSE_LOG_LEVEL", "debug")
    monkeypatch.setenv("HIPSENSE_BROKER__URL", "mqtt://broker.example:1884")
    settings = load_settings(path)
    assert settings.log_level == "debug"
    assert settings.broker.url == "mqtt://broker.example:1884"


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ('[broker]\nurl = "http://x"\n', "broker.url: Value error, expected a mqtt:// or mqtts://"),
        ('log_level = "loud"\n', "log_level: Input should be 'debug', 'info', 'warning' or"),
        ('[[sensors]]\nid = "a"\n', "sensors.0: Value error, expected exactly one of ble or"),
        ('[[sensors]]\nid = "a/b"\nble = "x"\n', "sensors.0.id: String should match pattern"),
        ("sensors = []\n", "sensors: List should have at least 1 item"),
        ('colour = "blue"\n', "colour: Extra inputs are not permitted"),
        ("broker = [\n", "expected TOML"),
    ],
)
def test_a_bad_value_names_the_key(tmp_path: Path, toml: str, message: str) -> None:
    path = tmp_path / "h.toml"
    sensor = '\n[[sensors]]\nid = "s"\nble = "hipsense"\n'
    path.write_text(toml if "sensors" in toml or "[\n" in toml else toml + sensor)
    with pytest.raises(ConfigError) as err:
        load_settings(path)
    assert message in str(err.value)
    assert str(path) in str(err.value)


async def test_sigterm_finishes_the_session_flushes_and_goes_offline(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    config = tmp_path / "hipsense.toml"
    config.write_text(
        f'state_dir = "{tmp_path / "state"}"\n'
        'gateway_id = "gw-run"\nlog_format = "json"\n'
        f'[broker]\nurl = "{mosquitto.url}"\n'
        '[[sensors]]\nid = "sim-1"\n'
        '[sensors.simulated]\nexercise = "clamshell"\nreps = 60\nsets = 1\nspeed = 20.0\n'
    )
    prefix = "hipsense/v1/gw-run"
    sub = Subscriber(mosquitto.port, f"{prefix}/#")
    async with running(sub):
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "hipsense", "run", "--config", str(config),
            stderr=asyncio.subprocess.PIPE, env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )  # fmt: skip

        def reps() -> list[dict[str, object]]:
            return [e for e in sub.on("/events") if e["event"]["kind"] == "rep"]

        await until(lambda: len(reps()) >= 3, 60)
        proc.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(proc.communicate(), 30)
        assert proc.returncode == 0, err.decode()
        await until(lambda: any(s.get("ended_at") for s in sub.on("/summary")))
        await until(lambda: sub.on("/status")[-1]["state"] == "offline")
    summary = sub.on("/summary")[-1]
    assert 3 <= summary["rep_count"] < 60
    assert summary["rep_count"] == len(reps())
    assert summary["last_seq"] == max(e["seq"] for e in sub.on("/events"))
    logs = [json.loads(line) for line in err.decode().splitlines()]
    assert {"time", "level", "logger", "message"} <= set(logs[0])
    assert any("SIGTERM" in entry["message"] for entry in logs)
    assert logs[-1]["message"] == "stopped"


def test_unknown_program_and_exercise_are_named(tmp_path: Path) -> None:
    path = tmp_path / "h.toml"
    path.write_text('[[sensors]]\nid = "a"\nble = "x"\nprogram = "yoga"\n')
    with pytest.raises(ConfigError, match=r"sensors\.0\.program: Value error, expected one of"):
        load_settings(path)
    path.write_text('[[sensors]]\nid = "a"\nble = "x"\nexercise = "moonwalk"\n')
    with pytest.raises(ConfigError, match=r"sensors\.0\.exercise: .*got 'moonwalk'"):
        load_settings(path)


def test_an_exercise_outside_the_program_is_refused_naming_both(tmp_path: Path) -> None:
    path = tmp_path / "h.toml"
    path.write_text(
        '[[sensors]]\nid = "a"\nble = "x"\nexercise = "clamshell"\nprogram = "hip-core-level-1"\n'
    )
    with pytest.raises(
        ConfigError,
        match=r"sensors\.0: .*exercise 'clamshell' is not in program 'hip-core-level-1': "
        r"expected one of gluteus-minimus-internal-rotation, ",
    ):
        load_settings(path)
    # One of the program's own exercises is taken.
    path.write_text(
        '[[sensors]]\nid = "a"\nble = "x"\nexercise = "deep-hip-rotators-small-arc"\n'
        'program = "hip-core-level-1"\n'
    )
    assert load_settings(path).sensors[0].exercise == "deep-hip-rotators-small-arc"


def test_the_live_line_shows_count_angle_hold_and_flags() -> None:
    from hipsense.daemon._live_view import HoldClock, SensorView, render_line

    clock = HoldClock(hold_s=3.0, end_range_deg=20.0)
    assert clock.update(10.0, 5.0) is None  # not at end range
    assert clock.update(11.0, 19.0) == 3.0  # arrived: the countdown starts
    assert clock.update(12.5, 21.0) == 1.5
    assert clock.update(15.0, 21.0) == 0.0
    line = render_line(
        SensorView(
            sensor_id="right-thigh", exercise="clamshell", count="set 2 of 3: 14/20 reps",
            angle_deg=22.5, target_max_deg=45.0, hold_left_s=1.5, last_flags=("too_fast",),
            connected=True,
        )
    )  # fmt: skip
    assert "set 2 of 3: 14/20 reps" in line
    assert "|########--------|" in line  # half of the target range
    assert " 22 deg" in line
    assert "hold  1.5 s" in line
    assert line.endswith("last: too_fast")
    gone = SensorView("s", "clamshell", "0 reps", None, 45.0, None, (), connected=False)
    assert render_line(gone).endswith("sensor disconnected")


@pytest.mark.parametrize("terminal", [True, False])
async def test_the_live_view_ends_on_the_last_state_not_the_last_period(terminal: bool) -> None:
    # The session's last rep may come within a redraw period of its end: cancelled,
    # the view draws once more.
    from rich.console import Console

    from hipsense.daemon import LiveView

    state = ["sim-1  set 1 of 1: 7/20 reps"]
    out = io.StringIO()
    console = Console(file=out, force_terminal=terminal, width=80, color_system=None)
    task = asyncio.create_task(LiveView(lambda: list(state), console, period_s=60.0).run())
    await asyncio.sleep(0.05)
    state[0] = "sim-1  set 1 of 1: 8/20 reps"
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "\n", out.getvalue())  # control codes out
    lines = [line for line in text.splitlines() if line.strip()]
    assert "7/20" in lines[0]  # the first frame
    assert lines[-1].endswith("set 1 of 1: 8/20 reps")


async def test_run_draws_the_live_view(mosquitto: Mosquitto, tmp_path: Path) -> None:
    config = tmp_path / "hipsense.toml"
    config.write_text(
        f'state_dir = "{tmp_path / "state"}"\n'
        f'[broker]\nurl = "{mosquitto.url}"\n'
        '[[sensors]]\nid = "sim-1"\nprogram = "external-rotation"\n'
        '[sensors.simulated]\nexercise = "clamshell"\nreps = 8\nsets = 1\nspeed = 10.0\n'
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "hipsense", "run", "--config", str(config), "--live",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0
    # Not a terminal: plain lines, one when the count changes.
    assert b"\x1b" not in out
    lines = out.decode().splitlines()
    assert any("sim-1" in f and "clamshell" in f and "deg" in f for f in lines)
    assert any("set 1 of 1: 8/20 reps" in f for f in lines)


async def test_two_sensors_at_once(mosquitto: Mosquitto, tmp_path: Path) -> None:
    config = tmp_path / "hipsense.toml"
    config.write_text(
        f'state_dir = "{tmp_path / "state"}"\ngateway_id = "gw-two"\n'
        f'[broker]\nurl = "{mosquitto.url}"\n'
        '[[sensors]]\nid = "left-thigh"\n'
        '[sensors.simulated]\nexercise = "clamshell"\nreps = 5\nsets = 1\nspeed = 25.0\n'
        '[[sensors]]\nid = "right-thigh"\n'
        '[sensors.simulated]\nexercise = "fire-hydrant"\nreps = 4\nsets = 1\nspeed = 25.0\n'
        "seed = 3\n"
    )
    sub = Subscriber(mosquitto.port, "hipsense/v1/gw-two/#")
    async with running(sub):
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "hipsense", "run", "--config", str(config), "--no-live",
            stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        # Simulated streams end by themselves, and so does the daemon.
        assert await asyncio.wait_for(proc.wait(), 90) == 0
        await until(lambda: len([s for s in sub.on("/summary") if s.get("ended_at")]) == 2)
    ended = {s["sensor_id"]: s for s in sub.on("/summary") if s.get("ended_at")}
    assert ended["left-thigh"]["exercise"] == "clamshell"
    assert ended["left-thigh"]["rep_count"] == 5
    assert ended["right-thigh"]["exercise"] == "fire-hydrant"
    assert ended["right-thigh"]["rep_count"] == 4
    assert ended["left-thigh"]["session_id"] != ended["right-thigh"]["session_id"]
    states = {s["sensor_id"] for s in sub.on("/state")}
    assert states == {"left-thigh", "right-thigh"}


async def test_a_task_that_dies_ends_the_service_loudly(
    mosquitto: Mosquitto,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Whatever kills a sensor's task (here a fault planted in it), the service stops with
    # a non-zero status and a log line naming the task and the cause; never a quiet stop.
    from hipsense.daemon import _run, _service

    path = tmp_path / "h.toml"
    path.write_text(
        f'state_dir = "{tmp_path / "state"}"\n[broker]\nurl = "{mosquitto.url}"\n'
        '[[sensors]]\nid = "sim-1"\n[sensors.simulated]\nreps = 5\n'
    )

    async def broken(self: object, cfg: object, pub: object) -> None:
        raise RuntimeError("planted fault")

    monkeypatch.setattr(_service.Service, "_sensor_loop", broken)
    status = await asyncio.wait_for(_run.run_daemon(load_settings(path)), 60)
    assert status == 1
    died = [r for r in caplog.records if "task hipsense-sim-1 died" in r.getMessage()]
    assert died and "planted fault" in died[0].getMessage()
