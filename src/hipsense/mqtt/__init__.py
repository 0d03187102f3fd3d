"""The MQTT API: topics, payloads, the durable outbox and the publisher."""

from ._broker import BrokerConfig, BrokerConfigError
from ._embedded import EmbeddedBroker, EmbeddedBrokerError
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
    utc_now,
)
from ._publisher import Command, MqttPublisher, PublisherStats
from ._topics import DEFAULT_PREFIX, TopicError, Topics

__all__ = [
    "ALGORITHM_VERSION",
    "DEFAULT_PREFIX",
    "SCHEMA_VERSION",
    "BrokerConfig",
    "BrokerConfigError",
    "CalibrationPayload",
    "Command",
    "CommandReply",
    "CommandRequest",
    "EmbeddedBroker",
    "EmbeddedBrokerError",
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
    "utc_now",
]
