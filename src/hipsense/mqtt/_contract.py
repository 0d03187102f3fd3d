"""The MQTT contract as files: JSON Schemas of the payloads and an AsyncAPI 3.0 document.

Generated from the pydantic models, so the contract cannot drift from the code:
`hipsense contract --write` rewrites `docs/schemas/*.json` and `docs/asyncapi.yaml`,
and a test fails when the checked-in files differ from what it would write.
"""

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from hipsense.domain import (
    SCHEMA_VERSION,
    CommandReply,
    CommandRequest,
    EventMessage,
    LiveFrame,
    Prescription,
    SensorSession,
    SensorState,
    Status,
    Summary,
)

__all__ = [
    "CHANNELS",
    "DIALECT",
    "Channel",
    "asyncapi_document",
    "asyncapi_schema",
    "contract_files",
    "json_schemas",
    "render_yaml",
    "stale",
    "write",
]


DIALECT = "https://json-schema.org/draft/2020-12/schema"
"""The JSON Schema dialect of `docs/schemas/*.json` (pydantic writes 2020-12)."""


@dataclass(frozen=True)
class Channel:
    """One topic of the tree, as the contract describes it."""

    name: str
    address: str
    model: type[BaseModel]
    qos: int
    retain: bool
    action: str
    """`send`: the gateway publishes; `receive`: the gateway subscribes."""
    description: str
    expiry_s: int | None = None


CHANNELS = (
    Channel(
        "status",
        "hipsense/v1/{gateway_id}/status",
        Status,
        1,
        True,
        "send",
        'Gateway availability: "online" on connect, "offline" on clean shutdown and as the '
        "Last Will.",
    ),
    Channel(
        "sensorState",
        "hipsense/v1/{gateway_id}/sensors/{sensor_id}/state",
        SensorState,
        1,
        True,
        "send",
        "Link state of one sensor: connected, battery, RSSI, rate, loss.",
    ),
    Channel(
        "sensorSession",
        "hipsense/v1/{gateway_id}/sensors/{sensor_id}/session",
        SensorSession,
        1,
        True,
        "send",
        "The session one sensor is in now: state, exercise, reps in the current set, the "
        "last rep's range of motion. Updated at the session's start, events and end.",
    ),
    Channel(
        "live",
        "hipsense/v1/{gateway_id}/sessions/{session_id}/live",
        LiveFrame,
        0,
        False,
        "send",
        "Throttled angle stream (about 20 frames/s); expires after 5 s; dropped, "
        "never queued, while the broker is unreachable.",
        expiry_s=5,
    ),
    Channel(
        "events",
        "hipsense/v1/{gateway_id}/sessions/{session_id}/events",
        EventMessage,
        1,
        False,
        "send",
        "Reps, holds, set ends and calibrations. At least once: drop "
        "duplicates by `id`; `seq` counts 0, 1, 2 ... per session, so a gap is visible.",
    ),
    Channel(
        "summary",
        "hipsense/v1/{gateway_id}/sessions/{session_id}/summary",
        Summary,
        1,
        True,
        "send",
        "The session's summary so far, published when it starts and after every rep, "
        "hold and set end "
        "(the retained one has the latest counts) and final once `ended_at` is set; "
        "`last_seq` is the seq of the last event it counts.",
    ),
    Channel(
        "commands",
        "hipsense/v1/{gateway_id}/cmd",
        CommandRequest,
        1,
        False,
        "receive",
        "Commands to the gateway. Set the MQTT 5 response topic and correlation data; "
        "the reply (CommandReply) goes there. Without a response topic (MQTT 3.1.1), the "
        "reply goes to `cmd/reply` and carries the request's `correlation_id`. A bad "
        "command gets ok=false and changes nothing.",
    ),
    Channel(
        "commandReplies",
        "{response_topic}",
        CommandReply,
        1,
        False,
        "send",
        "Replies to commands, on the response topic the request named, with its correlation data.",
    ),
    Channel(
        "commandReplyTopic",
        "hipsense/v1/{gateway_id}/cmd/reply",
        CommandReply,
        1,
        False,
        "send",
        "Replies to commands that named no response topic (e.g. from MQTT 3.1.1 clients); "
        "match them by `correlation_id`.",
    ),
    Channel(
        "prescription",
        "hipsense/v1/{gateway_id}/patients/{patient_id}/prescription",
        Prescription,
        1,
        True,
        "receive",
        "A patient's prescription (retained), by "
        "pseudonymous id; the gateway may start a session from it.",
    ),
)


def json_schemas() -> dict[str, dict[str, Any]]:
    """JSON Schema of each payload, by model name."""
    return {c.model.__name__: c.model.model_json_schema() for c in CHANNELS}


def asyncapi_document() -> dict[str, Any]:
    """The AsyncAPI 3.0 document of the topic tree."""
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    for c in CHANNELS:
        name = c.model.__name__
        params = [p.split("}")[0] for p in c.address.split("{")[1:]]
        channels[c.name] = {
            "address": c.address,
            "description": c.description,
            "messages": {name: {"$ref": f"#/components/messages/{name}"}},
            **({"parameters": {p: {"description": _PARAMS[p]} for p in params}} if params else {}),
        }
        binding: dict[str, Any] = {"qos": c.qos, "retain": c.retain}
        if c.expiry_s is not None:
            binding["messageExpiryInterval"] = c.expiry_s
        operations[f"{c.action}{c.name[0].upper()}{c.name[1:]}"] = {
            "action": c.action,
            "channel": {"$ref": f"#/channels/{c.name}"},
            "bindings": {"mqtt": {**binding, "bindingVersion": "0.2.0"}},
        }
        messages[name] = {
            "name": name,
            "contentType": "application/json",
            "payload": {"$ref": f"#/components/schemas/{name}"},
            "bindings": {"mqtt": {"contentType": "application/json", "bindingVersion": "0.2.0"}},
        }
    schemas: dict[str, Any] = {}
    for name, schema in json_schemas().items():
        # Nested definitions become components of their own, referenced the same way.
        schemas.update(schema.pop("$defs", {}))
        schemas[name] = schema
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "hipsense MQTT API",
            "version": f"{SCHEMA_VERSION}.0.0",
            "description": "What a hipsense gateway publishes and the commands it takes. "
            "Every message is JSON with the MQTT 5 content type application/json and the "
            "user properties schema_version and algorithm_version. Patients appear by "
            "pseudonymous id only. Addresses show the default prefix "
            "hipsense/v1/{gateway_id}, which is configurable.",
        },
        "defaultContentType": "application/json",
        "servers": {
            "broker": {
                "host": "localhost:1883",
                "protocol": "mqtt",
                "protocolVersion": "5",
                "description": "Any MQTT 3.1.1 / 5 broker; mqtts on 8883 with TLS.",
            }
        },
        "channels": channels,
        "operations": operations,
        "components": {
            "messages": messages,
            "schemas": {k: asyncapi_schema(v) for k, v in schemas.items()},
        },
    }


def asyncapi_schema(node: Any) -> Any:
    """One JSON Schema 2020-12 node (pydantic's) as an AsyncAPI 3.0 Schema Object.

    The AsyncAPI Schema Object is a superset of JSON Schema draft 07, so the few
    2020-12 and OpenAPI spellings pydantic writes are translated, everything else is
    kept: references into `$defs` point at `#/components/schemas/`; a tuple's
    `prefixItems` becomes draft 07's array form of `items`; and OpenAPI's discriminator
    object ({propertyName, mapping}), which AsyncAPI parsers reject because there
    `discriminator` is a string, becomes that string. The spec wants the discriminator
    property defined and required on the schema that names it, so the union gets the
    property with its values as an enum. The mapping itself needs no keyword: each
    alternative fixes the property with `const`.
    """
    if isinstance(node, list):
        return [asyncapi_schema(v) for v in node]
    if not isinstance(node, dict):
        return node
    out = {
        "items" if k == "prefixItems" else k: asyncapi_schema(v)
        for k, v in node.items()
        if k != "discriminator"
    }
    ref = out.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        out["$ref"] = "#/components/schemas/" + ref.removeprefix("#/$defs/")
    discriminator = node.get("discriminator")
    if isinstance(discriminator, dict):
        prop = discriminator["propertyName"]
        out["discriminator"] = prop
        out["properties"] = {
            **out.get("properties", {}),
            prop: {"type": "string", "enum": sorted(discriminator.get("mapping", {}))},
        }
        required = out.get("required", [])
        out["required"] = required if prop in required else [*required, prop]
    return out


_PARAMS = {
    "gateway_id": "The gateway's id (configurable).",
    "sensor_id": "A sensor's id.",
    "session_id": "A session's id.",
    "patient_id": "A patient's pseudonymous id.",
    "response_topic": "The MQTT 5 response topic of the request.",
}


def render_yaml(value: Any, indent: int = 0) -> str:
    """Block-style YAML of JSON-like data; strings are JSON-quoted (valid YAML)."""
    pad = "  " * indent
    if isinstance(value, dict):
        if not value:
            return "{}"
        lines = []
        for k, v in value.items():
            key = json.dumps(str(k))
            if isinstance(v, dict | list) and v:
                lines.append(f"{pad}{key}:\n{render_yaml(v, indent + 1)}")
            else:
                lines.append(f"{pad}{key}: {render_yaml(v, 0)}")
        return "\n".join(lines)
    if isinstance(value, list):
        if not value:
            return "[]"
        lines = []
        for v in value:
            if isinstance(v, dict | list) and v:
                inner = render_yaml(v, indent + 1).lstrip()
                lines.append(f"{pad}- {inner}")
            else:
                lines.append(f"{pad}- {render_yaml(v, 0)}")
        return "\n".join(lines)
    return json.dumps(value)


def contract_files(docs: Path) -> dict[Path, str]:
    """Every contract file under `docs` with the text it should have."""
    # The dialect said once per file, so a validator need not guess it.
    files = {
        docs / "schemas" / f"{name}.json": json.dumps({"$schema": DIALECT, **schema}, indent=2)
        + "\n"
        for name, schema in json_schemas().items()
    }
    files[docs / "asyncapi.yaml"] = (
        "# Generated from src/hipsense/mqtt: do not edit; run `hipsense contract --write`.\n"
        + render_yaml(asyncapi_document())
        + "\n"
    )
    return files


def stale(docs: Path) -> list[Path]:
    """Contract files under `docs` that are missing or differ from the models."""
    return [
        path
        for path, text in contract_files(docs).items()
        if not path.exists() or path.read_text() != text
    ]


def write(docs: Path) -> list[Path]:
    """Write `docs/schemas/*.json` and `docs/asyncapi.yaml`; return the files written."""
    files = contract_files(docs)
    for path, text in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return list(files)
