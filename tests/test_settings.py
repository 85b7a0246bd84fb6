"""Settings: precedence CLI > env > file > defaults; secrets from files/credentials, never shown."""

from __future__ import annotations

from pathlib import Path

import pytest

from provisiond.core.errors import ConfigError
from provisiond.settings import load_settings

SECRET = "9b1d2c3e-aaaa-bbbb-cccc-0123456789ab"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for key in list(os.environ):
        if key.startswith("PROVISIOND_") or key == "CREDENTIALS_DIRECTORY":
            monkeypatch.delenv(key)


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "provisiond.yaml"
    p.write_text(text)
    return p


def test_defaults_verify_tls_and_cap_requests() -> None:
    s = load_settings()
    assert s.proxmox.verify_tls is True
    assert s.proxmox.max_concurrent_requests == 4
    assert s.proxmox.connect_timeout == 5.0
    assert s.log.format == "auto"
    assert s.proxmox.token_secret is None


def test_precedence_cli_over_env_over_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = _write(
        tmp_path,
        "proxmox:\n  url: https://file:8006\n  read_timeout: 11\n  connect_timeout: 7\n"
        "log:\n  level: debug\n",
    )
    monkeypatch.setenv("PROVISIOND_PROXMOX__URL", "https://env:8006")
    monkeypatch.setenv("PROVISIOND_PROXMOX__READ_TIMEOUT", "22")
    s = load_settings(cfg, {"proxmox": {"url": "https://cli:8006"}})
    assert s.proxmox.url == "https://cli:8006"  # CLI beats env
    assert s.proxmox.read_timeout == 22  # env beats file
    assert s.proxmox.connect_timeout == 7  # file beats default
    assert s.log.level == "debug"


def test_config_file_from_env_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = _write(tmp_path, "proxmox:\n  url: https://viaenv:8006\n")
    monkeypatch.setenv("PROVISIOND_CONFIG", str(cfg))
    assert load_settings().proxmox.url == "https://viaenv:8006"


def test_secret_from_file(tmp_path: Path) -> None:
    secret_file = tmp_path / "token"
    secret_file.write_text(SECRET + "\n")
    cfg = _write(tmp_path, f"proxmox:\n  token_secret_file: {secret_file}\n")
    s = load_settings(cfg)
    assert s.proxmox.token_secret is not None
    assert s.proxmox.token_secret.get_secret_value() == SECRET


def test_secret_from_systemd_credentials(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "proxmox-token-secret").write_text(SECRET)
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    s = load_settings()
    assert s.proxmox.token_secret is not None
    assert s.proxmox.token_secret.get_secret_value() == SECRET


def test_missing_secret_file_is_a_clear_error(tmp_path: Path) -> None:
    cfg = _write(tmp_path, f"proxmox:\n  token_secret_file: {tmp_path / 'nope'}\n")
    with pytest.raises(ConfigError, match=r"cannot read proxmox token secret from .*nope"):
        load_settings(cfg)


def test_empty_secret_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "empty").write_text("\n")
    cfg = _write(tmp_path, f"proxmox:\n  token_secret_file: {tmp_path / 'empty'}\n")
    with pytest.raises(ConfigError, match="is empty"):
        load_settings(cfg)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("proxmox:\n  urll: x\n", r"proxmox\.urll: Extra inputs are not permitted"),
        ("proxmox:\n  token_id: nouser\n", r"proxmox\.token_id: String should match pattern"),
        ("proxmox: [1\n", "is not valid YAML"),
        ("- a\n- b\n", "must be a mapping"),
        ("log:\n  format: xml\n", r"log\.format: Input should be"),
    ],
)
def test_bad_settings_file(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(_write(tmp_path, text))


def test_unreadable_settings_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read settings file"):
        load_settings(tmp_path / "missing.yaml")


def test_empty_settings_file_means_defaults(tmp_path: Path) -> None:
    assert load_settings(_write(tmp_path, "")).proxmox.verify_tls is True


def test_secret_never_in_repr_or_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROVISIOND_PROXMOX__TOKEN_SECRET", SECRET)
    s = load_settings()
    assert SECRET not in repr(s)
    assert SECRET not in str(s)
    assert SECRET not in s.model_dump_json()
    # an invalid value next to the secret: the error text must not echo inputs
    monkeypatch.setenv("PROVISIOND_PROXMOX__MAX_CONCURRENT_REQUESTS", "lots")
    with pytest.raises(ConfigError) as exc:
        load_settings()
    assert SECRET not in str(exc.value)
    assert "max_concurrent_requests" in str(exc.value)


def _leaves(model: object, prefix: str = "") -> set[str]:
    from pydantic import BaseModel

    assert isinstance(model, BaseModel)
    out: set[str] = set()
    for name, value in model:
        if isinstance(value, BaseModel):
            out |= _leaves(value, f"{prefix}{name}.")
        else:
            out.add(f"{prefix}{name}")
    return out


def test_example_settings_file_documents_every_setting() -> None:
    from ruamel.yaml import YAML

    repo = Path(__file__).resolve().parents[1]
    example = repo / "config" / "provisiond.example.yaml"
    data = YAML(typ="safe").load(example.read_text())

    def keys(d: dict[str, object], prefix: str = "") -> set[str]:
        out: set[str] = set()
        for k, v in d.items():
            if isinstance(v, dict):
                out |= keys(v, f"{prefix}{k}.")
            else:
                out.add(f"{prefix}{k}")
        return out

    assert keys(data) == _leaves(load_settings())


def test_password_from_file_or_credential_for_ticket_auth(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "pw").write_text("hunter2\n")
    cfg = _write(tmp_path, f"proxmox:\n  user: ops@pve\n  password_file: {tmp_path / 'pw'}\n")
    s = load_settings(cfg)
    assert s.proxmox.password is not None
    assert s.proxmox.password.get_secret_value() == "hunter2"
    assert "hunter2" not in repr(s)
    (tmp_path / "proxmox-password").write_text("from-creds")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    s = load_settings(_write(tmp_path, "proxmox:\n  user: ops@pve\n"))
    assert s.proxmox.password is not None
    assert s.proxmox.password.get_secret_value() == "from-creds"


def test_metrics_bind_from_env_and_a_bad_bind_is_a_config_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = load_settings()
    assert s.metrics.enabled is True
    assert s.metrics.bind == "0.0.0.0:19339"  # every interface: Prometheus scrapes remotely
    with pytest.raises(ConfigError, match=r"metrics\.bind"):
        load_settings(_write(tmp_path, "metrics:\n  bind: localhost\n"))
    monkeypatch.setenv("PROVISIOND_METRICS__BIND", "127.0.0.1:9999")
    assert load_settings().metrics.bind == "127.0.0.1:9999"


def test_mqtt_secrets_join_the_redacted_values_and_the_cluster_names_the_topics(
    tmp_path: Path,
) -> None:
    (tmp_path / "mqtt-pw").write_text("broker-pass-1\n")
    cfg = _write(
        tmp_path,
        "proxmox:\n  url: https://pve1.lab.example:8006\n"
        "mqtt:\n  url: mqtt://broker:1883\n  username: pd\n"
        f"  password_file: {tmp_path / 'mqtt-pw'}\n"
        "  command_secret: cmd-secret-2\n",
    )
    s = load_settings(cfg)
    assert s.mqtt.enabled
    assert {"broker-pass-1", "cmd-secret-2"} <= set(s.secret_values())
    assert "broker-pass-1" not in repr(s)
    assert s.cluster_name() == "pve1.lab.example"
    assert s.mqtt.prefix(s.cluster_name()) == "provisiond/pve1.lab.example"
    named = load_settings(cfg, {"daemon": {"cluster": "lab"}})
    assert named.mqtt.prefix(named.cluster_name()) == "provisiond/lab"
    assert load_settings().cluster_name() == "default"
    assert load_settings().mqtt.enabled is False


# -- daemon.cache_ttl and daemon.foreign_cache_ttl ------------------------------------------


def test_cache_ttl_defaults() -> None:
    daemon = load_settings().daemon
    assert (daemon.cache_ttl, daemon.foreign_cache_ttl) == (300.0, 1800.0)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "daemon:\n  foreign_cache_ttl: 120\n",
            r"daemon: foreign_cache_ttl \(120 s\) must be at least cache_ttl \(300 s\)",
        ),
        (
            "daemon:\n  cache_ttl: 3600\n  foreign_cache_ttl: 1800\n",
            r"foreign_cache_ttl \(1800 s\) must be at least cache_ttl \(3600 s\)",
        ),
        ("daemon:\n  cache_ttl: 0\n", r"daemon\.cache_ttl: Input should be greater than 0"),
        ("daemon:\n  foreign_cache_ttl: 0\n", r"foreign_cache_ttl: Input should be greater"),
        ("daemon:\n  foreign_cache_ttl: soon\n", r"daemon\.foreign_cache_ttl: Input should be"),
    ],
)
def test_bad_foreign_cache_ttl(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(_write(tmp_path, text))


def test_a_long_cache_ttl_alone_raises_the_foreign_default_with_it(tmp_path: Path) -> None:
    daemon = load_settings(_write(tmp_path, "daemon:\n  cache_ttl: 3600\n")).daemon
    assert (daemon.cache_ttl, daemon.foreign_cache_ttl) == (3600.0, 3600.0)
    daemon = load_settings(_write(tmp_path, "daemon:\n  cache_ttl: 600\n")).daemon
    assert (daemon.cache_ttl, daemon.foreign_cache_ttl) == (600.0, 1800.0)


def test_equal_ttls_and_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _write(tmp_path, "daemon:\n  cache_ttl: 600\n  foreign_cache_ttl: 600\n")
    assert load_settings(path).daemon.foreign_cache_ttl == 600.0
    monkeypatch.setenv("PROVISIOND_DAEMON__FOREIGN_CACHE_TTL", "7200")
    assert load_settings(path).daemon.foreign_cache_ttl == 7200.0
