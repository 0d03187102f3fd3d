"""Faults from outside, tried on every surface; SIGKILLs and broker restarts survived.

    .venv/bin/python benchmarks/faults.py [--kills 20] [--restarts 5] [--inputs 2000]

1. Inputs per surface, each either taken or refused with the surface's own error (any
   other exception, a reply missing, a 5xx or a dead process is a failure):
   - BLE notifications: random bytes and well-formed packets with corrupted payloads,
     in batches, through the reassembler;
   - control point and status: random bytes through their decoders;
   - recordings: a valid CSV with random lines replaced, cut or garbled;
   - configuration: the example TOML with random values replaced;
   - MQTT commands: every field of every command made hostile (tests/daemon/
     test_commands.py), sent to a running `hipsense run` with a simulated sensor;
   - dashboard HTTP: random request targets to a running `hipsense dashboard`.
2. SIGKILLs and broker restarts: `hipsense demo` on one state folder, killed `--kills`
   times mid-session at random moments, while mosquitto is restarted `--restarts`
   times; then a last run that ends normally. Per session: events the service
   committed to its outbox (sent), events received by a persistent subscriber, unique,
   lost and duplicated, and whether every duplicate is an identical re-delivery of the
   same id.
3. A disk-full spell: `hipsense run` with its state folder on a 16 MB tmpfs (needs
   root, as CI runs), filled up for `--full-s` seconds mid-session while it measures and
   publishes; then freed. Events sent (the summary's last seq + 1), received, lost, and
   reps measured while the disk was full.

Targets (issue: hardening): 0 failures; 0 events lost across >= 20 SIGKILLs, >= 5 broker
restarts and a disk-full spell; duplicates only as identical re-deliveries of the same
id.
"""

import argparse
import asyncio
import contextlib
import json
import os
import random
import signal
import sqlite3
import sys
import tempfile
import tomllib
import urllib.parse
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.brokers import Mosquitto, Subscriber, running, until  # noqa: E402
from tests.daemon.storage import fill, tmpfs  # noqa: E402
from tests.daemon.test_commands import GATEWAY as CMD_GATEWAY  # noqa: E402
from tests.daemon.test_commands import ask_all, fuzzed_commands, known_bad_commands  # noqa: E402

from hipsense.daemon import ConfigError, load_settings  # noqa: E402
from hipsense.protocol import (  # noqa: E402
    PayloadKind,
    ProtocolError,
    StreamFormat,
    StreamReassembler,
    decode_command,
    decode_response,
    decode_status,
    encode,
    quantize_quat,
)
from hipsense.recording import RecordingError, read_recording  # noqa: E402

FAULT_GATEWAY = "gw-faults"


def _tried(name: str, results: list[str | None]) -> tuple[str, int, list[str]]:
    return name, len(results), [r for r in results if r is not None]


# -- 1. inputs per surface, in process ---------------------------------------------------


def _packet(rng: random.Random) -> bytes:
    kind = rng.choice(list(PayloadKind))
    n = rng.randint(1, 8)
    raw = np.array([[rng.randint(-32768, 32767) for _ in range(6)] for _ in range(n)], np.int16)
    quat = quantize_quat(np.tile([1.0, 0.0, 0.0, 0.0], (n, 1)))
    data = bytearray(
        encode(
            kind,
            rng.randrange(1 << 16),
            rng.randrange(1 << 32),
            raw=raw if kind.has_raw else None,
            quat_q14=quat if kind.has_quat else None,
        )
    )
    what = rng.random()
    if what < 0.3:
        a = rng.randrange(8, len(data))
        data[a:] = bytes(len(data) - a) if rng.random() < 0.5 else rng.randbytes(len(data) - a)
    elif what < 0.5:
        return rng.randbytes(rng.randint(0, 260))
    elif what < 0.6:
        return bytes(data[: rng.randrange(len(data))])
    return bytes(data)


def ble_notifications(n: int, rng: random.Random) -> tuple[str, int, list[str]]:
    results: list[str | None] = []
    reassembler = StreamReassembler(StreamFormat())
    host_s = 0.0
    for _ in range(n // 10):
        batch = [_packet(rng) for _ in range(10)]
        host_s += 0.1
        try:
            list(reassembler.push_many(batch, [host_s] * len(batch)))
            results += [None] * len(batch)
        except Exception as exc:  # a failure here is what is being counted
            results += [f"{type(exc).__name__}: {exc}"] * len(batch)
    return _tried("BLE notifications", results)


def control_and_status(n: int, rng: random.Random) -> tuple[str, int, list[str]]:
    results: list[str | None] = []
    for _ in range(n):
        data = rng.randbytes(rng.randint(0, 40))
        for parse in (decode_command, decode_response, decode_status):
            try:
                parse(data)
                results.append(None)
            except ProtocolError:
                results.append(None)
            except Exception as exc:  # counted
                results.append(f"{parse.__name__}({data.hex()}): {type(exc).__name__}: {exc}")
    return _tried("control point and status", results)


_HOSTILE_TEXT = ["", "nan", "inf", "-", "1e999", "\x00", "é", "1,2", ",,,,,,,", "x" * 5000, "#"]


def recordings(n: int, rng: random.Random) -> tuple[str, int, list[str]]:
    good = ["time_s,ax,ay,az,gx,gy,gz"] + [f"{i / 25},0,0,9.8,0,0,0" for i in range(50)]
    results: list[str | None] = []
    for _ in range(n):
        lines = list(good)
        for _ in range(rng.randint(1, 4)):
            i = rng.randrange(len(lines))
            fields = lines[i].split(",")
            fields[rng.randrange(len(fields))] = rng.choice(_HOSTILE_TEXT)
            lines[i] = ",".join(fields) if rng.random() < 0.8 else rng.choice(_HOSTILE_TEXT)
        if rng.random() < 0.2:
            lines = lines[: rng.randrange(len(lines))]
        try:
            read_recording(lines)
            results.append(None)
        except RecordingError:
            results.append(None)
        except Exception as exc:  # counted
            results.append(f"{type(exc).__name__}: {exc}")
    return _tried("recordings", results)


def configuration(n: int, rng: random.Random, folder: Path) -> tuple[str, int, list[str]]:
    example = tomllib.loads((ROOT / "configs" / "hipsense.example.toml").read_text())
    values: list[Any] = [None, 0, -1, 1e308, "", "nope", "mqtt://", [], {}, True, "x" * 10_000]
    results: list[str | None] = []
    path = folder / "fuzz.toml"
    for _ in range(n):
        doc = json.loads(json.dumps(example))
        target: Any = doc
        while isinstance(target, dict | list) and target:
            key = (
                rng.choice(list(target)) if isinstance(target, dict) else rng.randrange(len(target))
            )
            if not isinstance(target[key], dict | list) or rng.random() < 0.3:
                value = rng.choice(values)
                target[key] = "" if value is None else value
                break
            target = target[key]
        path.write_text(_toml(doc))
        try:
            load_settings(path)
            results.append(None)
        except ConfigError:
            results.append(None)
        except Exception as exc:  # counted
            results.append(f"{type(exc).__name__}: {exc}")
    return _tried("configuration", results)


def _toml(doc: dict[str, Any], prefix: str = "") -> str:
    """A small TOML writer for the example's shapes (tables, arrays of tables, scalars)."""
    out: list[str] = []
    tables: list[tuple[str, Any]] = []
    for key, value in doc.items():
        if isinstance(value, dict) or (
            isinstance(value, list) and value and all(isinstance(v, dict) for v in value)
        ):
            tables.append((key, value))
        else:
            out.append(f"{key} = {json.dumps(value)}")
    for key, value in tables:
        name = f"{prefix}{key}"
        for item in value if isinstance(value, list) else [value]:
            out.append(f"[[{name}]]" if isinstance(value, list) else f"[{name}]")
            out.append(_toml(item, name + "."))
    return "\n".join(out) + "\n"


# -- 1. inputs per surface, against running processes -----------------------------------


async def mqtt_commands(broker: Mosquitto, folder: Path) -> tuple[str, int, list[str]]:
    config = folder / "cmd.toml"
    config.write_text(
        f'state_dir = "{folder / "cmd-state"}"\ngateway_id = "{CMD_GATEWAY}"\n'
        f'[broker]\nurl = "{broker.url}"\n[[sensors]]\nid = "sim-1"\n'
        '[sensors.simulated]\nexercise = "clamshell"\nreps = 200\nsets = 1\nspeed = 2.0\n'
    )
    sub = Subscriber(broker.port, f"hipsense/v1/{CMD_GATEWAY}/sessions/#")
    async with running(sub):
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "hipsense", "run", "--config", str(config),
            stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        try:
            await until(lambda: sub.on("/events"), 60)
            session_id = sub.on("/events")[-1]["session_id"]
            requests = [p for p, _ in known_bad_commands(session_id).values()]
            requests += fuzzed_commands(session_id)
            failures: list[str | None] = [None] * len(requests)
            try:
                replies = await ask_all(broker.port, requests)
            except TimeoutError:
                replies = {}
            for i in range(len(requests)):
                if i not in replies:
                    failures[i] = f"no reply to {requests[i][:80]!r}"
            if proc.returncode is not None:
                failures.append(f"hipsense run died (exit {proc.returncode})")
        finally:
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
            await proc.wait()
    return _tried("MQTT commands", failures)


async def dashboard_http(n: int, rng: random.Random) -> tuple[str, int, list[str]]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "hipsense", "dashboard", "--port", "0",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None
    line = (await asyncio.wait_for(proc.stdout.readline(), 20)).decode()
    address = urllib.parse.urlsplit(line.split(": ", 1)[1].strip())
    host, port = address.hostname or "127.0.0.1", address.port or 80
    pieces = ["", "/", "..", "%2e%2e", "%00", "%", "%zz", ".git", "package.json", "vendor",
              "index.html", "app.js", "?a=b", "#x", "//", "\\", "é", "%ff", "x" * 3000]  # fmt: skip
    methods = ["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "TRACE", "BREW"]
    results: list[str | None] = []
    try:
        for _ in range(n):
            target = "/" + "/".join(rng.choice(pieces) for _ in range(rng.randint(1, 4)))
            method = rng.choice(methods)
            results.append(await _http(host, port, method, target))
    finally:
        proc.terminate()
        _, err = await proc.communicate()
    if b"Traceback" in err:
        results.append("the dashboard server printed a traceback")
    return _tried("dashboard HTTP", results)


async def _http(host: str, port: int, method: str, target: str) -> str | None:
    try:
        reader, writer = await asyncio.open_connection(host, port)
        raw = target.encode("utf-8", "surrogateescape")
        writer.write(
            method.encode() + b" " + raw + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        await writer.drain()
        status = await asyncio.wait_for(reader.readline(), 10)
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
    except (OSError, TimeoutError) as exc:
        return f"{method} {target[:60]}: {type(exc).__name__}"
    parts = status.split()
    if len(parts) < 2 or not parts[1].isdigit():
        return f"{method} {target[:60]}: no status line ({status[:60]!r})"
    code = int(parts[1])
    # 501: a method the server does not offer, said properly; any other 5xx is its fault.
    return f"{method} {target[:60]}: {code}" if code >= 500 and code != 501 else None


# -- 2. SIGKILLs and broker restarts ------------------------------------------------------


def _committed(state: Path, session: str) -> int:
    with contextlib.closing(sqlite3.connect(state / "outbox.db")) as db:
        row = db.execute(
            "SELECT next FROM sequence WHERE stream = ?", (f"events/{session}",)
        ).fetchone()
    return int(row[0]) if row else 0


async def kills_and_restarts(
    broker: Mosquitto, folder: Path, kills: int, restarts: int, rng: random.Random
) -> dict[str, Any]:
    state = folder / "kill-state"
    sub = Subscriber(broker.port, f"hipsense/v1/{FAULT_GATEWAY}/sessions/+/events")
    sessions = [f"kill-{i}" for i in range(kills)] + ["last"]
    restart_at = set(rng.sample(range(kills), min(restarts, kills)))
    done_restarts = 0
    async with running(sub):
        for i, session in enumerate(sessions):
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "hipsense", "demo", "--broker", broker.url,
                "--state-dir", str(state), "--gateway-id", FAULT_GATEWAY,
                "--session-id", session, "--reps", "12", "--sets", "1", "--speed", "40",
                "--seed", str(i), stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.DEVNULL,
            )  # fmt: skip
            assert proc.stdout is not None
            printed = 0
            kill_after = rng.randint(1, 10)
            try:
                while session == "last" or printed < kill_after:
                    raw = await asyncio.wait_for(proc.stdout.readline(), 120)
                    if not raw:
                        break
                    printed += raw.decode().lstrip().startswith("rep ")
                    if i in restart_at and printed == 1:
                        await asyncio.to_thread(broker.stop)
                        await asyncio.sleep(0.3)
                        await asyncio.to_thread(broker.start)
                        done_restarts += 1
                        restart_at.discard(i)
            finally:
                if proc.returncode is None and session != "last":
                    proc.send_signal(signal.SIGKILL)
                await proc.wait()
        sent = {s: _committed(state, s) for s in sessions}

        def unique(s: str) -> int:
            return len({e["id"] for e in sub.on("/events") if e["session_id"] == s})

        with contextlib.suppress(AssertionError):
            await until(lambda: all(unique(s) >= sent[s] for s in sessions), 120)
        await asyncio.sleep(1.0)
    received = sub.on("/events")
    by_id: dict[str, list[dict[str, Any]]] = {}
    for e in received:
        by_id.setdefault(e["id"], []).append(e)
    lost = sum(max(0, sent[s] - unique(s)) for s in sessions)
    duplicates = sum(len(v) - 1 for v in by_id.values())
    identical = all(all(x == v[0] for x in v) for v in by_id.values())
    in_order = all(
        [e["seq"] for e in {x["id"]: x for x in received if x["session_id"] == s}.values()]
        == list(range(unique(s)))
        for s in sessions
    )
    return {
        "kills": kills,
        "restarts": done_restarts,
        "sent": sum(sent.values()),
        "received": len(received),
        "unique": len(by_id),
        "lost": lost,
        "duplicates": duplicates,
        "identical": identical,
        "in_order": in_order,
    }


# -- 3. a disk-full spell ----------------------------------------------------------------


async def disk_full(broker: Mosquitto, folder: Path, full_s: float) -> dict[str, Any]:
    try:
        mount = tmpfs(folder / "full-state", "16m")
        state = mount.__enter__()
    except BaseException as exc:  # pytest's skip outside pytest: no tmpfs here
        return {"skipped": f"no tmpfs: {exc}"}
    try:
        config = folder / "full.toml"
        config.write_text(
            f'state_dir = "{state}"\ngateway_id = "gw-full"\nkeep_raw_samples = true\n'
            f'[broker]\nurl = "{broker.url}"\n[[sensors]]\nid = "sim-1"\n'
            '[sensors.simulated]\nexercise = "clamshell"\nreps = 60\nsets = 1\nspeed = 5.0\n'
        )
        sub = Subscriber(broker.port, "hipsense/v1/gw-full/sessions/#")
        async with running(sub):

            def reps() -> int:
                return len({e["seq"] for e in sub.on("/events") if e["event"]["kind"] == "rep"})

            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "hipsense", "run", "--config", str(config), "--no-live",
                stderr=asyncio.subprocess.DEVNULL,
            )  # fmt: skip
            try:
                await until(lambda: reps() >= 2, 60)
                filler = fill(state)
                before = reps()
                await asyncio.sleep(full_s)
                during = reps() - before
                alive = proc.returncode is None
                filler.unlink()
                code = await asyncio.wait_for(proc.wait(), 180)
                await until(lambda: any(x.get("ended_at") for x in sub.on("/summary")), 30)
            finally:
                if proc.returncode is None:
                    proc.kill()
                await proc.wait()
        summary = [x for x in sub.on("/summary") if x.get("ended_at")][-1]
        seqs = {e["seq"] for e in sub.on("/events")}
        sent = summary["last_seq"] + 1
        return {
            "full_s": full_s,
            "during": during,
            "alive": alive and code == 0,
            "sent": sent,
            "received": len(sub.on("/events")),
            "lost": len(set(range(sent)) - seqs),
            "reps": summary["rep_count"],
        }
    finally:
        mount.__exit__(None, None, None)


# -- main --------------------------------------------------------------------------------


async def run(args: argparse.Namespace) -> int:
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        surfaces: list[tuple[str, int, list[str]]] = [
            ble_notifications(args.inputs * 10, rng),
            control_and_status(args.inputs, rng),
            recordings(args.inputs, rng),
            configuration(args.inputs // 4, rng, folder),
        ]
        (folder / "broker").mkdir()
        broker = Mosquitto(_mosquitto(), folder / "broker")
        broker.start()
        try:
            surfaces.append(await mqtt_commands(broker, folder))
            surfaces.append(await dashboard_http(args.inputs // 4, rng))
            faults = await kills_and_restarts(broker, folder, args.kills, args.restarts, rng)
            full = await disk_full(broker, folder, args.full_s)
        finally:
            broker.stop()
    failures = 0
    print(f"{'surface':28} {'inputs':>8} {'failures':>9}")
    for name, tried, failed in surfaces:
        failures += len(failed)
        print(f"{name:28} {tried:8d} {len(failed):9d}")
        for f in failed[:5]:
            print(f"    {f[:160]}")
    f = faults
    dup = "all identical re-deliveries of the same id" if f["identical"] else "NOT identical"
    order = "in order" if f["in_order"] else "NOT in order"
    print(
        f"\nSIGKILLs {f['kills']}, broker restarts {f['restarts']}: events sent {f['sent']}, "
        f"received {f['received']}, unique {f['unique']}, lost {f['lost']}, duplicated "
        f"{f['duplicates']} ({dup}), {order}"
    )
    if "skipped" in full:
        print(f"disk full: skipped ({full['skipped']})")
        full_ok = False
    else:
        print(
            f"disk full for {full['full_s']:g} s: service alive and ended cleanly "
            f"{full['alive']}; {full['during']} reps measured and delivered meanwhile; events "
            f"sent {full['sent']}, received {full['received']}, lost {full['lost']}; "
            f"session {full['reps']} reps"
        )
        full_ok = full["alive"] and full["lost"] == 0
    ok = failures == 0 and f["lost"] == 0 and f["identical"] and f["in_order"] and full_ok
    verdict = "met" if ok else "NOT met"
    print(f"\nfailures {failures} (target 0); lost {f['lost']} (target 0): {verdict}")
    return 0 if ok else 1


def _mosquitto() -> str:
    import shutil

    found = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if not os.path.exists(found):
        raise SystemExit("faults.py: expected mosquitto (script/test installs it), found none")
    return found


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--kills", type=int, default=20)
    p.add_argument("--restarts", type=int, default=5)
    p.add_argument("--inputs", type=int, default=2000)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--full-s", type=float, default=20.0, help="how long the disk stays full")
    return asyncio.run(run(p.parse_args()))


if __name__ == "__main__":
    raise SystemExit(main())
