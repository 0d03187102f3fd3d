"""Prescribed programs: configs/programs/*.toml, built from the seeds' exercise sheets."""

import os
import tomllib
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from hipsense.domain import PrescribedExercise, Prescription
from hipsense.exercises import ExerciseError, ExerciseLibrary, load_library

__all__ = ["Program", "default_programs_dir", "load_programs"]

_ENV = "HIPSENSE_PROGRAMS_DIR"


class Program(BaseModel):
    """A named list of prescription lines, e.g. the "hip core" sheet at level I."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[a-z0-9-]{1,64}$")
    name: str
    source: str
    exercises: list[PrescribedExercise] = Field(min_length=1)

    def prescription(self, patient_id: str) -> Prescription:
        """The program as one patient's prescription."""
        return Prescription(patient_id=patient_id, exercises=self.exercises)


def default_programs_dir() -> Path:
    """$HIPSENSE_PROGRAMS_DIR, the installed copy, or the repository's configs/programs."""
    env = os.environ.get(_ENV)
    if env:
        return Path(env)
    packaged = Path(__file__).resolve().parent.parent / "_configs" / "programs"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parents[3] / "configs" / "programs"


def load_programs(
    directory: Path | None = None, library: ExerciseLibrary | None = None
) -> dict[str, Program]:
    """Every program, by id; `ExerciseError` names the file and the problem."""
    folder = directory or default_programs_dir()
    library = library or load_library()
    programs: dict[str, Program] = {}
    for path in sorted(folder.glob("*.toml")):
        try:
            program = Program.model_validate(tomllib.loads(path.read_text(encoding="utf-8")))
        except (tomllib.TOMLDecodeError, ValidationError) as exc:
            raise ExerciseError(f"{path}: {exc}") from exc
        if program.id != path.stem:
            raise ExerciseError(f"{path}: id: expected {path.stem!r}, got {program.id!r}")
        for i, line in enumerate(program.exercises):
            if line.exercise not in library:
                raise ExerciseError(
                    f"{path}: exercises.{i}.exercise: expected an exercise of the library, "
                    f"got {line.exercise!r}"
                )
        programs[program.id] = program
    return programs
