"""Proxmox HA node maintenance seen by the observer (real proxmoxer against the simulator, 8.4
and 9.1): read from ``/cluster/ha/status/manager_status`` once per refresh period, with the HA
rules; set on ``Host.maintenance``; a token without ``Sys.Audit`` on ``/`` sees none (said
once)."""

from __future__ import annotations

from typing import Any

import pytest
from structlog.testing import capture_logs

from provisiond.adapters.proxmox import ProxmoxClient, ProxmoxConnection
from provisiond.adapters.pve_hareader import maintenance
from provisiond.adapters.pve_observer import ProxmoxObserver
from provisiond.core.topology import Topology
from provisiond.sim.pve.handle import SimHandle
from provisiond.sim.pve.testing import running_simulator

pytestmark = pytest.mark.integration
STATUS = "/cluster/ha/status/manager_status"


def _topology(version: str) -> Topology:
    return Topology.model_validate(
        {
            "apiVersion": "provisiond.dev/v1alpha1",
            "kind": "Topology",
            "metadata": {"name": "maint"},
            "spec": {
                "pveVersion": version,
                "hosts": [{"name": n, "cpus": 8, "memory": "32GiB"} for n in ("n1", "n2")],
                "storages": [{"name": "nfs", "type": "nfs", "shared": True, "size": "1TiB"}],
                "users": [{"id": "ops@pve", "tokens": [{"id": "tok", "secret": "s3cret"}]}],
                "acls": [{"path": "/vms", "roles": ["PVEVMAdmin"], "users": ["ops@pve"]}],
            },
        }
    )


def _client(sim: SimHandle, token: str | None = None) -> ProxmoxClient:
    tokenid, _, secret = (token or sim.token).rpartition("=")
    return ProxmoxClient(
        ProxmoxConnection(url=sim.url, identity=tokenid, secret=secret, verify=sim.ca_path)
    )


def _maintenance(state: Any) -> dict[str, bool]:
    return {h.name: h.maintenance for h in state.hosts}


@pytest.mark.parametrize("version", ["8.4", "9.1"])
async def test_ha_maintenance_is_read_once_per_refresh_period(version: str) -> None:
    with running_simulator(_topology(version), time_scale=0.01) as sim:
        client = _client(sim)
        now = [0.0]
        try:
            observer = ProxmoxObserver(client, cache_ttl=60, clock=lambda: now[0])
            assert _maintenance(await observer.observe()) == {"n1": False, "n2": False}
            sim.ha_node_maintenance("n1")
            cached = await observer.observe()  # within the period: not read again
            assert _maintenance(cached) == {"n1": False, "n2": False}
            assert sim.requests("GET", STATUS) == 1
            now[0] = 61.0
            assert _maintenance(await observer.observe()) == {"n1": True, "n2": False}
            assert sim.requests("GET", STATUS) == 2
        finally:
            client.close()


async def test_without_sys_audit_no_maintenance_is_seen_and_that_is_said_once() -> None:
    with running_simulator(_topology("8.4"), time_scale=0.01) as sim:
        sim.ha_node_maintenance("n1")
        client = _client(sim, "ops@pve!tok=s3cret")
        now = [0.0]
        try:
            observer = ProxmoxObserver(client, cache_ttl=60, clock=lambda: now[0])
            with capture_logs() as logs:
                first = await observer.observe()
                now[0] = 61.0
                await observer.observe()
        finally:
            client.close()
        assert not any(h.maintenance for h in first.hosts)
        assert [e["event"] for e in logs].count("ha_status_unreadable") == 1


def test_requested_or_entered_both_count() -> None:
    status = {
        "manager_status": {
            "node_status": {"a": "maintenance", "b": "online", "c": "online", "d": "online"},
            "node_request": {"c": {"maintenance": 1}, "d": {}},
        }
    }
    assert maintenance(status) == frozenset({"a", "c"})
    assert maintenance({"manager_status": {}}) == frozenset()
