"""Storage faults degrade, they do not crash: a full state folder, a read-only one.

The state folder is a small tmpfs the test fills up while `hipsense run` measures a
simulated session, with the broker away: events wait in memory, reach the disk when
space is freed, and the broker once it is back; nothing is lost, the service lives on.
"""

import asyncio
import contextlib
import json
import os
import sqlite3
import sys
from pathlib import Path
from typing import Any

from hipsense.history import History
from hipsense.mqtt import Outbox
from tests.brokers import Mosquitto, Subscriber, running, until
from tests.daemon.storage import fill, remount_read_only, tmpfs

REPS = 60


class _Logs:
    """The service's JSON log lines, read as they come."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.entries: list[dict[str, Any]] = []

    async def read(self) -> None:
        assert self.proc.stderr is not None
        async for raw in self.proc.stderr:
            with contextlib.suppress(ValueError):
                self.entries.append(json.loads(raw))

    def index(self, text: str) -> int | None:
        return next((i for i, e in enumerate(self.entries) if text in e["message"]), None)

    def count(self, text: str, since: int = 0) -> int:
        return sum(1 for e in self.entries[since:] if text in e["message"])


def _undelivered_on_disk(state: Path, session_id: str) -> tuple[list[int], int]:
    """Event seqs of a session waiting in the outbox file, and the next seq it has."""
    with contextlib.closing(sqlite3.connect(f"file:{state / 'outbox.db'}?mode=ro", uri=True)) as db:
        seqs = sorted(
            json.loads(p)["seq"]
            for (p,) in db.execute(
                "SELECT payload FROM outbox WHERE topic LIKE ?",
                (f"%/sessions/{session_id}/events",),
            )
        )
        row = db.execute(
            "SELECT next FROM sequence WHERE stream = ?", (f"events/{session_id}",)
        ).fetchone()
    return seqs, int(row[0])


async def test_a_full_disk_keeps_events_in_memory_and_loses_none(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    with tmpfs(tmp_path / "state", "16m") as state:
        config = tmp_path / "hipsense.toml"
        config.write_text(
            f'state_dir = "{state}"\ngateway_id = "gw-full"\nlog_format = "json"\n'
            'log_level = "debug"\nkeep_raw_samples = true\n'
            f'[broker]\nurl = "{mosquitto.url}"\n'
            '[[sensors]]\nid = "sim-1"\n'
            f'[sensors.simulated]\nexercise = "clamshell"\nreps = {REPS}\nsets = 1\n'
            "speed = 10.0\n"
        )
        sub = Subscriber(mosquitto.port, "hipsense/v1/gw-full/#")
        async with running(sub):

            def reps() -> dict[int, dict[str, Any]]:
                return {e["seq"]: e for e in sub.on("/events") if e["event"]["kind"] == "rep"}

            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "hipsense", "run", "--config", str(config), "--no-live",
                stderr=asyncio.subprocess.PIPE, env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )  # fmt: skip
            logs = _Logs(proc)
            reader = asyncio.create_task(logs.read())
            try:
                await until(lambda: len(reps()) >= 2, 60)
                session_id = next(iter(reps().values()))["session_id"]
                # The broker goes away, then the disk fills up: nowhere to put events.
                await asyncio.to_thread(mosquitto.stop)
                filler = fill(state)
                await until(lambda: logs.index("outbox: cannot write") is not None, 30)
                full_at = logs.index("outbox: cannot write")
                assert full_at is not None
                assert "database or disk is full" in logs.entries[full_at]["message"]
                assert logs.entries[full_at]["level"] == "warning"
                # Measuring goes on: reps are measured and held in memory.
                await until(lambda: logs.count("sim-1: RepEvent(", full_at) >= 5, 60)
                assert proc.returncode is None
                # Raw samples are given up (kept every 5 s of wall time).
                await until(lambda: logs.index("raw samples are not stored") is not None, 15)
                held = logs.count("sim-1: RepEvent(", full_at)

                # Space returns: what was held is written out, before the broker is back.
                filler.unlink()
                await until(lambda: logs.index("outbox.db can be written again") is not None, 30)
                waiting, next_seq = _undelivered_on_disk(state, session_id)
                assert waiting == list(range(waiting[0], next_seq))
                assert len(waiting) >= held
                assert proc.returncode is None

                await asyncio.to_thread(mosquitto.start)
                # The simulated session ends by itself, and so does the service.
                assert await asyncio.wait_for(proc.wait(), 120) == 0
                await until(lambda: any(s.get("ended_at") for s in sub.on("/summary")), 30)
            finally:
                if proc.returncode is None:
                    proc.kill()
                await proc.wait()
                await reader

        print(
            f"\n{held} reps measured while the disk was full; {len(waiting)} events on disk "
            "once freed; storage log:\n  "
            + "\n  ".join(
                e["message"]
                for e in logs.entries
                if e["logger"] in ("hipsense.outbox", "hipsense.history")
            )
        )
        summary = [s for s in sub.on("/summary") if s.get("ended_at")][-1]
        events = {e["seq"]: e for e in sub.on("/events")}
        # Nothing lost: every seq of the session arrived, every rep measured is there.
        assert sorted(events) == list(range(summary["last_seq"] + 1))
        assert summary["rep_count"] == len(reps()) == REPS
        assert [r["event"]["index"] for _, r in sorted(reps().items())] == list(range(REPS))
        assert any(
            n.startswith("storage: the state folder could not be written") for n in summary["notes"]
        )
        assert any("raw samples were not stored" in n for n in summary["notes"])
        assert logs.index("storing raw samples") is not None
        # The retained sensor state said so, while it lasted.
        states = sub.on("/sensors/sim-1/state")
        assert any("database or disk is full" in (s.get("storage") or "") for s in states)
        assert states[-1]["storage"] is None
        assert not [e for e in logs.entries if e["level"] == "error"]
        # The history got it all too, once it could.
        with contextlib.closing(History(state / "history.db")) as history:
            record = history.load(session_id)
        assert len(record.events) == len(events)
        assert record.ended_at is not None


async def test_a_read_only_state_folder_is_a_one_line_error(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "state", "4m") as state:
        Outbox(state / "outbox.db").close()
        History(state / "history.db").close()
        (state / "gateway-id").write_text("gw-ro\n")
        remount_read_only(state)
        config = tmp_path / "hipsense.toml"
        config.write_text(
            f'state_dir = "{state}"\n[[sensors]]\nid = "sim-1"\n[sensors.simulated]\nreps = 2\n'
        )
        for command in (
            ["run", "--config", str(config), "--no-live"],
            ["demo", "--state-dir", str(state), "--reps", "2"],
        ):
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "hipsense", *command,
                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
            )  # fmt: skip
            _, err = await asyncio.wait_for(proc.communicate(), 60)
            assert proc.returncode == 1, command
            assert err.decode().splitlines() == [
                f"hipsense: error: state folder {state}: expected a folder hipsense can write "
                "(its outbox, history and gateway id), got read-only file system"
            ], command
