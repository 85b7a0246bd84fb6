"""A failed read blocks the decisions that rest on it, and only those (issue 13, point 1).

Each table row: one input is not observed (a host's storage or PCI list, the mappings, the
running tasks, a VM's config); the decisions that need it wait with "not observed: <what>", the
VM is not started or moved, and everything that does not need it goes on.
"""

from __future__ import annotations

from dataclasses import replace

from plan_world import converged, dvm, host, kinds, mapping, state, template, world

from provisiond.core.actions import Configure, Start
from provisiond.core.desired import GpuRequest, PowerState, RebalancePolicy
from provisiond.core.observed import HostPci, Storage, Unobserved, VMStatus
from provisiond.core.plan import Plan
from provisiond.core.planner import plan

GPU = dvm("g", 101, cores=4, gpus=GpuRequest("m", 1))
PLAIN = dvm("a", 102)
NO_STORAGE = (Storage("local"),)  # what is left of a host whose storage list failed


def waits(p: Plan) -> dict[int, str]:
    return {w.vmid: w.reason for w in p.waiting}


def codes(p: Plan) -> list[str]:
    return [b.code for b in p.blocked]


def test_a_vm_is_never_started_before_its_gpus_and_size_are_written() -> None:
    """The bug: a failed storage read made the room check refuse (``no storage nfs``), the
    planner held back cores and hostpci0, and started the VM at template size without GPUs."""
    vm = converged(replace(GPU, cores=2, gpus=None), status=VMStatus.STOPPED)
    o = world(
        vm,
        hosts=(host("pve1", storages=()), host("pve2")),
        mappings=(mapping("m", {"pve1": 1}),),
        unobserved=Unobserved(storage=("pve1",)),
    )
    p = plan(state(GPU), o, now=0)
    starts = [a for a in p.actions if isinstance(a, Start)]
    conf = [a for a in p.actions if isinstance(a, Configure)]
    assert "no_room" not in codes(p)
    # its own host's storage list is not what a resize in place rests on: it goes on
    assert conf
    assert {"cores", "hostpci0"} <= set(conf[0].values)
    assert starts
    assert conf[0].id in starts[0].after


def test_a_move_waits_when_its_hosts_storage_was_not_observed() -> None:
    """A move rests on the source's storage (local disks?) — it waits, the VM is not started."""
    d = replace(PLAIN, host="pve2", power=PowerState.RUNNING)
    vm = converged(d, on="pve1", status=VMStatus.STOPPED)
    o = world(
        vm,
        hosts=(host("pve1", storages=NO_STORAGE), host("pve2")),
        unobserved=Unobserved(storage=("pve1",)),
    )
    p = plan(state(d), o, now=0)
    assert p.empty, kinds(p)
    assert waits(p)[102].startswith("not observed: storage of host pve1")


def test_a_target_whose_storage_was_not_observed_is_waited_for_not_blocked() -> None:
    d = replace(PLAIN, host="pve2")
    vm = converged(d, on="pve1", status=VMStatus.STOPPED)
    o = world(
        vm,
        hosts=(host("pve1"), host("pve2", storages=())),
        unobserved=Unobserved(storage=("pve2",)),
    )
    p = plan(state(d), o, now=0)
    assert p.empty, kinds(p)
    assert codes(p) == []
    assert waits(p)[102].startswith("not observed: storage of host pve2")


def test_a_missing_vm_is_not_placed_on_what_was_not_seen() -> None:
    d = replace(PLAIN, host="pve2")
    o = world(
        hosts=(host("pve1"), host("pve2", storages=())), unobserved=Unobserved(storage=("pve2",))
    )
    p = plan(state(d), o, now=0)
    assert p.empty
    assert waits(p)[102].startswith("not observed: storage of host pve2")
    # an unpinned VM goes to a host that was seen
    p = plan(state(PLAIN), o, now=0)
    assert kinds(p)[0] == "clone"
    assert p.actions[0].target in (None, "pve1")  # type: ignore[attr-defined]


def test_gpu_decisions_wait_for_the_mappings() -> None:
    running = converged(GPU, status=VMStatus.STOPPED)
    o = world(running, unobserved=Unobserved(mappings=True))  # mappings left empty
    p = plan(state(GPU), o, now=0)
    assert "start" not in kinds(p)
    assert "migrate" not in kinds(p)
    assert "gpu_move" not in kinds(p)
    assert waits(p)[101].startswith("not observed: PCI mappings")
    # a new GPU VM is not cloned either; a plain one is
    o = world(unobserved=Unobserved(mappings=True))
    p = plan(state(GPU, PLAIN), o, now=0)
    assert [a.vmid for a in p.actions if a.kind == "clone"] == [102]
    assert waits(p)[101].startswith("not observed: PCI mappings")


def test_gpu_decisions_wait_for_the_hosts_pci_list_and_its_vms_configs() -> None:
    vm = converged(GPU, status=VMStatus.STOPPED)
    maps = (mapping("m", {"pve1": 1, "pve2": 1}),)
    o = world(vm, mappings=maps, unobserved=Unobserved(pci=("pve1",)))
    p = plan(state(GPU), o, now=0)
    assert "start" not in kinds(p)
    assert waits(p)[101].startswith("not observed: PCI devices of host pve1")
    # a co-located VM whose config was not read may hold the device: no start either
    other = replace(converged(dvm("x", 300), status=VMStatus.STOPPED), config=None, tags=())
    o = world(vm, other, mappings=maps, unobserved=Unobserved(vm_configs=(300,)))
    p = plan(state(GPU), o, now=0)
    assert "start" not in kinds(p)
    assert waits(p)[101].startswith("not observed: config of VM 300")
    # the same on another host does not concern it
    o = world(
        vm, replace(other, host="pve2"), mappings=maps, unobserved=Unobserved(vm_configs=(300,))
    )
    assert kinds(plan(state(GPU), o, now=0)) == ["start"]


def test_a_vm_whose_config_was_not_read_waits() -> None:
    p = plan(state(PLAIN), world(converged(PLAIN, config=None)), now=0)
    assert p.empty
    assert waits(p) == {102: "not observed: config of VM 102"}


def test_without_the_running_tasks_nothing_is_cloned_started_or_moved() -> None:
    stopped = converged(PLAIN, status=VMStatus.STOPPED)
    o = world(stopped, unobserved=Unobserved(tasks=True))
    p = plan(state(PLAIN, replace(PLAIN, name="b", vmid=103)), o, now=0)
    assert p.empty
    assert waits(p) == {
        102: "not observed: running tasks",
        103: "not observed: running tasks",
    }


def test_a_gpu_vm_with_a_pending_gpu_is_not_started_on_unseen_input() -> None:
    cfg_vm = converged(GPU, status=VMStatus.STOPPED)
    assert cfg_vm.config is not None
    pending = replace(cfg_vm.config, hostpci={0: HostPci(0, mapping="m")})
    vm = replace(cfg_vm, config=replace(cfg_vm.config, hostpci={}), pending=pending)
    o = world(vm, mappings=(mapping("m", {"pve1": 1}),), unobserved=Unobserved(mappings=True))
    assert "start" not in kinds(plan(state(GPU), o, now=0))


def test_read_failures_name_every_typed_input() -> None:
    u = Unobserved(storage=("pve1",), pci=("pve2",), mappings=True, tasks=True)
    assert u.partial == ("cluster/mapping/pci", "nodes/pve1/storage", "nodes/pve2/hardware/pci")
    assert u.vmids_trustworthy
    o = world(template(), unobserved=u)
    assert o.read_failures == ("cluster/tasks", *u.partial)


def test_a_clone_waits_for_the_storage_of_its_templates_host() -> None:
    """Whether the target reaches the template's disks rests on the template host's storage."""
    o = world(
        hosts=(host("pve1", storages=()), host("pve2")), unobserved=Unobserved(storage=("pve1",))
    )
    p = plan(state(replace(PLAIN, host="pve2")), o, now=0)
    assert p.empty
    assert waits(p)[102] == "not observed: storage of host pve1 (not cloned yet)"


def test_without_the_running_tasks_nothing_is_rebalanced_or_destroyed() -> None:
    vms = [dvm(f"v{i}", 110 + i, memory_mib=8 * 1024, pool=f"p{i}") for i in range(7)]
    rb = RebalancePolicy(enabled=True, memory_threshold=0.8, cpu_threshold=1.0)
    d = state(*vms, rebalance=rb, max_disruptions=10)
    seen = world(*(converged(v) for v in vms))
    assert kinds(plan(d, seen, now=0)) == ["migrate"]  # 56 GiB on 64: it would rebalance
    assert plan(d, replace(seen, unobserved=Unobserved(tasks=True)), now=0).empty
    gone = converged(dvm("old", 120), on="pve2")
    p = plan(state(PLAIN, prune=True), world(gone, unobserved=Unobserved(tasks=True)), now=0)
    assert [b.code for b in p.blocked] == ["destroy_limit"]
