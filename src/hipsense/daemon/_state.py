"""Where a gateway keeps its state: the outbox, its id, later its session history."""

import errno
import logging
import os
import secrets
import tempfile
from pathlib import Path

from hipsense._errors import HipsenseError
from hipsense.mqtt import utc_now

__all__ = ["StateDirError", "default_state_dir", "gateway_id", "new_session_id", "prepare"]

log = logging.getLogger("hipsense.daemon")

_READ_ONLY = (errno.EROFS, errno.EACCES, errno.EPERM)


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
    """Create the folder (private to the user: it holds health data) and return it.

    A folder that cannot be written (read-only, or not ours) is a `StateDirError`: that
    does not mend itself, and a gateway that kept nothing would lose every event on its
    next restart. A full disk is not: it is often freed, and meanwhile the outbox and the
    history hold what they cannot write in memory.
    """
    try:
        state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise StateDirError(
            f"state folder: expected a folder hipsense can write, got {state_dir}: {exc}"
        ) from exc
    try:
        # An empty file needs no free space: this fails on a read-only folder, not a full one.
        with tempfile.TemporaryFile(dir=state_dir):
            pass
    except OSError as exc:
        if exc.errno not in _READ_ONLY:
            log.warning("state folder %s: %s", state_dir, exc)
            return state_dir
        raise StateDirError(
            f"state folder {state_dir}: expected a folder hipsense can write (its outbox, "
            f"history and gateway id), got {exc.strerror.lower() if exc.strerror else exc}"
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
        try:
            path.write_text(value + "\n")
        except OSError as exc:  # a full disk: this run has an id, the next may get another
            log.warning("gateway id %s not kept in %s: %s", value, path, exc)
    return value


def new_session_id() -> str:
    """A unique, sortable, meaningless session id."""
    return f"{utc_now():%Y%m%dT%H%M%S}-{secrets.token_hex(3)}"
