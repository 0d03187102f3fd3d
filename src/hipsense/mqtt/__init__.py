"""The MQTT API: topics, payloads, the durable outbox and the publisher."""

from ._broker import BrokerConfig, BrokerConfigError
from ._outbox import Outbox, OutboxFullError, OutboxMessage
from ._payloads import (
    ALGORITHM_VERSION,
    SCHEMA_VERSION,
    CalibrationPayload,
    CommandReply,
    CommandRequest,
    EventMessage,
    HoldPayload,
    LiveFrame,
    PrescribedExercise,
    Prescription,
    RepPayload,
    SensorState,
    SetPayload,
    Status,
    Summary,
    event_payload,
)
from ._publisher import MqttPublisher, PublisherStats
from ._topics import DEFAULT_PREFIX, TopicError, Topics

__all__ = [
    "ALGORITHM_VERSION",
    "DEFAULT_PREFIX",
    "SCHEMA_VERSION",
    "BrokerConfig",
    "BrokerConfigError",
    "CalibrationPayload",
    "CommandReply",
    "CommandRequest",
    "EventMessage",
    "HoldPayload",
    "LiveFrame",
    "MqttPublisher",
    "Outbox",
    "OutboxFullError",
    "OutboxMessage",
    "PrescribedExercise",
    "Prescription",
    "PublisherStats",
    "RepPayload",
    "SensorState",
    "SetPayload",
    "Status",
    "Summary",
    "TopicError",
    "Topics",
    "event_payload",
]
