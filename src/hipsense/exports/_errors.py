"""The one error of the exports."""

from hipsense._errors import HipsenseError

__all__ = ["ExportError"]


class ExportError(HipsenseError):
    """An export cannot be made: nothing to export, or a path that cannot be written."""
