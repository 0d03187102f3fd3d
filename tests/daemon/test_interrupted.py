"""A killed `hipsense run`: its open session is closed, as interrupted, on the next start.

Real processes, a real mosquitto: the service is SIGKILLed mid-session, started again on
the same state folder, and the old session's final summary must reach the broker with
every delivered rep counted.
"""

import asyncio
import contextlib
import json
import os
import signal
import sys
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from hipsense.history import History
from tests.brokers import Mosquitto, Subscriber, running, until


async def test_a_killed_service_s_session_is_closed_as_interrupted_on_the_next_start(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    state = tmp_path / "state"

    def config(name: str, reps: int, speed: float) -> Path:
        path = tmp_path / f"{name}.toml"
        path.write_text(
            f'state_dir = "{state}"\ngateway_id = "gw-kill"\nlog_format = "json"\n'
            f'[broker]\nurl = "{mosquitto.url}"\n'
            '[[sensors]]\nid = "sim-1"\n'
            f'[sensors.simulated]\nexercise = "clamshell"\nreps = {reps}\nsets = 1\n'
            f"speed = {speed}\n"
        )
        return path

    async def start(path: Path) -> asyncio.subprocess.Process:
        return await asyncio.create_subprocess_exec(
            sys.executable, "-m", "hipsense", "run", "--config", str(path), "--no-live",
            stderr=asyncio.subprocess.PIPE, env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )  # fmt: skip

    sub = Subscriber(mosquitto.port, "hipsense/v1/gw-kill/#")
    async with running(sub):

        def reps_of(session: str) -> set[int]:
            return {
                e["event"]["index"]
                for e in sub.on("/events")
                if e["session_id"] == session and e["event"]["kind"] == "rep"
            }

        one = await start(config("one", reps=60, speed=20.0))
        await until(lambda: bool(sub.on("/events")) and len(reps_of(_first(sub))) >= 6, 60)
        killed = _first(sub)
        one.send_signal(signal.SIGKILL)
        await one.wait()
        with contextlib.closing(History(state / "history.db")) as before:
            (row,) = before.sessions()
        assert row["session_id"] == killed
        assert (row["ended_at"], row["rep_count"]) == (None, None)  # the defect: left open

        two = await start(config("two", reps=5, speed=25.0))
        _, err = await asyncio.wait_for(two.communicate(), 90)
        assert two.returncode == 0, err.decode()

        def final_of(session: str) -> dict[str, Any] | None:
            ended = [s for s in sub.on("/summary") if s["session_id"] == session and s["ended_at"]]
            return ended[-1] if ended else None

        await until(lambda: final_of(killed) is not None, 30)
        await asyncio.sleep(0.5)  # any event still on its way
        delivered = reps_of(killed)

    summary = final_of(killed)
    assert summary is not None
    (note,) = summary["notes"]
    assert note.startswith("interrupted: ")
    assert summary["rep_count"] == len(delivered) >= 6  # every rep delivered, none more
    assert delivered == set(range(len(delivered)))
    seqs = {e["seq"] for e in sub.on("/events") if e["session_id"] == killed}
    assert summary["last_seq"] == max(seqs)
    last_rep_s = max(
        e["event"]["end_s"]
        for e in sub.on("/events")
        if e["session_id"] == killed and e["event"]["kind"] == "rep"
    )
    started = datetime.fromisoformat(summary["started_at"])
    ended = datetime.fromisoformat(summary["ended_at"])
    assert ended >= started + timedelta(seconds=last_rep_s)
    assert ended <= started + timedelta(seconds=last_rep_s + 10)  # a trace lands every 5 s
    logs = [json.loads(line)["message"] for line in err.decode().splitlines()]
    assert any(f"session {killed} was left open" in m for m in logs)

    with contextlib.closing(History(state / "history.db")) as after:
        rows = {r["session_id"]: r for r in after.sessions()}
        record = after.load(killed)
    assert rows[killed]["interrupted"] is True
    assert rows[killed]["rep_count"] == len(delivered)
    assert record.ended_at == summary["ended_at"]
    assert record.summary is not None and record.summary["notes"] == [note]
    (other,) = set(rows) - {killed}
    assert rows[other]["interrupted"] is False and rows[other]["rep_count"] == 5

    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "hipsense", "sessions", "--state-dir", str(state),
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, _ = await proc.communicate()
    assert proc.returncode == 0
    listing = out.decode()
    (line,) = [ln for ln in listing.splitlines() if ln.startswith(killed)]
    assert line.split()[4] == str(len(delivered))  # reps, no longer "-"
    assert line.split()[-1] == "interrupted"


def _first(sub: Subscriber) -> str:
    return str(sub.on("/events")[0]["session_id"])
