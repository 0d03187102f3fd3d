"""One gateway per state folder: `prepare` locks it (review M2).

A second gateway on the same folder (`hipsense demo` while `hipsense run` is running: both
default to the same one) would close the first's live session as interrupted and share
its outbox. It is refused, in one line; readers of the history are not held up.
"""

import asyncio
import io
import math
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

import pytest

from hipsense.daemon import DemoOptions, StateDirError, run_demo
from hipsense.daemon._state import prepare
from hipsense.history import History

_HOLD = (
    "import sys; from pathlib import Path; from hipsense.daemon._state import prepare; "
    "prepare(Path(sys.argv[1])); print('locked', flush=True); sys.stdin.read()"
)


@contextmanager
def _held_by_another_process(folder: Path) -> Iterator[subprocess.Popen[str]]:
    """Another process that has called `prepare(folder)`, until the block ends."""
    with subprocess.Popen(
        [sys.executable, "-c", _HOLD, str(folder)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as proc:
        assert proc.stdin is not None and proc.stdout is not None
        try:
            assert proc.stdout.readline().strip() == "locked"
            yield proc
        finally:
            proc.stdin.close()  # it ends
            proc.wait(10)


def test_a_second_gateway_on_a_state_folder_is_a_one_line_error(tmp_path: Path) -> None:
    folder = tmp_path / "state"
    with _held_by_another_process(folder) as other:
        with pytest.raises(StateDirError) as err:
            prepare(folder)
        message = str(err.value)
        assert "\n" not in message
        assert str(folder) in message
        assert f"another hipsense (pid {other.pid})" in message
    # Let go of when the other process ends (a killed one too: the kernel closes it).
    assert prepare(folder) == folder
    assert prepare(folder) == folder  # again in the same process: fine


def test_gateways_on_distinct_folders_run_side_by_side(tmp_path: Path) -> None:
    with _held_by_another_process(tmp_path / "a"):
        assert prepare(tmp_path / "b") == tmp_path / "b"


def test_a_second_demo_refuses_to_start_and_leaves_the_live_session_open(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "state"
    folder.mkdir()
    live = History(folder / "history.db")  # `hipsense run`, mid-session
    live.start(
        "s-live", sensor_id="sim-1", exercise="clamshell", started_at="2026-03-02T09:00:00+00:00"
    )
    rep = {"kind": "rep", "index": 0, "set_index": 0, "end_s": 3.0, "rom_deg": 40.0}
    live.add_event("s-live", 0, {**rep, "hold_s": 0.5, "flags": []})
    options = DemoOptions(reps=2, sets=1, speed=math.inf, loss=0.0, state_dir=folder, seed=1)
    with (
        _held_by_another_process(folder),
        pytest.raises(StateDirError, match="another hipsense"),
    ):
        asyncio.run(run_demo(options, io.StringIO()))
    assert live.unfinished() == ["s-live"]
    assert live.load("s-live").interrupted is False
    live.close()


def test_the_history_is_read_while_a_gateway_holds_the_folder(tmp_path: Path) -> None:
    folder = tmp_path / "state"
    folder.mkdir()
    with closing(History(folder / "history.db")) as h:
        h.start(
            "s-1", sensor_id="sim-1", exercise="clamshell", started_at="2026-03-02T09:00:00+00:00"
        )
    with _held_by_another_process(folder):
        done = subprocess.run(
            [sys.executable, "-m", "hipsense", "sessions", "--state-dir", str(folder)],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "HIPSENSE_STATE_DIR": str(folder)},
            check=False,
        )
    assert done.returncode == 0, done.stderr
    assert "s-1" in done.stdout


def test_state_files_are_readable_by_their_owner_only(tmp_path: Path) -> None:
    # Sessions, events and raw samples are health data: 0600, their -wal/-shm too.
    from hipsense.daemon import gateway_id
    from hipsense.history import History
    from hipsense.mqtt import Outbox

    state = tmp_path / "state"
    gateway_id(state)
    Outbox(state / "outbox.db").close()
    History(state / "history.db").close()
    files = sorted(p.name for p in state.iterdir() if p.name != "lock")
    assert {"gateway-id", "outbox.db", "history.db"} <= set(files)
    for name in files:
        assert (state / name).stat().st_mode & 0o077 == 0, name
