"""The firmware's encoders against the golden vectors the C header is checked against.

tests/protocol/test_vectors.py compares the same files with hipsense's own encoder and
decoder and with firmware_protocol/hipsense_protocol.h.
"""

import json
from typing import Any

import pytest
from hipsense_fw import protocol as fw
from hipsense_fw.batcher import Batcher
from hipsense_fw.sensor import Sensor

from tests.conftest import VECTORS


def _load(name: str) -> Any:
    return json.loads((VECTORS / name).read_text())["vectors"]


IMU = _load("imu_packets.json")
CONTROL = _load("control_point.json")
STATUS = _load("status.json")
# The firmware writes its own version, 1.1; the other-minor vectors are for hosts.
OWN = [v for v in IMU if v["version_minor"] == fw.PROTOCOL_MINOR]


def test_constants_match_the_vectors() -> None:
    assert len(OWN) > 10
    assert {v["version_minor"] for v in IMU} - {fw.PROTOCOL_MINOR} == {0, 3}
    assert fw.VERSION_BYTE == 0x11
    assert fw.max_samples(fw.KIND_RAW, 20) == 1
    assert fw.max_samples(fw.KIND_QUAT, 20) == 1
    assert fw.max_samples(fw.KIND_RAW_QUAT, 20) == 0
    assert fw.max_samples(fw.KIND_RAW_QUAT, 28) == 1  # MTU 31
    assert [fw.max_samples(k, 244) for k in (1, 2, 3)] == [19, 29, 11]
    assert fw.max_samples(fw.KIND_RAW, 512) == 19  # never past 244 bytes
    assert fw.max_samples(0, 244) == 0


@pytest.mark.parametrize("v", OWN, ids=lambda v: v["name"])
def test_encode_packet_matches_vector(v: dict[str, Any]) -> None:
    raw = None if v["raw"] is None else [tuple(s) for s in v["raw"]]
    quat = None if v["quat_q14"] is None else [tuple(s) for s in v["quat_q14"]]
    data = fw.encode_packet(v["kind"], v["seq"], v["timestamp_us"], raw, quat)
    assert data.hex() == v["hex"]
    assert len(data) == v["length"]


@pytest.mark.parametrize("v", OWN, ids=lambda v: v["name"])
def test_batcher_builds_vector_packet(v: dict[str, Any]) -> None:
    """The streaming path (Batcher) gives the same bytes as the one-shot encoder."""
    n = len(v["raw"] or v["quat_q14"])
    period_us = 1_000_000 // v["format"]["rate_hz"]
    out: list[tuple[bytes, int]] = []
    b = Batcher(v["kind"], v["length"], period_us, lambda p, s: out.append((bytes(p), s)), v["seq"])
    assert b.capacity == n  # the vector's length is exactly n samples of its kind
    for i in range(n):
        raw = tuple(v["raw"][i]) if v["raw"] else None
        quat = tuple(v["quat_q14"][i]) if v["quat_q14"] else None
        # Unwrapped sensor time: the packet header wraps it to 32 bits.
        b.add(v["timestamp_us"] + i * period_us, raw, quat)
    assert out == [(bytes.fromhex(v["hex"]), v["seq"])]
    assert b.seq == (v["seq"] + 1) & 0xFFFF


def test_encode_packet_refuses_what_is_no_packet() -> None:
    with pytest.raises(ValueError, match="kind"):
        fw.encode_packet(0, 0, 0, [(0,) * 6])
    with pytest.raises(ValueError, match="count"):
        fw.encode_packet(fw.KIND_RAW, 0, 0, [(0,) * 6] * 20)
    with pytest.raises(ValueError, match="count"):
        fw.encode_packet(fw.KIND_RAW, 0, 0, [])


@pytest.mark.parametrize("v", STATUS, ids=lambda v: v["name"])
def test_encode_status_matches_vector(v: dict[str, Any]) -> None:
    f = v["fields"]
    data = fw.encode_status(
        (f["fw_major"], f["fw_minor"], f["fw_patch"]),
        f["rate_hz"],
        f["accel_range_g"],
        f["gyro_range_dps"],
        f["kind"],
        bool(f["state"] & 1),
        f["battery_pct"],
        f["errors"],
        f.get("backlog_packets", 0),
        version=f["version"],
    )
    assert data.hex() == v["hex"]


@pytest.mark.parametrize("v", CONTROL["responses"], ids=lambda v: v["name"])
def test_encode_response_matches_vector(v: dict[str, Any]) -> None:
    data = fw.encode_response(v["request"], v["result"], v["sync_token"], v["sensor_time_us"] or 0)
    assert data.hex() == v["hex"]


@pytest.mark.parametrize("v", CONTROL["commands"], ids=lambda v: v["name"])
def test_parse_command_matches_vector(v: dict[str, Any]) -> None:
    result, cmd = fw.parse_command(bytes.fromhex(v["hex"]))
    assert result == v["result"]
    assert cmd.opcode == v["fields"]["opcode"]
    if result == fw.RESULT_SUCCESS:
        for key, value in v["fields"].items():
            assert getattr(cmd, key) == value, key
        if "resume_seq" not in v["fields"]:
            assert cmd.resume_seq is None


@pytest.mark.parametrize("v", CONTROL["commands"], ids=lambda v: v["name"])
def test_state_machine_answers_command_vector(v: dict[str, Any]) -> None:
    """A sensor idle at MTU 247 answers every command vector with the vector's result."""
    s = Sensor()
    s.connect(att_payload=244)
    # code.py hands over a view of its write buffer, as here.
    resp = s.command(memoryview(bytearray.fromhex(v["hex"])), 3_000_000_123)
    request = v["fields"]["opcode"]
    if request == fw.OP_TIME_SYNC and v["result"] == fw.RESULT_SUCCESS:
        want = next(r for r in CONTROL["responses"] if r["name"] == "time_sync_ok")
        assert resp.hex() == want["hex"]  # token echoed, sensor clock at arrival
    else:
        assert resp == bytes([0x80, request, v["result"]])


def test_state_machine_gives_response_vectors() -> None:
    by_name = {r["name"]: bytes.fromhex(r["hex"]) for r in CONTROL["responses"]}
    s = Sensor()
    s.connect(att_payload=244)
    assert s.command(bytes([0x01, 1]), 0) == by_name["start_ok"]
    assert s.command(bytes([0x03, 25, 0]), 0) == by_name["set_rate_not_permitted_while_streaming"]
    assert s.command(bytes([0x07]), 0) == by_name["unknown_opcode"]
    assert s.command(bytes.fromhex("05efbeadde"), 3_000_000_123) == by_name["time_sync_ok"]
