"""``ObservedState.read_failures``: what failed to be read this cycle, as opposed to what the
cluster's state hides (a host offline)."""

from __future__ import annotations

from provisiond.core.observed import ObservedState, ObservedVM, Unobserved, VMStatus


def vm(vmid: int, status: VMStatus) -> ObservedVM:
    return ObservedVM(
        vmid=vmid, name=f"vm{vmid}", host="pve1", status=status, cores=1, memory_mib=1
    )


def test_a_complete_observation_has_no_read_failures() -> None:
    assert ObservedState().read_failures == ()


def test_failed_reads_are_named_but_a_host_offline_is_not_one() -> None:
    o = ObservedState(
        vms=(vm(100, VMStatus.UNKNOWN), vm(101, VMStatus.RUNNING)),
        unobserved=Unobserved(
            tasks=True,
            storage=("pve2",),
            offline_hosts=("pve1",),
            vm_configs=(100, 101),
            kubernetes=True,
        ),
    )
    assert o.read_failures == (
        "cluster/tasks",
        "nodes/pve2/storage",
        "kubernetes",
        "config of VM 101",  # VM 100's host is offline: its config is not a failed read
    )
    offline_only = ObservedState(
        vms=(vm(100, VMStatus.UNKNOWN),),
        unobserved=Unobserved(offline_hosts=("pve1",), vm_configs=(100,)),
    )
    assert offline_only.read_failures == ()
