"""Privileges a fleet needs and how granted ACLs (``/access/permissions``) cover them."""

from __future__ import annotations

from plan_world import converged, dvm, state, world

from provisiond.core.desired import (
    CloudInit,
    GpuRequest,
    NicSpec,
    RebalancePolicy,
    TemplateRef,
)
from provisiond.core.privileges import Need, granted_on, missing, needed


def _pairs(needs: tuple[Need, ...]) -> set[tuple[str, str]]:
    return {(n.path, n.privilege) for n in needs}


def test_a_new_vm_needs_clone_allocate_space_and_config() -> None:
    vm = dvm(
        "gpu1",
        1038,
        storage="local-nvme",
        proxmox_pool="k3s",
        gpus=GpuRequest("a100-40g", 2),
        nics=(NicSpec(0, "vmbr0", vlan=633),),
        cloud_init=CloudInit(user="ubuntu"),
        allowed_hosts=("pve1",),
    )
    needs = _pairs(needed(state(vm), world()))
    assert {
        ("/vms/9000", "VM.Clone"),
        ("/pool/k3s", "VM.Allocate"),
        ("/storage/local-nvme", "Datastore.AllocateSpace"),
        ("/mapping/pci/a100-40g", "Mapping.Use"),
        ("/vms/1038", "VM.Config.HWType"),
        ("/vms/1038", "VM.Config.Cloudinit"),
        ("/vms/1038", "VM.Config.Disk"),
        ("/vms/1038", "VM.PowerMgmt"),
        ("/sdn/zones/localnetwork/vmbr0/633", "SDN.Use"),
    } <= needs
    assert ("/vms/1038", "VM.Migrate") not in needs  # pinned to one host, no rebalance


def test_an_existing_vm_needs_no_clone_but_migrate_when_the_fleet_moves_vms() -> None:
    vm = dvm("a", 200, template=TemplateRef(vmid=9000), nics=(), disks=())
    d = state(vm, rebalance=RebalancePolicy(enabled=True))
    needs = _pairs(needed(d, world(converged(vm))))
    explicit = dvm("b", 201, template=TemplateRef(vmid=9000))
    assert ("/vms/9000", "VM.Clone") in _pairs(needed(state(explicit), world()))
    assert ("/vms/9000", "VM.Clone") not in needs
    assert ("/vms/200", "VM.Allocate") not in needs
    assert ("/vms/200", "VM.Migrate") in needs
    assert ("/vms/200", "VM.Config.Network") not in needs


def test_an_unresolvable_template_asks_for_no_clone_privilege() -> None:
    vm = dvm("a", 200, template=TemplateRef(name="nope"))
    needs = _pairs(needed(state(vm), world()))
    assert not any(p == "VM.Clone" for _, p in needs)
    assert ("/vms/200", "VM.Allocate") in needs


def test_most_specific_acl_path_decides_and_propagation_matters() -> None:
    granted = {
        "/": {"Sys.Audit": False, "VM.Audit": True},
        "/vms": {"VM.Clone": True},
        "/vms/100": {"VM.Config.CPU": False},
        "/pool/k3s": {"VM.Allocate": True, "VM.Config.Memory": True},
    }
    assert granted_on("/vms/100", "VM.Config.CPU", granted)  # exact path, no propagation needed
    assert not granted_on("/vms/100", "VM.Clone", granted)  # /vms/100 has an ACL: it decides
    assert granted_on("/vms/101", "VM.Clone", granted)  # inherited from /vms (propagates)
    assert not granted_on("/storage/x", "Sys.Audit", granted)  # root grant does not propagate
    assert granted_on("/storage/x", "VM.Audit", granted)
    assert granted_on("/vms/100", "VM.Config.Memory", granted, pool="k3s")  # through its pool
    assert not granted_on("/vms/100", "VM.Config.Memory", granted)
    assert not granted_on("/nodes/pve1", "VM.Clone", {})


def test_missing_lists_only_what_is_not_granted_with_a_readable_message() -> None:
    needs = (
        Need("/pool/k3s", "VM.Allocate", ("a", "b", "c", "d", "e")),
        Need("/vms/100", "VM.Config.CPU", ("a",)),
        Need("/vms/abc", "VM.Audit", ("a",)),
    )
    granted = {"/vms": {"VM.Config.CPU": True}, "/pool/k3s": {"VM.Config.CPU": True}}
    lacking = missing(needs, granted, pools={100: "k3s"})
    assert [n.path for n in lacking] == ["/pool/k3s", "/vms/abc"]
    assert lacking[0].describe("token provisiond@pve!ci") == (
        "token provisiond@pve!ci lacks VM.Allocate on /pool/k3s (needed for a, b, c and 2 more)"
    )
    assert missing(needs[1:2], {"/": {"VM.Config.CPU": True}}) == ()
