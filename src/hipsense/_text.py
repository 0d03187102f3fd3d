"""Numbers and flags as people read them, for printed lines, logs and reports."""

from collections.abc import Iterable, Mapping

__all__ = ["FLAG_PHRASES", "counted", "flag_phrase", "flag_text", "flags_phrase", "flags_text"]

FLAG_PHRASES: Mapping[str, str] = {
    "too_fast": "moved too fast",
    "too_much_range": "went beyond the target range",
    "partial": "fell short of the target range",
    "off_plane": "moved out of the exercise's plane",
    "hold_short": "hold shorter than prescribed",
    "eccentric_fast": "returned too fast (not controlled)",
    "data_gap": "gap in the sensor data",
}
"""Each flag (`hipsense.motion.Flag` value) in a clinician's words, for reports: what the
rep or hold showed, not the code word. The terminal's short form is `flag_text`."""


def counted(n: int, word: str) -> str:
    """`n` and `word`, plural unless there is one: "1 set", "2 sets", "0 reps"."""
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def flag_text(flag: object) -> str:
    """A flag in a few words, for a terminal line: "data_gap" -> "data gap"."""
    return str(flag).replace("_", " ")


def flags_text(flags: Mapping[object, int] | Iterable[object], empty: str = "none") -> str:
    """Flags in words, counted when given as counts: "data gap x5, too fast x2"."""
    if isinstance(flags, Mapping):
        words = [f"{flag_text(f)} x{n}" for f, n in flags.items()]
    else:
        words = [flag_text(f) for f in flags]
    return ", ".join(words) or empty


def flag_phrase(flag: object) -> str:
    """A flag in a clinician's words: "data_gap" -> "gap in the sensor data".

    A flag newer than the table reads as `flag_text` (never as its code word).
    """
    return FLAG_PHRASES.get(str(flag), flag_text(flag))


def flags_phrase(flags: Mapping[object, int] | Iterable[object], empty: str = "none") -> str:
    """Flags in a clinician's words, counted when given as counts.

    "moved too fast (2); gap in the sensor data (1)": the counts are of reps and holds.
    """
    if isinstance(flags, Mapping):
        words = [f"{flag_phrase(f)} ({n})" for f, n in flags.items()]
    else:
        words = [flag_phrase(f) for f in flags]
    return "; ".join(words) or empty
