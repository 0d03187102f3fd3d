"""The sensor kinds hipsense reads, and how each is recognised and linked.

One entry per kind in `KINDS`: its name in the configuration (`kind = "..."`), the rates
it streams at, a test of an advertisement (for `hipsense scan`), and a factory of its
`SensorLink`. Adding a kind is adding one entry; the imports inside the factories keep
a kind's code unloaded until a sensor of that kind is used.
"""

from collections.abc import Callable
from dataclasses import dataclass

from bleak.backends.scanner import AdvertisementData

from hipsense._errors import HipsenseError
from hipsense.link import SensorLink

__all__ = [
    "KINDS",
    "LinkRequest",
    "SensorKind",
    "UnknownSensorKindError",
    "advertisement_classifiers",
    "get_kind",
    "kind_names",
]


class UnknownSensorKindError(HipsenseError, ValueError):
    """A sensor kind hipsense does not know."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        super().__init__(f"sensor kind: expected one of {', '.join(KINDS)}, got {kind!r}")


@dataclass(frozen=True)
class LinkRequest:
    """What the configuration says about one sensor, for its kind's link factory."""

    target: str
    """Address or advertised name (prefix)."""
    sensor_id: str
    rate_hz: int
    adapter: str | None = None


@dataclass(frozen=True)
class SensorKind:
    """One kind of sensor."""

    name: str
    description: str
    rates_hz: tuple[int, ...]
    """Rates it streams at that the motion core takes (20 Hz or more)."""
    default_rate_hz: int
    advertises: Callable[[AdvertisementData], bool]
    make_link: Callable[[LinkRequest], SensorLink]


def _hipsense_advertises(adv: AdvertisementData) -> bool:
    from hipsense.link import is_hipsense

    return is_hipsense(adv)


def _hipsense_link(req: LinkRequest) -> SensorLink:
    from hipsense.link import BleLink, BleLinkSettings

    return BleLink(
        req.target,
        settings=BleLinkSettings(rate_hz=req.rate_hz),
        sensor_id=req.sensor_id,
        adapter=req.adapter,
    )


def _witmotion_advertises(adv: AdvertisementData) -> bool:
    from hipsense.witmotion import is_witmotion

    return is_witmotion(adv)


def _witmotion_link(req: LinkRequest) -> SensorLink:
    from hipsense.witmotion import WitMotionLink, WitMotionSettings

    return WitMotionLink(
        req.target,
        settings=WitMotionSettings(rate_hz=req.rate_hz),
        sensor_id=req.sensor_id,
        adapter=req.adapter,
    )


def _movella_dot_advertises(adv: AdvertisementData) -> bool:
    from hipsense.movella_dot import is_movella_dot

    return is_movella_dot(adv)


def _movella_dot_link(req: LinkRequest) -> SensorLink:
    from hipsense.movella_dot import MovellaDotLink, MovellaDotSettings

    return MovellaDotLink(
        req.target,
        settings=MovellaDotSettings(rate_hz=req.rate_hz),
        sensor_id=req.sensor_id,
        adapter=req.adapter,
    )


KINDS: dict[str, SensorKind] = {
    k.name: k
    for k in (
        SensorKind(
            "hipsense",
            "native hipsense protocol (firmware_protocol/PROTOCOL.md)",
            (25, 50, 100, 200),
            100,
            _hipsense_advertises,
            _hipsense_link,
        ),
        SensorKind(
            "witmotion",
            "WitMotion BLE 5.0 (BWT901BLECL5.0 and siblings), host-derived timing",
            (50, 100, 200),
            100,
            _witmotion_advertises,
            _witmotion_link,
        ),
        SensorKind(
            "movella-dot",
            "Movella (Xsens) DOT, its own microsecond timestamps, at most 60 Hz",
            # Its 1-15 Hz rates are below what the motion core measures (20 Hz).
            (20, 30, 60),
            60,
            _movella_dot_advertises,
            _movella_dot_link,
        ),
    )
}
"""Every kind, in the order `hipsense scan` tries them on an advertisement."""


def kind_names() -> tuple[str, ...]:
    """The kinds a configuration may name."""
    return tuple(KINDS)


def get_kind(name: str) -> SensorKind:
    """The kind called `name`; `UnknownSensorKindError` names the allowed ones."""
    try:
        return KINDS[name]
    except KeyError:
        raise UnknownSensorKindError(name) from None


def advertisement_classifiers() -> dict[str, Callable[[AdvertisementData], bool]]:
    """Kind name to its advertisement test, in `KINDS` order (for `scan`)."""
    return {name: kind.advertises for name, kind in KINDS.items()}
