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


def test_demo_prints_a_decoded_stream_and_link_stats() -> None:
    out = _run("demo", "--seconds", "12", "--speed", "0", "--loss", "0.2", "--seed", "3")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    rows = [ln for ln in lines if ln[:8].strip().replace(".", "").isdigit()]
    assert len(rows) >= 10
    # Lying still at the start: the accelerometer reads gravity.
    ax, ay, az = map(float, rows[0].split()[2:5])
    assert abs((ax**2 + ay**2 + az**2) ** 0.5 - 9.81) < 0.1
    # With a fifth of the packets dropped, gaps are reported and counted.
    assert any("gap at" in ln for ln in lines)
    link = re.match(r"link: (\d+) packets, (\d+) lost", lines[-1])
    assert link is not None
    sent = int(link[1]) + int(link[2])
    assert 0.1 < int(link[2]) / sent < 0.3


def test_unknown_option_is_a_usage_error() -> None:
    out = _run("demo", "--rate", "33")
    assert out.returncode == 2
    assert "invalid choice" in out.stderr
