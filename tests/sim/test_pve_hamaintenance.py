"""HA node maintenance in the simulator (8.4 and 9.1), through the real proxmoxer client: the
seam (``SimHandle.ha_node_maintenance``, as ``ha-manager crm-command node-maintenance``) and the
topology's ``haMaintenance``; ``/cluster/ha/status/current`` and ``…/manager_status`` report it
as PVE does; the HA manager migrates HA resources off the node and back afterwards, and leaves
VMs that are not HA-managed where they are."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from provisiond.core.topology import Topology
from provisiond.sim.pve.testing import proxmox_client, running_simulator

pytestmark = pytest.mark.integration


def _topology(version: str, *, ha: bool = True, **host: Any) -> Topology:
    vm = {"host": "n1", "status": "running", "storage": "nfs", "memory": "1GiB"}
    return Topology.model_validate(
        {
            "apiVersion": "provisiond.dev/v1alpha1",
            "kind": "Topology",
            "metadata": {"name": "maint"},
            "spec": {
                "pveVersion": version,
                "hosts": [
                    {"name": n, "cpus": 8, "memory": "32GiB", **(host if n == "n1" else {})}
                    for n in ("n1", "n2", "n3")
                ],
                "storages": [{"name": "nfs", "type": "nfs", "shared": True, "size": "1TiB"}],
                "vms": [
                    {"vmid": 101, "name": "ha", **vm, **({"hastate": "started"} if ha else {})},
                    {"vmid": 102, "name": "plain", **vm},
                ],
            },
        }
    )


def until(check: Callable[[], Any], timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := check()):
        assert time.monotonic() < deadline, f"timed out waiting for {check}"
        time.sleep(0.02)
    return value


def lrm(api: Any, node: str) -> str:
    entries = api.cluster.ha.status.current.get()
    return next(str(e["status"]) for e in entries if e["id"] == f"lrm:{node}")


@pytest.mark.parametrize("version", ["8.4", "9.1"])
def test_maintenance_reported_and_ha_resources_moved_off_and_back(version: str) -> None:
    with running_simulator(_topology(version), time_scale=0.01) as sim:
        api = proxmox_client(sim)
        assert lrm(api, "n1").startswith("n1 (active, watchdog active, ")
        assert api.cluster.ha.status.manager_status.get()["manager_status"]["node_status"] == {
            "n1": "online",
            "n2": "online",
            "n3": "online",
        }
        sim.ha_node_maintenance("n1")
        assert lrm(api, "n1").startswith("n1 (maintenance mode, ")
        status = api.cluster.ha.status.manager_status.get()
        assert status["manager_status"]["node_status"]["n1"] == "maintenance"
        assert status["manager_status"]["node_request"] == {"n1": {"maintenance": 1}}
        assert status["lrm_status"]["n1"]["mode"] == "maintenance"
        until(lambda: sim.vm(101).node == "n2" and sim.vm(101).hastate == "started")  # type: ignore[union-attr]
        assert "migrate service 'vm:101' to node 'n2' (running)" in sim.ha_log()
        assert sim.vm(102).node == "n1"  # type: ignore[union-attr]  # not HA-managed: stays
        assert lrm(api, "n1").startswith("n1 (maintenance mode, watchdog standby, ")
        sim.ha_node_maintenance("n1", enable=False)
        assert lrm(api, "n1").startswith("n1 (idle, ")
        until(lambda: sim.vm(101).node == "n1" and sim.vm(101).hastate == "started")  # type: ignore[union-attr]
        assert (
            "moving service 'vm:101' back to 'n1', node came back from maintenance." in sim.ha_log()
        )


def test_the_topology_field_and_the_crm_without_resources() -> None:
    with running_simulator(_topology("8.4", ha=False, haMaintenance=True)) as sim:
        api = proxmox_client(sim)
        assert lrm(api, "n1").startswith("n1 (maintenance mode, watchdog standby, ")
        sim.ha_node_maintenance("n1")  # already: ignored, as the CRM does
        assert sim.ha_log()[-1] == "ignoring crm command - node n1 is already in maintenance state"
        sim.ha_node_maintenance("n1", enable=False)
        # no HA resource and no maintenance: no CRM master, an empty manager status
        assert [e["type"] for e in api.cluster.ha.status.current.get()] == ["quorum"]
        assert api.cluster.ha.status.manager_status.get()["manager_status"] == {}
        sim.host_offline("n2")
        sim.ha_node_maintenance("n2")
        assert sim.ha_log()[-1] == (
            "crm command error - node not online: enable-node-maintenance n2"
        )
