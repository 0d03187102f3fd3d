"""The daemon's settings: a TOML file, overridden by `HIPSENSE_*` environment variables.

Every key is documented in configs/hipsense.example.toml. A bad value stops the daemon
with one line naming the key and saying what was expected.
"""

import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from hipsense._errors import HipsenseError
from hipsense.mqtt import DEFAULT_DISCOVERY_PREFIX, DEFAULT_PREFIX, BrokerConfig, check_prefix

__all__ = [
    "ConfigError",
    "DaemonSettings",
    "HomeAssistantSettings",
    "SensorSettings",
    "SimulatedSensor",
    "load_settings",
]

Id = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]


class ConfigError(HipsenseError):
    """A setting that cannot work; names the key."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SimulatedSensor(_Strict):
    """A simulated sensor instead of a real one: for demos and load tests."""

    exercise: str = "clamshell"
    reps: Annotated[int, Field(ge=1, le=200)] = 10
    sets: Annotated[int, Field(ge=1, le=20)] = 2
    speed: Annotated[float, Field(gt=0)] = 1.0
    seed: int = 0
    loss: Annotated[float, Field(ge=0, le=0.5)] = 0.01


class SensorSettings(_Strict):
    """One sensor: a BLE address or name, or a simulated one."""

    id: Id
    kind: str = "hipsense"
    """What the sensor is (`hipsense.sensor_kinds`): hipsense (the native protocol) or
    witmotion (a WitMotion BLE 5.0 unit)."""
    ble: str | None = None
    """Address (C0:FF:EE:00:48:53) or advertised name (prefix) of the sensor."""
    simulated: SimulatedSensor | None = None
    exercise: str | None = None
    """Exercise the first session measures; None counts reps about the dominant axis."""
    variant: str | None = None
    patient_id: Id | None = None
    program: str | None = None
    """A program of configs/programs the sessions are tracked against (its first exercise
    is measured first); a start_session command can bring another prescription."""
    rate_hz: int | None = None
    """Samples per second; one of the kind's rates (hipsense 25/50/100/200, default 100;
    witmotion 50/100/200, default 100; movella-dot 20/30/60, default 60)."""

    @property
    def stream_rate_hz(self) -> int:
        """The rate asked for, or the kind's default."""
        from hipsense.sensor_kinds import get_kind

        return self.rate_hz if self.rate_hz is not None else get_kind(self.kind).default_rate_hz

    @model_validator(mode="after")
    def _one_source(self) -> "SensorSettings":
        from hipsense.sensor_kinds import get_kind

        if (self.ble is None) == (self.simulated is None):
            raise ValueError("expected exactly one of ble or simulated")
        if self.simulated is not None and self.kind != "hipsense":
            raise ValueError(f"simulated: expected kind 'hipsense', got {self.kind!r}")
        rates = get_kind(self.kind).rates_hz
        if self.rate_hz is not None and self.rate_hz not in rates:
            raise ValueError(
                f"rate_hz: a {self.kind} sensor streams at "
                f"{', '.join(str(r) for r in rates)} Hz, got {self.rate_hz}"
            )
        return self

    @model_validator(mode="after")
    def _exercise_in_program(self) -> "SensorSettings":
        # A session of an exercise the program does not have is not scored against it
        # (no adherence at all): a configured exercise must be one of the program's.
        if self.program is None or self.exercise is None:
            return self
        from hipsense.session import load_programs

        listed = [line.exercise for line in load_programs()[self.program].exercises]
        if self.exercise not in listed:
            raise ValueError(
                f"exercise {self.exercise!r} is not in program {self.program!r}: expected "
                f"one of {', '.join(listed)}, or no exercise (the program's first is measured)"
            )
        return self

    @field_validator("kind")
    @classmethod
    def _known_kind(cls, v: str) -> str:
        from hipsense.sensor_kinds import kind_names

        if v not in kind_names():
            raise ValueError(f"expected one of {', '.join(kind_names())}")
        return v

    @field_validator("program")
    @classmethod
    def _known_program(cls, v: str | None) -> str | None:
        from hipsense.session import load_programs

        if v is not None and v not in (programs := load_programs()):
            raise ValueError(f"expected one of {', '.join(sorted(programs))}")
        return v

    @field_validator("exercise")
    @classmethod
    def _known_exercise(cls, v: str | None) -> str | None:
        from hipsense.exercises import load_library

        if v is not None and v not in load_library():
            raise ValueError("expected an exercise id of `hipsense exercises`")
        return v


class BrokerSettings(_Strict):
    """Where to publish; no url means an embedded broker on loopback."""

    url: str | None = None
    username: str | None = None
    password: str | None = None
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    protocol: Literal["auto", "5", "3.1.1"] = "auto"
    topic_prefix: str = DEFAULT_PREFIX

    def config(self, client_id: str) -> BrokerConfig | None:
        """The connection settings, or None for the embedded broker."""
        if self.url is None:
            return None
        return BrokerConfig(
            url=self.url,
            username=self.username,
            password=self.password,
            ca_file=self.ca_file,
            cert_file=self.cert_file,
            key_file=self.key_file,
            protocol=self.protocol,
            client_id=client_id,
        )

    @model_validator(mode="after")
    def _url(self) -> "BrokerSettings":
        if self.url is not None:
            BrokerConfig(url=self.url)  # checks the scheme and host
        if "{gateway_id}" not in self.topic_prefix:
            raise ValueError("topic_prefix: expected it to contain {gateway_id}")
        return self


class HomeAssistantSettings(_Strict):
    """Home Assistant MQTT discovery: on by default, as BLE-to-MQTT gateways do it."""

    enabled: bool = True
    discovery_prefix: str = DEFAULT_DISCOVERY_PREFIX

    @field_validator("discovery_prefix")
    @classmethod
    def _prefix(cls, v: str) -> str:
        return check_prefix(v)


class DaemonSettings(BaseSettings):
    """Everything `hipsense run` needs; see configs/hipsense.example.toml."""

    model_config = SettingsConfigDict(
        env_prefix="HIPSENSE_", env_nested_delimiter="__", extra="forbid", frozen=True
    )

    state_dir: Path | None = None
    """Outbox and gateway id; default $XDG_STATE_HOME/hipsense."""
    gateway_id: Id | None = None
    keep_raw_samples: bool = False
    """Also store every raw sample in the history, for re-analysis (about 5 MB an hour)."""
    log_format: Literal["text", "json"] = "text"
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    broker: BrokerSettings = BrokerSettings()
    home_assistant: HomeAssistantSettings = HomeAssistantSettings()
    sensors: list[SensorSettings] = Field(default_factory=list, min_length=1)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The environment overrides the file (passed in as init values).
        return env_settings, init_settings

    @model_validator(mode="after")
    def _unique_ids(self) -> "DaemonSettings":
        ids = [s.id for s in self.sensors]
        if len(set(ids)) != len(ids):
            raise ValueError(f"sensors: expected unique ids, got {ids}")
        return self


def _where(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(p) for p in loc) or "settings"


def load_settings(path: Path | None) -> DaemonSettings:
    """Read the TOML file (if any) and the environment; `ConfigError` names a bad key."""
    data: dict[str, Any] = {}
    if path is not None:
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(f"{path}: expected a readable TOML file, got {exc}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: expected TOML, got {exc}") from exc
    try:
        return DaemonSettings(**data)
    except ValidationError as exc:
        first = exc.errors()[0]
        value = first.get("input")
        msg = first["msg"]
        # Say what was found, unless the message already does or it is a whole table.
        shown = "" if isinstance(value, dict | list) or "got" in msg else f", got {value!r}"
        raise ConfigError(f"{path or 'settings'}: {_where(first['loc'])}: {msg}{shown}") from exc
