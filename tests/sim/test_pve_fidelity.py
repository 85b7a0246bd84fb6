"""Fidelity (issue 21): every endpoint of the PVE 8.4 schema the simulator does not serve answers
501 naming it; the endpoints common tools read first answer as PVE does; live data moves and
adds up; the request log holds every request. Through proxmoxer over verified HTTPS."""

from __future__ import annotations

import re
from typing import Any

import pytest
import requests
from proxmoxer import ResourceException
from proxmoxer.tools import Tasks

from provisiond.sim.pve import load
from provisiond.sim.pve.routes import ROUTES
from provisiond.sim.pve.testing import proxmox_client, running_simulator

pytestmark = pytest.mark.integration

NODE = "cit-gpu-01"


def _wait(api: Any, upid: str) -> dict[str, Any]:
    status = Tasks.blocking_status(api, upid, timeout=30, polling_interval=0.02)
    assert status is not None
    return dict(status)


def _concrete(template: str) -> str:
    return re.sub(r"{(\w+)}", lambda m: "100" if m.group(1) == "vmid" else "x1", template)


def test_every_unserved_endpoint_is_a_501_that_names_it(
    pve_sim: Any, pve_schema: dict[tuple[str, str], dict[str, Any]]
) -> None:
    sim = pve_sim.sim
    headers = {"Authorization": f"PVEAPIToken={sim.token}"}
    unserved = sorted(set(pve_schema) - set(ROUTES))
    assert len(unserved) > 100  # a QEMU-only subset of PVE's ~650 methods
    with requests.Session() as s:
        for method, template in unserved:
            path = _concrete(template)
            r = s.request(
                method,
                f"{sim.url}/api2/json{path}",
                headers=headers,
                verify=sim.ca_path,
                timeout=10,
            )
            assert r.status_code == 501, (method, template, r.status_code)
            assert r.json()["message"] == f"Method '{method} {path}' not implemented"
    counted = {(r.method, r.status) for r in sim.request_log()}
    assert counted == {(m, 501) for m, _ in unserved}  # each logged, with its status


def test_common_reads(pve_sim: Any) -> None:
    api = pve_sim.api
    assert set(api.nodes(NODE).version.get()) == {"release", "repoid", "version"}
    assert api.cluster.ha.status.current.get() == [
        {"id": "quorum", "type": "quorum", "node": NODE, "status": "OK", "quorate": 1}
    ]
    assert api.nodes(NODE).lxc.get() == []
    storages = {s["storage"]: s for s in api.storage.get()}
    assert storages["nfs-scratch"]["shared"] == 1
    assert storages["local-nvme"]["nodes"] == NODE
    assert [s["storage"] for s in api.storage.get(type="nfs")] == ["nfs-scratch"]
    subdirs = [d["subdir"] for d in api.nodes(NODE).qemu(9000).get()]
    assert {"config", "status", "snapshot", "rrddata", "migrate"} <= set(subdirs)


def test_pools_by_id_and_members(pve_sim: Any) -> None:
    api = pve_sim.api
    pool = api.pools.get()[0]["poolid"]
    assert api.pools(pool).get()["members"] == []
    api.pools(pool).put(vms="9000", comment="templates")
    got = api.pools(pool).get()
    assert ([m["vmid"] for m in got["members"]], got["comment"]) == ([9000], "templates")
    assert [m["vmid"] for m in api.pools.get(poolid=pool)[0]["members"]] == [9000]
    with pytest.raises(ResourceException) as exc:
        api.pools(pool).put(vms="9000")
    assert exc.value.content == "VM 9000 is already a pool member"
    api.pools(pool).put(vms="9000", delete=1)
    assert api.pools(pool).get()["members"] == []
    with pytest.raises(ResourceException) as exc:
        api.pools("nope").get()
    assert exc.value.content == "pool 'nope' does not exist"


def test_snapshots_suspend_resume_reset(pve_sim: Any) -> None:
    api = pve_sim.api
    _wait(api, api.nodes(NODE).qemu(9000).clone.post(newid=1035, name="snap"))
    q = api.nodes(NODE).qemu(1035)
    _wait(api, q.status.start.post())
    _wait(api, q.snapshot.post(snapname="before", description="first"))
    q.config.put(cores=8)  # pending: not part of the next snapshot's config either
    _wait(api, q.snapshot.post(snapname="ram", vmstate=1))
    snaps = {s["name"]: s for s in q.snapshot.get()}
    assert snaps["before"]["description"] == "first"
    assert (snaps["ram"]["parent"], snaps["ram"]["vmstate"]) == ("before", 1)
    assert (snaps["current"]["parent"], snaps["current"]["running"]) == ("ram", 1)
    assert q.config.get(snapshot="before")["cores"] == 2
    assert [c["cmd"] for c in q.snapshot("before").get()] == ["rollback", "config"]
    failed = _wait(api, q.snapshot.post(snapname="before"))
    assert failed["exitstatus"] == "snapshot name 'before' already used"
    with pytest.raises(ResourceException) as exc:
        q.snapshot.post(snapname="current")
    assert exc.value.content == "unable to use snapshot name 'current' (reserved name)"
    _wait(api, q.status.suspend.post())
    assert q.status.current.get()["qmpstatus"] == "paused"
    _wait(api, q.status.resume.post())
    assert q.status.current.get()["qmpstatus"] == "running"
    _wait(api, q.status.reset.post())
    assert _wait(api, q.snapshot("before").rollback.post())["exitstatus"] == "OK"
    assert (q.status.current.get()["status"], q.pending.get()[0].get("pending")) == (
        "stopped",
        None,
    )
    _wait(api, q.snapshot("ram").delete())
    assert {s["name"] for s in q.snapshot.get()} == {"before", "current"}
    with pytest.raises(ResourceException) as exc:
        q.status.suspend.post()
    assert exc.value.content == "VM 1035 not running"


def test_snapshot_description_is_updated(pve_sim: Any) -> None:
    api, sim = pve_sim.api, pve_sim.sim
    _wait(api, api.nodes(NODE).qemu(9000).clone.post(newid=1035, name="snap"))
    q = api.nodes(NODE).qemu(1035)
    _wait(api, q.snapshot.post(snapname="base", description="first"))
    assert q.snapshot("base").config.put(description="second") is None
    assert q.snapshot("base").config.get()["description"] == "second"
    assert {s["name"]: s["description"] for s in q.snapshot.get()}["base"] == "second"
    assert q.snapshot("base").config.put() is None  # nothing to change: PVE returns at once
    with pytest.raises(ResourceException) as exc:
        q.snapshot("nope").config.put(description="x")
    assert (exc.value.status_code, exc.value.content) == (500, "snapshot 'nope' does not exist")
    sim.set_lock(1035, "backup")
    with pytest.raises(ResourceException) as exc:
        q.snapshot("base").config.put(description="third")
    assert exc.value.content == "VM is locked (backup)"
    assert q.snapshot("base").config.get()["description"] == "second"


@pytest.mark.parametrize("pve_sim", ["astronomy-lab"], indirect=True)
def test_live_data_moves_and_adds_up(pve_sim: Any) -> None:
    api, sim = pve_sim.api, pve_sim.sim
    nodes = {n["node"]: n for n in api.nodes.get()}
    vms = [r for r in api.cluster.resources.get(type="vm") if r["status"] == "running"]
    assert len({r["cpu"] for r in vms}) > len(vms) // 2  # VMs differ
    for r in vms:
        assert 0 < r["cpu"] <= 1
        assert 0 < r["mem"] < r["maxmem"]
        listed = {v["vmid"]: v for v in api.nodes(r["node"]).qemu.get()}[r["vmid"]]
        assert listed["uptime"] >= 0
        assert listed["mem"] > 0
    for name, n in nodes.items():
        status = api.nodes(name).status.get()
        assert 0 <= status["memory"]["free"] == status["memory"]["total"] - status["memory"]["used"]
        assert n["mem"] <= n["maxmem"]
    assert len({round(n["cpu"], 6) for n in nodes.values()}) > 1  # hosts differ
    # the profile varies with time: one VM over an hour
    vm = sim.vm(vms[0]["vmid"])
    samples = {load.vm_cpu(vm, vm.started_at + s) for s in range(60, 3600, 300)}
    assert len(samples) > 5
    vmid = vms[0]["vmid"]
    sim.call(lambda c: setattr(c.vms[vmid], "started_at", c.vms[vmid].started_at - 7200))
    rows = api.nodes(vms[0]["node"]).qemu(vmid).rrddata.get(timeframe="hour")
    assert len(rows) == 70
    assert all(r["time"] % 60 == 0 for r in rows)
    assert all(0 < r["cpu"] <= 1 and r["mem"] <= r["maxmem"] for r in rows)
    assert len({r["cpu"] for r in rows}) > 10  # rrddata follows the same profile
    node_rows = api.nodes(vms[0]["node"]).rrddata.get(timeframe="day", cf="MAX")
    assert all(r["memused"] <= r["memtotal"] for r in node_rows)


def test_request_log_holds_every_request() -> None:
    with running_simulator("cps-gpu", time_scale=0.005) as sim:
        api = proxmox_client(sim)
        api.version.get()
        with pytest.raises(ResourceException):
            api.nodes(NODE).lxc(200).status.current.get()  # 501
        with pytest.raises(ResourceException):
            api.nodes(NODE).qemu(9000).config.put(cores=0)  # 400
        log = sim.request_log()
        assert [(r.method, r.template, r.status) for r in log] == [
            ("GET", "/version", 200),
            ("GET", f"/nodes/{NODE}/lxc/200/status/current", 501),
            ("PUT", "/nodes/{node}/qemu/{vmid}/config", 400),
        ]
        assert all(r.duration > 0 for r in log)
        summary = sim.request_summary()
        assert summary.splitlines()[0] == "requests: 3"
        assert re.search(
            r"^\s+1\s+400\s+[\d.]+\s+PUT /nodes/\{node\}/qemu/\{vmid\}/config$",
            summary,
            re.MULTILINE,
        )
