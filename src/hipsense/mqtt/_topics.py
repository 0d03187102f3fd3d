"""The MQTT topic tree, under a configurable prefix (default `hipsense/v1/{gateway_id}`)."""

import re
from dataclasses import dataclass

from hipsense._errors import HipsenseError

__all__ = ["DEFAULT_PREFIX", "TopicError", "Topics"]

DEFAULT_PREFIX = "hipsense/v1/{gateway_id}"
_ID = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


class TopicError(HipsenseError, ValueError):
    """An id that cannot be a topic level."""

    def __init__(self, what: str, value: str) -> None:
        super().__init__(f"{what}: expected 1-64 letters, digits, '_', '.' or '-', got {value!r}")
        self.what = what
        self.value = value


def _check(what: str, value: str) -> str:
    # Ids become topic levels: '/', '+', '#' or an empty level would change the tree.
    if not _ID.match(value):
        raise TopicError(what, value)
    return value


_MAX_TOPIC_BYTES = 65535
"""MQTT's limit on a topic name's UTF-8 length."""


@dataclass(frozen=True)
class Topics:
    """Topic names of one gateway. Ids are pseudonymous: never a patient's name."""

    gateway_id: str
    prefix_template: str = DEFAULT_PREFIX

    def __post_init__(self) -> None:
        _check("gateway_id", self.gateway_id)

    @property
    def prefix(self) -> str:
        """The gateway's root, e.g. `hipsense/v1/gw-1`."""
        return self.prefix_template.format(gateway_id=self.gateway_id)

    @property
    def status(self) -> str:
        """Retained: "online" / "offline" (also the Last Will)."""
        return f"{self.prefix}/status"

    @property
    def cmd(self) -> str:
        """Commands to the gateway (MQTT 5 request / response)."""
        return f"{self.prefix}/cmd"

    @property
    def cmd_reply(self) -> str:
        """Replies to commands that named no MQTT 5 response topic (e.g. over 3.1.1)."""
        return f"{self.prefix}/cmd/reply"

    def may_reply_to(self, topic: str) -> bool:
        """Whether a command's response topic is one the gateway may publish a reply on.

        Under `cmd/reply/`, or outside the contract's tree altogether: a reply must never
        land where consumers read a gateway's status, state, events or summaries (its
        own or another's). MQTT also forbids wildcards and NUL in a topic published to.
        """
        if not topic or len(topic.encode()) > _MAX_TOPIC_BYTES or any(c in topic for c in "+#\0"):
            return False
        root = self.prefix_template.split("{gateway_id}")[0]
        return topic.startswith(self.cmd_reply + "/") or not topic.startswith(root)

    @property
    def prescriptions(self) -> str:
        """Filter matching every patient's retained prescription."""
        return f"{self.prefix}/patients/+/prescription"

    def sensor_state(self, sensor_id: str) -> str:
        """Retained: link state of one sensor."""
        return f"{self.prefix}/sensors/{_check('sensor_id', sensor_id)}/state"

    def sensor_session(self, sensor_id: str) -> str:
        """Retained: the session one sensor is in now (for Home Assistant and the like)."""
        return f"{self.prefix}/sensors/{_check('sensor_id', sensor_id)}/session"

    def live(self, session_id: str) -> str:
        """QoS 0, throttled angle frames with a message expiry."""
        return f"{self.prefix}/sessions/{_check('session_id', session_id)}/live"

    def events(self, session_id: str) -> str:
        """QoS 1: reps, holds, set ends, calibrations, with id and sequence number."""
        return f"{self.prefix}/sessions/{_check('session_id', session_id)}/events"

    def summary(self, session_id: str) -> str:
        """Retained, QoS 1: the session's summary."""
        return f"{self.prefix}/sessions/{_check('session_id', session_id)}/summary"

    def prescription(self, patient_id: str) -> str:
        """Retained per-patient prescription the gateway may start a session from."""
        return f"{self.prefix}/patients/{_check('patient_id', patient_id)}/prescription"
