"""The private aiomqtt/paho internals that hipsense's publisher hooks still behave.

aiomqtt does not pass on an MQTT 5 PUBACK's reason code, so `_watch_refusals` and
`_no_delay` in src/hipsense/mqtt/_publisher.py reach into the paho client aiomqtt wraps.
pyproject.toml pins both packages to the versions these tests pass with; each failure
names what changed and what to re-check before moving the pin.
"""

import inspect
import re
import tomllib
from importlib.metadata import version
from pathlib import Path

import aiomqtt
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from hipsense.mqtt._publisher import _last_mid, _no_delay, _watch_refusals
from tests.brokers import Mosquitto
from tests.conftest import ROOT, require_tool

RECHECK = (
    "; re-check _watch_refusals and _no_delay in src/hipsense/mqtt/_publisher.py against "
    "this aiomqtt/paho-mqtt before changing their pins in pyproject.toml"
)


def pins() -> dict[str, str]:
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    found = {}
    for dep in deps:
        m = re.fullmatch(r"(aiomqtt|paho-mqtt)==([\w.]+)", dep)
        if m:
            found[m[1]] = m[2]
    return found


def test_aiomqtt_and_paho_are_pinned_and_installed_at_the_pins() -> None:
    pinned = pins()
    assert set(pinned) == {"aiomqtt", "paho-mqtt"}, (
        f"pyproject.toml must pin aiomqtt and paho-mqtt exactly (==), found {pinned}" + RECHECK
    )
    for name, want in pinned.items():
        assert version(name) == want, (
            f"{name} {version(name)} is installed, pinned {want}" + RECHECK
        )


async def test_aiomqtt_wraps_a_paho_client_with_version2_callbacks() -> None:
    client = aiomqtt.Client("127.0.0.1", 1)  # never connected: only its parts are looked at
    paho = getattr(client, "_client", None)
    assert isinstance(paho, mqtt.Client), (
        f"aiomqtt.Client._client is {type(paho).__name__}, not a paho Client" + RECHECK
    )
    # on_publish_noting_refusals reads (client, userdata, mid, reason_code, properties).
    assert paho._callback_api_version is CallbackAPIVersion.VERSION2, (
        f"aiomqtt now asks paho for callback API {paho._callback_api_version}" + RECHECK
    )
    assert isinstance(inspect.getattr_static(mqtt.Client, "on_publish"), property), (
        "paho's Client.on_publish is no longer a settable property" + RECHECK
    )
    assert paho.on_publish is not None, "aiomqtt no longer sets paho's on_publish" + RECHECK
    params = list(inspect.signature(mqtt.Client.publish).parameters)
    assert params[:6] == ["self", "topic", "payload", "qos", "retain", "properties"], (
        f"paho's Client.publish takes {params}" + RECHECK
    )
    assert callable(getattr(paho, "socket", None)), "paho's Client.socket() is gone" + RECHECK


async def test_the_hook_sees_the_mid_and_the_refusal_by_the_time_publish_returns(
    tmp_path: Path,
) -> None:
    # Anonymous clients may write under ok/ only: mosquitto answers a QoS 1 publish
    # elsewhere with PUBACK "Not authorized" over MQTT 5.
    acl = tmp_path / "acl"
    acl.write_text("topic readwrite ok/#\n")
    broker = Mosquitto(require_tool("mosquitto"), tmp_path, port=None)
    broker.conf.write_text(
        broker.conf.read_text().replace("persistence true\n", f"acl_file {acl}\n")
    )
    broker.start()
    try:
        client = aiomqtt.Client("127.0.0.1", broker.port, protocol=aiomqtt.ProtocolVersion.V5)
        refused: dict[int, str] = {}
        _watch_refusals(client, refused)
        async with client:
            _no_delay(client)
            await client.publish("ok/a", b"1", qos=1)
            ok_mid = _last_mid.get()
            await client.publish("no/a", b"2", qos=1)
            no_mid = _last_mid.get()
    finally:
        broker.stop()
    assert ok_mid > 0, (
        "publish returned without the wrapped paho publish setting the mid: aiomqtt no "
        "longer calls self._client.publish in the caller's task" + RECHECK
    )
    assert no_mid not in (-1, ok_mid), f"mids {ok_mid}, {no_mid}" + RECHECK
    assert refused == {no_mid: "Not authorized"}, (
        f"after the PUBACKs the hook recorded {refused}: paho's on_publish no longer "
        "brings the reason code before aiomqtt's publish returns" + RECHECK
    )
