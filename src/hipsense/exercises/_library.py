"""Loading the exercise library from TOML files."""

import os
import tomllib
from collections.abc import Iterator, Mapping
from pathlib import Path

from pydantic import ValidationError

from ._model import Exercise, ExerciseError

__all__ = ["ExerciseError", "ExerciseLibrary", "default_library_dir", "load_library"]

_ENV = "HIPSENSE_EXERCISES_DIR"


def default_library_dir() -> Path:
    """Where the library lives: $HIPSENSE_EXERCISES_DIR, the installed copy, or the repo's."""
    env = os.environ.get(_ENV)
    if env:
        return Path(env)
    packaged = Path(__file__).resolve().parent.parent / "_configs" / "exercises"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parents[3] / "configs" / "exercises"


class ExerciseLibrary(Mapping[str, Exercise]):
    """Exercises by id, in id order."""

    def __init__(self, exercises: Mapping[str, Exercise]) -> None:
        self._by_id = dict(sorted(exercises.items()))

    def __getitem__(self, key: str) -> Exercise:
        try:
            return self._by_id[key]
        except KeyError:
            close = [k for k in self._by_id if key in k or k in key]
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise ExerciseError(
                f"exercise id: expected one of the {len(self._by_id)} in the library "
                f"(hipsense exercises lists them), got {key!r}{hint}"
            ) from None

    def __contains__(self, key: object) -> bool:
        return key in self._by_id

    def get(self, key: str, default: Exercise | None = None) -> Exercise | None:  # type: ignore[override]
        """The exercise with id `key`, or `default`."""
        return self._by_id.get(key, default)

    def __iter__(self) -> Iterator[str]:
        return iter(self._by_id)

    def __len__(self) -> int:
        return len(self._by_id)


def load_library(directory: Path | None = None) -> ExerciseLibrary:
    """Load and validate every `*.toml` in `directory`; file names must be `<id>.toml`.

    Raises `ExerciseError` naming the file and the field for the first problem.
    """
    directory = directory or default_library_dir()
    files = sorted(directory.glob("*.toml"))
    if not files:
        raise ExerciseError(f"{directory}: expected exercise files (*.toml), found none")
    out: dict[str, Exercise] = {}
    for path in files:
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
            ex = Exercise.model_validate(data)
        except tomllib.TOMLDecodeError as exc:
            raise ExerciseError(f"{path}: not valid TOML ({exc})") from exc
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or '(file)'}: {e['msg']}"
                for e in exc.errors()
            )
            raise ExerciseError(f"{path}: {problems}") from exc
        if ex.id != path.stem:
            raise ExerciseError(f"{path}: expected id {path.stem!r} (the file name), got {ex.id!r}")
        out[ex.id] = ex
    for ex in out.values():
        if ex.progression_next is not None and ex.progression_next not in out:
            raise ExerciseError(
                f"{directory / (ex.id + '.toml')}: progression_next: expected an exercise "
                f"id of the library, got {ex.progression_next!r}"
            )
    return ExerciseLibrary(out)
