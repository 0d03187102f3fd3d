"""Home Assistant MQTT discovery configs, pure: sensor descriptions + topics -> messages.

Each sensor becomes a Home Assistant device, routed through the gateway's own device
(`via_device`), with one entity per value hipsense publishes for it. Every entity reads
a topic hipsense already publishes (the sensor's retained `state` and `session`, the
gateway's `status`) with a `{{ value_json.key }}` template, and is available while the
gateway's retained status says "online" (its Last Will says "offline").

Topics follow Home Assistant's `<discovery_prefix>/<component>/<node_id>/<object_id>/config`
with the gateway as the node and `{sensor_id}_{entity}` as the object, so a broker ACL
can grant a gateway `<prefix>/+/{gateway_id}/+/config`. Keys are written in full, not
abbreviated. See docs/mqtt.md, "Home Assistant".
"""

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from hipsense._errors import HipsenseError
from hipsense._version import __version__

from ._topics import Topics

__all__ = [
    "DEFAULT_DISCOVERY_PREFIX",
    "READING_EXPIRE_S",
    "SESSION_STATES",
    "DiscoveryError",
    "SensorDescription",
    "check_prefix",
    "config_topic_filter",
    "discovery_messages",
]

DEFAULT_DISCOVERY_PREFIX = "homeassistant"
"""Home Assistant's default discovery prefix (its birth message is `<prefix>/status`)."""

SESSION_STATES = ("calibrating", "exercising", "resting", "ended")
"""The values of `SensorSession.state`: the options of the session-state enum entity."""

READING_EXPIRE_S = 600
"""Battery and RSSI turn unknown when no sensor state came for this long. States come
every 5 s while a sensor streams; ten minutes covers a gateway restart and a reconnection
without flapping, and no longer shows a reading of a sensor that is gone."""

_LEVEL = re.compile(r"[^A-Za-z0-9_-]")
_SLUG = re.compile(r"[^a-z0-9_]+")


class DiscoveryError(HipsenseError, ValueError):
    """Sensor ids that would share a discovery topic, or a discovery prefix that cannot work."""


@dataclass(frozen=True)
class SensorDescription:
    """What the gateway knows of one sensor, for its Home Assistant device."""

    sensor_id: str
    manufacturer: str | None = None
    model: str | None = None
    sw_version: str | None = None
    """The sensor's firmware version, once read from it."""


def check_prefix(prefix: str) -> str:
    """The discovery prefix, checked: topic levels without wildcards, no empty level."""
    levels = prefix.split("/")
    if not prefix or any(not level or "+" in level or "#" in level for level in levels):
        raise DiscoveryError(
            f"discovery_prefix: expected topic levels without '+', '#' or an empty level "
            f"(such as {DEFAULT_DISCOVERY_PREFIX!r}), got {prefix!r}"
        )
    return prefix


def _level(value: str) -> str:
    # Home Assistant allows only [a-zA-Z0-9_-] in node and object ids; hipsense ids may
    # also hold '.'.
    return _LEVEL.sub("_", value)


def _slug(value: str) -> str:
    return _SLUG.sub("_", value.lower()).strip("_")


def config_topic_filter(prefix: str, topics: Topics) -> str:
    """The filter matching every discovery config this gateway may publish."""
    return f"{check_prefix(prefix)}/+/{_level(topics.gateway_id)}/+/config"


def _availability(topics: Topics) -> list[dict[str, str]]:
    return [
        {
            "topic": topics.status,
            "value_template": "{{ value_json.state }}",
            "payload_available": "online",
            "payload_not_available": "offline",
        }
    ]


def _origin() -> dict[str, str]:
    return {"name": "hipsense", "sw_version": __version__}


def _gateway_device(topics: Topics) -> dict[str, Any]:
    return {
        "identifiers": [f"hipsense_{topics.gateway_id}"],
        "name": f"hipsense gateway {topics.gateway_id}",
        "manufacturer": "hipsense",
        "model": "hipsense gateway",
        "sw_version": __version__,
    }


def _sensor_device(topics: Topics, sensor: SensorDescription) -> dict[str, Any]:
    device: dict[str, Any] = {
        "identifiers": [f"hipsense_{topics.gateway_id}_{sensor.sensor_id}"],
        "name": f"hipsense {sensor.sensor_id}",
        "via_device": f"hipsense_{topics.gateway_id}",
    }
    for key in ("manufacturer", "model", "sw_version"):
        if (value := getattr(sensor, key)) is not None:
            device[key] = value
    return device


def _sensor_entities(topics: Topics, sensor_id: str) -> list[tuple[str, str, dict[str, Any]]]:
    """(component, key, the entity's own keys) of each entity of one sensor."""
    state = topics.sensor_state(sensor_id)
    session = topics.sensor_session(sensor_id)
    return [
        (
            "binary_sensor",
            "connected",
            {
                "name": "Connected",
                "state_topic": state,
                "value_template": "{{ value_json.connected }}",
                # Home Assistant renders a JSON true as "True".
                "payload_on": "True",
                "payload_off": "False",
                "device_class": "connectivity",
            },
        ),
        (
            "sensor",
            "battery",
            {
                "name": "Battery",
                "state_topic": state,
                "value_template": "{{ value_json.battery_pct }}",
                "device_class": "battery",
                "unit_of_measurement": "%",
                "state_class": "measurement",
                "entity_category": "diagnostic",
                "expire_after": READING_EXPIRE_S,
            },
        ),
        (
            "sensor",
            "rssi",
            {
                "name": "Signal strength",
                "state_topic": state,
                "value_template": "{{ value_json.rssi_dbm }}",
                "device_class": "signal_strength",
                "unit_of_measurement": "dBm",
                "state_class": "measurement",
                "entity_category": "diagnostic",
                "expire_after": READING_EXPIRE_S,
            },
        ),
        (
            "sensor",
            "exercise",
            {
                "name": "Exercise",
                "state_topic": session,
                "value_template": "{{ value_json.exercise }}",
                "icon": "mdi:run",
            },
        ),
        (
            "sensor",
            "set_reps",
            {
                "name": "Reps in set",
                "state_topic": session,
                "value_template": "{{ value_json.set_reps }}",
                "unit_of_measurement": "reps",
                "state_class": "measurement",
                "icon": "mdi:counter",
            },
        ),
        (
            "sensor",
            "last_rom",
            {
                "name": "Last rep range of motion",
                "state_topic": session,
                "value_template": "{{ value_json.last_rom_deg }}",
                "unit_of_measurement": "°",
                "state_class": "measurement",
                "suggested_display_precision": 0,
                "icon": "mdi:angle-acute",
            },
        ),
        (
            "sensor",
            "session_state",
            {
                "name": "Session",
                "state_topic": session,
                "value_template": "{{ value_json.state }}",
                "device_class": "enum",
                "options": list(SESSION_STATES),
            },
        ),
    ]


def _entity(
    topics: Topics,
    component: str,
    object_name: str,
    own: dict[str, Any],
    device: dict[str, Any],
    *,
    available: bool = True,
) -> dict[str, Any]:
    config = {
        **own,
        "unique_id": f"hipsense_{topics.gateway_id}_{object_name}",
        # Home Assistant 2025.10 replaced `object_id` by `default_entity_id`.
        "default_entity_id": f"{component}.{_slug(f'hipsense_{object_name}')}",
        "qos": 1,
        "device": device,
        "origin": _origin(),
    }
    if available:
        config["availability"] = _availability(topics)
    return config


def discovery_messages(
    topics: Topics,
    sensors: Sequence[SensorDescription],
    *,
    prefix: str = DEFAULT_DISCOVERY_PREFIX,
) -> list[tuple[str, bytes]]:
    """(config topic, JSON payload) of every entity: the gateway's, then each sensor's.

    Published retained; an empty retained payload on a topic removes its entity.
    """
    check_prefix(prefix)
    node = _level(topics.gateway_id)
    gateway = _gateway_device(topics)
    out: list[tuple[str, bytes]] = []
    seen: dict[str, str] = {}

    def add(component: str, object_name: str, config: dict[str, Any], owner: str) -> None:
        topic = f"{prefix}/{component}/{node}/{_level(object_name)}/config"
        if topic in seen and seen[topic] != owner:
            raise DiscoveryError(
                f"sensor ids: expected ids that differ in more than '.' and '_' for Home "
                f"Assistant, got {seen[topic]!r} and {owner!r}"
            )
        seen[topic] = owner
        out.append((topic, json.dumps(config, separators=(",", ":")).encode()))

    status = {
        "name": "Status",
        "state_topic": topics.status,
        "value_template": "{{ value_json.state }}",
        "payload_on": "online",
        "payload_off": "offline",
        "device_class": "connectivity",
        "entity_category": "diagnostic",
    }
    # The gateway's status entity has no availability: it shows the status itself.
    add("binary_sensor", "gateway", _entity(topics, "binary_sensor", "gateway", status, gateway,
                                            available=False), "")  # fmt: skip
    for sensor in sensors:
        device = _sensor_device(topics, sensor)
        for component, key, own in _sensor_entities(topics, sensor.sensor_id):
            name = f"{sensor.sensor_id}_{key}"
            add(component, name, _entity(topics, component, name, own, device), sensor.sensor_id)
    return out
