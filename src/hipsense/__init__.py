"""hipsense: measure home hip-rehab exercises with one thigh-worn IMU.

Subpackages, from radio to report:

- `hipsense.protocol`: the native sensor protocol, sans I/O (bytes to numpy arrays);
- `hipsense.recording`: the CSV recording format for offline analysis;
- `hipsense.cli`: the `hipsense` command.
"""

from ._errors import HipsenseError
from ._version import __version__

__all__ = ["HipsenseError", "__version__"]
