"""Planner tables: desired + observed in, actions / blocked / conflicts out."""

from __future__ import annotations

from dataclasses import replace

import pytest
from plan_world import apply, converged, dvm, host, kinds, mapping, state, template, world

from provisiond.core.actions import (
    Clone,
    Configure,
    Destroy,
    GpuMove,
    GrowDisk,
    Label,
    Migrate,
    MoveStep,
    Reboot,
    Shutdown,
    TaintNode,
)
from provisiond.core.desired import (
    CloneMode,
    CloudInit,
    DiskSpec,
    GpuRequest,
    IpConfig,
    KubeNodeSpec,
    NicSpec,
    PowerState,
    RebalancePolicy,
    Spread,
    Taint,
    TemplateRef,
)
from provisiond.core.nodes import render_record
from provisiond.core.observed import (
    CORDONED_ANNOTATION,
    MANAGED_ANNOTATION,
    PAUSED_ANNOTATION,
    Disk,
    HostPci,
    KubeNode,
    ObservedVM,
    Storage,
    Task,
    Unobserved,
    VMStatus,
)
from provisiond.core.planner import plan
from provisiond.core.pveconfig import GIB

A = dvm("a", 101)


def codes(p: object) -> list[str]:
    return [b.code for b in p.blocked]  # type: ignore[attr-defined]


# -- converged, clone, ordering ---------------------------------------------------------------


def test_converged_world_plans_nothing() -> None:
    p = plan(state(A), world(converged(A)), now=0)
    assert p.empty
    assert p.summary() == {"blocked": 0, "conflicts": 0, "waiting": 0}


def test_missing_vm_is_cloned_configured_grown_started_in_order() -> None:
    d = dvm("a", 101, cores=4, disks=(DiskSpec("scsi0", 20 * GIB), DiskSpec("scsi1", 5 * GIB)))
    p = plan(state(d), world(), now=0)
    assert kinds(p) == ["clone", "configure", "grow_disk", "start"]
    clone, conf, grow, start = p.actions
    assert isinstance(clone, Clone)
    assert (clone.template_vmid, clone.template_host, clone.target) == (9000, "pve1", None)
    assert clone.full
    assert clone.description == "provisiond:f/a"
    assert isinstance(conf, Configure)
    assert conf.values == {
        "cores": "4",
        "tags": "pd-f;provisiond",
        "scsi1": "nfs:5",
    }
    assert conf.after == (clone.id,)
    assert grow.after == (conf.id,)
    assert start.after == (grow.id,)
    assert isinstance(grow, GrowDisk)
    assert grow.size_bytes == 20 * GIB
    assert plan(state(d), apply(world(), p), now=0).empty


def test_clone_lands_on_the_least_loaded_host_with_target() -> None:
    busy = converged(dvm("x", 150, cores=8, memory_mib=60_000, fleet="g"), on="pve1")
    o = world(busy)
    p = plan(
        state(A, busy_fleet_vm := dvm("x", 150, cores=8, memory_mib=60_000, fleet="g")), o, now=0
    )
    assert busy_fleet_vm.fleet == "g"
    clone = p.actions[0]
    assert isinstance(clone, Clone)
    assert clone.target == "pve2"


def test_template_on_local_storage_clones_on_its_host_then_migrates() -> None:
    d = dvm("a", 101, host="pve2")
    o = world()
    o = replace(o, vms=(template(storage="local"),))
    p = plan(state(d), o, now=0)
    assert kinds(p)[:2] == ["clone", "migrate"]
    clone, mig = p.actions[:2]
    assert isinstance(clone, Clone)
    assert clone.target is None
    assert isinstance(mig, Migrate)
    assert (mig.source, mig.target, mig.online) == (
        "pve1",
        "pve2",
        False,
    )
    assert mig.with_local_disks
    assert plan(state(d), apply(o, p), now=0).empty


def test_full_clone_to_local_target_storage_goes_through_template_host() -> None:
    d = dvm("a", 101, host="pve2", storage="local")
    p = plan(state(d), world(), now=0)
    assert kinds(p)[:2] == ["clone", "migrate"]


def test_linked_clone_carries_no_storage() -> None:
    d = dvm("a", 101, clone_mode=CloneMode.LINKED, storage="local")
    clone = plan(state(d), world(), now=0).actions[0]
    assert isinstance(clone, Clone)
    assert not clone.full
    assert clone.storage is None


def test_stopped_vm_is_cloned_but_not_started() -> None:
    d = dvm("a", 101, power=PowerState.STOPPED)
    assert "start" not in kinds(plan(state(d), world(), now=0))


def test_gpu_vms_are_placed_first() -> None:
    g = dvm("g", 200, gpus=GpuRequest("a100", 1), host=None)
    o = world(mappings=(mapping("a100", {"pve2": 1}),))
    p = plan(state(A, g), o, now=0)
    clones = {a.vmid: a for a in p.actions if isinstance(a, Clone)}
    assert clones[200].target == "pve2"  # placed first: the only host with the GPU
    assert clones[101].target is None  # then the other one spreads to pve1
    conf = next(a for a in p.actions if isinstance(a, Configure) and a.vmid == 200)
    assert conf.values["hostpci0"] == "mapping=a100"


# -- templates ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ref", "vms", "needle"),
    [
        (TemplateRef(name="nope"), (), "no template named"),
        (TemplateRef(vmid=9999), (), "template VMID 9999 not found"),
        (TemplateRef(name="tmpl"), (template(9001),), "ambiguous"),
        (TemplateRef(vmid=150), ("plainvm",), "not a template"),
    ],
)
def test_template_problems_block_the_clone(
    ref: TemplateRef, vms: tuple[object, ...], needle: str
) -> None:
    extra = [v for v in vms if isinstance(v, ObservedVM)]
    if "plainvm" in vms:
        extra.append(converged(dvm("x", 150, fleet="g")))
    p = plan(state(dvm("a", 101, template=ref)), world(*extra), now=0)
    assert codes(p) == ["template"]
    assert needle in p.blocked[0].reason


def test_template_by_vmid_is_used() -> None:
    p = plan(state(dvm("a", 101, template=TemplateRef(vmid=9000))), world(), now=0)
    assert kinds(p)[0] == "clone"


def test_unobserved_template_blocks() -> None:
    o = replace(world(), vms=(replace(template(), status=VMStatus.UNKNOWN),))
    assert codes(plan(state(A), o, now=0)) == ["template"]


# -- ownership and conflicts ----------------------------------------------------------------------


def _foreign(d: object, **kw: object) -> ObservedVM:
    vm = converged(A, tags=(), **kw)  # type: ignore[arg-type]
    assert vm.config is not None
    return replace(vm, config=replace(vm.config, tags=(), description=""))


def test_unowned_vm_at_our_vmid_is_a_conflict_without_adopt() -> None:
    p = plan(state(A), world(_foreign(A)), now=0)
    assert p.empty
    assert "adopt is off" in p.conflicts[0].reason


def test_adopt_takes_over_a_vm_with_matching_name() -> None:
    p = plan(state(A, adopt=True), world(_foreign(A)), now=0)
    assert kinds(p) == ["configure"]
    assert p.actions[0].reason.startswith("adopt")
    assert p.actions[0].values == {"tags": "pd-f;provisiond"}  # type: ignore[union-attr]


def test_adopt_refuses_a_different_name() -> None:
    p = plan(state(A, adopt=True), world(replace(_foreign(A), name="other")), now=0)
    assert p.empty
    assert "not adopted" in p.conflicts[0].reason


def test_vm_of_another_fleet_is_a_conflict() -> None:
    theirs = converged(replace(A, fleet="other"))
    p = plan(state(A), world(theirs), now=0)
    assert "belongs to fleet other" in p.conflicts[0].reason


def test_marker_alone_proves_ownership() -> None:
    vm = converged(A)
    assert vm.config is not None
    vm = replace(vm, tags=(), config=replace(vm.config, tags=()))
    assert kinds(plan(state(A), world(vm), now=0)) == ["configure"]


def test_name_at_another_vmid_is_a_conflict_and_never_cloned() -> None:
    elsewhere = replace(converged(A), vmid=555)
    p = plan(state(A), world(elsewhere), now=0)
    assert p.empty
    assert "used by VMID 555" in p.conflicts[0].reason


def test_template_at_our_vmid_is_a_conflict() -> None:
    p = plan(state(dvm("a", 9000)), world(), now=0)
    assert "is a template" in p.conflicts[0].reason


# -- work under way -------------------------------------------------------------------------------


def test_clone_placeholder_with_task_waits() -> None:
    placeholder = ObservedVM(101, "a", "pve1", VMStatus.STOPPED, 1, 512, lock="clone")
    task = Task("UPID:pve1:1", "qmclone", "9000", "pve1", started=100.0)
    p = plan(state(A), world(placeholder, tasks=(task,)), now=142.0)
    assert p.empty
    assert not p.blocked
    assert "for 42 s" in p.waiting[0].reason


def test_clone_placeholder_without_task_is_stuck() -> None:
    placeholder = ObservedVM(101, "a", "pve1", VMStatus.STOPPED, 1, 512, lock="clone")
    p = plan(state(A), world(placeholder), now=0)
    assert p.empty
    assert codes(p) == ["stuck_clone"]


def test_running_clone_of_our_template_waits_instead_of_cloning_twice() -> None:
    task = Task("UPID:pve1:1", "qmclone", "9000", "pve1")
    p = plan(state(A), world(tasks=(task,)), now=0)
    assert p.empty
    assert p.waiting[0].reason.startswith("a clone of template tmpl is running")


def test_locked_vm_waits() -> None:
    p = plan(state(A), world(converged(A, lock="backup", cores=1)), now=0)
    assert p.empty
    assert "locked (backup)" in p.waiting[0].reason


def test_vm_with_running_task_waits() -> None:
    task = Task("UPID:pve1:2", "qmigrate", "101", "pve1")
    p = plan(state(replace(A, host="pve2")), world(converged(A), tasks=(task,)), now=0)
    assert p.empty
    assert p.waiting


# -- guards ---------------------------------------------------------------------------------------


def test_unknown_status_is_not_missing() -> None:
    vm = converged(A, status=VMStatus.UNKNOWN)
    p = plan(state(A), world(vm, hosts=(host("pve1", online=False), host("pve2"))), now=0)
    assert p.empty
    assert codes(p) == ["unknown_status"]


def test_unread_config_waits() -> None:
    p = plan(state(A), world(converged(A, config=None)), now=0)
    assert p.empty
    assert [w.reason for w in p.waiting] == ["not observed: config of VM 101"]


def test_paused_vm_is_left_alone() -> None:
    vm = converged(replace(A, cores=1), tags=("pd-f", "pd-paused", "provisiond"))
    p = plan(state(A), world(vm), now=0)
    assert p.empty
    assert codes(p) == ["paused"]


def test_incomplete_observation_clones_nothing() -> None:
    o = world(unobserved=Unobserved(lists=("cluster/resources",)))
    p = plan(state(A), o, now=0)
    assert p.empty
    assert codes(p) == ["observation_incomplete"]


def test_no_fleet_is_refused() -> None:
    from provisiond.core.desired import DesiredState

    assert codes(plan(DesiredState(()), world(), now=0)) == ["empty_spec"]


def test_empty_fleet_is_refused_and_never_prunes() -> None:
    ours = converged(A)
    p = plan(state(prune=True), world(ours), now=0)
    assert p.empty
    assert codes(p) == ["empty_spec"]


def test_empty_fleet_with_allow_empty_prunes_within_limits() -> None:
    p = plan(state(prune=True, allow_empty=True), world(converged(A)), now=0)
    assert kinds(p) == ["destroy"]


# -- configure ------------------------------------------------------------------------------------


def test_configure_writes_exactly_the_owned_keys_that_differ() -> None:
    d = dvm(
        "k3s-wk-gpu1",
        1038,
        cores=48,
        memory_mib=131072,
        gpus=GpuRequest("a100-40g", 1),
        nics=(NicSpec(0, "vmbr0", mac="00:16:3E:63:79:29", vlan=633),),
        cloud_init=CloudInit(
            user="ubuntu",
            ssh_keys=("ssh-ed25519 AAA x",),
            nameservers=("193.171.87.249", "193.171.87.250"),
            search_domain="lab",
            ipconfigs=(IpConfig(0, "10.21.0.38/16", "10.21.1.17"),),
        ),
    )
    old = converged(dvm("k3s-wk-gpu1", 1038))
    assert old.config is not None
    old = replace(
        old,
        config=replace(old.config, hostpci={0: HostPci(0, "a100-40g"), 1: HostPci(1, "a100-40g")}),
    )
    hosts = (host("pve1", cpus=128, mem_gib=1024), host("pve2"))
    o = world(old, mappings=(mapping("a100-40g", {"pve1": 2}),), hosts=hosts)
    p = plan(state(d), o, now=0)
    conf = p.actions[0]
    assert isinstance(conf, Configure)
    assert conf.values == {
        "cores": "48",
        "memory": "131072",
        "net0": "virtio=00:16:3E:63:79:29,bridge=vmbr0,tag=633",
        "ipconfig0": "ip=10.21.0.38/16,gw=10.21.1.17",
        "nameserver": "193.171.87.249 193.171.87.250",
        "searchdomain": "lab",
        "ciuser": "ubuntu",
        "sshkeys": "ssh-ed25519 AAA x",
    }
    assert conf.delete == ("hostpci1",)


def test_pending_change_is_not_rewritten_and_needs_a_reboot() -> None:
    d = dvm("a", 101, gpus=GpuRequest("m", 1))
    vm = converged(A)
    assert vm.config is not None
    vm = replace(vm, pending=replace(vm.config, hostpci={0: HostPci(0, "m")}))
    o = world(vm, mappings=(mapping("m", {"pve1": 1}),))
    p = plan(state(d), o, now=0)
    assert p.empty
    assert codes(p) == ["pending_reboot"]
    p = plan(state(d, reboot_for_pending=True), o, now=0)
    assert kinds(p) == ["reboot"]
    assert isinstance(p.actions[0], Reboot)
    assert p.actions[0].keys == ("hostpci0",)
    assert plan(state(d, reboot_for_pending=True), apply(o, p), now=0).empty


def test_reboot_of_a_kubernetes_node_is_drained_first() -> None:
    d = dvm("a", 101, gpus=GpuRequest("m", 1), kubernetes=KubeNodeSpec("a"))
    vm = converged(A)
    assert vm.config is not None
    vm = replace(vm, pending=replace(vm.config, hostpci={0: HostPci(0, "m")}))
    o = world(vm, mappings=(mapping("m", {"pve1": 1}),), kube=(KubeNode("a"),))
    p = plan(state(d, reboot_for_pending=True), o, now=0)
    assert kinds(p) == ["cordon", "drain", "reboot", "uncordon"]
    assert plan(state(d, reboot_for_pending=True), apply(o, p), now=0).empty


def test_self_vm_is_never_rebooted() -> None:
    vm = converged(A)
    assert vm.config is not None
    vm = replace(vm, pending=replace(vm.config, cores=4))
    d = replace(A, cores=4)
    p = plan(state(d, reboot_for_pending=True), world(vm, self_vmid=101), now=0)
    assert p.empty
    assert codes(p) == ["self"]


def test_new_gpu_without_free_device_moves_to_a_host_with_one() -> None:
    d = dvm("a", 101, gpus=GpuRequest("m", 1))
    o = world(converged(A), mappings=(mapping("m", {"pve2": 1}),))
    p = plan(state(d), o, now=0)
    assert kinds(p) == ["configure", "gpu_move"]
    move = p.actions[1]
    assert isinstance(move, GpuMove)
    assert move.target == "pve2"
    assert move.steps == (MoveStep.SHUTDOWN, MoveStep.MIGRATE_OFFLINE, MoveStep.START)
    assert plan(state(d), apply(o, p), now=0).empty


def test_growth_with_no_room_anywhere_is_blocked_not_written() -> None:
    d = dvm("a", 101, gpus=GpuRequest("m", 1), cores=4)
    o = world(converged(A), mappings=(mapping("m", {}),))
    p = plan(state(d), o, now=0)
    assert codes(p) == ["no_target", "no_room"]
    assert p.actions == ()


# -- disks ----------------------------------------------------------------------------------------


def test_disks_grow_and_never_shrink() -> None:
    small = converged(A)
    assert small.config is not None
    grown = replace(
        small, config=replace(small.config, disks={"scsi0": Disk("scsi0", "nfs", 5 * GIB)})
    )
    p = plan(state(A), world(grown), now=0)
    assert kinds(p) == ["grow_disk"]
    big = replace(
        small, config=replace(small.config, disks={"scsi0": Disk("scsi0", "nfs", 50 * GIB)})
    )
    assert plan(state(A), world(big), now=0).empty


# -- power ----------------------------------------------------------------------------------------


def test_stopped_vm_is_started_and_paused_vm_reported() -> None:
    assert kinds(plan(state(A), world(converged(A, status=VMStatus.STOPPED)), now=0)) == ["start"]
    p = plan(state(A), world(converged(A, status=VMStatus.PAUSED)), now=0)
    assert p.empty
    assert codes(p) == ["vm_paused"]


def test_desired_stopped_shuts_down_after_draining() -> None:
    d = replace(A, power=PowerState.STOPPED, kubernetes=KubeNodeSpec("a"))
    o = world(converged(A), kube=(KubeNode("a"),))
    p = plan(state(d, force_stop_after_shutdown_timeout=True), o, now=0)
    assert kinds(p) == ["cordon", "drain", "shutdown"]
    assert isinstance(p.actions[2], Shutdown)
    assert p.actions[2].force_stop
    assert plan(state(d), apply(o, p), now=0).empty


def test_self_vm_is_never_shut_down() -> None:
    d = replace(A, power=PowerState.STOPPED)
    p = plan(state(d), world(converged(A), self_vmid=101), now=0)
    assert p.empty
    assert codes(p) == ["self"]


def test_kubernetes_unreadable_blocks_disruption_of_nodes() -> None:
    d = replace(A, power=PowerState.STOPPED, kubernetes=KubeNodeSpec("a"))
    o = world(converged(A), unobserved=Unobserved(kubernetes=True))
    assert codes(plan(state(d), o, now=0)) == ["kube_unobserved"]


# -- moves ----------------------------------------------------------------------------------------


def test_pinned_vm_on_the_wrong_host_is_live_migrated() -> None:
    d = replace(A, host="pve2")
    p = plan(state(d), world(converged(A)), now=0)
    assert kinds(p) == ["migrate"]
    m = p.actions[0]
    assert isinstance(m, Migrate)
    assert m.online
    assert not m.with_local_disks
    assert plan(state(d), apply(world(converged(A)), p), now=0).empty


def test_vm_outside_its_allowed_hosts_moves() -> None:
    d = replace(A, allowed_hosts=("pve2",))
    assert kinds(plan(state(d), world(converged(A)), now=0)) == ["migrate"]


def test_maintenance_evacuates_with_local_disks() -> None:
    vm = converged(A)
    assert vm.config is not None
    vm = replace(vm, config=replace(vm.config, disks={"scsi0": Disk("scsi0", "local", 10 * GIB)}))
    d = replace(A, disks=(DiskSpec("scsi0", 10 * GIB, "local"),))
    p = plan(state(d, maintenance=("pve1",)), world(vm), now=0)
    m = p.actions[0]
    assert isinstance(m, Migrate)
    assert m.with_local_disks
    assert m.target == "pve2"
    assert "maintenance" in m.reason


def test_stopped_vm_moves_offline() -> None:
    vm = converged(A, status=VMStatus.STOPPED)
    d = replace(A, host="pve2", power=PowerState.STOPPED)
    m = plan(state(d), world(vm), now=0).actions[0]
    assert isinstance(m, Migrate)
    assert not m.online


def test_gpu_vm_evacuation_uses_the_offline_workflow_with_kubernetes() -> None:
    d = dvm("g", 101, gpus=GpuRequest("m", 1), kubernetes=KubeNodeSpec("g"))
    o = world(
        converged(d),
        mappings=(mapping("m", {"pve1": 1, "pve2": 1}),),
        kube=(KubeNode("g"),),
    )
    p = plan(state(d, maintenance=("pve1",)), o, now=0)
    assert kinds(p) == ["gpu_move"]
    move = p.actions[0]
    assert isinstance(move, GpuMove)
    assert move.node == "g"
    assert move.steps == (
        MoveStep.CORDON,
        MoveStep.DRAIN,
        MoveStep.SHUTDOWN,
        MoveStep.MIGRATE_OFFLINE,
        MoveStep.START,
        MoveStep.WAIT_READY,
        MoveStep.UNCORDON,
    )
    assert plan(state(d, maintenance=("pve1",)), apply(o, p), now=0).empty


def test_live_capable_mapping_migrates_live() -> None:
    d = dvm("g", 101, gpus=GpuRequest("m", 1))
    o = world(converged(d), mappings=(mapping("m", {"pve1": 1, "pve2": 1}, live=True),))
    assert kinds(plan(state(d, maintenance=("pve1",)), o, now=0)) == ["migrate"]


def test_gpu_vm_with_no_free_device_elsewhere_stays() -> None:
    d = dvm("g", 101, gpus=GpuRequest("m", 1))
    o = world(converged(d), mappings=(mapping("m", {"pve1": 1}),))
    p = plan(state(d, maintenance=("pve1",)), o, now=0)
    assert p.empty
    assert codes(p) == ["no_target"]


def test_raw_pci_vm_cannot_move() -> None:
    vm = converged(A)
    assert vm.config is not None
    vm = replace(vm, config=replace(vm.config, hostpci={3: HostPci(3, raw="0000:01:00.0")}))
    p = plan(state(replace(A, host="pve2")), world(vm), now=0)
    assert p.empty
    assert codes(p) == ["raw_pci"]
    assert "hostpci3" in p.blocked[0].reason


def test_self_vm_is_live_migrated_but_never_offline() -> None:
    assert kinds(
        plan(state(replace(A, host="pve2")), world(converged(A), self_vmid=101), now=0)
    ) == ["migrate"]
    d = dvm("g", 101, gpus=GpuRequest("m", 1), host="pve2")
    o = world(converged(d), mappings=(mapping("m", {"pve1": 1, "pve2": 1}),), self_vmid=101)
    assert codes(plan(state(d), o, now=0)) == ["self"]


def test_gpu_move_blocked_when_kubernetes_unreadable() -> None:
    d = dvm("g", 101, gpus=GpuRequest("m", 1), host="pve2", kubernetes=KubeNodeSpec("g"))
    o = world(
        converged(d),
        mappings=(mapping("m", {"pve1": 1, "pve2": 1}),),
        unobserved=Unobserved(kubernetes=True),
    )
    assert codes(plan(state(d), o, now=0)) == ["kube_unobserved"]


def test_desired_stopped_gpu_vm_is_shut_down_then_moved_offline() -> None:
    d = dvm("g", 101, gpus=GpuRequest("m", 1), host="pve2", power=PowerState.STOPPED)
    o = world(
        converged(replace(d, power=PowerState.RUNNING)),
        mappings=(mapping("m", {"pve1": 1, "pve2": 1}),),
    )
    p = plan(state(d, max_disruptions=3, max_disruptions_per_pool=3), o, now=0)
    assert kinds(p) == ["shutdown", "migrate"]
    assert not p.actions[1].online  # type: ignore[union-attr]


def test_strict_spread_violation_moves_the_later_vm() -> None:
    a, b = dvm("a", 101, spread=Spread.STRICT), dvm("b", 102, spread=Spread.STRICT)
    p = plan(state(a, b), world(converged(a), converged(b)), now=0)
    assert kinds(p) == ["migrate"]
    assert p.actions[0].vmid == 102


def test_strict_spread_blocks_placement_beyond_host_count() -> None:
    vms = [dvm(n, i, spread=Spread.STRICT) for n, i in (("a", 101), ("b", 102), ("c", 103))]
    p = plan(state(*vms), world(), now=0)
    assert [a.vmid for a in p.actions if isinstance(a, Clone)] == [101, 102]
    assert codes(p) == ["no_target"]
    assert "strict spread" in p.blocked[0].reason


def test_preferred_spread_spreads_before_packing() -> None:
    vms = [dvm(n, i) for n, i in (("a", 101), ("b", 102))]
    clones = [a for a in plan(state(*vms), world(), now=0).actions if isinstance(a, Clone)]
    assert sorted(c.target or "pve1" for c in clones) == ["pve1", "pve2"]


def test_capacity_is_never_exceeded() -> None:
    big = dvm("a", 101, cores=64, memory_mib=60 * 1024)
    p = plan(
        state(big, replace(big, name="b", vmid=102), replace(big, name="c", vmid=103)),
        world(),
        now=0,
    )
    assert codes(p) == ["no_target"]
    assert "CPU: pve1, pve2" in p.blocked[0].reason


def test_vm_on_a_host_missing_from_the_host_list_is_still_planned() -> None:
    p = plan(state(A), world(converged(A, on="ghost")), now=0)
    assert p.empty


# -- disruption limits ----------------------------------------------------------------------------


def test_disruptions_per_pool_are_limited() -> None:
    vms = [dvm(n, i, host="pve2") for n, i in (("a", 101), ("b", 102))]
    p = plan(state(*vms), world(*(converged(replace(v, host=None)) for v in vms)), now=0)
    assert kinds(p) == ["migrate"]
    assert codes(p) == ["disruption_limit"]
    assert "pool p" in p.blocked[0].reason


def test_disruptions_per_fleet_are_limited_and_count_in_flight() -> None:
    vms = [dvm(n, i, host="pve2", pool=n) for n, i in (("a", 101), ("b", 102), ("c", 103))]
    o = world(*(converged(replace(v, host=None)) for v in vms))
    p = plan(state(*vms), o, now=0)
    assert kinds(p) == ["migrate", "migrate"]
    assert codes(p) == ["disruption_limit"]
    assert "fleet f" in p.blocked[0].reason
    busy = replace(o, vms=(*o.vms[:-1], replace(o.vms[-1], lock="migrate")))
    assert kinds(plan(state(*vms), busy, now=0)) == ["migrate"]


# -- Kubernetes -----------------------------------------------------------------------------------

K = KubeNodeSpec(
    "a",
    labels=(("accelerator", "nvidia"), ("gpu-model", "a100")),
    taints=(Taint("inferno/gpu", "true", "NoSchedule"),),
)


def test_no_kubernetes_configured_means_no_kubernetes_action() -> None:
    d = replace(A, kubernetes=K, power=PowerState.STOPPED)
    assert kinds(plan(state(d), world(converged(A)), now=0)) == ["shutdown"]


def test_labels_and_taints_are_set_and_recorded() -> None:
    d = replace(A, kubernetes=K)
    node = KubeNode("a", labels={"kubernetes.io/hostname": "a", "accelerator": "amd"})
    o = world(converged(A), kube=(node,))
    p = plan(state(d), o, now=0)
    assert kinds(p) == ["label", "taint"]
    label, taint = p.actions
    assert isinstance(label, Label)
    assert isinstance(taint, TaintNode)
    assert label.labels == {"accelerator": "nvidia", "gpu-model": "a100"}
    assert (
        label.managed
        == taint.managed
        == render_record(
            frozenset({"accelerator", "gpu-model"}), frozenset({"inferno/gpu:NoSchedule"})
        )
    )
    assert plan(state(d), apply(o, p), now=0).empty


def test_removed_managed_label_goes_and_foreign_ones_stay() -> None:
    record = render_record(frozenset({"old", "accelerator"}), frozenset({"gone:NoExecute"}))
    node = KubeNode(
        "a",
        labels={"old": "1", "nfd": "x", "accelerator": "nvidia"},
        taints=(Taint("gone", None, "NoExecute"), Taint("theirs", None, "NoSchedule")),
        annotations={MANAGED_ANNOTATION: record},
    )
    d = replace(A, kubernetes=KubeNodeSpec("a", labels=(("accelerator", "nvidia"),)))
    o = world(converged(A), kube=(node,))
    p = plan(state(d), o, now=0)
    label, taint = p.actions
    assert isinstance(label, Label)
    assert label.remove == ("old",)
    assert label.labels == {}
    assert isinstance(taint, TaintNode)
    assert [t.key for t in taint.remove] == ["gone"]
    after = apply(o, p)
    assert after.kube is not None
    assert after.kube[0].labels == {"nfd": "x", "accelerator": "nvidia"}
    assert plan(state(d), after, now=0).empty


def test_record_only_is_written_when_labels_already_match() -> None:
    node = KubeNode("a", labels={"accelerator": "nvidia"}, annotations={MANAGED_ANNOTATION: "junk"})
    d = replace(A, kubernetes=KubeNodeSpec("a", labels=(("accelerator", "nvidia"),)))
    p = plan(state(d), world(converged(A), kube=(node,)), now=0)
    assert kinds(p) == ["label"]
    assert "recorded as managed" in p.actions[0].reason


def test_taint_value_change_replaces_it() -> None:
    node = KubeNode("a", taints=(Taint("inferno/gpu", "false", "NoSchedule"),))
    d = replace(A, kubernetes=KubeNodeSpec("a", taints=K.taints))
    p = plan(state(d), world(converged(A), kube=(node,)), now=0)
    taint = next(a for a in p.actions if isinstance(a, TaintNode))
    assert taint.add == K.taints
    assert taint.remove == node.taints


def test_paused_or_missing_node_gets_no_kube_action() -> None:
    d = replace(A, kubernetes=K)
    paused = KubeNode("a", annotations={PAUSED_ANNOTATION: "true"})
    assert plan(state(d), world(converged(A), kube=(paused,)), now=0).empty
    assert plan(state(d), world(converged(A), kube=()), now=0).empty


def test_leftover_cordon_is_lifted() -> None:
    node = KubeNode("a", unschedulable=True, annotations={CORDONED_ANNOTATION: "true"})
    d = replace(A, kubernetes=KubeNodeSpec("a"))
    assert kinds(plan(state(d), world(converged(A), kube=(node,)), now=0)) == ["uncordon"]
    foreign = KubeNode("a", unschedulable=True)
    assert plan(state(d), world(converged(A), kube=(foreign,)), now=0).empty


def test_start_comes_before_labels() -> None:
    d = replace(A, kubernetes=K)
    o = world(converged(A, status=VMStatus.STOPPED), kube=(KubeNode("a"),))
    assert kinds(plan(state(d), o, now=0)) == ["start", "label", "taint"]


# -- destroy --------------------------------------------------------------------------------------


def _fleet_of(n: int) -> list[ObservedVM]:
    return [converged(dvm(f"v{i}", 100 + i)) for i in range(n)]


def test_prune_off_never_destroys() -> None:
    vms = _fleet_of(3)
    assert plan(state(dvm("v0", 100)), world(*vms), now=0).empty


def test_destroy_is_last_after_everything_else() -> None:
    vms = _fleet_of(12)
    keep = [dvm(f"v{i}", 100 + i) for i in range(11)]
    p = plan(state(*keep, dvm("new", 150), prune=True), world(*vms), now=0)
    assert kinds(p)[-1] == "destroy"
    destroy = p.actions[-1]
    assert isinstance(destroy, Destroy)
    assert destroy.vmid == 111
    assert destroy.running
    assert set(destroy.after) == {a.id for a in p.actions[:-1]}


def test_destroy_limit_refuses_the_whole_prune() -> None:
    p = plan(state(dvm("v0", 100), prune=True), world(*_fleet_of(20)), now=0)
    assert p.empty
    assert p.blocked[0].reason.startswith("refusing: plan destroys 19 of 20 managed VMs")


def test_one_destroy_per_cycle() -> None:
    keep = [dvm(f"v{i}", 100 + i) for i in range(18)]
    p = plan(state(*keep, prune=True), world(*_fleet_of(20)), now=0)
    assert kinds(p) == ["destroy"]
    assert codes(p) == ["destroy_deferred"]


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"status": VMStatus.UNKNOWN}, "observation_incomplete"),
        ({"config": None}, "observation_incomplete"),
        ({"tags": ("pd-f", "pd-paused", "provisiond")}, "paused"),
        ({"lock": "backup"}, "locked"),
    ],
)
def test_destroy_guards(change: dict[str, object], code: str) -> None:
    vms = _fleet_of(2)
    vms[1] = replace(vms[1], **change)  # type: ignore[arg-type]
    p = plan(state(dvm("v0", 100), prune=True, allow_empty=True), world(*vms), now=0)
    assert p.empty
    assert codes(p) == [code]


def test_self_is_never_destroyed() -> None:
    p = plan(state(dvm("v0", 100), prune=True), world(*_fleet_of(2), self_vmid=101), now=0)
    assert p.empty
    assert codes(p) == ["self"]


def test_destroy_of_a_running_vm_takes_a_disruption() -> None:
    p = plan(state(dvm("v0", 100), prune=True, max_disruptions=0), world(*_fleet_of(2)), now=0)
    assert codes(p) == ["disruption_limit"]
    stopped = [_fleet_of(2)[0], replace(_fleet_of(2)[1], status=VMStatus.STOPPED)]
    p = plan(state(dvm("v0", 100), prune=True, max_disruptions=0), world(*stopped), now=0)
    assert kinds(p) == ["destroy"]
    assert not p.actions[0].running


def test_incomplete_observation_destroys_nothing() -> None:
    o = world(*_fleet_of(2), unobserved=Unobserved(lists=("cluster/resources",)))
    p = plan(state(dvm("v0", 100), prune=True), o, now=0)
    assert p.empty
    assert codes(p) == ["destroy_limit"]


def test_unowned_vms_are_never_destroyed() -> None:
    stranger = _foreign(A)
    assert plan(
        state(dvm("v0", 100), prune=True), world(converged(dvm("v0", 100)), stranger), now=0
    ).empty


# -- rebalance ------------------------------------------------------------------------------------


def _lab(n_on_pve1: int, **policy: object) -> tuple[object, object]:
    vms = [dvm(f"v{i}", 100 + i, memory_mib=8 * 1024, pool=f"p{i}") for i in range(n_on_pve1)]
    rb = RebalancePolicy(enabled=True, memory_threshold=0.8, cpu_threshold=1.0)
    return (
        state(*vms, rebalance=rb, max_disruptions=10, **policy),
        world(*(converged(v) for v in vms)),
    )


def test_rebalance_sheds_just_enough() -> None:
    d, o = _lab(7)  # 56 GiB on 64: above 80 %
    p = plan(d, o, now=0)  # type: ignore[arg-type]
    assert kinds(p) == ["migrate"]
    assert plan(d, apply(o, p), now=0).empty  # type: ignore[arg-type]


def test_rebalance_is_off_by_default() -> None:
    vms = [dvm(f"v{i}", 100 + i, memory_mib=8 * 1024, pool=f"p{i}") for i in range(8)]
    assert plan(state(*vms), world(*(converged(v) for v in vms)), now=0).empty


def test_rebalance_reports_a_host_it_cannot_fix() -> None:
    d, o = _lab(7)
    o = replace(o, hosts=(host("pve1"), host("pve2", mem_gib=4)))  # type: ignore[arg-type]
    p = plan(d, o, now=0)  # type: ignore[arg-type]
    assert p.empty
    assert codes(p) == ["rebalance"]


def test_rebalance_respects_the_disruption_budget() -> None:
    vms = [dvm(f"v{i}", 100 + i, memory_mib=12 * 1024, pool=f"p{i}") for i in range(5)]
    rb = RebalancePolicy(enabled=True, memory_threshold=0.5)
    p = plan(
        state(*vms, rebalance=rb, max_disruptions=1), world(*(converged(v) for v in vms)), now=0
    )
    assert kinds(p) == ["migrate"]
    assert "disruption_limit" in codes(p)


def test_rebalance_never_moves_gpu_or_pinned_vms() -> None:
    vms = [dvm(f"v{i}", 100 + i, memory_mib=16 * 1024, host="pve1") for i in range(3)]
    vms.append(dvm("g", 200, memory_mib=16 * 1024, gpus=GpuRequest("m", 1)))
    rb = RebalancePolicy(enabled=True, memory_threshold=0.5)
    o = world(*(converged(v) for v in vms), mappings=(mapping("m", {"pve1": 1, "pve2": 1}),))
    p = plan(state(*vms, rebalance=rb), o, now=0)
    assert p.empty
    assert codes(p) == ["rebalance"]


def test_rebalance_moves_stopped_vms_offline() -> None:
    vms = [
        dvm(f"v{i}", 100 + i, memory_mib=8 * 1024, pool=f"p{i}", power=PowerState.STOPPED)
        for i in range(7)
    ]
    rb = RebalancePolicy(enabled=True, memory_threshold=0.8)
    p = plan(state(*vms, rebalance=rb), world(*(converged(v) for v in vms)), now=0)
    assert kinds(p) == ["migrate"]
    assert not p.actions[0].online


def test_storage_must_be_reachable() -> None:
    d = dvm("a", 101, storage="fast", disks=(DiskSpec("scsi0", 10 * GIB),))
    hosts = (
        host("pve1"),
        host("pve2", storages=(Storage("fast", shared=True), Storage("nfs", True))),
    )
    clone = plan(state(d), world(hosts=hosts), now=0).actions[0]
    assert isinstance(clone, Clone)
    assert clone.target == "pve2"
    local = (host("pve1"), host("pve2", storages=(Storage("fast"), Storage("nfs", True))))
    p = plan(state(d), world(hosts=local), now=0)
    assert codes(p) == ["no_target"]
    assert "pve1 has no fast" in p.blocked[0].reason


# -- remaining branches -------------------------------------------------------------------------


def test_new_nic_is_added_and_an_already_cordoned_node_is_not_cordoned_again() -> None:
    d = replace(A, nics=(*A.nics, NicSpec(1, "vmbr1")), kubernetes=KubeNodeSpec("a"))
    d = replace(d, power=PowerState.STOPPED)
    node = KubeNode("a", unschedulable=True)
    p = plan(state(d), world(converged(A), kube=(node,)), now=0)
    assert kinds(p) == ["configure", "drain", "shutdown"]
    assert p.actions[0].values == {"net1": "virtio,bridge=vmbr1"}  # type: ignore[union-attr]


def test_shutdown_waits_for_the_disruption_budget() -> None:
    d = replace(A, power=PowerState.STOPPED)
    p = plan(state(d, max_disruptions=0), world(converged(A)), now=0)
    assert p.empty
    assert codes(p) == ["disruption_limit"]


def test_clone_that_matches_the_template_needs_no_configure() -> None:
    t = template()
    assert t.config is not None
    t = replace(t, config=replace(t.config, tags=("pd-f", "provisiond")))
    d = replace(A, power=PowerState.STOPPED)
    assert kinds(plan(state(d), replace(world(), vms=(t,)), now=0)) == ["clone"]


def test_rebalance_skips_offline_and_maintenance_hosts_and_busy_vms() -> None:
    rb = RebalancePolicy(enabled=True, memory_threshold=0.5)
    vms = [dvm(f"v{i}", 100 + i, memory_mib=12 * 1024, pool=f"p{i}") for i in range(4)]
    obs = [converged(v, status=VMStatus.STOPPED) for v in vms]  # all will be started: busy
    hosts = (host("pve1"), host("pve2"), host("pve3", online=False), host("pve4"))
    p = plan(state(*vms, rebalance=rb, maintenance=("pve4",)), world(*obs, hosts=hosts), now=0)
    assert kinds(p) == ["start"] * 4
    assert codes(p) == ["rebalance"]


def test_offline_hosts_get_no_placement() -> None:
    hosts = (host("pve1", online=False), host("pve2", online=False))
    p = plan(state(A), world(hosts=hosts), now=0)
    assert codes(p) == ["no_target"]
    assert "offline: pve1, pve2" in p.blocked[0].reason


def test_cloud_init_already_in_place_is_not_rewritten() -> None:
    ci = CloudInit(
        user="u",
        ssh_keys=("k1", "k2"),
        nameservers=("1.1.1.1",),
        search_domain="lab",
        ipconfigs=(IpConfig(0, "dhcp"),),
    )
    d = replace(A, cloud_init=ci)
    vm = converged(A)
    assert vm.config is not None
    cfg = replace(
        vm.config,
        ciuser="u",
        sshkeys="k1\nk2\n",
        nameserver="1.1.1.1",
        searchdomain="lab",
        ipconfigs={0: IpConfig(0, "dhcp")},
    )
    assert plan(state(d), world(replace(vm, config=cfg)), now=0).empty
    assert plan(state(replace(A, cloud_init=CloudInit())), world(vm), now=0).empty
