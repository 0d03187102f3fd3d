"""Where a gateway keeps its state: the outbox, its id, later its session history."""

import contextlib
import errno
import fcntl
import logging
import os
import secrets
import tempfile
from pathlib import Path

from hipsense._errors import HipsenseError
from hipsense._sqlite import owner_only
from hipsense.mqtt import BrokerConfig, utc_now

__all__ = [
    "EMBEDDED",
    "LOCK_NAME",
    "StateDirError",
    "default_state_dir",
    "gateway_id",
    "new_session_id",
    "outbox_broker",
    "prepare",
]

log = logging.getLogger("hipsense.daemon")

_READ_ONLY = (errno.EROFS, errno.EACCES, errno.EPERM)

LOCK_NAME = "lock"
"""The file in the state folder a gateway holds an exclusive `flock` on while it runs."""

_held: dict[Path, int] = {}
"""The state folders this process has locked (resolved), with the lock file's descriptor:
kept open, so locked, until the process ends (the kernel lets go of a killed one's)."""


EMBEDDED = "embedded"
"""The outbox's name for the embedded broker of the state folder (its port may change)."""


def outbox_broker(config: BrokerConfig | None) -> str:
    """The broker the outbox keeps messages for: its address, or `EMBEDDED` for None.

    Messages queued for one broker are never sent to another (a demo's embedded broker
    does not get what a clinic's broker, unreachable, did not). The address has no
    credentials: another account on the same broker is the same broker.
    """
    return EMBEDDED if config is None else config.address


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

    The folder is locked for the rest of the process (again in the same process is
    fine): a second gateway on it (`hipsense demo` while `hipsense run` is running: both
    default to the same folder) is a `StateDirError`, for it would close the first's live
    sessions as interrupted and share its outbox. Readers (`hipsense sessions`, `report`)
    do not call this and are not held up.
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
        if exc.errno in _READ_ONLY:
            raise StateDirError(
                f"state folder {state_dir}: expected a folder hipsense can write (its "
                "outbox, history and gateway id), got "
                f"{exc.strerror.lower() if exc.strerror else exc}"
            ) from exc
        log.warning("state folder %s: %s", state_dir, exc)
    _lock(state_dir)
    return state_dir


def _lock(state_dir: Path) -> None:
    """Take the folder's lock for this process, or raise `StateDirError` if another has it."""
    key = state_dir.resolve()
    if key in _held:
        return
    path = state_dir / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as exc:  # e.g. no inode left: a full disk is not fatal
        log.warning(
            "state folder %s: not locked (%s): a second gateway would not be seen", state_dir, exc
        )
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = ""
        with contextlib.suppress(OSError, ValueError):
            holder = f" (pid {int(os.pread(fd, 32, 0).decode().strip())})"
        os.close(fd)
        raise StateDirError(
            f"state folder {state_dir}: expected it to be free, found another hipsense"
            f"{holder} using it; stop that one, or give this one its own folder "
            "(state_dir, --state-dir or HIPSENSE_STATE_DIR)"
        ) from None
    except OSError as exc:  # a file system without locks (some network ones)
        os.close(fd)
        log.warning(
            "state folder %s: not locked (%s): a second gateway would not be seen", state_dir, exc
        )
        return
    with contextlib.suppress(OSError):  # who holds it, for the other's message
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    _held[key] = fd


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
            owner_only(path)
        except OSError as exc:  # a full disk: this run has an id, the next may get another
            log.warning("gateway id %s not kept in %s: %s", value, path, exc)
    return value


def new_session_id() -> str:
    """A unique, sortable, meaningless session id."""
    return f"{utc_now():%Y%m%dT%H%M%S}-{secrets.token_hex(3)}"
