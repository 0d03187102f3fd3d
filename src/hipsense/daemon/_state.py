"""Where a gateway keeps its state: the outbox, its id, later its session history."""

import os
import secrets
from pathlib import Path

from hipsense._errors import HipsenseError
from hipsense.mqtt import utc_now

__all__ = ["StateDirError", "default_state_dir", "gateway_id", "new_session_id", "prepare"]


class StateDirError(HipsenseError):
    """The state folder cannot be used."""


def default_state_dir() -> Path:
    """`$HIPSENSE_STATE_DIR`, else `$XDG_STATE_HOME/hipsense`, else `~/.local/state/hipsense`."""
    explicit = os.environ.get("HIPSENSE_STATE_DIR")
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_STATE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".local" / "state"
    return base / "hipsense"


def prepare(state_dir: Path) -> Path:
    """Create the folder (private to the user: it holds health data) and return it."""
    try:
        state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise StateDirError(
            f"state folder: expected a folder hipsense can write, got {state_dir}: {exc}"
        ) from exc
    return state_dir


def gateway_id(state_dir: Path) -> str:
    """The gateway's id: random once, then kept in the state folder.

    Random rather than the host name, which often carries a person's name.
    """
    path = prepare(state_dir) / "gateway-id"
    try:
        value = path.read_text().strip()
    except FileNotFoundError:
        value = ""
    if not value:
        value = f"gw-{secrets.token_hex(4)}"
        path.write_text(value + "\n")
    return value


def new_session_id() -> str:
    """A unique, sortable, meaningless session id."""
    return f"{utc_now():%Y%m%dT%H%M%S}-{secrets.token_hex(3)}"
