"""docs/schemas/ and docs/asyncapi.yaml are what the payload models say."""

import json
from pathlib import Path

from hipsense.cli import main
from hipsense.mqtt import EventMessage, Topics
from hipsense.mqtt._contract import CHANNELS, DIALECT, asyncapi_document, stale
from tests.conftest import ROOT


def test_checked_in_contract_matches_the_models() -> None:
    # Regenerate with: hipsense contract --write
    assert stale(ROOT / "docs") == []


def test_contract_check_fails_on_a_changed_file(tmp_path: Path) -> None:
    assert main(["contract", "--docs", str(tmp_path), "--write"]) == 0
    assert main(["contract", "--docs", str(tmp_path)]) == 0
    path = tmp_path / "schemas" / "EventMessage.json"
    path.write_text(path.read_text().replace('"seq"', '"sequence"'))
    assert main(["contract", "--docs", str(tmp_path)]) == 1


def test_every_topic_of_the_tree_is_a_channel_with_qos_and_retain() -> None:
    doc = asyncapi_document()
    t = Topics("GW")  # the real topic builder, its id then put back as the parameter
    addresses = {c["address"] for c in doc["channels"].values()}
    for topic in (t.status, t.cmd, t.events("S").replace("/S/", "/{session_id}/")):
        assert topic.replace("/GW/", "/{gateway_id}/") in addresses
    for pattern in (
        "sensors/{sensor_id}/state",
        "sessions/{session_id}/live",
        "sessions/{session_id}/events",
        "sessions/{session_id}/summary",
        "patients/{patient_id}/prescription",
    ):
        assert f"hipsense/v1/{{gateway_id}}/{pattern}" in addresses
    ops = doc["operations"].values()
    by_channel = {op["channel"]["$ref"].rsplit("/", 1)[-1]: op["bindings"]["mqtt"] for op in ops}
    assert by_channel["events"]["qos"] == 1
    assert by_channel["summary"]["retain"] is True
    assert by_channel["live"]["qos"] == 0
    assert by_channel["live"]["messageExpiryInterval"] == 5
    # Every $ref points at something that exists.
    text = json.dumps(doc)
    for ref in {r.split('"')[0] for r in text.split('"$ref": "#/')[1:]}:
        node = doc
        for part in ref.split("/"):
            node = node[part]
    assert len(doc["channels"]) == len(CHANNELS)


def test_the_event_schema_describes_what_is_published() -> None:
    schema = json.loads((ROOT / "docs" / "schemas" / "EventMessage.json").read_text())
    assert set(schema["required"]) >= {"id", "session_id", "seq", "sensor_id", "event"}
    assert schema.pop("$schema") == DIALECT
    assert schema == EventMessage.model_json_schema()
