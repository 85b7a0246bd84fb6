"""deploy/systemd: the unit passes ``systemd-analyze verify`` and scores an exposure of at most
1.5 in ``systemd-analyze security --offline``; its credential is one provisiond reads; the
example settings and environment files load as the service would load them.

The daemon's side of ``Type=notify`` is tested in test_sdnotify.py.
"""

from __future__ import annotations

import configparser
import re
import shutil
import subprocess
from pathlib import Path

import certifi
import pytest
from deploy_support import UNIT_DIR, tool

from provisiond.settings import CREDENTIALS, load_settings

UNIT = UNIT_DIR / "provisiond.service"
INSTALLED = "/opt/provisiond/bin/provisiond"  # where docs/install-systemd.md installs it


def _unit() -> configparser.ConfigParser:
    # systemd allows repeated keys (SystemCallFilter=): keep the last, as a map suffices here.
    parser = configparser.ConfigParser(strict=False, interpolation=None, delimiters=("=",))
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(UNIT)
    return parser


def test_systemd_analyze_verify(tmp_path: Path) -> None:
    """``verify`` checks that ExecStart's program exists: the copy points at this machine's
    installed ``provisiond`` (the only change; the rest is the shipped unit)."""
    here = shutil.which("provisiond")
    assert here is not None, "provisiond is installed by scripts/bootstrap"
    text = UNIT.read_text()
    assert INSTALLED in text
    unit = tmp_path / "provisiond.service"
    unit.write_text(text.replace(INSTALLED, here))
    done = subprocess.run(
        [tool("systemd-analyze"), "verify", str(unit)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip() == "", done.stderr  # no warning either


def test_systemd_analyze_security_exposure_at_most_1_5() -> None:
    version = subprocess.run(
        [tool("systemd-analyze"), "--version"], capture_output=True, text=True, check=True
    ).stdout
    if int(version.split()[1]) < 252:
        pytest.fail(f"systemd-analyze security --offline needs systemd >= 252: {version[:40]}")
    done = subprocess.run(
        [tool("systemd-analyze"), "security", "--offline=true", "--threshold=15", str(UNIT)],
        capture_output=True,
        text=True,
        check=False,
    )
    found = re.search(r"Overall exposure level for provisiond\.service: (\d+\.\d)", done.stdout)
    assert found, done.stdout[-500:] + done.stderr
    print(f"systemd-analyze security exposure: {found.group(1)}")
    assert float(found.group(1)) <= 1.5
    assert done.returncode == 0, done.stderr


def test_unit_speaks_notify_and_hands_the_token_over_as_a_credential_provisiond_reads() -> None:
    service = _unit()["Service"]
    assert service["Type"] == "notify"
    assert service["Restart"] == "on-failure"
    assert service["ExecReload"] == "/bin/kill -HUP $MAINPID"
    assert int(service["WatchdogSec"].removesuffix("s")) > 0
    assert service["DynamicUser"] == "yes"
    assert service["StateDirectory"] == service["ConfigurationDirectory"] == "provisiond"
    name, _, source = service["LoadCredential"].partition(":")
    assert name in CREDENTIALS, f"provisiond reads the credentials {sorted(CREDENTIALS)}"
    assert CREDENTIALS[name] == ("proxmox", "token_secret_file")
    assert source.startswith("/etc/provisiond/")
    assert service["CapabilityBoundingSet"] == ""
    assert service["RestrictAddressFamilies"] == "AF_INET AF_INET6 AF_UNIX"


@pytest.fixture(autouse=True)
def _ca_bundle_here(monkeypatch: pytest.MonkeyPatch) -> None:
    """The example names /etc/provisiond/pve-root-ca.pem, which this machine lacks; provisiond
    checks the file at load, so any readable CA bundle stands in for it (the environment wins
    over the file, as on a real host)."""
    monkeypatch.setenv("PROVISIOND_PROXMOX__CA_BUNDLE", certifi.where())


def test_example_settings_load_with_the_token_from_the_credential(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    creds = tmp_path / "credentials"
    creds.mkdir()
    (creds / "proxmox-token-secret").write_text("3f1c-secret\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    settings = load_settings(UNIT_DIR / "provisiond.yaml")
    assert settings.proxmox.token_secret is not None
    assert settings.proxmox.token_secret.get_secret_value() == "3f1c-secret"
    assert settings.proxmox.token_secret_file == creds / "proxmox-token-secret"
    assert settings.log.format == "json"
    monkeypatch.delenv("CREDENTIALS_DIRECTORY")
    assert load_settings(UNIT_DIR / "provisiond.yaml").proxmox.token_secret is None


def test_every_setting_in_the_env_file_is_one_provisiond_accepts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Commented examples included: each line uncommented must load."""
    lines = (UNIT_DIR / "provisiond.env").read_text().splitlines()
    pairs = [ln.lstrip("#").split("=", 1) for ln in lines if re.match(r"#?[A-Z_]+=", ln)]
    settings_vars = [(k, v) for k, v in pairs if k.startswith("PROVISIOND_")]
    assert settings_vars
    for key, value in pairs:
        monkeypatch.setenv(key, value)
    settings = load_settings(UNIT_DIR / "provisiond.yaml")
    assert settings.daemon.read_only is True
    assert settings.log.level == "debug"
