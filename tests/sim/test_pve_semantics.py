"""Behaviour the schema does not show (SEMANTICS.md), asserted with PVE's exact texts, through
the real proxmoxer client over verified HTTPS."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from proxmoxer import ResourceException
from proxmoxer.tools import Tasks

pytestmark = pytest.mark.integration

NODE = "cit-gpu-01"
CLONE = ("POST", "/nodes/{node}/qemu/{vmid}/clone")


def wait(api: Any, upid: str) -> dict[str, Any]:
    status = Tasks.blocking_status(api, upid, timeout=30, polling_interval=0.02)
    assert status is not None
    return status


def fails(call: Any, *args: Any, **kw: Any) -> ResourceException:
    with pytest.raises(ResourceException) as exc:
        call(*args, **kw)
    return exc.value


def vm(api: Any, vmid: int, node: str = NODE) -> Any:
    return api.nodes(node).qemu(vmid)


def make_vm(api: Any, vmid: int = 1035, **kw: Any) -> None:
    assert (
        wait(api, vm(api, 9000).clone.post(newid=vmid, name=f"vm{vmid}", **kw))["exitstatus"]
        == "OK"
    )


def start(api: Any, vmid: int) -> dict[str, Any]:
    return wait(api, vm(api, vmid).status.start.post())


# -- parameters ----------------------------------------------------------------------------


def test_parameter_verification_texts(pve_sim: Any) -> None:
    api = pve_sim.api
    e = fails(vm(api, 9000).clone.post, name="x")
    assert (e.status_code, e.content) == (400, "Parameter verification failed.")
    assert e.errors == {"newid": "property is missing and it is not optional"}
    e = fails(vm(api, 9000).clone.post, newid=1035, bogus=1)
    assert e.errors == {
        "bogus": "property is not defined in schema and the schema does not allow additional "
        "properties"
    }
    assert fails(vm(api, 9000).clone.post, newid="abc").errors == {
        "newid": "type check ('integer') failed - got 'abc'"
    }
    assert fails(vm(api, 9000).clone.post, newid=99).errors == {
        "newid": "invalid format - value does not look like a valid VM ID\n"
    }
    assert fails(api.cluster.resources.get, type="qemu").errors == {
        "type": "value 'qemu' does not have a value in the enumeration 'vm, storage, node, sdn'"
    }
    assert fails(vm(api, 9000).config.put, description="x" * 8193).errors == {
        "description": "value may only be 8192 characters long"
    }
    assert fails(vm(api, 9000).config.put, cores=0).errors == {
        "cores": "value must have a minimum value of 1"
    }
    assert fails(vm(api, 9000).config.post, cores=1, background_delay=31).errors == {
        "background_delay": "value must have a maximum value of 30"
    }
    assert fails(vm(api, 9000).resize.put, disk="scsi0", size="1X").errors == {
        "size": "value does not match the regex pattern"
    }


def test_python_true_is_rejected_as_pve_does(pve_sim: Any) -> None:
    e = fails(vm(pve_sim.api, 9000).config.put, onboot=True)
    assert str(e) == (
        "400 Bad Request: Parameter verification failed. - "
        "{'onboot': \"type check ('boolean') failed - got 'True'\"}"
    )
    vm(pve_sim.api, 9000).config.put(onboot=1)
    assert vm(pve_sim.api, 9000).config.get()["onboot"] == 1


# -- clone ---------------------------------------------------------------------------------


def test_clone_placeholder_appears_when_the_task_starts(pve_sim: Any) -> None:
    api, sim = pve_sim.api, pve_sim.sim
    hold = sim.hold_task("qmclone", at=0.5)
    upid = vm(api, 9000).clone.post(newid=1035, name="k3s-cp1", description="provisiond:c/v")
    assert upid.split(":")[5:8] == ["qmclone", "9000", "root@pam!provisiond"]
    assert hold.wait()
    cfg = vm(api, 1035).config.get()
    assert set(cfg) == {"lock", "digest"}
    assert cfg["lock"] == "clone"
    assert api.cluster.nextid.get(vmid=1036) == "1036"
    assert fails(api.cluster.nextid.get, vmid=1035).errors == {"vmid": "VM 1035 already exists"}
    res = next(r for r in api.cluster.resources.get(type="vm") if r["vmid"] == 1035)
    assert (res["lock"], res["name"]) == ("clone", "VM 1035")
    e = fails(vm(api, 1035).config.put, cores=4)
    assert e.content == "VM is locked (clone)"
    hold.release()
    assert wait(api, upid)["exitstatus"] == "OK"
    cfg = vm(api, 1035).config.get()
    assert "lock" not in cfg
    assert "template" not in cfg
    assert (cfg["name"], cfg["description"]) == ("k3s-cp1", "provisiond:c/v")
    assert cfg["scsi0"] == "local-nvme:base-9000-disk-0/vm-1035-disk-0,size=32G"
    assert cfg["net0"] != vm(api, 9000).config.get()["net0"]


def test_clone_existing_vmid_is_refused(pve_sim: Any) -> None:
    api = pve_sim.api
    make_vm(api)
    e = fails(vm(api, 9000).clone.post, newid=1035)
    assert (e.status_code, e.content) == (
        500,
        "unable to create VM 1035: config file already exists",
    )


def test_clone_defaults_and_full_copy(pve_sim: Any) -> None:
    api = pve_sim.api
    upid = vm(api, 9000).clone.post(newid=1035, full=1, storage="nfs-scratch", pool="k3s")
    assert wait(api, upid)["exitstatus"] == "OK"
    cfg = vm(api, 1035).config.get()
    assert cfg["name"] == "Copy-of-VM-k3s-node-tmpl"
    assert cfg["scsi0"] == "nfs-scratch:1035/vm-1035-disk-0.qcow2,size=32G"
    assert api.nodes(NODE).tasks(upid).log.get()[0]["t"] == (
        "create full clone of drive scsi0 (local-nvme:base-9000-disk-0)"
    )
    (member,) = api.pools.get(poolid="k3s")[0]["members"]
    assert member["vmid"] == 1035


def test_linked_clone_only_from_a_template(pve_sim: Any) -> None:
    api = pve_sim.api
    make_vm(api)
    e = fails(vm(api, 1035).clone.post, newid=1036, full=0)
    volid = "local-nvme:base-9000-disk-0/vm-1035-disk-0"
    assert e.content == f"Linked clone feature is not supported for '{volid}' (scsi0)"
    e = fails(vm(api, 9000).clone.post, newid=1036, full=0, storage="local-nvme")
    assert e.content == "parameter 'storage' not allowed for linked clones"


@pytest.mark.parametrize("pve_sim", ["astronomy-lab"], indirect=True)
def test_clone_target_needs_shared_storage(pve_sim: Any) -> None:
    api = pve_sim.api
    e = fails(vm(api, 101, "node01").clone.post, newid=600, target="node02")
    assert e.content == "can't clone VM to node 'node02' (VM uses local storage)"
    e = fails(vm(api, 9000, "nas01").clone.post, newid=600, target="node09")
    assert e.content == "no such cluster node 'node09'"
    upid = vm(api, 9000, "nas01").clone.post(newid=600, name="lab-new", target="node02")
    assert upid.startswith("UPID:nas01:")  # the task runs on the source node
    wait(api, upid)
    assert vm(api, 600, "node02").config.get()["name"] == "lab-new"


def test_clone_of_a_locked_source_is_refused(pve_sim: Any) -> None:
    api, sim = pve_sim.api, pve_sim.sim
    sim.set_lock(9000, "backup")
    e = fails(vm(api, 9000).clone.post, newid=1035)
    assert (e.status_code, e.content) == (500, "VM is locked (backup)")


def test_request_hold_after_the_effect(pve_sim: Any) -> None:
    """The crash seam: the clone POST took effect but its answer is withheld."""
    api, sim = pve_sim.api, pve_sim.sim
    hold = sim.hold_request(*CLONE, when="after")
    answer: list[str] = []
    t = threading.Thread(target=lambda: answer.append(vm(api, 9000).clone.post(newid=1035)))
    t.start()
    assert hold.wait()
    assert sim.running_tasks() + len(sim.tasks()) >= 1
    assert answer == []
    hold.release()
    t.join(10)
    assert answer[0].startswith(f"UPID:{NODE}:")
    assert sim.requests(*CLONE) == 1
    assert sim.requests("GET", "/cluster/nextid") == 0


def test_request_hold_before_the_handler(pve_sim: Any) -> None:
    api, sim = pve_sim.api, pve_sim.sim
    hold = sim.hold_request(*CLONE)
    t = threading.Thread(target=lambda: vm(api, 9000).clone.post(newid=1035))
    t.start()
    assert hold.wait()
    assert sim.vm(1035) is None
    assert sim.tasks() == []
    hold.release()
    t.join(10)
    assert len(sim.tasks()) == 1


# -- config, pending, tags, hostpci --------------------------------------------------------


def test_config_writes_sync_and_async(pve_sim: Any) -> None:
    api = pve_sim.api
    make_vm(api)
    assert vm(api, 1035).config.put(cores=4, memory="8192") is None
    cfg = vm(api, 1035).config.get()
    assert (cfg["cores"], cfg["memory"]) == (4, "8192")
    upid = vm(api, 1035).config.post(cores=8)
    assert upid.split(":")[5:7] == ["qmconfig", "1035"]
    wait(api, upid)
    assert vm(api, 1035).config.get()["cores"] == 8
    assert vm(api, 1035).config.post(sockets=2, background_delay=5) is None
    e = fails(vm(api, 1035).config.put)
    assert e.content == "no options specified"
    e = fails(vm(api, 1035).config.put, cores=2, digest="0" * 40)
    assert e.content == "checksum mismatch (file change by other user?)"
    digest = vm(api, 1035).config.get()["digest"]
    vm(api, 1035).config.put(cores=2, digest=digest)
    vm(api, 1035).config.put(delete="sockets")
    assert "sockets" not in vm(api, 1035).config.get()
    e = fails(vm(api, 1035).config.put, cores=2, skiplock=1)
    assert e.errors == {"skiplock": "Only root may use this option."}


def test_running_vm_gets_pending_changes(pve_sim: Any) -> None:
    api = pve_sim.api
    make_vm(api)
    start(api, 1035)
    vm(api, 1035).config.put(cores=16, hostpci0="mapping=a100-40g,pcie=1", name="renamed")
    merged = vm(api, 1035).config.get()
    current = vm(api, 1035).config.get(current=1)
    assert (merged["cores"], merged["hostpci0"]) == (16, "mapping=a100-40g,pcie=1")
    assert (current["cores"], "hostpci0" in current) == (2, False)
    assert current["name"] == "renamed"  # fast-plug option applied at once
    pending = {p["key"]: p for p in vm(api, 1035).pending.get()}
    assert pending["cores"] == {"key": "cores", "value": 2, "pending": 16}
    assert pending["hostpci0"] == {"key": "hostpci0", "pending": "mapping=a100-40g,pcie=1"}
    assert wait(api, vm(api, 1035).status.reboot.post())["exitstatus"] == "OK"
    current = vm(api, 1035).config.get(current=1)
    assert (current["cores"], current["hostpci0"]) == (16, "mapping=a100-40g,pcie=1")


def test_tags_are_normalised(pve_sim: Any) -> None:
    api = pve_sim.api
    vm(api, 9000).config.put(tags="Provisiond;pd-cps-gpu,b provisiond")
    assert vm(api, 9000).config.get()["tags"] == "b;pd-cps-gpu;provisiond"
    assert fails(vm(api, 9000).config.put, tags="ok;b@d").errors == {
        "tags": "invalid format - invalid characters in tag\n"
    }


def test_sshkeys_must_be_url_encoded(pve_sim: Any) -> None:
    api = pve_sim.api
    key = "ssh-ed25519 AAAA user@host"
    assert fails(vm(api, 9000).config.put, sshkeys=key).errors == {
        "sshkeys": f"invalid format - invalid urlencoded string: {key}\n"
    }
    encoded = "ssh-ed25519%20AAAA%20user%40host"
    vm(api, 9000).config.put(sshkeys=encoded)
    assert vm(api, 9000).config.get()["sshkeys"] == encoded


def test_raw_hostpci_is_refused_for_tokens(pve_sim: Any) -> None:
    api = pve_sim.api
    e = fails(vm(api, 9000).config.put, hostpci0="0000:01:00.0,pcie=1")
    assert (e.status_code, e.content) == (
        500,
        "only root can set 'hostpci0' config for non-mapped devices",
    )
    e = fails(vm(api, 9000).config.put, hostpci1="pcie=1")
    assert e.content == "either 'host' or 'mapping' must be set."


# -- power ---------------------------------------------------------------------------------


def test_mapping_binds_a_free_device_at_start(pve_sim: Any) -> None:
    api, sim = pve_sim.api, pve_sim.sim
    for i in range(5):
        make_vm(api, 1038 + i)
        vm(api, 1038 + i).config.put(hostpci0="mapping=a100-40g", hostpci1="mapping=a100-40g")
    for i in range(4):
        assert start(api, 1038 + i)["exitstatus"] == "OK"
    bound = [d for i in range(4) for d in sim.vm(1038 + i).bound.values()]
    assert len(set(bound)) == 8
    status = start(api, 1042)
    assert status["exitstatus"] == "could not find a free device for 'hostpci0'"
    assert vm(api, 1042).status.current.get()["status"] == "stopped"
    log = api.nodes(NODE).tasks(status["upid"]).log.get()
    assert log[-1]["t"] == "TASK ERROR: could not find a free device for 'hostpci0'"


def test_mapping_missing_on_the_host_fails_at_start(pve_sim: Any) -> None:
    api, sim = pve_sim.api, pve_sim.sim
    make_vm(api)
    sim.set_config(1035, hostpci0="mapping=nope")
    assert start(api, 1035)["exitstatus"] == "PCI device mapping not found for 'nope'"


def test_start_errors_happen_inside_the_task(pve_sim: Any) -> None:
    api, sim = pve_sim.api, pve_sim.sim
    make_vm(api)
    assert start(api, 1035)["exitstatus"] == "OK"
    assert start(api, 1035)["exitstatus"] == "VM 1035 already running"
    assert start(api, 9000)["exitstatus"] == "you can't start a vm if it's a template"
    make_vm(api, 1036)
    sim.set_lock(1036, "backup")
    assert start(api, 1036)["exitstatus"] == "VM is locked (backup)"


def test_reboot_of_a_stopped_vm_fails_immediately(pve_sim: Any) -> None:
    api = pve_sim.api
    make_vm(api)
    e = fails(vm(api, 1035).status.reboot.post)
    assert (e.status_code, e.content) == (500, "VM 1035 not running")


def test_stop_and_shutdown(pve_sim: Any) -> None:
    api, sim = pve_sim.api, pve_sim.sim
    make_vm(api)
    assert wait(api, vm(api, 1035).status.stop.post())["exitstatus"] == "OK"  # no-op
    start(api, 1035)
    sim.set_acpi(1035, responds=False)
    status = wait(api, vm(api, 1035).status.shutdown.post(timeout=5))
    assert status["exitstatus"] == "VM quit/powerdown failed - got timeout"
    assert (
        wait(api, vm(api, 1035).status.shutdown.post(timeout=5, forceStop=1))["exitstatus"] == "OK"
    )
    assert vm(api, 1035).status.current.get()["status"] == "stopped"
    start(api, 1035)
    sim.call(lambda c: setattr(c.vms[1035], "paused", True))
    assert fails(vm(api, 1035).status.shutdown.post).content == "VM is paused - cannot shutdown"


# -- template, destroy, resize -------------------------------------------------------------


def test_template_conversion(pve_sim: Any) -> None:
    api = pve_sim.api
    make_vm(api, 1035, full=1)
    e = fails(vm(api, 9000).template.post)
    assert e.content == "you can't convert a template to a template"
    start(api, 1035)
    e = fails(vm(api, 1035).template.post)
    assert e.content == "you can't convert a VM to template if VM is running"
    wait(api, vm(api, 1035).status.stop.post())
    assert wait(api, vm(api, 1035).template.post())["exitstatus"] == "OK"
    cfg = vm(api, 1035).config.get()
    assert (cfg["template"], cfg["scsi0"]) == (1, "local-nvme:base-1035-disk-0,size=32G")


def test_destroy(pve_sim: Any) -> None:
    api, sim = pve_sim.api, pve_sim.sim
    make_vm(api)
    start(api, 1035)
    assert fails(vm(api, 1035).delete).content == "VM 1035 is running - destroy failed"
    wait(api, vm(api, 1035).status.stop.post())
    sim.set_config(1035, protection=1)
    e = fails(vm(api, 1035).delete)
    assert e.content == "can't remove VM 1035 - protection mode enabled"
    sim.set_config(1035, protection=None)
    sim.call(lambda c: setattr(c.vms[1035], "hastate", "stopped"))
    e = fails(vm(api, 1035).delete)
    assert e.content == (
        "unable to remove VM 1035 - used in HA resources and purge parameter not set."
    )
    status = wait(api, vm(api, 9000).delete())
    assert status["exitstatus"] == (
        "base volume 'local-nvme:base-9000-disk-0' is still in use by linked cloned"
    )
    assert wait(api, vm(api, 1035).delete(purge=1))["exitstatus"] == "OK"
    assert sim.vm(1035) is None


def test_resize_grows_only(pve_sim: Any) -> None:
    api = pve_sim.api
    make_vm(api)
    upid = vm(api, 1035).resize.put(disk="scsi0", size="+68G")
    assert upid.split(":")[5] == "resize"
    assert wait(api, upid)["exitstatus"] == "OK"
    assert vm(api, 1035).config.get()["scsi0"].endswith(",size=100G")
    assert (
        wait(api, vm(api, 1035).resize.put(disk="scsi0", size="50G"))["exitstatus"]
        == "shrinking disks is not supported"
    )
    assert (
        wait(api, vm(api, 1035).resize.put(disk="scsi3", size="+1G"))["exitstatus"]
        == "disk 'scsi3' does not exist"
    )


# -- time, topology ------------------------------------------------------------------------


def test_time_scale_multiplies_durations() -> None:
    from provisiond.sim.pve.testing import proxmox_client, running_simulator

    with running_simulator("cps-gpu", time_scale=0.02) as sim:
        api = proxmox_client(sim)
        t0 = time.monotonic()
        full = vm(api, 9000).clone.post(newid=1035, full=1)
        wait(api, full)
        wall = time.monotonic() - t0
        linked = vm(api, 9000).clone.post(newid=1036)
        wait(api, linked)
        # simulated durations are exact; the wall clock only has a lower bound (load stretches it)
        assert sim.task_seconds(full) == pytest.approx(15 + 32 * 0.1)  # 32 GiB source disk
        assert sim.task_seconds(linked) == pytest.approx(2)
    assert wall >= 18.2 * 0.02


@pytest.mark.parametrize("pve_sim", ["astronomy-lab"], indirect=True)
def test_astronomy_lab_starts_running_and_over_allocated(pve_sim: Any) -> None:
    api, sim = pve_sim.api, pve_sim.sim
    vms = [r for r in api.cluster.resources.get(type="vm") if not r["template"]]
    node02 = [r for r in vms if r["node"] == "node02"]
    assert sum(r["maxcpu"] for r in node02) == 18
    assert sum(r["maxmem"] for r in node02) == 66 << 30
    assert all(r["status"] == "running" and "tags" not in r for r in vms)
    assert sim.vm(401).bound == {"hostpci0": "0000:0b:00.0"}
