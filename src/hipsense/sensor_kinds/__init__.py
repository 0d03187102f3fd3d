"""Sensor kinds: which sensors hipsense reads and the link each one gets."""

from ._registry import (
    KINDS,
    LinkRequest,
    SensorKind,
    UnknownSensorKindError,
    advertisement_classifiers,
    get_kind,
    kind_names,
)

__all__ = [
    "KINDS",
    "LinkRequest",
    "SensorKind",
    "UnknownSensorKindError",
    "advertisement_classifiers",
    "get_kind",
    "kind_names",
]
