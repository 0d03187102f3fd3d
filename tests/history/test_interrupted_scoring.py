"""A session closed as interrupted is scored against the prescription the history kept."""

from pathlib import Path

from hipsense.daemon._session_runner import interrupted_summary
from hipsense.domain import Summary
from tests.exports.histories import program_history


def test_an_interrupted_session_has_its_own_lines_and_adherence(tmp_path: Path) -> None:
    h = program_history(tmp_path / "h.db")
    for sid in ("p1-d0-clam", "p1-d1-hold", "p2-d0-clam"):
        record = h.load(sid)
        assert record.summary is not None and record.prescription is not None
        finished = Summary.model_validate(record.summary)
        rebuilt = interrupted_summary(record, last_seq=finished.last_seq)
        assert rebuilt.lines == finished.lines
        assert (rebuilt.adherence_pct, rebuilt.quality_pct, rebuilt.side) == (
            finished.adherence_pct,
            finished.quality_pct,
            finished.side,
        )
        # The program's running total needs its other sessions: not known here.
        assert rebuilt.program_adherence_pct is None
    assert interrupted_summary(h.load("p1-d1-hold"), last_seq=0).adherence_pct == 75.0
    h.close()
