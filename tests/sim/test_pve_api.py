"""The simulator's endpoints through the real proxmoxer client over verified HTTPS."""

from __future__ import annotations

import re
from typing import Any

import pytest
import requests
from proxmoxer import ResourceException
from proxmoxer.tools import Tasks

pytestmark = pytest.mark.integration

NODE = "cit-gpu-01"
UPID_RE = re.compile(
    r"^UPID:[a-zA-Z0-9\-]+:[0-9A-F]{8}:[0-9A-F]{8,9}:[0-9A-F]{8}:[^:\s/]+:[^:\s/]*:[^:\s/]+:$"
)


def wait(api: Any, upid: str) -> dict[str, Any]:
    status = Tasks.blocking_status(api, upid, timeout=30, polling_interval=0.02)
    assert status is not None, f"task {upid} did not finish"
    return status


def clone(api: Any, newid: int = 1035, **kw: Any) -> dict[str, Any]:
    upid = api.nodes(NODE).qemu(9000).clone.post(newid=newid, name=f"vm{newid}", **kw)
    return wait(api, upid)


def test_version_and_envelope(pve_sim: Any) -> None:
    ca = pve_sim.sim.ca_path
    resp = requests.get(
        f"{pve_sim.sim.url}/api2/json/version",
        headers={"Authorization": f"PVEAPIToken={pve_sim.sim.token}"},
        verify=ca,
        timeout=10,
    )
    assert resp.headers["Server"] == "pve-api-daemon/3.0"
    assert resp.headers["Content-Type"] == "application/json;charset=UTF-8"
    body = resp.json()
    assert set(body) == {"data"}
    assert body["data"]["release"] == "8.4"


def test_unknown_path_is_501(pve_sim: Any) -> None:
    with pytest.raises(ResourceException) as exc:
        pve_sim.api.nodes(NODE).lxc(200).status.current.get()
    assert exc.value.status_code == 501
    assert exc.value.content == f"Method 'GET /nodes/{NODE}/lxc/200/status/current' not implemented"


def test_unknown_token_is_401_with_pve_reason(pve_sim: Any) -> None:
    sim = pve_sim.sim
    tokenid = sim.token.rpartition("=")[0]
    for header, reason in (
        ({"Authorization": f"PVEAPIToken={tokenid}=wrong"}, "Authentication failed!"),
        ({}, "No ticket"),
    ):
        resp = requests.get(
            f"{sim.url}/api2/json/version", headers=header, verify=sim.ca_path, timeout=10
        )
        assert (resp.status_code, resp.reason, resp.content) == (401, reason, b"")


def test_cluster_resources(pve_sim: Any) -> None:
    api = pve_sim.api
    items = api.cluster.resources.get()
    types = {i["type"] for i in items}
    assert types == {"qemu", "node", "storage", "pool"}
    (tmpl,) = api.cluster.resources.get(type="vm")
    assert tmpl == {
        "id": "qemu/9000",
        "type": "qemu",
        "vmid": 9000,
        "name": "k3s-node-tmpl",
        "node": NODE,
        "status": "stopped",
        "template": 1,
        "maxcpu": 2,
        "maxmem": 4 << 30,
        "maxdisk": 32 << 30,
        "disk": 0,
        "uptime": 0,
        "cpu": 0,
        "mem": 0,
        "netin": 0,
        "netout": 0,
        "diskread": 0,
        "diskwrite": 0,
    }
    storages = {i["id"]: i for i in api.cluster.resources.get(type="storage")}
    assert storages[f"storage/{NODE}/nfs-scratch"]["shared"] == 1
    assert storages[f"storage/{NODE}/local-nvme"]["plugintype"] == "lvmthin"
    pools = [i for i in items if i["type"] == "pool"]
    assert pools == [{"id": "/pool/k3s", "type": "pool", "pool": "k3s"}]


def test_resources_show_tags_lock_hastate_and_unknown_status(pve_sim: Any) -> None:
    clone(pve_sim.api)
    sim = pve_sim.sim
    sim.set_config(1035, tags="b;a", lock="backup")
    sim.call(lambda c: setattr(c.vms[1035], "hastate", "started"))
    sim.call(lambda c: setattr(c.nodes[NODE], "online", False))
    item = next(i for i in pve_sim.api.cluster.resources.get(type="vm") if i["vmid"] == 1035)
    assert (item["status"], item["tags"], item["lock"], item["hastate"]) == (
        "unknown",
        "b;a",
        "backup",
        "started",
    )


def test_nextid_is_a_string_and_checks_a_given_vmid(pve_sim: Any) -> None:
    api = pve_sim.api
    assert api.cluster.nextid.get() == "100"
    assert api.cluster.nextid.get(vmid=1035) == "1035"
    with pytest.raises(ResourceException) as exc:
        api.cluster.nextid.get(vmid=9000)
    assert exc.value.status_code == 400
    assert exc.value.errors == {"vmid": "VM 9000 already exists"}


def test_cluster_status_and_nodes(pve_sim: Any) -> None:
    api = pve_sim.api
    cluster, node = api.cluster.status.get()
    assert cluster == {
        "type": "cluster",
        "id": "cluster",
        "name": "cps-gpu",
        "nodes": 1,
        "quorate": 1,
        "version": 2,
    }
    assert (node["name"], node["online"], node["local"], node["ip"]) == (NODE, 1, 1, "10.21.1.10")
    (n,) = api.nodes.get()
    assert (n["node"], n["status"], n["maxcpu"], n["maxmem"]) == (NODE, "online", 128, 1 << 40)
    assert re.fullmatch(r"([0-9A-F]{2}:){31}[0-9A-F]{2}", n["ssl_fingerprint"])
    status = api.nodes(NODE).status.get()
    assert status["cpuinfo"]["cpus"] == 128
    assert status["memory"]["total"] == 1 << 40


def test_unknown_node_fails_hostname_lookup(pve_sim: Any) -> None:
    with pytest.raises(ResourceException) as exc:
        pve_sim.api.nodes("nope").status.get()
    assert exc.value.status_code == 500
    assert exc.value.content.startswith("hostname lookup 'nope' failed - ")


def test_pci_hardware_and_mappings(pve_sim: Any) -> None:
    api = pve_sim.api
    devices = api.nodes(NODE).hardware.pci.get()
    assert len(devices) == 8
    assert {(d["vendor"], d["device"]) for d in devices} == {("0x10de", "0x20f1")}
    assert devices[0]["id"] == "0000:01:00.0"
    (mapping,) = api.cluster.mapping.pci.get()
    assert mapping["id"] == "a100-40g"
    assert len(mapping["map"]) == 8
    assert mapping["map"][0] == "id=10de:20f1,iommugroup=20,node=cit-gpu-01,path=0000:01:00.0"
    assert "live-migration-capable" not in mapping
    (checked,) = api.cluster.mapping.pci.get(**{"check-node": "other"})
    assert checked["checks"] == [{"severity": "warning", "message": "No mapping for node other."}]
    one = api.cluster.mapping.pci("a100-40g").get()
    assert one["map"] == mapping["map"]
    with pytest.raises(ResourceException) as exc:
        api.cluster.mapping.pci("nope").get()
    assert exc.value.content == "mapping 'nope' not found"


def test_pools_and_storage(pve_sim: Any) -> None:
    api = pve_sim.api
    assert api.pools.get() == [{"poolid": "k3s", "comment": "the k3s cluster's VMs"}]
    storages = {s["storage"]: s for s in api.nodes(NODE).storage.get()}
    assert set(storages) == {"local-nvme", "nfs-scratch"}
    local = storages["local-nvme"]
    assert (local["total"], local["used"], local["shared"]) == (2 * 10**12, 32 << 30, 0)
    assert api.nodes(NODE).storage.get(storage="nfs-scratch")[0]["shared"] == 1


def test_qemu_list_and_status_current(pve_sim: Any) -> None:
    api = pve_sim.api
    (tmpl,) = api.nodes(NODE).qemu.get()
    assert (tmpl["vmid"], tmpl["name"], tmpl["status"], tmpl["template"]) == (
        9000,
        "k3s-node-tmpl",
        "stopped",
        1,
    )
    cur = api.nodes(NODE).qemu(9000).status.current.get()
    assert (cur["status"], cur["qmpstatus"], cur["ha"], cur["template"]) == (
        "stopped",
        "stopped",
        {"managed": 0},
        1,
    )


def test_nonexistent_vm(pve_sim: Any) -> None:
    with pytest.raises(ResourceException) as exc:
        pve_sim.api.nodes(NODE).qemu(4242).config.get()
    assert exc.value.status_code == 500
    assert (
        exc.value.content
        == f"Configuration file 'nodes/{NODE}/qemu-server/4242.conf' does not exist"
    )


def test_create_vm_takes_the_vmid_at_once(pve_sim: Any) -> None:
    api = pve_sim.api
    upid = api.nodes(NODE).qemu.post(
        vmid=500,
        name="fresh",
        cores=2,
        memory="2048",
        scsi0="local-nvme:8",
        net0="virtio,bridge=vmbr0",
    )
    assert api.cluster.nextid.get() == "100"
    assert UPID_RE.match(upid)
    assert wait(api, upid)["exitstatus"] == "OK"
    cfg = api.nodes(NODE).qemu(500).config.get()
    assert cfg["scsi0"] == "local-nvme:vm-500-disk-0,size=8G"
    assert re.fullmatch(r"virtio=([0-9A-F]{2}:){5}[0-9A-F]{2},bridge=vmbr0", cfg["net0"])
    with pytest.raises(ResourceException) as exc:
        api.nodes(NODE).qemu.post(vmid=500)
    assert exc.value.content == (
        f"unable to create VM 500 - VM 500 already exists on node '{NODE}'"
    )


def test_tasks_list_filters_and_log(pve_sim: Any) -> None:
    api = pve_sim.api
    sim = pve_sim.sim
    hold = sim.hold_task("qmclone", at=0.5)
    upid = api.nodes(NODE).qemu(9000).clone.post(newid=1035, name="a")
    assert hold.wait()
    active = api.nodes(NODE).tasks.get(source="active")
    assert [(t["upid"], t["status"]) for t in active] == [(upid, "RUNNING")]
    assert api.nodes(NODE).tasks.get() == []  # archive: finished tasks only
    assert api.cluster.tasks.get()[0]["upid"] == upid
    hold.release()
    wait(api, upid)
    (done,) = api.nodes(NODE).tasks.get(vmid=9000, typefilter="qmclone")
    assert (done["status"], done["type"], done["id"]) == ("OK", "qmclone", "9000")
    assert done["endtime"] >= done["starttime"]
    assert api.nodes(NODE).tasks.get(vmid=1035) == []
    assert api.nodes(NODE).tasks.get(typefilter="qmstart") == []
    assert len(api.nodes(NODE).tasks.get(source="all")) == 1
    log = api.nodes(NODE).tasks(upid).log.get()
    assert log[0] == {
        "n": 1,
        "t": "create linked clone of drive scsi0 (local-nvme:base-9000-disk-0)",
    }
    assert log[-1]["t"] == "TASK OK"
    status = api.nodes(NODE).tasks(upid).status.get()
    assert (status["user"], status["tokenid"], status["type"]) == (
        "root@pam",
        "provisiond",
        "qmclone",
    )


def test_task_status_errors(pve_sim: Any) -> None:
    api = pve_sim.api
    with pytest.raises(ResourceException) as exc:
        api.nodes(NODE).tasks(
            "UPID:cit-gpu-01:00000001:00000002:00000003:qmstart:1:root@pam:"
        ).status.get()
    assert (exc.value.status_code, exc.value.errors) == (400, {"upid": "no such task"})
    with pytest.raises(ResourceException) as exc:
        api.nodes(NODE).tasks("garbage").status.get()
    assert exc.value.content == "unable to parse worker upid 'garbage'"


def test_task_log_total_in_envelope(pve_sim: Any) -> None:
    api = pve_sim.api
    upid = api.nodes(NODE).qemu(9000).clone.post(newid=1035)
    wait(api, upid)
    sim = pve_sim.sim
    resp = requests.get(
        f"{sim.url}/api2/json/nodes/{NODE}/tasks/{upid}/log",
        params={"start": 1, "limit": 1},
        headers={"Authorization": f"PVEAPIToken={sim.token}"},
        verify=sim.ca_path,
        timeout=10,
    )
    assert resp.json() == {"data": [{"n": 2, "t": "TASK OK"}], "total": 2}
