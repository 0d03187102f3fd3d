"""Sessions: one sensor's stream through the motion core, counted for a summary."""

from ._pipeline import SessionPipeline, SessionTally

__all__ = ["SessionPipeline", "SessionTally"]
