"""Sensor kinds: the `kind` setting, its link factory, and the WitMotion timing."""

from pathlib import Path

import numpy as np
import pytest
from bleak.backends.scanner import AdvertisementData

from hipsense.daemon import ConfigError, load_settings
from hipsense.daemon._service import _make_link
from hipsense.link import BleLink
from hipsense.movella_dot import MovellaDotLink
from hipsense.protocol import SERVICE_UUID as HIPSENSE_SERVICE
from hipsense.sensor_kinds import (
    KINDS,
    UnknownSensorKindError,
    advertisement_classifiers,
    get_kind,
    kind_names,
)
from hipsense.witmotion import SERVICE_UUID as WIT_SERVICE
from hipsense.witmotion import ArrivalTimer, WitMotionLink


def _config(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "hipsense.toml"
    path.write_text('[[sensors]]\nid = "thigh"\nble = "WT901BLE68"\n' + body, encoding="utf-8")
    return path


def test_kind_defaults_to_hipsense_and_picks_the_link(tmp_path: Path) -> None:
    native = load_settings(_config(tmp_path, "")).sensors[0]
    assert native.kind == "hipsense"
    assert isinstance(_make_link(native), BleLink)
    wit = load_settings(_config(tmp_path, 'kind = "witmotion"\nrate_hz = 50\n')).sensors[0]
    link = _make_link(wit)
    assert isinstance(link, WitMotionLink)
    assert (link.sensor_id, link.fmt.rate_hz, link.telemetry.timing) == ("thigh", 50, "host")
    dot = load_settings(_config(tmp_path, 'kind = "movella-dot"\n')).sensors[0]
    link = _make_link(dot)
    assert isinstance(link, MovellaDotLink)
    assert (link.sensor_id, link.fmt.rate_hz) == ("thigh", 60)  # the kind's default rate


def test_an_unknown_kind_names_the_allowed_ones(tmp_path: Path) -> None:
    with pytest.raises(
        ConfigError, match=r"sensors\.0\.kind: .*expected one of hipsense, witmotion, movella-dot"
    ):
        load_settings(_config(tmp_path, 'kind = "movella"\n'))
    with pytest.raises(
        UnknownSensorKindError, match="expected one of hipsense, witmotion, movella-dot, got 'x'"
    ):
        get_kind("x")
    assert kind_names() == tuple(KINDS) == ("hipsense", "witmotion", "movella-dot")


def test_a_rate_the_kind_does_not_offer_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="a witmotion sensor streams at 50, 100, 200 Hz, got 25"):
        load_settings(_config(tmp_path, 'kind = "witmotion"\nrate_hz = 25\n'))
    with pytest.raises(ConfigError, match="a movella-dot sensor streams at 20, 30, 60 Hz, got 100"):
        load_settings(_config(tmp_path, 'kind = "movella-dot"\nrate_hz = 100\n'))


def test_arrival_timing_learns_a_rate_shortfall() -> None:
    # A unit set to 100 Hz that delivers 97 samples/s, one or two a notification, with
    # 5-25 ms of latency: after a few seconds the samples sit on the arrival envelope.
    rng = np.random.default_rng(3)
    timer = ArrivalTimer(100)
    true_t = np.arange(2000) / 97.0
    hosts, k = [], 0
    while k < true_t.shape[0]:
        n = min(int(rng.integers(1, 3)), true_t.shape[0] - k)
        arrival = true_t[k + n - 1] + 0.005 + 0.02 * rng.random()
        _, h = timer.stamp(n, arrival)
        hosts.append(h)
        k += n
    host = np.concatenate(hosts)
    assert np.all(np.diff(host) > 0)
    late = host[1000:] - true_t[1000:]
    assert np.ptp(late) < 0.02, "after the fit, a constant latency, not a drift"
    rate = timer.delivered_rate_hz
    assert rate is not None and abs(rate - 97.0) < 1.5


def _adv(name: str | None, uuids: list[str]) -> AdvertisementData:
    return AdvertisementData(
        local_name=name,
        manufacturer_data={},
        service_data={},
        service_uuids=uuids,
        tx_power=None,
        rssi=-60,
        platform_data=(),
    )


def test_each_kind_recognises_its_advertisements_and_only_those() -> None:
    classify = advertisement_classifiers()
    cases = {
        ("WT901BLE68", ()): "witmotion",
        (None, (WIT_SERVICE,)): "witmotion",
        ("hipsense-4853", ()): "hipsense",
        (None, (HIPSENSE_SERVICE,)): "hipsense",
        ("Galaxy Buds", ()): None,
        # The SIG base (9b34fb) is not the WitMotion service (9a34fb).
        (None, (WIT_SERVICE.replace("9a34fb", "9b34fb"),)): None,
    }
    for (name, uuids), kind in cases.items():
        adv = _adv(name, list(uuids))
        assert next((k for k, test in classify.items() if test(adv)), None) == kind, name
