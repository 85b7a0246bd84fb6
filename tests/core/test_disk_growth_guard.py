"""Growing a disk is irreversible (PVE cannot shrink): a growth past the storage's free space or
by more than ``policy.max_disk_growth`` at once is blocked until confirmed (``allowLargeGrowth``
on the VM or pool, or ``apply --allow-large-growth``). A new clone's growth is not held back."""

from __future__ import annotations

from dataclasses import replace

import pytest
from plan_world import converged, dvm, host, kinds, state, world

from provisiond.core.desired import DiskSpec
from provisiond.core.observed import Disk, ObservedState, Storage
from provisiond.core.planner import plan
from provisiond.core.pveconfig import GIB

NFS_FREE = 500 * GIB


def on_disk(size: int, *, free: int | None = NFS_FREE, **desired: object) -> tuple[object, object]:
    """(desired, observed): VM ``a`` has a 10 GiB scsi0 on nfs; the spec asks ``size``."""
    want = dvm("a", 101, disks=(DiskSpec("scsi0", size),), **desired)  # type: ignore[arg-type]
    vm = converged(want)
    assert vm.config is not None
    vm = replace(vm, config=replace(vm.config, disks={"scsi0": Disk("scsi0", "nfs", 10 * GIB)}))
    storages = (Storage("local"), Storage("nfs", shared=True, avail_bytes=free))
    hosts = (host("pve1", storages=storages), host("pve2", storages=storages))
    return want, world(vm, hosts=hosts)


@pytest.mark.parametrize(
    ("size", "free", "factor", "blocked"),
    [
        (40 * GIB, NFS_FREE, 4.0, None),  # 4x exactly: allowed
        (41 * GIB, NFS_FREE, 4.0, "scsi0: 10GiB → 41GiB grows it more than 4 times at once"),
        (100 * 1024 * GIB, NFS_FREE, 4.0, "more than 4 times at once"),  # 100TiB for 100GiB
        (41 * GIB, NFS_FREE, 8.0, None),  # the factor is the policy's
        (30 * GIB, 15 * GIB, 4.0, "needs 20GiB, storage nfs has 15GiB free"),
        (30 * GIB, None, 4.0, None),  # free space not reported: the factor alone decides
    ],
)
def test_large_growth_is_blocked_with_a_reason(
    size: int, free: int | None, factor: float, blocked: str | None
) -> None:
    want, observed = on_disk(size, free=free)
    assert isinstance(observed, ObservedState)
    p = plan(state(want, max_disk_growth=factor), observed, now=0)  # type: ignore[arg-type]
    if blocked is None:
        assert kinds(p) == ["grow_disk"]
        assert p.blocked == ()
        return
    assert kinds(p) == []
    (b,) = p.blocked
    assert b.code == "large_disk_growth"
    assert blocked in b.reason
    assert "allowLargeGrowth: true" in b.reason
    assert "apply --allow-large-growth" in b.reason


def test_confirmed_large_growth_is_planned() -> None:
    want, observed = on_disk(200 * GIB, free=15 * GIB, allow_large_growth=True)
    p = plan(state(want), observed, now=0)  # type: ignore[arg-type]
    assert kinds(p) == ["grow_disk"]
    assert p.blocked == ()


def test_a_new_clone_grows_from_its_template_without_confirmation() -> None:
    want = dvm("a", 101, disks=(DiskSpec("scsi0", 400 * GIB),))
    p = plan(state(want), world(), now=0)
    assert "grow_disk" in kinds(p)
    assert p.blocked == ()
