"""MQTT settings (section ``mqtt:``) and how their secrets are read (DESIGN §9).

MQTT is off unless ``url`` is set. Secrets — the broker password and the optional shared secret
commands must carry — never come from argv: first match wins, the value itself (settings file or
``PROVISIOND_MQTT__PASSWORD``), a ``*_file`` path, or a systemd credential
(``$CREDENTIALS_DIRECTORY/mqtt-password``, ``…/mqtt-command-secret``; ``LoadCredential=``). They
are ``SecretStr``; error messages built here never include a secret's value.

``read_secret`` is the one function that reads a secret file or credential; the daemon's other
settings sections may use it too (it mirrors what ``settings.py`` does for the Proxmox token).
"""

from __future__ import annotations

import os
import socket
import ssl
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

CREDENTIALS_ENV = "CREDENTIALS_DIRECTORY"
PASSWORD_CREDENTIAL = "mqtt-password"  # noqa: S105 - a credential *name*, not a secret
COMMAND_SECRET_CREDENTIAL = "mqtt-command-secret"  # noqa: S105 - a credential *name*

_DEFAULT_PORTS = {"mqtt": 1883, "mqtts": 8883}


def read_secret(
    value: SecretStr | None, file: Path | None, credential: str | None, what: str
) -> SecretStr | None:
    """The secret from ``value``, else ``file``, else the systemd credential ``credential``.

    Raises ``ValueError`` (naming the file, never its content) when a named file is unreadable
    or empty. A credential that is not there is not an error: the secret is optional.
    """
    if value is not None:
        return value
    path = file
    if path is None and credential is not None:
        creds = os.environ.get(CREDENTIALS_ENV)
        candidate = Path(creds) / credential if creds else None
        if candidate is not None and candidate.is_file():
            path = candidate
            what = f"{what} credential"
    if path is None:
        return None
    try:
        text = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ValueError(f"cannot read {what} from {path}: {exc.strerror}") from None
    if not text:
        raise ValueError(f"{what} file {path} is empty")
    return SecretStr(text)


class MqttSettings(BaseModel):
    """Where the broker is and how provisiond talks to it."""

    model_config = ConfigDict(extra="forbid")

    url: str | None = Field(
        default=None,
        pattern=r"^mqtts?://[^/\s:@]+(:\d{1,5})?/?$",
        description="mqtt://host:1883 or mqtts://host:8883; MQTT is off while unset",
    )
    ca_file: Path | None = Field(
        default=None, description="PEM CA bundle to verify the broker (mqtts; default: system CAs)"
    )
    cert_file: Path | None = Field(default=None, description="client certificate (PEM, mqtts)")
    key_file: Path | None = Field(default=None, description="client certificate's key (PEM)")
    keepalive: int = Field(default=30, ge=5, le=3600, description="seconds between pings")
    connect_timeout: float = Field(default=10.0, gt=0, description="seconds to wait for CONNACK")
    username: str | None = Field(default=None, description="broker user name")
    password: SecretStr | None = Field(
        default=None, description="broker password; prefer password_file or credentials"
    )
    password_file: Path | None = Field(default=None, description="file holding the password")
    client_id: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9._:-]{1,64}$",
        description="MQTT client id (default: provisiond-<hostname>)",
    )
    topic_prefix: str | None = Field(
        default=None,
        pattern=r"^[^#+\s]+[^#+/\s]$",
        description="topics start with this (default: provisiond/<cluster>)",
    )
    qos: Literal[0, 1, 2] = Field(default=1, description="QoS of events and status")
    command_secret: SecretStr | None = Field(
        default=None, description="shared secret commands must carry; prefer the file"
    )
    command_secret_file: Path | None = Field(
        default=None, description="file holding the shared secret commands must carry"
    )
    buffer_size: int = Field(
        default=1000, ge=1, le=1_000_000, description="events kept while the broker is away"
    )
    reconnect_initial: float = Field(
        default=1.0, gt=0, description="seconds before the first reconnect attempt"
    )
    reconnect_max: float = Field(
        default=60.0, gt=0, description="longest wait between reconnect attempts"
    )

    @model_validator(mode="after")
    def _check(self) -> MqttSettings:
        if self.url is None:
            return self  # MQTT is off: no secret is read, nothing else is checked
        self.password = read_secret(
            self.password, self.password_file, PASSWORD_CREDENTIAL, "mqtt password"
        )
        self.command_secret = read_secret(
            self.command_secret,
            self.command_secret_file,
            COMMAND_SECRET_CREDENTIAL,
            "mqtt command secret",
        )
        if self.key_file is not None and self.cert_file is None:
            raise ValueError("mqtt.key_file needs mqtt.cert_file")
        if not self.tls and (self.ca_file or self.cert_file):
            raise ValueError("mqtt.ca_file and mqtt.cert_file need an mqtts:// url")
        if self.password is not None and self.username is None:
            raise ValueError("mqtt.password needs mqtt.username")
        if self.reconnect_max < self.reconnect_initial:
            raise ValueError("mqtt.reconnect_max must be >= mqtt.reconnect_initial")
        return self

    @property
    def enabled(self) -> bool:
        return self.url is not None

    @property
    def tls(self) -> bool:
        return self.url is not None and self.url.startswith("mqtts://")

    @property
    def host(self) -> str:
        parts = urlsplit(self.url or "")
        if not parts.hostname:
            raise ValueError("mqtt.url is not set")
        return parts.hostname

    @property
    def port(self) -> int:
        parts = urlsplit(self.url or "")
        return parts.port or _DEFAULT_PORTS[parts.scheme]

    def prefix(self, cluster: str) -> str:
        """The topic prefix: ``topic_prefix`` or ``provisiond/<cluster>``."""
        return self.topic_prefix or f"provisiond/{cluster}"

    def identifier(self, instance: str | None = None) -> str:
        """``client_id``, else ``provisiond-<instance>`` (replicas: the leader-election
        identity, unique per replica even on one host), else ``provisiond-<hostname>``."""
        return self.client_id or f"provisiond-{instance or socket.gethostname()}"[:64]

    def tls_context(self) -> ssl.SSLContext | None:
        """A verifying client context (hostname checked) for mqtts, ``None`` for mqtt."""
        if not self.tls:
            return None
        ctx = ssl.create_default_context(
            cafile=str(self.ca_file) if self.ca_file is not None else None
        )
        if self.cert_file is not None:
            ctx.load_cert_chain(
                str(self.cert_file), str(self.key_file) if self.key_file is not None else None
            )
        return ctx

    def secret_values(self) -> list[str]:
        """Every secret held, for the log redactor and the event scrubber."""
        return [s.get_secret_value() for s in (self.password, self.command_secret) if s is not None]


__all__ = ["MqttSettings", "read_secret"]
