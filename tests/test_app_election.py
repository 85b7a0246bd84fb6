"""``app.build_daemon`` wires leader election into the rest of the daemon: the elector's
transitions reach the ``leader_election_master_status`` gauge, MQTT's status ``role``, its
``leadership_changed`` event and the ``reconcile`` command's leader check; without election
(or for ``apply``) the daemon is its own leader. The elector steps against the Kubernetes
simulator's Lease API with the real client; nothing talks to Proxmox or a broker here."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from provisiond import app
from provisiond.settings import Settings
from provisiond.sim.kube import KubeSim
from provisiond.sim.kube.testing import running_kube
from provisiond.sim.pve.testing import EXAMPLES

pytestmark = pytest.mark.integration

GAUGE = "leader_election_master_status"


@pytest.fixture(scope="module")
def kube() -> Iterator[KubeSim]:
    with running_kube() as sim:
        yield sim


@pytest.fixture(autouse=True)
def _no_ambient_kubernetes(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("KUBECONFIG", "KUBERNETES_SERVICE_HOST", "POD_NAME", "POD_NAMESPACE"):
        monkeypatch.delenv(name, raising=False)


def settings(tmp: Path, kube: KubeSim | None, lease: str = "provisiond") -> Settings:
    sections: dict[str, Any] = {
        # never contacted: only the elector makes requests in these tests
        "proxmox": {"url": "https://pve.invalid:8006", "token_id": "a@pve!t", "token_secret": "s"},
        "spec": {"paths": [EXAMPLES / "cps-gpu"]},
        "mqtt": {"url": "mqtt://127.0.0.1:1883"},
        "metrics": {"bind": "127.0.0.1:0"},
        "daemon": {"state_dir": tmp / "state"},
    }
    if kube is not None:
        sections["kubernetes"] = {"kubeconfig": kube.write_kubeconfig(tmp / "kubeconfig")}
        sections["leader_election"] = {
            "name": lease,
            "lease_duration": 1.5,
            "renew_deadline": 1.0,
            "retry_period": 0.2,
        }
    return Settings(**sections)


def gauge(built: app.Daemon, lease: str = "provisiond") -> float | None:
    return built.metrics.registry.get_sample_value(GAUGE, {"name": lease})


async def test_transitions_reach_the_gauge_mqtt_status_event_and_commands(
    kube: KubeSim, tmp_path: Path
) -> None:
    built = app.build_daemon(settings(tmp_path, kube, "wired"))
    election, mqtt, commands = built.election, built.mqtt, built.commands
    assert election is not None
    assert mqtt is not None
    assert commands is not None
    try:
        assert election in built.runnables()
        # Before the first round: a standby everywhere.
        assert (gauge(built, "wired"), mqtt.detail["role"], commands.is_leader()) == (
            0.0,
            "standby",
            False,
        )
        events = mqtt.buffered
        assert await election.elector.step()  # the Lease is free: this process leads
        assert (gauge(built, "wired"), mqtt.detail["role"], commands.is_leader()) == (
            1.0,
            "leader",
            True,
        )
        assert mqtt.buffered == events + 1  # leadership_changed
        await election.elector.shutdown()  # SIGTERM: released
        assert (gauge(built, "wired"), mqtt.detail["role"], commands.is_leader()) == (
            0.0,
            "standby",
            False,
        )
        assert mqtt.buffered == events + 2
        assert kube.get("leases", "wired", "default")["spec"]["holderIdentity"] in ("", None)
    finally:
        await election.lease.close()
        built.close()


def test_without_kubernetes_the_daemon_is_its_own_leader(tmp_path: Path) -> None:
    built = app.build_daemon(settings(tmp_path, None))
    try:
        assert built.election is None
        assert app.instance_lock(settings(tmp_path, None)) is not None
        assert built.mqtt is not None
        assert built.commands is not None
        assert (gauge(built), built.mqtt.detail["role"], built.commands.is_leader()) == (
            None,  # absent without leader election
            "leader",
            True,
        )
    finally:
        built.close()


def test_apply_acts_without_an_elector(kube: KubeSim, tmp_path: Path) -> None:
    """``apply`` (``services=False``) runs no manager, so an elector would never lead and the
    plan would never run: it gets none."""
    s = settings(tmp_path, kube)
    assert app.election_enabled(s)
    built = app.build_daemon(s, services=False)
    try:
        assert built.election is None
        assert built.mqtt is None
        assert gauge(built) is None
    finally:
        built.close()
