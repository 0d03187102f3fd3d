"""The `hipsense` command as a user runs it."""

import re
import subprocess
import sys
from pathlib import Path

import hipsense

SCRIPT = Path(sys.executable).parent / "hipsense"


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(SCRIPT), *args], capture_output=True, text=True, timeout=120)


def test_console_script_is_installed() -> None:
    assert SCRIPT.exists()


def test_version() -> None:
    out = _run("--version")
    assert out.returncode == 0
    assert out.stdout.strip() == f"hipsense {hipsense.__version__}"


def test_help_describes_the_product_and_commands() -> None:
    out = _run("--help")
    assert out.returncode == 0
    assert "hip-rehab" in out.stdout
    assert "demo" in out.stdout


def test_python_dash_m_works() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "hipsense", "--version"], capture_output=True, text=True, check=True
    )
    assert hipsense.__version__ in out.stdout


def test_demo_runs_a_session_end_to_end_on_the_embedded_broker(tmp_path: Path) -> None:
    out = _run(
        "demo", "--reps", "6", "--sets", "1", "--speed", "0", "--loss", "0",
        "--state-dir", str(tmp_path),
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert "(embedded; WebSockets ws://127.0.0.1:" in lines[1]
    reps = [ln for ln in lines if ln.lstrip().startswith("rep ")]
    assert len(reps) == 6
    assert re.search(r"ROM +\d+\.\d deg", reps[0])
    assert any(ln.startswith("summary: 6 reps, 0 holds (simulated 6 reps)") for ln in lines)
    published = re.search(r"published (\d+) messages .*; 0 left in the outbox", lines[-2])
    assert published is not None
    # It ends with the report's path: a self-contained HTML file.
    report = re.fullmatch(r"report: (.+\.html)", lines[-1])
    assert report is not None
    assert Path(report[1]).read_text().startswith("<!doctype html>")
    # At least: status, sensor state, a calibration, 6 reps, the set, the summary.
    assert int(published[1]) >= 10
    # The gateway id is random, kept in the state folder, and used again next time.
    gateway = (tmp_path / "gateway-id").read_text().strip()
    assert re.fullmatch(r"gw-[0-9a-f]{8}", gateway)
    assert f"hipsense/v1/{gateway}/#" in lines[2]


def test_unknown_option_is_a_usage_error() -> None:
    out = _run("demo", "--rate", "33")
    assert out.returncode == 2
    assert "invalid choice" in out.stderr


def test_demo_runs_a_program_and_tracks_it(tmp_path: Path) -> None:
    out = _run(
        "demo", "--program", "internal-rotation", "--speed", "0", "--loss", "0",
        "--state-dir", str(tmp_path),
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert text.count("; session ") == 4  # one session per exercise of the program
    # The program says both sides, one set each: right first, then left.
    assert "-> seated-hip-internal-rotation, right side, set 1 of 1: 20/20 reps" in text
    assert "-> seated-hip-internal-rotation, left side, set " in text
    # Each session's own adherence, and the program's running total apart, named so.
    assert text.count("  session adherence 100 %, quality ") == 4
    running = re.findall(r"; program adherence so far (\d+) %", text)
    assert [int(p) for p in running][-1] == 100
    assert [int(p) for p in running] == sorted(int(p) for p in running)
    assert re.search(
        r"program internal-rotation: program adherence 100 %, program quality \d+ %", text
    )


def test_bad_paths_rates_and_ids_are_one_line_errors(tmp_path: Path) -> None:
    # Each once gave a traceback; now one line naming what was expected and found.
    missing = tmp_path / "nowhere"
    ghz = tmp_path / "ghz.csv"
    ghz.write_text(
        "time_s,ax,ay,az,gx,gy,gz\n" + "".join(f"{i}e-9,0,0,9.8,0,0,0\n" for i in range(3))
    )
    still = tmp_path / "still.csv"
    still.write_text(
        "time_s,ax,ay,az,gx,gy,gz\n" + "".join(f"{i / 25},0,0,9.8,0,0,0\n" for i in range(50))
    )
    cases = [
        (("sessions", "--state-dir", str(missing)), "state folder"),
        (("report", "s-1", "--state-dir", str(missing)), "state folder"),
        (
            ("simulate", "--exercise", "clamshell", "--out", str(missing / "a.csv")),
            "existing folder",
        ),
        (("analyze", str(ghz)), f"{ghz}: expected a sample rate of 20 to 2000 Hz, got 1e+09 Hz"),
        (
            ("analyze", str(still), "--exercise", "clamshell", "--variant", "nope"),
            "variant of clamshell",
        ),
    ]
    for args, expected in cases:
        out = _run(*args)
        assert out.returncode == 1, (args, out.stderr)
        assert "Traceback" not in out.stderr, (args, out.stderr)
        [line] = out.stderr.strip().splitlines()
        assert line.startswith("hipsense: error: ") and expected in line, (args, line)


def test_no_command_and_a_negative_speed_are_usage_errors() -> None:
    bare = _run()
    assert bare.returncode == 2
    assert "COMMAND" in bare.stderr and "demo" in bare.stderr
    for speed in ("-1", "nan", "inf", "fast"):
        out = _run("demo", "--speed", speed)
        assert out.returncode == 2, speed
        assert "--speed: expected 0 (as fast as possible) or a positive number" in out.stderr


def test_demo_takes_a_pseudonymous_patient_id_only() -> None:
    out = _run("demo", "--patient", "Jane Doe")
    assert out.returncode == 2
    assert "--patient: expected a pseudonymous patient id" in out.stderr
    assert "got 'Jane Doe'" in out.stderr
