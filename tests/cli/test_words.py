"""What the command prints reads as text: defaults in help, no Python values, titles."""

import asyncio
import io
import logging
import re
from pathlib import Path

import pytest

from hipsense._text import counted, flags_text
from hipsense.cli import main
from hipsense.cli._exercises import based_on
from hipsense.daemon import DemoOptions, run_demo
from hipsense.exercises import load_library
from hipsense.mqtt import BrokerConfig, MqttPublisher, Outbox, Topics
from tests.brokers import free_port


def _help(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    with pytest.raises(SystemExit) as done:
        main([*argv, "--help"])
    assert done.value.code == 0
    # One option a line: argparse wraps long help texts.
    return re.sub(r"\n\s{10,}", " ", capsys.readouterr().out)


def test_helps_show_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    demo = _help(capsys, "demo")
    assert re.search(r"--reps REPS .*\(default: 10\)", demo)
    assert re.search(r"--sets SETS .*\(default: 2\)", demo)
    assert re.search(r"--seed SEED .*\(default: 0\)", demo)  # 0 is a default, not "none"
    assert re.search(r"--exercise EXERCISE .*\(default: clamshell\)", demo)
    assert "(default: None)" not in demo and "(default: False)" not in demo
    # A help that says its default in its own words does not say it twice.
    assert demo.count("default") == demo.count("(default: ") + demo.count("default: a")
    analyze = _help(capsys, "analyze")
    assert analyze.count("default") == 1  # --exercise says it; nothing added
    simulate = _help(capsys, "simulate")
    assert re.search(r"--rate \{25,50,100,200\} .*\(default: 100\)", simulate)
    assert "(default: 127.0.0.1)" in _help(capsys, "dashboard")


def test_counts_and_flags_in_words() -> None:
    assert [counted(n, "set") for n in (0, 1, 2)] == ["0 sets", "1 set", "2 sets"]
    assert flags_text({"data_gap": 5, "too_fast": 1}) == "data gap x5, too fast x1"
    assert flags_text({}) == "none"
    assert flags_text(("off_plane",), "ok") == "off plane"
    assert flags_text((), "ok") == "ok"


def test_the_demo_prints_no_python_values(tmp_path: Path) -> None:
    out = io.StringIO()
    # A hold exercise: no reps, so no mean range of motion.
    exercise = next(e.id for e in load_library().values() if e.kind == "hold")
    options = DemoOptions(
        exercise=exercise, reps=2, sets=1, speed=float("inf"), loss=0.05, state_dir=tmp_path
    )
    assert asyncio.run(run_demo(options, out)) == 0
    text = out.getvalue()
    summary = next(line for line in text.splitlines() if line.startswith("summary: "))
    assert re.fullmatch(
        r"summary: \d+ reps?, \d+ holds? \(simulated 2 holds\), sets: [\d, ]+, "
        r"mean ROM (—|\d+\.\d deg), flags: (none|[a-z ]+ x\d+(, [a-z ]+ x\d+)*)",
        summary,
    ), summary
    assert "mean ROM —" in summary
    for python in ("None", "{", "[", "'", "_"):
        assert python not in summary, summary
    assert not re.search(r"\b1 (reps|holds|sets|messages)\b", text), text


def test_exercises_show_names_the_sheet_not_its_folder(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["exercises", "show", "clamshell"]) == 0
    out = capsys.readouterr().out
    assert "seeds/" not in out
    assert "based on:      hip external rotation, strengthening protocols\n" in out
    assert (
        based_on("seeds/002 (hip external rotation; strengthening protocols); seeds/003 (hip "
                 "internal rotation)")
        == "hip external rotation, strengthening protocols; hip internal rotation"
    )  # fmt: skip
    assert based_on("a physiotherapist's sheet") == "a physiotherapist's sheet"
    for ex in load_library().values():
        assert "/" not in based_on(ex.source), ex.source


async def test_the_publisher_logs_the_broker_it_connects_to_without_credentials(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    port = free_port()  # nobody listens: it keeps trying
    broker = BrokerConfig(url=f"mqtt://gateway:s3cret@127.0.0.1:{port}", protocol="3.1.1")
    outbox = Outbox(tmp_path / "outbox.db")
    caplog.set_level(logging.INFO, logger="hipsense.mqtt")
    pub = MqttPublisher(broker, Topics("gw-1"), outbox, backoff_base_s=0.05, flush_timeout_s=0.1)
    async with pub:
        for _ in range(100):
            if sum("connecting to" in r.getMessage() for r in caplog.records) >= 2:
                break
            await asyncio.sleep(0.05)
    outbox.close()
    tries = [r.getMessage() for r in caplog.records if "connecting to" in r.getMessage()]
    assert len(tries) >= 2  # the first try and a reconnection
    assert set(tries) == {f"mqtt: connecting to mqtt://127.0.0.1:{port}"}
    assert "s3cret" not in caplog.text


def test_analyze_counts_in_words(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rec = tmp_path / "rec.csv"
    assert main(["simulate", "--exercise", "clamshell", "--reps", "5", "--out", str(rec)]) == 0
    capsys.readouterr()
    assert main(["analyze", str(rec)]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].endswith("; 5 reps, 0 holds, 1 set"), out
    assert "1 sets" not in out
