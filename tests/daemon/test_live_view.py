"""The terminal view of `hipsense run`: lines that fit, redrawn in place, logs above.

The real service runs in a pseudo-terminal of 80 columns with two simulated sensors and
the embedded broker; pyte, a terminal emulator, turns what it wrote into the screen a
person would see (with the lines scrolled off the top).
"""

import fcntl
import io
import logging
import os
import pty
import select
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pyte
import pytest

from hipsense.daemon import LiveView, configure_logging, view_console
from hipsense.daemon._live_view import SensorView, fit, render_line
from hipsense.daemon._logs import CHATTY_LOGGERS

COLUMNS = 80
ROWS = 40
LEFT = "left-thigh-of-patient-17"  # longer than the id column: it must be cut, not wrap
RIGHT = "right-thigh"


def _config(tmp_path: Path) -> Path:
    path = tmp_path / "two.toml"
    sensor = '[sensors.simulated]\nexercise = "clamshell"\nreps = 3\nsets = 1\nspeed = 8.0\n'
    path.write_text(
        f'state_dir = "{tmp_path / "state"}"\n'
        f'[[sensors]]\nid = "{LEFT}"\nexercise = "clamshell"\n{sensor}'
        # A program makes the count long ("clamshell, set 1 of 2: 1/10 reps").
        f'[[sensors]]\nid = "{RIGHT}"\nprogram = "hip-core-level-1"\n{sensor}'
    )
    return path


def _run_in_pty(args: list[str], timeout_s: float = 60.0) -> bytes:
    """Run a command on a pseudo-terminal of COLUMNS x ROWS; what it wrote, raw."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HIPSENSE_")}
    env.pop("COLUMNS", None)  # Rich would take these over the terminal's own size
    env.pop("LINES", None)
    env.update(TERM="xterm-256color", PYTHONUNBUFFERED="1")
    main, child = pty.openpty()
    fcntl.ioctl(child, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLUMNS, 0, 0))
    proc = subprocess.Popen(
        args,
        stdin=child,
        stdout=child,
        stderr=child,
        env=env,
        close_fds=True,
        start_new_session=True,
    )
    os.close(child)
    raw = bytearray()
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([main], [], [], 0.2)
            if not ready:
                if proc.poll() is not None:
                    break
                continue
            try:
                data = os.read(main, 65536)
            except OSError:  # EIO: the child side is closed, everything is read
                break
            if not data:
                break
            raw += data
        assert proc.wait(timeout=max(1.0, deadline - time.monotonic())) == 0, raw.decode()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(main)
    return bytes(raw)


def _screen(raw: bytes, columns: int) -> list[str]:
    """Every line the terminal shows or scrolled off its top, as text, trailing blanks cut."""
    screen = pyte.HistoryScreen(columns, ROWS, history=10_000)
    pyte.ByteStream(screen).feed(raw)
    scrolled = [
        "".join(line[x].data for x in range(columns)).rstrip() for line in screen.history.top
    ]
    lines = scrolled + [line.rstrip() for line in screen.display]
    while lines and not lines[-1]:
        lines.pop()
    return lines


def test_the_live_view_fits_80_columns_redraws_in_place_and_logs_scroll_above(
    tmp_path: Path,
) -> None:
    raw = _run_in_pty([sys.executable, "-m", "hipsense", "run", "--config", str(_config(tmp_path))])

    # The same output on a much wider terminal: a line longer than 80 columns would show
    # whole here instead of wrapping, so this is where lengths are measured.
    wide = _screen(raw, 200)
    assert wide, raw
    too_long = [line for line in wide if len(line) > COLUMNS]
    assert not too_long, "\n".join(too_long)

    lines = _screen(raw, COLUMNS)
    text = "\n".join(lines)
    # One line per sensor, no stale copies of earlier frames (nor of "connecting...").
    left = [i for i, line in enumerate(lines) if line.startswith(fit(LEFT, 10)[:-1])]
    right = [i for i, line in enumerate(lines) if line.startswith(RIGHT[:9])]
    assert len(left) == 1, text
    assert len(right) == 1, text
    view = sorted(left + right)
    assert view[1] == view[0] + 1, text  # the view is one block
    assert lines[left[0]].startswith(fit(LEFT, 10) + " clamshell"), text
    # The logs: above the view, none in it or under it but the one written after the view
    # closed ("stopped"); both sessions ended (logged) while the view was up.
    above, below = lines[: view[0]], lines[view[1] + 1 :]
    assert sum("ended: 3 reps, 0 holds, 1 set" in line for line in above) == 2, text
    assert "1 sets" not in text, text
    assert [line for line in below if line.strip()] == [
        next(line for line in below if "hipsense.daemon: stopped" in line)
    ], text
    # The embedded broker's chatter stays out (amqtt, transitions, websockets at INFO).
    for name in CHATTY_LOGGERS:
        assert f"{name}." not in text and f" {name}:" not in text, text


def test_off_a_terminal_the_view_prints_plain_lines_as_things_change(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HIPSENSE_")}
    out = subprocess.run(
        [sys.executable, "-m", "hipsense", "run", "--config", str(_config(tmp_path)), "--live"],
        capture_output=True,
        env=env,
        timeout=60,
        check=True,
    )
    assert b"\x1b" not in out.stdout + out.stderr  # no control codes in a pipe or a log
    lines = out.stdout.decode().splitlines()
    # A line when a count changes (0, 1, 2, 3 reps), not one per redraw.
    left = [line for line in lines if line.startswith(LEFT)]
    assert [line.split()[2] for line in left if "reps" in line][-1] == "3", lines
    assert 3 <= len(left) <= 8, lines  # 0 reps ... 3 reps, disconnected; not every redraw
    assert any(line.startswith(RIGHT) for line in lines), lines
    assert "INFO hipsense.daemon: stopped" in out.stderr.decode()


def _view(**kw: object) -> SensorView:
    base: dict[str, object] = {
        "sensor_id": "right-thigh-of-a-patient-with-a-long-id",
        "exercise": "side-lying-hip-abduction-with-elastic",
        "count": "side-lying-hip-abduction, set 2 of 3: 14/20 reps",
        "angle_deg": 31.0,
        "target_max_deg": 45.0,
        "hold_left_s": 2.5,
        "last_flags": ("too_fast", "off_plane", "partial"),
        "connected": True,
    }
    return SensorView(**{**base, **kw})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "view",
    [
        _view(),
        _view(angle_deg=None, hold_left_s=None, last_flags=()),
        _view(connected=False),
        _view(sensor_id="s", exercise="auto", count="0 reps", angle_deg=float("nan")),
    ],
)
def test_a_line_fits_any_width_and_keeps_the_angle_while_it_can(view: SensorView) -> None:
    for width in range(1, 201):
        line = render_line(view, width)
        assert len(line) <= width, (width, line)
    wide = render_line(view, 200)
    assert "…" not in wide.split("  last: ")[0] or len(view.count) > 34 or len(view.sensor_id) > 12
    if view.connected and view.angle_deg == 31.0:
        narrow = render_line(view, 80)
        # Narrow, the angle, the hold, what was done and the flags still show.
        assert " 31 deg" in narrow
        assert "hold  2.5 s" in narrow
        assert "14/20 reps " in narrow
        assert narrow.endswith("  too_fast,…"), narrow


def test_columns_line_up_across_sensors_at_one_width() -> None:
    a = render_line(_view(sensor_id="a", count="1 reps"), 100)
    b = render_line(_view(sensor_id="bbbbbbbbbbbbbbbbbbbbbbb", count="12 reps"), 100)
    assert a.index("|") == b.index("|")
    assert a.index(" deg") == b.index(" deg")


async def test_a_plain_view_prints_a_sensor_when_its_count_changes_not_its_angle() -> None:
    out = io.StringIO()
    rows = [_view(count="1 reps", angle_deg=10.0)]
    view = LiveView(lambda: rows, view_console(out), period_s=0.01)
    assert not view.terminal
    view._print_news()
    rows[0] = _view(count="1 reps", angle_deg=40.0)  # the angle moved: nothing new
    view._print_news()
    rows[0] = _view(count="2 reps", angle_deg=40.0)
    view._print_news()
    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    assert "1 reps" in lines[0] and "2 reps" in lines[1]
    assert all(len(line) > COLUMNS for line in lines)  # plain text is not cut or wrapped


def test_the_broker_s_loggers_are_kept_to_warnings_unless_verbose() -> None:
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        configure_logging("text", "info", io.StringIO())
        for name in CHATTY_LOGGERS:
            assert not logging.getLogger(f"{name}.core").isEnabledFor(logging.INFO)
            assert logging.getLogger(f"{name}.core").isEnabledFor(logging.WARNING)
        assert logging.getLogger("hipsense.daemon").isEnabledFor(logging.INFO)
        configure_logging("text", "info", io.StringIO(), verbose=True)
        for name in CHATTY_LOGGERS:
            assert logging.getLogger(f"{name}.core").isEnabledFor(logging.INFO)
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)
        for name in CHATTY_LOGGERS:
            logging.getLogger(name).setLevel(logging.NOTSET)


def test_the_demo_in_a_terminal_keeps_to_the_width_and_leaves_no_live_line_behind(
    tmp_path: Path,
) -> None:
    args = ["demo", "--reps", "3", "--sets", "1", "--speed", "20", "--state-dir", str(tmp_path)]
    raw = _run_in_pty([sys.executable, "-m", "hipsense", *args])
    assert b"\x1b[?25l" in raw  # the live line was drawn (Rich hides the cursor meanwhile)
    wide = _screen(raw, 200)
    assert not [line for line in wide if len(line) > COLUMNS], "\n".join(wide)
    lines = _screen(raw, COLUMNS)
    text = "\n".join(lines)
    # Rich wrapped the long rep lines itself; the live line went with its session.
    assert sum(line.lstrip().startswith("rep ") for line in lines) == 3, text
    assert not [line for line in lines if line.startswith("sim-1 ")], text
    assert any(line.startswith("report:") for line in lines[-3:]), text
