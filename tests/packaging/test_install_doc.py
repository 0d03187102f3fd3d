"""docs/install.md says what the shipped unit and settings do, and the unit is valid."""

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from hipsense.daemon._config import load_settings
from tests.conftest import ROOT

DOC = ROOT / "docs" / "install.md"
UNIT = ROOT / "configs" / "systemd" / "hipsense.service"


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", DOC.read_text(), flags=re.DOTALL)


def test_the_doc_shows_the_unit_as_shipped() -> None:
    shown = [b for b in blocks("ini") if b.startswith("[Unit]")]
    assert len(shown) == 1, "docs/install.md should quote the unit once"
    # The doc quotes the unit without its leading comment block, comments inside kept.
    lines = UNIT.read_text().splitlines(True)
    first = next(i for i, line in enumerate(lines) if not line.startswith("#"))
    assert shown[0] == "".join(lines[first:]), "copy configs/systemd/hipsense.service there"


def test_the_doc_installs_where_the_unit_looks() -> None:
    unit = UNIT.read_text()
    exec_start = re.search(r"^ExecStart=(\S+)/bin/hipsense run --config (\S+)$", unit, re.M)
    assert exec_start is not None
    venv, config = exec_start.groups()
    text = DOC.read_text()
    assert f"sudo python3 -m venv {venv}\n" in text
    assert f"{venv}/bin/pip install" in text
    assert config in text
    state = re.search(r"^Environment=HIPSENSE_STATE_DIR=(\S+)$", unit, re.M)
    assert state is not None
    assert f"--state-dir {state[1]}" in text
    assert "StateDirectory=hipsense" in unit
    assert state[1] == "/var/lib/hipsense"  # what StateDirectory=hipsense creates


def test_the_doc_settings_load(tmp_path: Path) -> None:
    (example,) = [b for b in blocks("toml") if "[broker]" in b]
    path = tmp_path / "hipsense.toml"
    path.write_text(example)
    settings = load_settings(path)
    assert settings.broker.url is not None
    assert str(settings.broker.url).startswith("mqtts://")
    assert settings.gateway_id == settings.broker.username
    assert [s.id for s in settings.sensors] == ["right-thigh"]


def test_systemd_finds_nothing_wrong_with_the_unit_but_the_missing_install(
    tmp_path: Path,
) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed (it comes with systemd)")
    copy = tmp_path / "hipsense.service"
    copy.write_text(UNIT.read_text())
    result = subprocess.run(
        [analyze, "verify", str(copy)], capture_output=True, text=True, timeout=60, check=False
    )
    complaints = [
        line
        for line in (result.stdout + result.stderr).splitlines()
        if line.strip() and "/opt/hipsense/.venv/bin/hipsense is not executable" not in line
    ]
    assert complaints == []
