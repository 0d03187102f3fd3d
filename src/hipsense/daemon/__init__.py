"""The hipsense service: sensor links, sessions and the publisher wired together."""

from ._config import ConfigError, DaemonSettings, SensorSettings, SimulatedSensor, load_settings
from ._demo import DemoOptions, run_demo
from ._live_view import LiveView, view_console
from ._logs import configure_logging
from ._run import run_daemon
from ._session_runner import run_session, sensor_state, storage_state
from ._state import StateDirError, default_state_dir, gateway_id

__all__ = [
    "ConfigError",
    "DaemonSettings",
    "DemoOptions",
    "LiveView",
    "SensorSettings",
    "SimulatedSensor",
    "StateDirError",
    "configure_logging",
    "default_state_dir",
    "gateway_id",
    "load_settings",
    "run_daemon",
    "run_demo",
    "run_session",
    "sensor_state",
    "storage_state",
    "view_console",
]
