"""Numbers and flags as people read them, for printed lines and logs."""

from collections.abc import Iterable, Mapping

__all__ = ["counted", "flag_text", "flags_text"]


def counted(n: int, word: str) -> str:
    """`n` and `word`, plural unless there is one: "1 set", "2 sets", "0 reps"."""
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def flag_text(flag: object) -> str:
    """A flag in words: "data_gap" -> "data gap"."""
    return str(flag).replace("_", " ")


def flags_text(flags: Mapping[object, int] | Iterable[object], empty: str = "none") -> str:
    """Flags in words, counted when given as counts: "data gap x5, too fast x2"."""
    if isinstance(flags, Mapping):
        words = [f"{flag_text(f)} x{n}" for f, n in flags.items()]
    else:
        words = [flag_text(f) for f in flags]
    return ", ".join(words) or empty
