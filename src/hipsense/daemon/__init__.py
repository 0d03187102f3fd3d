"""The hipsense service: sensor links, sessions and the publisher wired together."""

from ._demo import DemoOptions, run_demo
from ._session_runner import run_session, sensor_state
from ._state import StateDirError, default_state_dir, gateway_id

__all__ = [
    "DemoOptions",
    "StateDirError",
    "default_state_dir",
    "gateway_id",
    "run_demo",
    "run_session",
    "sensor_state",
]
