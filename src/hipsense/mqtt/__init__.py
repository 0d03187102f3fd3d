"""The MQTT API: topics, payloads, the durable outbox and the publisher."""

from hipsense.domain import (
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

from ._broker import BrokerConfig, BrokerConfigError
from ._embedded import (
    CREDENTIALS_FILE,
    BrokerCredentials,
    EmbeddedBroker,
    EmbeddedBrokerError,
    broker_credentials,
    read_broker_credentials,
)
from ._outbox import (
    Outbox,
    OutboxFullError,
    OutboxMemoryFullError,
    OutboxMessage,
    OutboxUnavailableError,
)
from ._publisher import Command, MqttPublisher, PublisherStats
from ._topics import DEFAULT_PREFIX, TopicError, Topics

__all__ = [
    "ALGORITHM_VERSION",
    "CREDENTIALS_FILE",
    "DEFAULT_PREFIX",
    "SCHEMA_VERSION",
    "BrokerConfig",
    "BrokerConfigError",
    "BrokerCredentials",
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
    "OutboxMemoryFullError",
    "OutboxMessage",
    "OutboxUnavailableError",
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
    "broker_credentials",
    "event_payload",
    "read_broker_credentials",
    "utc_now",
]
