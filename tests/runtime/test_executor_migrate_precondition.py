"""Before any migrate POST the executor asks PVE's precondition and obeys it (issue 13, point 5).

``GET /nodes/{n}/qemu/{id}/migrate?target=`` says whether the target is allowed (storage and
mapped devices there), which resources are local (raw ``hostpciN``, or mapped devices that
cannot live-migrate while the VM runs), and which disks are local. A refusal fails the action
with PVE's reason and no POST; a live move with local disks gets ``with-local-disks``.
"""

from __future__ import annotations

import random

import pytest
from runtime_fakes import FakeCluster, FakeTime
from runtime_fleet import TEMPLATE, fleet_state

from provisiond.core.actions import GpuMove, Migrate, MoveStep
from provisiond.core.desired import Policy
from provisiond.core.observed import VMStatus
from provisiond.core.plan import Plan
from provisiond.core.ports import MigratePrecondition
from provisiond.runtime.executor import Executor, ExecutorConfig
from provisiond.runtime.results import Outcome

TAGS = ("pd-lab", "provisiond")


@pytest.fixture
def cluster() -> FakeCluster:
    c = FakeCluster()
    c.add_vm(TEMPLATE, "tmpl", "pve1", template=True)
    c.add_vm(101, "vm101", "pve1", tags=TAGS, status=VMStatus.RUNNING)
    return c


def move(*, online: bool = True, local: bool = False) -> Migrate:
    return Migrate(
        id="migrate:101",
        reason="maintenance",
        vmid=101,
        name="vm101",
        source="pve1",
        target="pve2",
        online=online,
        with_local_disks=local,
    )


async def run(cluster: FakeCluster, action: Migrate | GpuMove) -> tuple[Outcome, str]:
    time_ = FakeTime()
    ex = Executor(
        cluster,
        cluster,
        config=ExecutorConfig(),
        clock=time_.clock,
        sleep=time_.sleep,
        rng=random.Random(7),
    )
    desired = fleet_state(
        101, fleet="lab", pool="workers", cores=2, memory_mib=2048, policy=Policy()
    )
    report = await ex.execute(Plan(actions=(action,)), desired=desired)
    (r,) = report.results
    return r.outcome, r.detail


@pytest.mark.parametrize(
    ("pre", "detail"),
    [
        (
            MigratePrecondition(
                True,
                (),
                {"pve2": ("unavailable-resources: hostpci0",)},
                mapped_resources=("hostpci0",),
            ),
            "PVE does not allow target pve2 (unavailable-resources: hostpci0)",
        ),
        (MigratePrecondition(True, ("pve3",)), "PVE does not allow target pve2 (not among"),
        (
            MigratePrecondition(True, ("pve2",), local_resources=("hostpci0",)),
            "cannot live-migrate with local resources hostpci0",
        ),
    ],
)
async def test_a_refused_precondition_fails_the_action_without_a_post(
    cluster: FakeCluster, pre: MigratePrecondition, detail: str
) -> None:
    cluster.preconditions[101] = pre
    outcome, why = await run(cluster, move())
    assert outcome is Outcome.FAILED
    assert detail in why
    assert cluster.mutating("migrate") == []
    assert cluster.vms[101].host == "pve1"


async def test_a_running_vm_planned_offline_is_not_posted(cluster: FakeCluster) -> None:
    outcome, why = await run(cluster, move(online=False))
    assert outcome is Outcome.FAILED
    assert "VM runs, the plan moves it offline" in why
    assert cluster.mutating("migrate") == []


async def test_a_live_move_with_local_disks_sends_with_local_disks(cluster: FakeCluster) -> None:
    cluster.preconditions[101] = MigratePrecondition(True, ("pve2",), local_disks=("scsi0",))
    outcome, _ = await run(cluster, move())
    assert outcome is Outcome.SUCCEEDED
    assert cluster.migrations[101] == (True, True)
    assert cluster.vms[101].host == "pve2"


async def test_an_allowed_move_goes_ahead_unchanged(cluster: FakeCluster) -> None:
    outcome, _ = await run(cluster, move())
    assert outcome is Outcome.SUCCEEDED
    assert cluster.migrations[101] == (True, False)


async def test_the_gpu_move_asks_after_the_shutdown(cluster: FakeCluster) -> None:
    """The offline step of a GPU move asks when the VM is already stopped (local_resources
    lists a non-live mapped device only while the VM runs)."""
    gpu = GpuMove(
        id="gpu_move:101",
        reason="maintenance",
        vmid=101,
        name="vm101",
        source="pve1",
        target="pve2",
        node=None,
        steps=(MoveStep.SHUTDOWN, MoveStep.MIGRATE_OFFLINE, MoveStep.START),
    )
    outcome, _ = await run(cluster, gpu)
    assert outcome is Outcome.SUCCEEDED
    assert cluster.migrations[101] == (False, False)
    assert cluster.vms[101].host == "pve2"
