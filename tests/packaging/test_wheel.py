"""hipsense installs like a service: the wheel alone, in a fresh venv, away from the checkout.

One module-scoped install (wheel built from this tree, a new venv without pip of its
own, the wheel and its dependencies from the package index or pip's cache), then each
test runs the installed command from a folder outside the repository with a clean
environment, so nothing can be found through the checkout.
"""

import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.timeout(240)


@dataclass(frozen=True)
class Installed:
    wheel: Path
    venv: Path
    home: Path
    """An empty folder outside the checkout: cwd and $HOME of every command."""

    def run(self, *args: str, timeout_s: float = 60) -> subprocess.CompletedProcess[str]:
        env = {
            "PATH": f"{self.venv / 'bin'}:/usr/bin:/bin",
            "HOME": str(self.home),
            "LANG": "C.UTF-8",
        }
        return subprocess.run(
            args,
            cwd=self.home,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )


def _run(*args: str, timeout_s: float) -> None:
    result = subprocess.run(args, capture_output=True, text=True, timeout=timeout_s, check=False)
    assert result.returncode == 0, f"{' '.join(args)}:\n{result.stdout}\n{result.stderr}"


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    base = tmp_path_factory.mktemp("wheel")
    assert not base.resolve().is_relative_to(ROOT)
    dist, venv, home = base / "dist", base / "venv", base / "home"
    home.mkdir()
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    _run(*pip, "wheel", "--no-deps", "-w", str(dist), str(ROOT), timeout_s=120)
    (wheel,) = dist.glob("hipsense-*.whl")
    # No pip inside the venv (ensurepip costs seconds): this pip installs into it.
    _run(sys.executable, "-m", "venv", "--without-pip", str(venv), timeout_s=60)
    _run(*pip, "--python", str(venv / "bin" / "python"), "install", str(wheel), timeout_s=180)
    return Installed(wheel, venv, home)


def test_the_wheel_carries_the_data_hipsense_reads_at_run_time(installed: Installed) -> None:
    names = set(zipfile.ZipFile(installed.wheel).namelist())
    for need in (
        "hipsense/py.typed",
        "hipsense_sim/py.typed",
        "hipsense/_configs/exercises/clamshell.toml",
        "hipsense/_configs/programs/hip-core-level-1.toml",
        "hipsense/_dashboard/index.html",
        "hipsense/_dashboard/vendor/mqtt.min.js",
    ):
        assert need in names, need
    from hipsense.cli._dashboard import PAGE_FILES

    # Every file the dashboard serves (its modules too): a missing one breaks the page.
    assert {f"hipsense/_dashboard/{name}" for name in PAGE_FILES} <= names
    shipped = {n.removeprefix("hipsense/_configs/") for n in names if "/_configs/" in n}
    in_repo = {
        str(p.relative_to(ROOT / "configs"))
        for d in ("exercises", "programs")
        for p in (ROOT / "configs" / d).glob("*.toml")
    }
    assert shipped == in_repo
    scenarios = {n for n in names if n.startswith("hipsense_sim/_scenarios/")}
    assert len(scenarios) == len(list((ROOT / "simulators" / "scenarios").glob("*.toml")))
    assert not [n for n in names if n.startswith(("tests/", "benchmarks/", "docs/"))]


def test_the_installed_demo_counts_the_reps_outside_the_checkout(installed: Installed) -> None:
    where = installed.run(
        "python",
        "-c",
        "import hipsense, hipsense_sim; print(hipsense.__file__, hipsense_sim.__file__)",
    )
    assert where.returncode == 0, where.stderr
    for path in where.stdout.split():
        assert Path(path).is_relative_to(installed.venv), where.stdout
    result = installed.run(
        "hipsense", "demo", "--reps", "5", "--sets", "2", "--speed", "0",
        "--state-dir", str(installed.home / "state"), "--session-id", "wheel-1",
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "summary: 10 reps, 0 holds (simulated 10 reps)" in result.stdout, result.stdout
    assert "0 left in the outbox" in result.stdout
    report = installed.home / "state" / "reports" / "wheel-1.html"
    assert report.is_file(), result.stdout


def test_the_installed_library_programs_and_suite_are_found(installed: Installed) -> None:
    shown = installed.run("hipsense", "exercises", "show", "clamshell")
    assert shown.returncode == 0, shown.stderr
    assert "clamshell" in shown.stdout.lower()
    found = installed.run(
        "python",
        "-c",
        "from hipsense.cli._dashboard import dashboard_dir\n"
        "from hipsense.exercises._library import default_library_dir\n"
        "from hipsense.session._programs import default_programs_dir, load_programs\n"
        "from hipsense_sim import load_suite, suite_dir\n"
        "print(default_library_dir(), default_programs_dir(), dashboard_dir(), suite_dir())\n"
        "print(len(load_programs()), len(load_suite()))",
    )
    assert found.returncode == 0, found.stderr
    dirs, counts = found.stdout.splitlines()
    for folder in dirs.split():
        assert Path(folder).is_relative_to(installed.venv), folder
        assert Path(folder).is_dir(), folder
    programs, suite = map(int, counts.split())
    assert programs == len(list((ROOT / "configs" / "programs").glob("*.toml")))
    assert suite == len(list((ROOT / "simulators" / "scenarios").glob("*.toml")))
