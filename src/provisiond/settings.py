"""The daemon's own settings (not the fleet spec): where Proxmox is, how to log, how often to act.

Precedence, highest first: CLI flags > environment (``PROVISIOND_*``, nested with ``__``, e.g.
``PROVISIOND_PROXMOX__URL``) > the settings file (``--config`` or ``PROVISIOND_CONFIG``) >
defaults. ``config/provisiond.example.yaml`` documents every setting.

The sources are pydantic-settings' own: init kwargs (the CLI), the environment, a
``YamlConfigSettingsSource`` for the file, and one small source of ours for systemd credentials
(their names, ``proxmox-token-secret``, are not field names, so ``secrets_dir`` cannot read them).

Secrets (the Proxmox API token secret, a password) never come from argv. They come, first match
wins, from the environment/settings file, from ``*_file`` paths, or from systemd credentials
(``$CREDENTIALS_DIRECTORY/<name>``, ``LoadCredential=``: each becomes the ``*_file`` setting,
ranked below every other source). The ``mqtt:`` section reads its own secrets the same way
(``adapters.mqtt_settings``: ``mqtt-password``, ``mqtt-command-secret``). They are
``SecretStr``: ``repr`` and logs show ``**********``; error messages built here never include
input values.
"""

from __future__ import annotations

import os
import ssl
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)
from yaml import YAMLError

from provisiond.adapters.httpserver import MetricsSettings
from provisiond.adapters.kube import KubernetesSettings
from provisiond.adapters.mqtt_settings import MqttSettings, read_secret
from provisiond.core.errors import ConfigError

ENV_PREFIX = "PROVISIOND_"
CONFIG_ENV = "PROVISIOND_CONFIG"
CREDENTIALS_ENV = "CREDENTIALS_DIRECTORY"
# systemd credential name -> the (section, key) of the file setting it stands for
CREDENTIALS = {
    "proxmox-token-secret": ("proxmox", "token_secret_file"),
    "proxmox-password": ("proxmox", "password_file"),
}


def _check_url(url: str) -> str:
    """``https://host[:port]`` and nothing else: a path, credentials or another scheme are
    typos that would otherwise surface as a confusing connection error on the first request."""
    example = "(e.g. https://pve1.example.org:8006)"
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise ValueError(
            f"must be https://<host>[:port] {example}; the port is not a number"
        ) from None
    if parts.scheme != "https" or not parts.hostname:
        raise ValueError(f"must be https://<host>[:port] {example}")
    if parts.username is not None or parts.password is not None:
        raise ValueError("must not carry credentials: use token_id and token_secret_file")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError(f"must be https://<host>[:port] without a path {example}")
    if port == 0:
        raise ValueError("the port must be 1-65535")
    return url


def _check_ca_bundle(path: Path) -> Path:
    """Readable and holding at least one PEM certificate: checked at start, not at the first
    request (where it would be a TLS failure every cycle)."""
    try:
        ssl.create_default_context(cafile=str(path))
    except OSError as exc:
        if isinstance(exc, ssl.SSLError):
            raise ValueError(f"{path} holds no PEM certificate") from None
        raise ValueError(f"cannot read {path}: {exc.strerror or exc}") from None
    return path


class ProxmoxSettings(BaseModel):
    """How to reach the Proxmox VE API: an API token (preferred), or a user and password
    (tickets: they expire after 2 h; proxmoxer renews them, and an expired one is replaced)."""

    model_config = ConfigDict(extra="forbid")

    url: str | None = Field(
        default=None, description="https://<host>:8006 of any cluster node (or a load balancer)"
    )
    token_id: str | None = Field(
        default=None,
        pattern=r"^[^\s@!]+@[^\s@!]+![A-Za-z][A-Za-z0-9._-]*$",
        description="API token id, user@realm!tokenname",
    )
    token_secret: SecretStr | None = Field(
        default=None, description="the token's secret; prefer token_secret_file or credentials"
    )
    token_secret_file: Path | None = Field(
        default=None, description="file holding the token secret"
    )
    user: str | None = Field(
        default=None,
        pattern=r"^[^\s@!]+@[^\s@!]+$",
        description="user@realm for ticket auth, only when no token_id is set",
    )
    password: SecretStr | None = Field(
        default=None, description="the user's password; prefer password_file or credentials"
    )
    password_file: Path | None = Field(default=None, description="file holding the password")
    verify_tls: bool = Field(default=True, description="verify the server certificate")
    ca_bundle: Path | None = Field(
        default=None, description="PEM CA bundle to verify the server with (private CA)"
    )
    connect_timeout: float = Field(default=5.0, gt=0, description="seconds to connect")
    read_timeout: float = Field(default=30.0, gt=0, description="seconds to wait for an answer")
    max_concurrent_requests: int = Field(
        default=4, ge=1, le=32, description="requests in flight at once (pveproxy has 3 workers)"
    )

    @field_validator("url")
    @classmethod
    def _url_form(cls, url: str | None) -> str | None:
        return _check_url(url) if url is not None else None

    @field_validator("ca_bundle")
    @classmethod
    def _ca_readable(cls, path: Path | None) -> Path | None:
        return _check_ca_bundle(path) if path is not None else None

    @model_validator(mode="after")
    def _resolve_secret(self) -> ProxmoxSettings:
        # systemd credentials arrive as the *_file settings (``SystemdCredentials``): none here
        self.token_secret = read_secret(
            self.token_secret, self.token_secret_file, None, "proxmox token secret"
        )
        self.password = read_secret(self.password, self.password_file, None, "proxmox password")
        return self


class LogSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    format: Literal["auto", "json", "console"] = Field(
        default="auto", description="auto: console on a TTY, JSON lines otherwise"
    )
    level: Literal["debug", "info", "warning", "error"] = "info"


class SpecSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    paths: list[Path] = Field(
        default_factory=lambda: [Path("/etc/provisiond/fleet.d")],
        description="fleet spec files or directories (*.yaml, *.yml)",
    )


class DaemonSettings(BaseModel):
    """How the daemon observes and acts."""

    model_config = ConfigDict(extra="forbid")

    interval: float = Field(
        default=60.0, gt=0, description="seconds between reconcile cycles when nothing triggers"
    )
    cache_ttl: float = Field(
        default=300.0,
        gt=0,
        description="seconds VM configs, mappings, storage and PCI lists are cached",
    )
    foreign_cache_ttl: float = Field(
        default=1800.0,
        gt=0,
        description="seconds the configs of VMs no fleet owns are cached (>= cache_ttl; "
        "when not set and cache_ttl is longer, cache_ttl)",
    )
    self_vmid: int | None = Field(
        default=None, ge=100, description="VMID of the VM provisiond runs in: never disrupted"
    )
    read_only: bool = Field(default=False, description="observe, plan and report; act on nothing")
    state_dir: Path | None = Field(
        default=None,
        description="where the single-instance lock lives without leader election; "
        "default $STATE_DIRECTORY (systemd StateDirectory=), else /var/lib/provisiond",
    )
    cluster: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,62}$",
        description="this cluster's name in MQTT topics (default: proxmox.url's host name)",
    )

    @model_validator(mode="after")
    def _foreign_not_fresher(self) -> DaemonSettings:
        if "foreign_cache_ttl" not in self.model_fields_set:
            self.foreign_cache_ttl = max(self.foreign_cache_ttl, self.cache_ttl)
        if self.foreign_cache_ttl < self.cache_ttl:
            raise ValueError(
                f"foreign_cache_ttl ({self.foreign_cache_ttl:g} s) must be at least"
                f" cache_ttl ({self.cache_ttl:g} s): raise it with cache_ttl"
            )
        return self


class ExecutorSettings(BaseModel):
    """How actions wait for Proxmox tasks, retry and back off. The defaults suit real Proxmox."""

    model_config = ConfigDict(extra="forbid")

    task_poll_interval: float = Field(
        default=0.5,
        gt=0,
        description="seconds before the first poll of a Proxmox task; each wait is 1.5x longer",
    )
    task_poll_max: float = Field(default=5.0, gt=0, description="longest wait between two polls")
    retry_initial: float = Field(
        default=0.5, gt=0, description="seconds before retrying a call that failed transiently"
    )
    retry_max: float = Field(default=10.0, gt=0, description="longest wait between retries")
    backoff_base: float = Field(
        default=5.0, gt=0, description="seconds a VM whose action failed is left alone (doubling)"
    )
    backoff_max: float = Field(default=300.0, gt=0, description="longest such backoff")
    requeue_after: float = Field(
        default=10.0, gt=0, description="seconds before a locked VM (backup, migration) is retried"
    )


class LeaderElectionSettings(BaseModel):
    """A coordination.k8s.io/v1 Lease decides which replica acts (seconds)."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool | None = Field(
        default=None, description="default: on when Kubernetes is configured"
    )
    name: str = Field(default="provisiond", min_length=1, description="the Lease's name")
    namespace: str | None = Field(
        default=None, description="the Lease's namespace; default the pod's, else default"
    )
    lease_duration: float = Field(default=15.0, gt=0, description="how long a lease is valid")
    renew_deadline: float = Field(
        default=10.0, gt=0, description="the leader stops acting when no renew succeeded this long"
    )
    retry_period: float = Field(default=2.0, gt=0, description="between acquire/renew attempts")
    release_timeout: float = Field(
        default=10.0, gt=0, le=20, description="on stop, longest wait for calls in flight"
    )

    @model_validator(mode="after")
    def _ordered(self) -> LeaderElectionSettings:
        if self.lease_duration <= self.renew_deadline:
            raise ValueError("lease_duration must be greater than renew_deadline")
        if self.renew_deadline <= 1.2 * self.retry_period:
            raise ValueError("renew_deadline must be greater than 1.2 * retry_period")
        return self


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        extra="forbid",
        case_sensitive=False,
    )

    proxmox: ProxmoxSettings = Field(default_factory=ProxmoxSettings)
    log: LogSettings = Field(default_factory=LogSettings)
    spec: SpecSettings = Field(default_factory=SpecSettings)
    daemon: DaemonSettings = Field(default_factory=DaemonSettings)
    executor: ExecutorSettings = Field(default_factory=ExecutorSettings)
    kubernetes: KubernetesSettings = Field(default_factory=KubernetesSettings)
    leader_election: LeaderElectionSettings = Field(default_factory=LeaderElectionSettings)
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)
    mqtt: MqttSettings = Field(default_factory=MqttSettings)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,  # noqa: ARG003 - no .env files: by design
        file_secret_settings: PydanticBaseSettingsSource,  # noqa: ARG003 - see SystemdCredentials
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, SystemdCredentials(settings_cls))

    def secret_values(self) -> list[str]:
        """Every secret value held, for the log redactor (``configure_logging(secrets=…)``)."""
        px = self.proxmox
        held = [s.get_secret_value() for s in (px.token_secret, px.password) if s is not None]
        return [*held, *self.mqtt.secret_values()]

    def cluster_name(self) -> str:
        """``daemon.cluster``, else the host name of ``proxmox.url`` (``pve1.example.org``), else
        ``default``: the ``<cluster>`` in the MQTT topic prefix ``provisiond/<cluster>``."""
        if self.daemon.cluster is not None:
            return self.daemon.cluster
        host = urlsplit(self.proxmox.url or "").hostname
        return host or "default"


class SystemdCredentials(PydanticBaseSettingsSource):
    """systemd credentials (``$CREDENTIALS_DIRECTORY/<name>``) as the ``*_file`` settings they
    stand for; ranked last, so any other source's secret or file wins."""

    def get_field_value(
        self,
        field: FieldInfo,  # noqa: ARG002 - signature fixed by PydanticBaseSettingsSource
        field_name: str,  # noqa: ARG002
    ) -> tuple[Any, str, bool]:
        return None, "", False  # __call__ builds the whole mapping

    def __call__(self) -> dict[str, Any]:
        directory = os.environ.get(CREDENTIALS_ENV)
        out: dict[str, Any] = {}
        for name, (section, key) in CREDENTIALS.items():
            if directory and (Path(directory) / name).is_file():
                out.setdefault(section, {})[key] = Path(directory) / name
        return out


def _file_source(path: Path) -> YamlConfigSettingsSource:
    """The settings file, read now so that its problems are reported as such."""
    if not path.is_file():
        raise ConfigError(f"cannot read settings file {path}: not a file")
    try:
        return YamlConfigSettingsSource(Settings, yaml_file=path)
    except OSError as exc:
        raise ConfigError(f"cannot read settings file {path}: {exc.strerror}") from None
    except YAMLError as exc:
        raise ConfigError(f"settings file {path} is not valid YAML: {exc}") from None
    except (TypeError, ValueError):  # the source turns the top level into a dict
        raise ConfigError(f"settings file {path} must be a mapping at the top level") from None


def _describe(exc: ValidationError) -> str:
    lines = []
    for err in exc.errors(include_input=False, include_url=False):
        loc = ".".join(str(p) for p in err["loc"])
        lines.append(f"{loc}: {err['msg'].removeprefix('Value error, ')}")
    return "; ".join(lines)


def load_settings(
    config_file: Path | None = None, overrides: dict[str, Any] | None = None
) -> Settings:
    """Build the settings. ``overrides`` are CLI values (highest precedence), nested dicts."""
    if config_file is None and os.environ.get(CONFIG_ENV):
        config_file = Path(os.environ[CONFIG_ENV])
    file_source = _file_source(config_file) if config_file is not None else None

    class _Loaded(Settings):
        @classmethod
        def settings_customise_sources(
            cls,
            settings_cls: type[BaseSettings],
            init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource,
            dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            init, env, credentials = super().settings_customise_sources(
                settings_cls, init_settings, env_settings, dotenv_settings, file_secret_settings
            )
            return (init, env, *([file_source] if file_source else []), credentials)

    try:
        return _Loaded(**(overrides or {}))
    except ValidationError as exc:
        where = f" (settings file {config_file})" if config_file else ""
        raise ConfigError(f"invalid settings{where}: {_describe(exc)}") from None
