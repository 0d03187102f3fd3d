"""Home Assistant MQTT discovery: the configs, and the service announcing them on mosquitto.

KEYS is what Home Assistant's MQTT documentation lists for the two components used
(home-assistant.io/integrations/binary_sensor.mqtt, sensor.mqtt, mqtt#discovery-messages):
the keys each accepts (Home Assistant ignores unknown keys without a word, so a typo
would pass unseen), those it requires, and those hipsense means to send with every entity.
The service runs in the test's process on a real mosquitto with simulated sensors; a
subscriber to `#` records everything it publishes.
"""

import asyncio
import contextlib
import io
import json
import re
import signal
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from hipsense.daemon import DemoOptions, load_settings, run_demo
from hipsense.daemon._service import Service
from hipsense.mqtt import (
    DiscoveryError,
    SensorDescription,
    Topics,
    discovery_messages,
)
from hipsense.mqtt._discovery import SESSION_STATES, config_topic_filter
from tests.brokers import Mosquitto, until

_COMMON = {
    "availability", "availability_mode", "availability_template", "availability_topic",
    "default_entity_id", "device", "device_class", "enabled_by_default", "encoding",
    "entity_category", "entity_picture", "expire_after", "force_update", "icon",
    "json_attributes_template", "json_attributes_topic", "name", "object_id", "origin",
    "payload_available", "payload_not_available", "platform", "qos", "state_topic",
    "unique_id", "value_template",
}  # fmt: skip
EXPECTED = {
    "name", "unique_id", "default_entity_id", "state_topic", "value_template", "device",
    "origin", "qos",
}  # fmt: skip


@dataclass(frozen=True)
class Keys:
    """What Home Assistant documents for one MQTT component."""

    allowed: frozenset[str]
    required: frozenset[str]
    expected: frozenset[str] = field(default=frozenset(EXPECTED))


KEYS = {
    "binary_sensor": Keys(
        frozenset(_COMMON | {"off_delay", "payload_off", "payload_on"}),
        frozenset({"state_topic"}),
        frozenset(EXPECTED | {"payload_on", "payload_off", "device_class"}),
    ),
    "sensor": Keys(
        frozenset(
            _COMMON
            | {
                "last_reset_value_template",
                "options",
                "state_class",
                "suggested_display_precision",
                "unit_of_measurement",
            }
        ),
        frozenset({"state_topic"}),
    ),
}
DEVICE_KEYS = {
    "configuration_url", "connections", "hw_version", "identifiers", "manufacturer",
    "model", "model_id", "name", "serial_number", "suggested_area", "sw_version",
    "via_device",
}  # fmt: skip
AVAILABILITY_KEYS = {"topic", "payload_available", "payload_not_available", "value_template"}
ORIGIN_KEYS = {"name", "sw_version", "support_url"}

ENTITIES = {
    # object suffix: (component, keys and values the brief asks of it)
    "connected": ("binary_sensor", {"device_class": "connectivity"}),
    "battery": (
        "sensor",
        {"device_class": "battery", "unit_of_measurement": "%", "state_class": "measurement"},
    ),
    "rssi": (
        "sensor",
        {
            "device_class": "signal_strength",
            "unit_of_measurement": "dBm",
            "entity_category": "diagnostic",
        },
    ),
    "exercise": ("sensor", {}),
    "set_reps": ("sensor", {"state_class": "measurement"}),
    "last_rom": ("sensor", {"unit_of_measurement": "°", "state_class": "measurement"}),
    "session_state": ("sensor", {"device_class": "enum", "options": list(SESSION_STATES)}),
}
_TOPIC = re.compile(
    r"^(?P<prefix>.+)/(?P<component>[a-z_]+)/(?P<node>[A-Za-z0-9_-]+)/(?P<object>[A-Za-z0-9_-]+)/config$"
)
_TEMPLATE = re.compile(r"^\{\{ value_json((?:\.[A-Za-z_][A-Za-z0-9_]*)+) \}\}$")


def render(template: str, payload: bytes) -> str:
    """`{{ value_json.a.b }}` on a JSON payload, as Home Assistant renders it (a string).

    Only that form is allowed: a missing key fails here, where Home Assistant would log
    a warning and show nothing.
    """
    m = _TEMPLATE.match(template)
    assert m, f"expected a template of the form {{{{ value_json.key }}}}, got {template!r}"
    value: Any = json.loads(payload)
    for key in m.group(1).split(".")[1:]:
        assert isinstance(value, dict) and key in value, f"{template}: no {key!r} in {value!r}"
        value = value[key]
    return str(value)  # Jinja's rendering: True -> "True", None -> "None"


def check_config(topic: str, config: dict[str, Any], topics: Topics) -> str:
    """Check one config against KEYS and the device rules; return its component."""
    m = _TOPIC.match(topic)
    assert m, topic
    component = m["component"]
    keys = KEYS[component]
    assert set(config) <= keys.allowed, f"{topic}: unknown keys {set(config) - keys.allowed}"
    assert keys.required <= set(config), topic
    assert keys.expected <= set(config), f"{topic}: missing {keys.expected - set(config)}"
    assert m["node"] == topics.gateway_id
    entity_id = config["default_entity_id"]
    assert re.fullmatch(rf"{component}\.[a-z0-9_]+", entity_id), entity_id
    device = config["device"]
    assert set(device) <= DEVICE_KEYS and device["identifiers"], device
    assert set(config["origin"]) <= ORIGIN_KEYS and config["origin"]["name"] == "hipsense"
    for entry in config.get("availability", []):
        assert set(entry) <= AVAILABILITY_KEYS, entry
    if config.get("device_class") == "enum":
        assert "unit_of_measurement" not in config and "state_class" not in config
    return component


# -- the configs, pure ------------------------------------------------------------------


def test_every_config_carries_the_keys_home_assistant_documents() -> None:
    topics = Topics("gw-1")
    sensors = [
        SensorDescription("left.thigh", manufacturer="hipsense", model="m", sw_version="1.2"),
        SensorDescription("s2"),
    ]
    messages = discovery_messages(topics, sensors)
    configs = {t: json.loads(p) for t, p in messages}
    assert len(configs) == len(messages) == 1 + 2 * len(ENTITIES)  # the gateway's + 7 each
    for topic, config in configs.items():
        check_config(topic, config, topics)
        assert topic.startswith("homeassistant/")
    assert len({c["unique_id"] for c in configs.values()}) == len(configs)
    assert len({c["default_entity_id"] for c in configs.values()}) == len(configs)

    gateway = configs["homeassistant/binary_sensor/gw-1/gateway/config"]
    assert gateway["state_topic"] == topics.status
    assert "availability" not in gateway  # it shows the status itself
    gateway_ids = gateway["device"]["identifiers"]
    for sensor in sensors:
        for suffix, (component, wanted) in ENTITIES.items():
            level = sensor.sensor_id.replace(".", "_")
            config = configs[f"homeassistant/{component}/gw-1/{level}_{suffix}/config"]
            assert wanted.items() <= config.items(), (suffix, config)
            assert config["device"]["via_device"] in gateway_ids
            assert config["device"]["identifiers"] == [f"hipsense_gw-1_{sensor.sensor_id}"]
            assert config["availability"] == [
                {
                    "topic": topics.status,
                    "value_template": "{{ value_json.state }}",
                    "payload_available": "online",
                    "payload_not_available": "offline",
                }
            ]
            assert config["state_topic"] in {
                topics.sensor_state(sensor.sensor_id),
                topics.sensor_session(sensor.sensor_id),
            }
            if suffix in {"battery", "rssi"}:
                assert config["expire_after"] > 0
    full = configs["homeassistant/sensor/gw-1/left_thigh_battery/config"]["device"]
    assert (full["manufacturer"], full["model"], full["sw_version"]) == ("hipsense", "m", "1.2")
    bare = configs["homeassistant/sensor/gw-1/s2_battery/config"]["device"]
    assert not {"manufacturer", "model", "sw_version"} & set(bare)  # not known: not said


def test_every_config_matches_the_filter_a_broker_acl_can_grant() -> None:
    topics = Topics("gw-1")
    pattern = config_topic_filter("ha", topics).replace("+", "[^/]+")
    for topic, _ in discovery_messages(topics, [SensorDescription("s1")], prefix="ha"):
        assert re.fullmatch(pattern, topic), topic


def test_ids_that_would_share_a_topic_are_refused() -> None:
    with pytest.raises(DiscoveryError, match=r"'a\.b' and 'a_b'"):
        discovery_messages(Topics("gw-1"), [SensorDescription("a.b"), SensorDescription("a_b")])


@pytest.mark.parametrize("prefix", ["", "ha/", "/ha", "ha/+", "ha/#", "a//b"])
def test_a_bad_discovery_prefix_names_the_key(tmp_path: Path, prefix: str) -> None:
    config = tmp_path / "hipsense.toml"
    config.write_text(
        f'[home_assistant]\ndiscovery_prefix = "{prefix}"\n'
        '[[sensors]]\nid = "s1"\n[sensors.simulated]\n'
    )
    from hipsense.daemon import ConfigError

    with pytest.raises(ConfigError, match=r"home_assistant\.discovery_prefix: .*got"):
        load_settings(config)


# -- the service on a real broker -------------------------------------------------------


class Recorder:
    """Everything published on the broker: (topic, payload, retained) in arrival order."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.messages: list[tuple[str, bytes, bool]] = []
        self.ready = asyncio.Event()

    async def run(self) -> None:
        async with aiomqtt.Client("127.0.0.1", self.port, identifier=None) as client:
            await client.subscribe("#", qos=1)
            self.ready.set()
            async for m in client.messages:
                payload = m.payload if isinstance(m.payload, bytes) else b""
                self.messages.append((str(m.topic), payload, bool(m.retain)))

    def on(self, topic: str) -> list[bytes]:
        return [p for t, p, _ in self.messages if t == topic]

    def under(self, prefix: str) -> dict[str, list[bytes]]:
        out: dict[str, list[bytes]] = {}
        for t, p, _ in self.messages:
            if t.startswith(prefix + "/"):
                out.setdefault(t, []).append(p)
        return out


@contextlib.asynccontextmanager
async def recording(port: int) -> AsyncIterator[Recorder]:
    rec = Recorder(port)
    task = asyncio.create_task(rec.run(), name="test-recorder")
    await asyncio.wait_for(rec.ready.wait(), 10)
    try:
        yield rec
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def retained(port: int, topic_filter: str) -> dict[str, bytes]:
    """The retained messages under a filter now (what a client connecting now gets)."""
    rec = Recorder(port)
    async with aiomqtt.Client("127.0.0.1", port) as client:
        await client.subscribe(topic_filter, qos=1)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(1.0):  # retained messages come at once
                async for m in client.messages:
                    if m.retain:
                        rec.messages.append((str(m.topic), bytes(m.payload), True))  # type: ignore[arg-type]
    return {t: p for t, p, _ in rec.messages}


def write_config(
    path: Path, broker: Mosquitto, sensors: dict[str, int], *, extra: str = "", speed: float = 25
) -> Path:
    """A service configuration: simulated sensors by id with their reps."""
    text = (
        f'state_dir = "{path.parent / "state"}"\ngateway_id = "gw-ha"\n'
        f'[broker]\nurl = "{broker.url}"\n{extra}'
    )
    for i, (sensor_id, reps) in enumerate(sensors.items()):
        text += (
            f'[[sensors]]\nid = "{sensor_id}"\n[sensors.simulated]\nexercise = "clamshell"\n'
            f"reps = {reps}\nsets = 1\nspeed = {speed}\nseed = {i}\n"
        )
    path.write_text(text)
    return path


async def run_until_done(config: Path) -> None:
    """Run the service until its simulated streams end; it must exit 0."""
    assert await asyncio.wait_for(Service(load_settings(config)).run(), 60) == 0


def configs_of(rec: Recorder, prefix: str = "homeassistant") -> dict[str, dict[str, Any]]:
    """The last non-empty config on each discovery topic."""
    return {
        t: json.loads(ps[-1])
        for t, ps in rec.under(prefix).items()
        if t.endswith("/config") and ps[-1]
    }


async def test_the_service_announces_entities_that_read_what_it_publishes(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    config = write_config(
        tmp_path / "hipsense.toml", mosquitto, {"left.thigh": 40, "right-thigh": 40}, speed=8
    )
    topics = Topics("gw-ha")
    daemon = Service(load_settings(config))
    async with recording(mosquitto.port) as rec:
        run = asyncio.create_task(daemon.run())
        try:
            # Until both sensors have a rep measured, so every value has been published.
            await until(lambda: len(configs_of(rec)) == 1 + 2 * len(ENTITIES), 20)

            def measured(sensor_id: str) -> bool:
                sessions = rec.on(topics.sensor_session(sensor_id))
                return any(json.loads(p)["last_rom_deg"] is not None for p in sessions)

            await until(lambda: measured("left.thigh") and measured("right-thigh"), 40)
            # Home Assistant's birth message: every config again.
            before = len(
                rec.under("homeassistant")["homeassistant/sensor/gw-ha/right-thigh_battery/config"]
            )
            async with aiomqtt.Client("127.0.0.1", mosquitto.port) as ha:
                await ha.publish("homeassistant/status", b"online", qos=1)
            await until(
                lambda: all(
                    len(ps) > before for t, ps in rec.under("homeassistant").items()
                    if t.endswith("/config")
                ),
                10,
            )  # fmt: skip
        finally:
            # As SIGTERM does (also when a check failed: the service is not left running).
            daemon._on_signal(signal.SIGTERM)
            status = await asyncio.wait_for(run, 30)
        assert status == 0
        await until(lambda: b'"offline"' in b"".join(rec.on(topics.status)), 5)

    configs = configs_of(rec)
    assert set(configs) == {t for t in rec.under("homeassistant") if t.endswith("/config")}
    published = {t for t, _, _ in rec.messages}
    status_states = {render("{{ value_json.state }}", p) for p in rec.on(topics.status)}
    assert status_states == {"online", "offline"}
    for topic, cfg in configs.items():
        check_config(topic, cfg, topics)
        state_topic = cfg["state_topic"]
        assert state_topic in published, f"{topic}: nothing published on {state_topic}"
        rendered = {render(cfg["value_template"], p) for p in rec.on(state_topic) if p}
        if topic.split("/")[1] == "binary_sensor":
            assert rendered <= {cfg["payload_on"], cfg["payload_off"]}, (topic, rendered)
            assert cfg["payload_on"] in rendered, topic  # sensors connected, gateway online
        if cfg.get("device_class") == "enum":
            assert rendered <= set(cfg["options"]), rendered
        if cfg.get("state_class") == "measurement":
            numbers = {r for r in rendered if r != "None"}  # "None": Home Assistant's unknown
            assert numbers and all(float(r) == float(r) for r in numbers), (topic, rendered)
        for entry in cfg.get("availability", []):
            assert entry["topic"] == topics.status
            assert entry["payload_available"] in status_states
            assert entry["payload_not_available"] in status_states
    states = {
        render("{{ value_json.state }}", p) for p in rec.on(topics.sensor_session("left.thigh"))
    }
    assert {"calibrating", "exercising", "ended"} <= states
    # And they are retained: what a Home Assistant starting now would be told.
    now = await retained(mosquitto.port, "homeassistant/#")
    assert {t: json.loads(p) for t, p in now.items()} == configs


async def test_a_removed_sensor_is_cleared_on_the_next_start(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    config = tmp_path / "hipsense.toml"
    await run_until_done(write_config(config, mosquitto, {"s1": 2, "s2": 2}))
    first = await retained(mosquitto.port, "homeassistant/#")
    assert {t for t in first if "/s2_" in t} and {t for t in first if "/s1_" in t}

    async with recording(mosquitto.port) as rec:
        await run_until_done(write_config(config, mosquitto, {"s1": 2}))
        removed = {t for t in first if "/s2_" in t}
        await until(lambda: all(rec.on(t) and rec.on(t)[-1] == b"" for t in removed), 5)
    now = await retained(mosquitto.port, "homeassistant/#")
    assert set(now) == set(first) - removed
    assert not any(rec.on(t) == [b""] for t in now)  # the others were announced, not cleared


async def test_off_by_the_setting_publishes_nothing_under_the_prefix(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    config = write_config(
        tmp_path / "hipsense.toml",
        mosquitto,
        {"s1": 2},
        extra="[home_assistant]\nenabled = false\n",
    )
    async with recording(mosquitto.port) as rec:
        await run_until_done(config)
        await until(lambda: rec.on(Topics("gw-ha").sensor_session("s1")), 5)
    assert rec.on(Topics("gw-ha").status)  # it did run and publish
    assert not [t for t, _, _ in rec.messages if t.startswith("homeassistant/")]
    assert not (tmp_path / "state" / "home-assistant-discovery.json").exists()


async def test_a_custom_prefix_is_used(mosquitto: Mosquitto, tmp_path: Path) -> None:
    config = write_config(
        tmp_path / "hipsense.toml",
        mosquitto,
        {"s1": 2},
        extra='[home_assistant]\ndiscovery_prefix = "ha/discovery"\n',
    )
    async with recording(mosquitto.port) as rec:
        await run_until_done(config)
        await until(lambda: len(configs_of(rec, "ha/discovery")) == 1 + len(ENTITIES), 5)
    assert not [t for t, _, _ in rec.messages if t.startswith("homeassistant/")]
    for topic, cfg in configs_of(rec, "ha/discovery").items():
        assert check_config(topic, cfg, Topics("gw-ha")) in KEYS


async def test_the_demo_announces_its_simulated_sensor(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    options = DemoOptions(
        reps=2,
        sets=1,
        speed=50.0,
        broker_url=mosquitto.url,
        state_dir=tmp_path,
        gateway_id="gw-demo",
    )
    assert await asyncio.wait_for(run_demo(options, io.StringIO()), 60) == 0
    now = await retained(mosquitto.port, "homeassistant/#")
    assert len(now) == 1 + len(ENTITIES)
    for topic, payload in now.items():
        cfg = json.loads(payload)
        check_config(topic, cfg, Topics("gw-demo"))
        assert cfg["state_topic"] in {
            Topics("gw-demo").status,
            Topics("gw-demo").sensor_state("sim-1"),
            Topics("gw-demo").sensor_session("sim-1"),
        }
    off = DemoOptions(
        reps=2, sets=1, speed=50.0, broker_url=mosquitto.url, state_dir=tmp_path / "off",
        gateway_id="gw-off", home_assistant=False,
    )  # fmt: skip
    assert await asyncio.wait_for(run_demo(off, io.StringIO()), 60) == 0
    assert not [t for t in await retained(mosquitto.port, "homeassistant/#") if "gw-off" in t]


async def test_connectivity_follows_a_link_that_drops_between_items(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    # A BLE link that drops sends no items, so no session publishes a state meanwhile; the
    # service still says so within about a second. (The simulated link stands in for the
    # radio: its telemetry is set as BleLink sets it on a disconnect.)
    config = write_config(tmp_path / "hipsense.toml", mosquitto, {"s1": 40}, speed=2)
    topics = Topics("gw-ha")
    connectivity = "homeassistant/binary_sensor/gw-ha/s1_connected/config"
    daemon = Service(load_settings(config))
    async with recording(mosquitto.port) as rec:
        run = asyncio.create_task(daemon.run())
        try:
            # A session publishes a state as it starts and with its first item, then every
            # 5 s: the drop comes between two of those.
            await until(lambda: len(rec.on(topics.sensor_state("s1"))) >= 2)
            await until(lambda: connectivity in configs_of(rec))
            await asyncio.sleep(0.3)
            cfg = configs_of(rec)[connectivity]
            seen = len(rec.on(topics.sensor_state("s1")))
            daemon.sensors["s1"].link.telemetry.connected = False
            await until(lambda: len(rec.on(topics.sensor_state("s1"))) > seen, 2.5)
            last = rec.on(topics.sensor_state("s1"))[-1]
            assert render(cfg["value_template"], last) == cfg["payload_off"]
        finally:
            daemon._on_signal(signal.SIGTERM)
            status = await asyncio.wait_for(run, 30)
    assert status == 0


async def test_a_sensor_that_tells_its_firmware_is_announced_again(
    mosquitto: Mosquitto, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # A BLE sensor's model and firmware are read once it connects, after the first
    # announcement. And a memory file that cannot be read is ignored with a warning.
    from hipsense.mqtt import HomeAssistantDiscovery

    memory = tmp_path / "home-assistant-discovery.json"
    memory.write_text("{not json")
    known: list[SensorDescription] = [SensorDescription("ble-1")]
    topics = Topics("gw-ble")
    discovery = HomeAssistantDiscovery(topics, lambda: known, memory=memory, refresh_s=0.1)
    battery = "homeassistant/sensor/gw-ble/ble-1_battery/config"
    async with recording(mosquitto.port) as rec, aiomqtt.Client("127.0.0.1", mosquitto.port) as c:

        async def publish(topic: str, payload: bytes) -> str | None:
            await c.publish(topic, payload, qos=1, retain=True)
            return None

        serving = asyncio.create_task(discovery.serve(publish))
        try:
            await until(lambda: rec.on(battery), 5)
            assert "sw_version" not in json.loads(rec.on(battery)[-1])["device"]
            known[0] = SensorDescription("ble-1", model="HS-1", sw_version="1.4.2")
            await until(lambda: len(rec.on(battery)) == 2, 5)
        finally:
            serving.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await serving
    device = json.loads(rec.on(battery)[-1])["device"]
    assert (device["model"], device["sw_version"]) == ("HS-1", "1.4.2")
    assert discovery.announcements == 2
    assert "ignored" in caplog.text and str(memory) in caplog.text
    assert set(json.loads(memory.read_text())["topics"]) == set(rec.under("homeassistant"))


async def test_on_the_clinic_broker_refused_configs_change_nothing_else(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # The shipped ACL gives gateways no right under homeassistant/: mosquitto refuses each
    # config (MQTT 5 PUBACK "Not authorized"). The gateway says so once, remembers
    # nothing as announced, and delivers the rest as ever.
    from hipsense.mqtt import (
        BrokerConfig,
        HomeAssistantDiscovery,
        MqttPublisher,
        Outbox,
        SensorState,
    )
    from tests.mqtt.test_broker_security import CONFIGS, PASSWORDS, start_secure_broker

    broker = start_secure_broker(tmp_path, acl=(CONFIGS / "hipsense.acl").read_text())
    try:
        config = BrokerConfig(
            url=f"mqtts://127.0.0.1:{broker.port}",
            username="gw-1",
            password=PASSWORDS["gw-1"],
            ca_file=tmp_path / "certs" / "ca.crt",
        )
        topics = Topics("gw-1")
        memory = tmp_path / "home-assistant-discovery.json"
        discovery = HomeAssistantDiscovery(topics, lambda: [SensorDescription("s1")], memory=memory)
        outbox = Outbox(tmp_path / "outbox.db")
        async with MqttPublisher(config, topics, outbox, discovery=discovery) as pub:
            await until(lambda: discovery.announcements == 1, 10)
            for _ in range(20):
                pub.publish_sensor_state(SensorState(sensor_id="s1", connected=True))
            await until(lambda: pub.stats.published == 20, 10)
        assert pub.stats.rejected == 0
        assert "refused 8 discovery messages" in caplog.text and "Not authorized" in caplog.text
        assert not memory.exists()  # nothing announced, nothing to clear later
        outbox.close()
    finally:
        broker.stop()
