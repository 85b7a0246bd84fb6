"""Connections that are wrong, as a user meets them: the CLI as a process against the simulator.

``plan`` and ``apply`` fail with exit 1 and one line naming what failed and what to check when
Proxmox cannot be reached, its certificate is not trusted or the token is rejected (they used to
plan "9 blocked" and exit 0/3). Settings are checked at start: a bad URL or CA file is one line
and exit 1 for every command, never a traceback. ``run`` survives problems that come later: one
error event per cause, a backoff, and SIGTERM honoured within 2 s even while Proxmox hangs.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from e2e_support import Proc, example, run_daemon, write_settings

from cli_support import provisiond
from provisiond.sim.pve.handle import SimHandle
from provisiond.sim.pve.testing import running_simulator

SYSTEM_CAS = "/etc/ssl/certs/ca-certificates.crt"
COMMANDS = {"plan": ("plan",), "apply": ("apply", "--auto-approve"), "run": ("run",)}


@pytest.fixture(scope="module")
def sim() -> Iterator[SimHandle]:
    with running_simulator("inferno", time_scale=0.01) as handle:
        yield handle


@pytest.fixture(autouse=True)
def _no_faults(sim: SimHandle) -> Iterator[None]:
    yield
    sim.release_hangs()
    sim.clear_faults()


def settings(tmp: Path, sim: SimHandle, **proxmox: Any) -> Path:
    """The e2e settings file with some ``proxmox`` keys replaced."""
    cfg = write_settings(tmp, sim, example("inferno") / "fleet.yaml")
    data = json.loads(cfg.read_text())
    data["proxmox"].update(proxmox)
    cfg.write_text(json.dumps(data))
    return cfg


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return provisiond(*args, timeout=60)


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    """Exit 1, nothing on stdout, exactly one line on stderr (no traceback): that line."""
    assert result.returncode == 1, (result.returncode, result.stdout, result.stderr)
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    return lines[0]


def tokenid(sim: SimHandle) -> str:
    return sim.token.rpartition("=")[0]


# -- plan and apply: unreachable, untrusted, rejected -----------------------------------------


@pytest.mark.parametrize("command", ["plan", "apply"])
def test_connection_refused_is_one_line_and_exit_1(
    tmp_path: Path, sim: SimHandle, command: str
) -> None:
    cfg = settings(tmp_path, sim, url="https://127.0.0.1:1")
    line = one_error_line(cli(*COMMANDS[command], "--config", str(cfg)))
    assert line == (
        "error: cannot reach https://127.0.0.1:1: connection refused — is the URL right?"
    )


@pytest.mark.parametrize("command", ["plan", "apply"])
def test_a_wrong_token_secret_is_one_line_and_exit_1(
    tmp_path: Path, sim: SimHandle, command: str
) -> None:
    cfg = settings(tmp_path, sim, token_secret="00000000-wrong", token_secret_file=None)
    line = one_error_line(cli(*COMMANDS[command], "--config", str(cfg)))
    assert line == (
        f"error: authentication failed for token {tokenid(sim)} — check token id and secret"
    )
    assert "00000000-wrong" not in line


@pytest.mark.parametrize("command", ["plan", "apply"])
def test_a_ca_that_did_not_sign_the_certificate_is_one_line_and_exit_1(
    tmp_path: Path, sim: SimHandle, command: str
) -> None:
    cfg = settings(tmp_path, sim, ca_bundle=SYSTEM_CAS)
    line = one_error_line(cli(*COMMANDS[command], "--config", str(cfg)))
    assert line == (
        f"error: TLS: certificate of {sim.url} not trusted by ca_bundle {SYSTEM_CAS}"
        " — is it the cluster's CA?"
    )


# -- settings checked at start, for every command ----------------------------------------------


def _bad_settings(tmp: Path, sim: SimHandle) -> dict[str, tuple[Path, str]]:
    garbage = tmp / "garbage.pem"
    garbage.write_text("not a certificate\n")
    missing = tmp / "missing.pem"
    where = "error: invalid settings (settings file {cfg}): "
    return {
        "url without scheme": (
            settings(tmp / "a", sim, url="pve1:8006"),
            where
            + "proxmox.url: must be https://<host>[:port] (e.g. https://pve1.example.org:8006)",
        ),
        "url with a path": (
            settings(tmp / "b", sim, url=sim.url + "/api2/json"),
            where + "proxmox.url: must be https://<host>[:port] without a path"
            " (e.g. https://pve1.example.org:8006)",
        ),
        "missing CA file": (
            settings(tmp / "c", sim, ca_bundle=str(missing)),
            where + f"proxmox.ca_bundle: cannot read {missing}: No such file or directory",
        ),
        "CA file without a certificate": (
            settings(tmp / "d", sim, ca_bundle=str(garbage)),
            where + f"proxmox.ca_bundle: {garbage} holds no PEM certificate",
        ),
        "missing secret file": (
            settings(tmp / "e", sim, token_secret_file=str(missing)),
            where + f"proxmox: cannot read proxmox token secret from {missing}: "
            "No such file or directory",
        ),
    }


@pytest.mark.parametrize("command", ["plan", "apply", "run"])
def test_bad_settings_are_one_line_and_exit_1_before_anything_starts(
    tmp_path: Path, sim: SimHandle, command: str
) -> None:
    for sub in "abcde":
        (tmp_path / sub).mkdir()
    for case, (cfg, expected) in _bad_settings(tmp_path, sim).items():
        line = one_error_line(cli(*COMMANDS[command], "--config", str(cfg)))
        assert line == expected.format(cfg=cfg), case


# -- run: problems that come later --------------------------------------------------------------


def _events(proc: Proc, name: str) -> list[dict[str, Any]]:
    return [e for e in proc.events() if e.get("event") == name]


def test_run_with_proxmox_down_logs_it_once_backs_off_and_stops_on_sigterm(
    tmp_path: Path, sim: SimHandle
) -> None:
    cfg = settings(tmp_path, sim, url="https://127.0.0.1:1")
    daemon = run_daemon(tmp_path, cfg)
    try:
        daemon.wait_for(lambda e: e.get("event") == "proxmox_access_failed")
        time.sleep(6.5)  # the backoff starts at 5 s: a second attempt, not a second error line
    finally:
        seconds = daemon.terminate()
    assert daemon.popen.returncode == 0, daemon.tail()
    assert seconds < 2.0
    failed = _events(daemon, "proxmox_access_failed")
    assert [(e["level"], e["cause"]) for e in failed] == [("error", "unreachable")]
    assert failed[0]["error"] == (
        "cannot reach https://127.0.0.1:1: connection refused — is the URL right?"
    )
    assert not _events(daemon, "reconcile_failed")  # no traceback
    assert "Traceback" not in daemon.log.read_text()


def test_run_with_a_revoked_token_waits_then_recovers_on_sighup(
    tmp_path: Path, sim: SimHandle
) -> None:
    cfg = settings(tmp_path, sim)
    daemon = run_daemon(tmp_path, cfg, "--read-only")
    try:
        daemon.wait_for(lambda e: e.get("event") == "plan_ready")
        sim.inject("/cluster/resources", status=401, message="invalid token value!")
        daemon.popen.send_signal(signal.SIGHUP)  # a cycle now (else: the next one in 30 s)
        failed = daemon.wait_for(lambda e: e.get("event") == "proxmox_access_failed")
        assert failed["cause"] == "auth"
        assert failed["error"] == (
            f"authentication failed for token {tokenid(sim)} — check token id and secret"
        )
        sim.clear_faults()
        daemon.popen.send_signal(signal.SIGHUP)
        daemon.wait_for(lambda e: e.get("event") == "proxmox_access_restored")
        daemon.wait_for(lambda e: e.get("event") == "plan_ready" and e["reconcile_id"] > 2)
    finally:
        assert daemon.terminate() < 2.0
    assert daemon.popen.returncode == 0
    assert len(_events(daemon, "proxmox_access_failed")) == 1
    assert sim.token.rpartition("=")[2] not in daemon.log.read_text()


def test_run_stops_within_2_s_on_sigterm_while_proxmox_hangs(
    tmp_path: Path, sim: SimHandle
) -> None:
    cfg = settings(tmp_path, sim, read_timeout=60.0)
    sim.inject("/cluster/resources", hang=True)
    daemon = run_daemon(tmp_path, cfg)
    try:
        daemon.wait_for(lambda e: e.get("event") == "spec_loaded")
        time.sleep(1.0)  # the observation is under way and hangs
    finally:
        seconds = daemon.terminate(timeout=30)
    assert daemon.popen.returncode == 0, daemon.tail()
    assert seconds < 2.0, seconds
