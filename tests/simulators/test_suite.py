"""The development suite of scenarios: complete, valid, and up to date with the library."""

import filecmp
import subprocess
import sys
from pathlib import Path

from hipsense.exercises import load_library
from hipsense_sim import load_suite, simulate, suite_dir
from tests.conftest import ROOT


def test_suite_covers_every_exercise_clean_noisy_faulty_and_link() -> None:
    suite = load_suite()
    assert len(suite) >= 60
    names = {s.name for s in suite}
    for ex_id in load_library():
        assert {f"{ex_id}-clean", f"{ex_id}-home", f"{ex_id}-faults"} <= names
        faults = next(s for s in suite if s.name == f"{ex_id}-faults")
        assert any(st.faults for st in faults.sets)
    assert sum(1 for s in suite if s.link.loss_ratio > 0 and s.link.disconnects) >= 5
    assert {s.imu.rate_hz for s in suite} == {25, 50, 100, 200}


def test_suite_has_ten_minutes_of_pure_non_exercise_motion_without_reps() -> None:
    pure = [s for s in load_suite() if not s.sets]
    results = [simulate(s) for s in pure]
    minutes = sum(r.truth["duration_s"] for r in results) / 60
    assert minutes >= 10
    assert all(r.truth["rep_count"] == 0 and r.truth["hold_count"] == 0 for r in results)


def test_suite_files_are_what_the_generator_writes(tmp_path: Path) -> None:
    script = ROOT / "simulators" / "make_scenarios.py"
    subprocess.run([sys.executable, str(script), str(tmp_path)], check=True, capture_output=True)
    committed = sorted(p.name for p in suite_dir().glob("*.toml"))
    assert committed == sorted(p.name for p in tmp_path.glob("*.toml"))
    _, mismatch, errors = filecmp.cmpfiles(suite_dir(), tmp_path, committed, shallow=False)
    assert mismatch == [] and errors == []
