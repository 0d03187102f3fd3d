"""The version of the hipsense distribution."""

__version__ = "0.1.0"
