"""PVE 9.x in the simulator (``pveVersion: "9.1"``), through the real proxmoxer client: the HA
rules CRUD with PVE's texts, the ``crs`` options (fewer without Sys.Audit), 8.4's 501 for the
rules path, and the simulated HA manager — failback after a manual migration out of a strict
node-affinity rule, recovery within the rule, a negative-affinity migrate request dropped, and
the auto-rebalance."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from proxmoxer import ResourceException
from proxmoxer.tools import Tasks

from provisiond.core.topology import Topology
from provisiond.sim.pve.testing import proxmox_client, running_simulator

pytestmark = pytest.mark.integration


def _vm(vmid: int, host: str, **kw: Any) -> dict[str, Any]:
    return {
        "vmid": vmid,
        "name": f"vm{vmid}",
        "host": host,
        "status": "running",
        "storage": "shared",
        "cores": 4,
        "memory": "8GiB",
        "disks": [{"slot": "scsi0", "size": "8G"}],
        "hastate": "started",
        **kw,
    }


def topology(version: str = "9.1", **spec: Any) -> Topology:
    doc: dict[str, Any] = {
        "apiVersion": "provisiond.dev/v1alpha1",
        "kind": "Topology",
        "metadata": {"name": "ha-lab"},
        "spec": {
            "pveVersion": version,
            "hosts": [{"name": f"node0{i}", "cpus": 16, "memory": "64GiB"} for i in (1, 2, 3, 4)],
            "storages": [{"name": "shared", "type": "nfs", "shared": True, "size": "10TiB"}],
            "vms": [_vm(101, "node01"), _vm(102, "node02"), _vm(103, "node01", hastate=None)],
            **spec,
        },
    }
    return Topology.model_validate(doc)


def _until(check: Callable[[], bool], seconds: float = 10.0) -> None:
    end = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.01)


@pytest.fixture
def sim9() -> Iterator[Any]:
    rule = {"id": "keep", "type": "node-affinity", "resources": [101], "nodes": ["node01"]}
    with running_simulator(topology(haRules=[{**rule, "strict": True}]), time_scale=0.002) as sim:
        yield sim


def test_84_does_not_serve_the_rules() -> None:
    with running_simulator(topology("8.4"), time_scale=0.002) as sim:
        api = proxmox_client(sim)
        with pytest.raises(ResourceException) as exc:
            api.cluster.ha.rules.get()
        assert exc.value.status_code == 501
        assert "Method 'GET /cluster/ha/rules' not implemented" in str(exc.value)
        assert api.cluster.options.get()["crs"] == {"ha": "basic"}


def test_rules_crud_with_pve_texts(sim9: Any) -> None:
    api = proxmox_client(sim9)
    [keep] = api.cluster.ha.rules.get()
    assert keep["rule"] == "keep"
    assert keep["nodes"] == "node01"
    assert keep["strict"] == 1
    api.cluster.ha.rules.post(
        rule="apart", type="resource-affinity", affinity="negative", resources="vm:102,vm:101"
    )
    got = api.cluster.ha.rules("apart").get()
    assert got["resources"] == "vm:101,vm:102"
    assert got["affinity"] == "negative"
    assert [r["rule"] for r in api.cluster.ha.rules.get(type="resource-affinity")] == ["apart"]

    def fails(call: Callable[..., Any], **kw: Any) -> str:
        with pytest.raises(ResourceException) as exc:
            call(**kw)
        return str(exc.value)

    post = api.cluster.ha.rules.post
    assert "HA rule 'apart' already defined" in fails(
        post, rule="apart", type="resource-affinity", affinity="positive", resources="vm:101"
    )
    assert "cannot use unmanaged resource(s) vm:103." in fails(
        post, rule="x1", type="node-affinity", nodes="node01", resources="vm:103"
    )
    assert "cannot use non-existent node(s) node09." in fails(
        post, rule="x2", type="node-affinity", nodes="node09", resources="vm:102"
    )
    assert "already used in another node affinity rule" in fails(
        post, rule="x3", type="node-affinity", nodes="node02", resources="vm:101"
    )
    assert "less than two resources" in fails(
        post, rule="x4", type="resource-affinity", affinity="positive", resources="vm:101"
    )
    assert "valid ha node" in fails(
        post, rule="x5", type="node-affinity", nodes="node01:x", resources="vm:102"
    )
    assert "HA rule 'nope' does not exist" in fails(
        api.cluster.ha.rules("nope").put, type="node-affinity", comment="x"
    )
    api.cluster.ha.rules("keep").put(type="node-affinity", nodes="node01:2,node02", disable=1)
    assert api.cluster.ha.rules("keep").get()["nodes"] == "node01:2,node02"
    api.cluster.ha.rules("apart").delete()
    api.cluster.ha.rules("apart").delete()  # a missing rule: deleted silently, as PVE
    assert [r["rule"] for r in api.cluster.ha.rules.get()] == ["keep"]


def test_options_without_sys_audit_are_fewer() -> None:
    crs = {"ha": "static", "haAutoRebalance": True}
    users = [{"id": "ops@pve", "tokens": [{"id": "tok", "secret": "s3cret", "privsep": True}]}]
    acls = [{"path": "/vms", "roles": ["PVEVMAdmin"], "tokens": ["ops@pve!tok"]}]
    with running_simulator(topology(crs=crs, users=users, acls=acls), time_scale=0.002) as sim:
        full = proxmox_client(sim).cluster.options.get()["crs"]
        assert full["ha"] == "static"
        assert full["ha-auto-rebalance"] == 1
        assert full["ha-auto-rebalance-threshold"] == 0.3
        api = proxmox_client(sim, token="ops@pve!tok=s3cret")
        assert "crs" not in api.cluster.options.get()


def test_strict_rule_moves_a_manual_migration_back(sim9: Any) -> None:
    api = proxmox_client(sim9)
    upid = api.nodes("node01").qemu(101).migrate.post(target="node03", online=1)
    Tasks.blocking_status(api, upid, polling_interval=0.01)
    _until(
        lambda: (
            [m[:3] for m in sim9.migrations()]
            == [(101, "node01", "node03"), (101, "node03", "node01")]
        )
    )
    assert "migrate service 'vm:101' to node 'node01' (running)" in sim9.ha_log()


def test_recovery_stays_within_a_strict_rule(sim9: Any) -> None:
    sim9.host_offline("node01")
    _until(lambda: sim9.vm(101).hastate == "recovery")
    assert sim9.vm(101).node == "node01"
    line = "recovering service 'vm:101' from fenced node 'node01' failed, no recovery node found"
    assert line in sim9.ha_log()


def test_negative_affinity_drops_the_migrate_request() -> None:
    rules = [
        {
            "id": "apart",
            "type": "resource-affinity",
            "affinity": "negative",
            "resources": [101, 102],
        }
    ]
    with running_simulator(topology(haRules=rules), time_scale=0.002) as sim:
        api = proxmox_client(sim)
        upid = api.nodes("node01").qemu(101).migrate.post(target="node02", online=1)
        assert Tasks.blocking_status(api, upid, polling_interval=0.01)["exitstatus"] == "OK"
        line = (
            "crm command 'migrate vm:101 node02' error - service 'vm:102' on node 'node02' "
            "in negative affinity with service 'vm:101'"
        )
        _until(lambda: line in sim.ha_log())
        assert sim.vm(101).node == "node01"
        assert sim.vm(101).hastate == "started"


def test_auto_rebalance_moves_after_the_hold_duration() -> None:
    vms = [_vm(100 + i, "node01") for i in range(1, 9)]
    crs = {"ha": "static", "haAutoRebalance": True, "haAutoRebalanceHoldDuration": 3}
    with running_simulator(topology(vms=vms, crs=crs), time_scale=0.002) as sim:
        assert sim.imbalance() > 0.3
        _until(lambda: len(sim.migrations()) >= 6)
        assert any(x.startswith("auto rebalance - migrate vm:") for x in sim.ha_log())
        _until(lambda: sim.imbalance() <= 0.3, 20)
        moved = [m[0] for m in sim.migrations()]
        assert len(moved) == len(set(moved)), "no VM moved twice"
