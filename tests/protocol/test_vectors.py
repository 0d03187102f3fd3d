"""The golden vectors in firmware_protocol/vectors/ against the Python and C implementations."""

import json
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import hipsense.protocol as hp
from tests.conftest import ROOT, VECTORS, require_tool


def _load(name: str) -> Any:
    return json.loads((VECTORS / name).read_text())["vectors"]


IMU = _load("imu_packets.json")
INVALID = _load("invalid_packets.json")
CONTROL = _load("control_point.json")
STATUS = _load("status.json")


def _fmt(v: dict[str, Any]) -> hp.StreamFormat:
    return hp.StreamFormat(**v["format"])


def test_vectors_cover_the_edges() -> None:
    lengths = {v["length"] for v in IMU}
    assert hp.DEFAULT_ATT_PAYLOAD in lengths  # smallest RAW fills MTU 23 exactly
    assert max(lengths) <= hp.MAX_ATT_PAYLOAD
    assert {v["kind"] for v in IMU} == {1, 2, 3}
    assert any(v["seq"] == 0xFFFF for v in IMU)
    assert any(v["decoded"]["t_us"][-1] >= 2**32 for v in IMU)
    assert {v["error"] for v in INVALID} >= {
        "PacketTooShortError",
        "PacketTooLongError",
        "UnsupportedVersionError",
        "UnknownPayloadKindError",
        "TruncatedSampleBlockError",
        "SampleCountMismatchError",
    }


@pytest.mark.parametrize("v", IMU, ids=lambda v: v["name"])
def test_python_encoder_matches_vector(v: dict[str, Any]) -> None:
    raw = None if v["raw"] is None else np.array(v["raw"])
    quat = None if v["quat_q14"] is None else np.array(v["quat_q14"])
    data = hp.encode(
        hp.PayloadKind(v["kind"]),
        v["seq"],
        v["timestamp_us"],
        raw=raw,
        quat_q14=quat,
        version_minor=v["version_minor"],
    )
    assert data.hex() == v["hex"]


@pytest.mark.parametrize("v", IMU, ids=lambda v: v["name"])
def test_python_decoder_matches_vector(v: dict[str, Any]) -> None:
    pkt = hp.decode(bytes.fromhex(v["hex"]), _fmt(v))
    want = v["decoded"]
    assert pkt.seq == v["seq"]
    assert pkt.timestamp_us == v["timestamp_us"]
    assert pkt.kind == v["kind"]
    assert pkt.version_minor == v["version_minor"]
    np.testing.assert_array_equal(pkt.t_us, want["t_us"])
    for key, arr in (("acc_m_s2", pkt.acc_m_s2), ("gyr_rad_s", pkt.gyr_rad_s), ("quat", pkt.quat)):
        if key in want:
            assert arr is not None
            np.testing.assert_allclose(arr, want[key], rtol=0, atol=1e-12)
        else:
            assert arr is None


def test_batch_decoder_matches_vectors() -> None:
    # Mixed kinds and lengths in one batch, with bad packets between them.
    by_format: dict[tuple[int, int, int], list[dict[str, Any]]] = {}
    for v in IMU:
        by_format.setdefault(tuple(v["format"].values()), []).append(v)
    for vs in by_format.values():
        packets: list[bytes] = []
        for v in vs:
            packets += [bytes.fromhex(v["hex"]), bytes.fromhex(INVALID[len(packets) % 5]["hex"])]
        batch = hp.decode_many(packets, _fmt(vs[0]))
        assert batch.packet_count == len(vs)
        assert [i for i, _ in batch.errors] == list(range(1, len(packets), 2))
        for row, v in enumerate(vs):
            s = slice(batch.offsets[row], batch.offsets[row + 1])
            assert batch.seq[row] == v["seq"]
            np.testing.assert_array_equal(batch.t_us[s], v["decoded"]["t_us"])
            if "acc_m_s2" in v["decoded"]:
                np.testing.assert_allclose(batch.acc_m_s2[s], v["decoded"]["acc_m_s2"], atol=1e-12)
            else:
                assert np.isnan(batch.acc_m_s2[s]).all()
            if "quat" in v["decoded"]:
                np.testing.assert_allclose(batch.quat[s], v["decoded"]["quat"], atol=1e-12)


@pytest.mark.parametrize("v", INVALID, ids=lambda v: v["name"])
def test_invalid_vector_raises_named_error(v: dict[str, Any]) -> None:
    error = getattr(hp, v["error"])
    with pytest.raises(error) as info:
        hp.decode(bytes.fromhex(v["hex"]), hp.StreamFormat())
    assert "expected" in str(info.value)
    batch = hp.decode_many([bytes.fromhex(v["hex"])], hp.StreamFormat())
    assert batch.packet_count == 0
    assert type(batch.errors[0][1]) is error


@pytest.mark.parametrize("v", CONTROL["commands"], ids=lambda v: v["name"])
def test_command_vectors(v: dict[str, Any]) -> None:
    data = bytes.fromhex(v["hex"])
    if v["result"] != hp.ResultCode.SUCCESS:
        with pytest.raises(hp.ProtocolError):
            hp.decode_command(data)
        return
    cmd = hp.decode_command(data)
    assert hp.encode_command(cmd) == data
    fields = {k: val for k, val in v["fields"].items() if k != "opcode"}
    for key, value in fields.items():
        assert getattr(cmd, key) == value


@pytest.mark.parametrize("v", CONTROL["responses"], ids=lambda v: v["name"])
def test_response_vectors(v: dict[str, Any]) -> None:
    resp = hp.decode_response(bytes.fromhex(v["hex"]))
    assert (resp.request, resp.result) == (v["request"], v["result"])
    assert (resp.sync_token, resp.sensor_time_us) == (v["sync_token"], v["sensor_time_us"])
    assert hp.encode_response(resp).hex() == v["hex"]


@pytest.mark.parametrize("v", STATUS, ids=lambda v: v["name"])
def test_status_vectors(v: dict[str, Any]) -> None:
    f = v["fields"]
    st = hp.decode_status(bytes.fromhex(v["hex"]))
    assert st.protocol_major == f["version"] >> 4
    assert st.protocol_minor == f["version"] & 0xF
    assert st.firmware == (f["fw_major"], f["fw_minor"], f["fw_patch"])
    assert (st.rate_hz, st.accel_range_g, st.gyro_range_dps) == (
        f["rate_hz"],
        f["accel_range_g"],
        f["gyro_range_dps"],
    )
    assert st.streaming == bool(f["state"] & 1)
    assert st.battery_pct == (None if f["battery_pct"] == 255 else f["battery_pct"])
    assert int(st.errors) == f["errors"]
    assert st.backlog_packets == f.get("backlog_packets", 0)
    assert hp.encode_status(st).hex() == v["hex"]


# -- the C header ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def c_encoder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cc = require_tool("cc")
    exe = tmp_path_factory.mktemp("c") / "encode_vectors"
    src = ROOT / "firmware_protocol" / "tools" / "encode_vectors.c"
    subprocess.run(
        [
            cc,
            "-std=c99",
            "-O2",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-pedantic",
            f"-I{ROOT / 'firmware_protocol'}",
            str(src),
            "-o",
            str(exe),
        ],
        check=True,
    )
    return exe


def _run_c(exe: Path, lines: list[str]) -> dict[str, str]:
    proc = subprocess.run(
        [str(exe)], input="\n".join(lines) + "\n", capture_output=True, text=True, check=True
    )
    out = {}
    for line in proc.stdout.splitlines():
        name, rest = line.split(" ", 1)
        out[name] = rest
    return out


def test_c_encoder_matches_imu_vectors(c_encoder: Path) -> None:
    # The C encoder always writes its own version; other-minor vectors test hosts.
    vs = [v for v in IMU if v["version_minor"] == hp.PROTOCOL_MINOR]
    lines = []
    for v in vs:
        raw = [x for s in (v["raw"] or []) for x in s]
        quat = [x for s in (v["quat_q14"] or []) for x in s]
        count = len(v["raw"] or v["quat_q14"])
        lines.append(
            " ".join(
                map(
                    str,
                    [
                        "P",
                        v["name"],
                        v["kind"],
                        v["seq"],
                        v["timestamp_us"],
                        count,
                        len(raw),
                        *raw,
                        len(quat),
                        *quat,
                    ],
                )
            )
        )
    out = _run_c(c_encoder, lines)
    assert len(out) == len(vs) > 10
    for v in vs:
        assert out[v["name"]] == v["hex"], v["name"]


def test_c_encoder_matches_status_and_responses(c_encoder: Path) -> None:
    lines = []
    for v in STATUS:
        f = v["fields"]
        keys = [
            "version",
            "fw_major",
            "fw_minor",
            "fw_patch",
            "rate_hz",
            "accel_range_g",
            "gyro_range_dps",
            "kind",
            "state",
            "battery_pct",
            "errors",
            "backlog_packets",
        ]
        lines.append(" ".join(["S", v["name"], *(str(f.get(k, 0)) for k in keys)]))
    for v in CONTROL["responses"]:
        sync = v["sync_token"] is not None
        lines.append(
            " ".join(
                map(
                    str,
                    [
                        "R",
                        v["name"],
                        v["request"],
                        v["result"],
                        int(sync),
                        v["sync_token"] or 0,
                        v["sensor_time_us"] or 0,
                    ],
                )
            )
        )
    out = _run_c(c_encoder, lines)
    for v in STATUS + CONTROL["responses"]:
        assert out[v["name"]] == v["hex"], v["name"]


def test_c_command_parser_matches_vectors(c_encoder: Path) -> None:
    cmds = CONTROL["commands"]
    out = _run_c(c_encoder, [f"C {v['name']} {v['hex']}" for v in cmds])
    names = [
        "result",
        "opcode",
        "kind",
        "rate_hz",
        "accel_range_g",
        "gyro_range_dps",
        "token",
        "duration_s",
        "has_resume",
        "resume_seq",
    ]
    for v in cmds:
        got = dict(zip(names, map(int, out[v["name"]].split()), strict=True))
        assert got["result"] == v["result"], v["name"]
        if v["result"] == 1:
            for key, value in v["fields"].items():
                assert got[key] == value, (v["name"], key)
