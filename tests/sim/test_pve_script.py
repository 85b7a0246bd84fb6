"""A script written the way common Proxmox tools work (inventory and provisioning scripts over
proxmoxer with an API token), run end to end against the simulator: it must meet no 4xx/5xx a
real PVE would not give (issue 21)."""

from __future__ import annotations

from typing import Any

import pytest
from proxmoxer.tools import Tasks

from provisiond.sim.pve.testing import proxmox_client, running_simulator

pytestmark = pytest.mark.integration


def _wait(api: Any, node: str, upid: str) -> None:
    status = Tasks.blocking_status(api, upid, timeout=60, polling_interval=0.05)
    assert status is not None
    assert status["exitstatus"] == "OK", status
    assert api.nodes(node).tasks(upid).status.get()["status"] == "stopped"


def inventory(api: Any) -> dict[str, Any]:
    """What an inventory tool reads first, in its usual order."""
    out: dict[str, Any] = {"version": api.version.get()["version"]}
    out["ha"] = [s["id"] for s in api.cluster.ha.status.current.get()]
    out["storage"] = [s["storage"] for s in api.storage.get()]
    out["pools"] = {p["poolid"]: api.pools(p["poolid"]).get() for p in api.pools.get()}
    out["nodes"] = {}
    for node in api.nodes.get():
        name = node["node"]
        out["nodes"][name] = {
            "version": api.nodes(name).version.get()["release"],
            "status": api.nodes(name).status.get()["memory"],
            "vms": {v["vmid"]: v["status"] for v in api.nodes(name).qemu.get(full=1)},
            "lxc": api.nodes(name).lxc.get(),
            "storage": [s["storage"] for s in api.nodes(name).storage.get(enabled=1)],
            "rrd": api.nodes(name).rrddata.get(timeframe="hour", cf="AVERAGE")[-1],
        }
    out["resources"] = api.cluster.resources.get()
    return out


def provision(api: Any, node: str, storage: str) -> int:
    """Create a VM with a NIC and the options such tools set, snapshot it, pause it, read it."""
    vmid = int(api.cluster.nextid.get())
    upid = api.nodes(node).qemu.post(
        vmid=vmid,
        name="script-vm",
        memory=2048,
        cores=2,
        ostype="l26",
        scsihw="virtio-scsi-single",
        scsi0=f"{storage}:8,discard=on",
        net0="virtio,bridge=vmbr0,firewall=1",
        tablet=0,
        startup="order=3,up=20",
        agent="enabled=1",
        onboot=1,
        tags="script;demo",
    )
    _wait(api, node, upid)
    vm = api.nodes(node).qemu(vmid)
    _wait(api, node, vm.status.start.post())
    _wait(api, node, vm.snapshot.post(snapname="fresh", description="after create"))
    _wait(api, node, vm.status.suspend.post())
    _wait(api, node, vm.status.resume.post())
    vm.rrddata.get(timeframe="hour")
    return vmid


def test_a_common_tool_runs_end_to_end() -> None:
    with running_simulator("cps-gpu", time_scale=0.005) as sim:
        api = proxmox_client(sim)  # token auth: PVEAPIToken=root@pam!provisiond=…
        seen = inventory(api)
        assert seen["ha"] == ["quorum"]
        node = next(iter(seen["nodes"]))
        storage = seen["nodes"][node]["storage"][0]
        vmid = provision(api, node, storage)
        cfg = api.nodes(node).qemu(vmid).config.get()
        assert (cfg["tablet"], cfg["startup"], cfg["tags"]) == (0, "order=3,up=20", "demo;script")
        assert cfg["net0"].startswith("virtio=BC:24:11:")
        assert cfg["boot"] == "order=scsi0;net0"
        assert "meta" in cfg
        status = api.nodes(node).qemu(vmid).status.current.get()
        assert (status["status"], status["qmpstatus"]) == ("running", "running")
        assert [s["name"] for s in api.nodes(node).qemu(vmid).snapshot.get()] == [
            "fresh",
            "current",
        ]
        failures = [(r.method, r.path, r.status) for r in sim.request_log() if r.status >= 400]
        assert failures == []
