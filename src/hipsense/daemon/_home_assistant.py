"""Home Assistant discovery of the service: its sensors' descriptions, its memory file.

See docs/mqtt.md, "Home Assistant".
"""

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from hipsense._version import __version__
from hipsense.link import SensorLink
from hipsense.mqtt import (
    DISCOVERY_MEMORY_FILE,
    HomeAssistantDiscovery,
    SensorDescription,
    Topics,
)

from ._config import HomeAssistantSettings, SensorSettings

__all__ = ["describe_sensor", "discovery_for"]


def describe_sensor(cfg: SensorSettings, link: SensorLink | None) -> SensorDescription:
    """A sensor as its Home Assistant device shows it: model and firmware once known.

    A BLE sensor's model number and firmware revision are read when it connects (its
    Device Information service); until then its device has neither.
    """
    if cfg.simulated is not None:
        return SensorDescription(
            cfg.id, manufacturer="hipsense", model="simulated sensor", sw_version=__version__
        )
    return SensorDescription(
        cfg.id,
        model=getattr(link, "model", None),
        sw_version=getattr(link, "firmware_version", None),
    )


def discovery_for(
    settings: HomeAssistantSettings,
    topics: Topics,
    state_dir: Path,
    sensors: Sequence[SensorSettings],
    links: Callable[[], Mapping[str, SensorLink]],
) -> HomeAssistantDiscovery | None:
    """The discovery the publisher announces, or None when it is turned off.

    `links()` gives the sensors' links by id as they are now (a sensor's link exists once
    its task has started).
    """
    if not settings.enabled:
        return None

    def describe() -> list[SensorDescription]:
        now = links()
        return [describe_sensor(cfg, now.get(cfg.id)) for cfg in sensors]

    discovery = HomeAssistantDiscovery(
        topics, describe, memory=state_dir / DISCOVERY_MEMORY_FILE, prefix=settings.discovery_prefix
    )
    discovery.messages()  # sensor ids that would share a config topic fail here, at start
    return discovery
