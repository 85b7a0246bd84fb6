"""Migration and HA (SEMANTICS §4, §6 and the addendum), through the real proxmoxer client over
verified HTTPS: the precondition GET, every [sync] refusal, every task-time abort with its log
line and exitstatus, live and offline migrations that move the VM, and HA's two-task path."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from migrate_lab import lab
from proxmoxer import ResourceException
from proxmoxer.tools import Tasks

from provisiond.sim.pve.testing import proxmox_client, running_simulator

pytestmark = pytest.mark.integration


class Lab:
    def __init__(self, sim: Any) -> None:
        self.sim = sim
        self.api = proxmox_client(sim)

    def vm(self, vmid: int, node: str = "pve1") -> Any:
        return self.api.nodes(node).qemu(vmid)

    def wait(self, upid: str) -> dict[str, Any]:
        status = Tasks.blocking_status(self.api, upid, timeout=30, polling_interval=0.01)
        assert status is not None
        return dict(status)

    def fails(self, call: Any, **kw: Any) -> ResourceException:
        with pytest.raises(ResourceException) as exc:
            call(**kw)
        return exc.value

    def aborted(self, vmid: int, **kw: Any) -> list[str]:
        """POST migrate answers a UPID; the task ends ``migration aborted``; its log."""
        upid = self.vm(vmid).migrate.post(**kw)
        assert self.wait(upid)["exitstatus"] == "migration aborted"
        log = self.sim.task_log(upid)
        assert log[-1] == "TASK ERROR: migration aborted"
        vm = self.sim.vm(vmid)
        assert vm.node == "pve1"
        assert vm.lock is None
        return log


@pytest.fixture
def lab_sim() -> Iterator[Lab]:
    with running_simulator(lab(), time_scale=0.002) as sim:
        yield Lab(sim)


def _error_line(log: list[str]) -> str:
    line = next(x for x in log if "ERROR: migration aborted (duration " in x)
    return line.split("): ", 1)[1]


# -- precondition ----------------------------------------------------------------------------


def test_precondition_reports_disks_devices_and_nodes(lab_sim: Lab) -> None:
    pre = lab_sim.vm(101).migrate.get()
    assert pre["running"] == 1
    assert sorted(pre["allowed_nodes"]) == ["pve2", "pve3"]
    assert pre["not_allowed_nodes"] == {}
    assert pre["local_disks"] == [
        {
            "volid": "local-lvm:vm-101-disk-0",
            "size": 16 << 30,
            "cdrom": 0,
            "is_unused": 0,
            "drivename": "scsi0",
        }
    ]
    assert pre["local_resources"] == []
    assert pre["mapped-resources"] == []
    # a running VM with a mapping that is not live-capable: in local_resources too
    pre = lab_sim.vm(104).migrate.get()
    assert pre["local_resources"] == ["hostpci0"]
    assert pre["mapped-resources"] == ["hostpci0"]
    assert pre["mapped-resource-info"] == {"hostpci0": {"name": "gpu-fixed"}}
    assert pre["allowed_nodes"] == []
    assert pre["not_allowed_nodes"] == {
        "pve2": {"unavailable-resources": ["hostpci0"]},
        "pve3": {"unavailable-resources": ["hostpci0"]},
    }
    pre = lab_sim.vm(105).migrate.get(target="pve3")
    assert pre["mapped-resource-info"] == {"hostpci0": {"name": "gpu-live", "live-migration": 1}}
    assert pre["local_resources"] == []
    assert pre["allowed_nodes"] == []
    assert pre["not_allowed_nodes"] == {"pve3": {"unavailable-resources": ["hostpci0"]}}
    # raw device: listed, but nodes are judged on storage and mappings only
    pre = lab_sim.vm(103).migrate.get()
    assert (pre["running"], pre["local_resources"]) == (0, ["hostpci0"])
    assert sorted(pre["allowed_nodes"]) == ["pve2", "pve3"]
    pre = lab_sim.vm(106).migrate.get()
    assert pre["not_allowed_nodes"] == {
        "pve2": {"unavailable_storages": ["only-pve1"]},
        "pve3": {"unavailable_storages": ["only-pve1"]},
    }
    e = lab_sim.fails(lab_sim.vm(108).migrate.get)
    assert (e.status_code, e.content) == (500, "VM is locked (backup)")


# -- [sync] refusals -------------------------------------------------------------------------


def test_sync_refusals(lab_sim: Lab) -> None:
    e = lab_sim.fails(lab_sim.vm(100).migrate.post, target="pve1", online=1)
    assert (e.status_code, e.errors) == (400, {"target": "target is local node."})
    e = lab_sim.fails(lab_sim.vm(100).migrate.post, target="pve2")
    assert (e.status_code, e.content) == (500, "can't migrate running VM without --online")
    e = lab_sim.fails(lab_sim.vm(108).migrate.post, target="pve2", online=1)
    assert e.content == "VM is locked (backup)"
    e = lab_sim.fails(lab_sim.vm(106).migrate.post, target="pve2")
    assert e.content == "storage 'only-pve1' is not available on node 'pve2'"
    e = lab_sim.fails(lab_sim.vm(102).migrate.post, target="pve2", targetstorage="only-pve1")
    assert e.content == "storage 'only-pve1' is not available on node 'pve2'"
    for option, value in (("force", 1), ("migration_type", "insecure")):
        e = lab_sim.fails(lab_sim.vm(103).migrate.post, target="pve2", **{option: value})
        assert (e.status_code, e.errors) == (400, {option: "Only root may use this option."})
    e = lab_sim.fails(lab_sim.vm(100).migrate.post, target="pve9", online=1)
    assert e.content == "no such cluster node 'pve9'"
    assert lab_sim.sim.tasks() == []  # no task was created by any of them


# -- task-time aborts ------------------------------------------------------------------------


def test_raw_device_aborts_in_the_task(lab_sim: Lab) -> None:
    log = lab_sim.aborted(103, target="pve2")
    assert any(
        line.endswith(
            "ERROR: migration aborted (duration 00:00:00): can't migrate VM which uses local "
            "devices: hostpci0"
        )
        for line in log
    )


def test_mapped_device_aborts(lab_sim: Lab) -> None:
    log = lab_sim.aborted(104, target="pve2", online=1)
    assert _error_line(log) == (
        "can't live migrate running VM which uses following mapped devices: hostpci0:gpu-fixed"
    )
    lab_sim.sim.set_power(104, "stopped")
    log = lab_sim.aborted(104, target="pve2")
    assert _error_line(log) == "can't migrate to 'pve2': missing mapped devices hostpci0"
    log = lab_sim.aborted(105, target="pve3", online=1)
    assert _error_line(log) == "can't migrate to 'pve3': missing mapped devices hostpci0"


def test_local_disks_need_with_local_disks_live(lab_sim: Lab) -> None:
    log = lab_sim.aborted(101, target="pve2", online=1)
    assert _error_line(log) == (
        "can't live migrate attached local disks without with-local-disks option"
    )


def test_offline_target_aborts(lab_sim: Lab) -> None:
    lab_sim.sim.host_offline("pve2")
    log = lab_sim.aborted(100, target="pve2", online=1)
    assert _error_line(log) == "Can't connect to destination address using public key"


# -- successful migrations -------------------------------------------------------------------


def test_live_migration_moves_the_vm_and_locks_it_meanwhile(lab_sim: Lab) -> None:
    hold = lab_sim.sim.hold_task("qmigrate", at=0.5, vmid=100)
    upid = lab_sim.vm(100).migrate.post(target="pve2", online=1)
    assert upid.startswith("UPID:pve1:")
    assert ":qmigrate:100:" in upid
    assert hold.wait(5)
    assert lab_sim.vm(100).config.get()["lock"] == "migrate"
    assert lab_sim.api.cluster.resources.get(type="vm")[0]["lock"] == "migrate"
    e = lab_sim.fails(lab_sim.vm(100).config.put, name="x")
    assert e.content == "VM is locked (migrate)"
    hold.release()
    status = lab_sim.wait(upid)
    assert status["exitstatus"] == "OK"
    log = lab_sim.sim.task_log(upid)
    assert "starting migration of VM 100 to node 'pve2' (10.0.0.2)" in log[0]
    assert "migration finished successfully (duration " in log[-2]
    assert log[-1] == "TASK OK"
    e = lab_sim.fails(lab_sim.vm(100).status.current.get)
    assert e.content == "Configuration file 'nodes/pve1/qemu-server/100.conf' does not exist"
    current = lab_sim.vm(100, "pve2").status.current.get()
    assert current["status"] == "running"
    assert "lock" not in current
    assert [
        r["node"] for r in lab_sim.api.cluster.resources.get(type="vm") if r["vmid"] == 100
    ] == ["pve2"]


def test_live_migration_with_local_disks_copies_them(lab_sim: Lab) -> None:
    upid = lab_sim.vm(101).migrate.post(target="pve3", online=1, **{"with-local-disks": 1})
    assert lab_sim.wait(upid)["exitstatus"] == "OK"
    log = lab_sim.sim.task_log(upid)
    assert any("found local disk 'local-lvm:vm-101-disk-0' (attached)" in x for x in log)
    assert lab_sim.sim.vm(101).node == "pve3"


def test_offline_migration_copies_local_disks_and_targetstorage_maps_them(lab_sim: Lab) -> None:
    upid = lab_sim.vm(102).migrate.post(target="pve2", online=1, targetstorage="shared-nfs")
    assert lab_sim.wait(upid)["exitstatus"] == "OK"
    vm = lab_sim.vm(102, "pve2")
    assert vm.status.current.get()["status"] == "stopped"
    assert vm.config.get()["scsi0"].startswith("shared-nfs:vm-102-disk-0,")


def test_mapped_live_capable_device_follows_the_vm(lab_sim: Lab) -> None:
    upid = lab_sim.vm(105).migrate.post(target="pve2", online=1)
    assert lab_sim.wait(upid)["exitstatus"] == "OK"
    vm = lab_sim.sim.vm(105)
    assert (vm.node, vm.bound) == ("pve2", {"hostpci0": "0000:01:00.0"})


def test_local_disk_copy_takes_longer_with_size() -> None:
    def seconds(size: str) -> float:
        """The migration's simulated duration (not the wall clock a loaded machine stretches)."""
        topo = lab().model_dump(by_alias=True)
        topo["spec"]["vms"][2]["disks"] = [{"slot": "scsi0", "size": size}]
        from provisiond.core.topology import Topology

        with running_simulator(Topology.model_validate(topo), time_scale=0.0001) as sim:
            t = Lab(sim)
            upid = t.vm(102).migrate.post(target="pve2")
            assert t.wait(upid)["exitstatus"] == "OK"
            return float(sim.task_seconds(upid))

    # 5 s + 1 s per GiB of local disk copied (docs/simulator.md)
    assert seconds("1G") == pytest.approx(5 + 1)
    assert seconds("400G") == pytest.approx(5 + 400)


# -- HA --------------------------------------------------------------------------------------


def test_ha_migrate_is_a_request_then_the_real_migration(lab_sim: Lab) -> None:
    # The HA stack starts the real migration a (scaled) round after the request; holding that
    # task halfway makes every state below observable whatever the machine's load.
    held = lab_sim.sim.hold_task("qmigrate", at=0.5, vmid=107)
    upid = lab_sim.vm(107).migrate.post(target="pve2", online=1)
    assert ":hamigrate:107:" in upid
    assert lab_sim.wait(upid)["exitstatus"] == "OK"
    assert lab_sim.sim.task_log(upid)[0] == "Requesting HA migration for VM 107 to node pve2"
    # the request's OK says nothing yet: the VM is still on pve1
    assert (lab_sim.sim.vm(107).node, lab_sim.sim.vm(107).hastate) == ("pve1", "migrate")
    assert held.wait(10), "the HA stack never started the real migration"
    real = _wait_for_task(lab_sim, "qmigrate", 107)
    assert (real["user"], real["status"]) == ("root@pam", "running")
    assert (lab_sim.sim.vm(107).node, lab_sim.sim.vm(107).hastate) == ("pve1", "migrate")
    held.release()
    assert lab_sim.wait(str(real["upid"]))["exitstatus"] == "OK"
    vm = lab_sim.sim.vm(107)
    assert (vm.node, vm.hastate) == ("pve2", "started")
    items = [r for r in lab_sim.api.cluster.resources.get(type="vm") if r["vmid"] == 107]
    assert items[0]["hastate"] == "started"


def test_ha_start_and_stop(lab_sim: Lab) -> None:
    upid = lab_sim.vm(109).status.start.post()
    assert ":hastart:109:" in upid
    assert lab_sim.wait(upid)["exitstatus"] == "OK"
    real = _wait_for_task(lab_sim, "qmstart", 109)
    assert lab_sim.wait(str(real["upid"]))["exitstatus"] == "OK"
    assert lab_sim.sim.vm(109).status == "running"
    assert lab_sim.sim.vm(109).hastate == "started"
    upid = lab_sim.vm(109).status.shutdown.post()
    assert ":hastop:109:" in upid
    real = _wait_for_task(lab_sim, "qmshutdown", 109)
    assert lab_sim.wait(str(real["upid"]))["exitstatus"] == "OK"
    assert (lab_sim.sim.vm(109).status, lab_sim.sim.vm(109).hastate) == ("stopped", "stopped")
    upid = lab_sim.vm(107).status.stop.post()
    assert ":hastop:107:" in upid
    real = _wait_for_task(lab_sim, "qmstop", 107)
    assert lab_sim.wait(str(real["upid"]))["exitstatus"] == "OK"
    assert lab_sim.sim.vm(107).status == "stopped"


def _wait_for_task(lab_sim: Lab, task_type: str, vmid: int) -> dict[str, object]:
    import time

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        found = [t for t in lab_sim.sim.tasks() if t["type"] == task_type and t["id"] == str(vmid)]
        if found:
            return found[-1]
        time.sleep(0.01)
    raise AssertionError(f"no {task_type} task for {vmid}")
