"""Act on the config just read (issue 13, point 7): configure, grow, start, migrate and destroy
re-read their VM on its host right before acting, re-check ownership and that the action is
still needed; config writes carry the digest of that read, and a ``checksum mismatch`` requeues
the VM instead of failing it (and is never re-sent as is)."""

from __future__ import annotations

import random
from dataclasses import replace

import pytest
from runtime_fakes import FakeCluster, FakeTime
from runtime_fleet import TEMPLATE, clone_action, fleet_state

from provisiond.core.actions import Configure, Destroy, Start
from provisiond.core.desired import DesiredState
from provisiond.core.observed import VMStatus
from provisiond.core.plan import Plan
from provisiond.runtime.executor import Executor
from provisiond.runtime.results import Outcome

FLEET = "lab"
TAGS = ("pd-lab", "provisiond")


def desired(*vmids: int) -> DesiredState:
    return fleet_state(*vmids, fleet=FLEET, pool="p", cores=4, memory_mib=4096)


def configure(vmid: int, **values: str) -> Configure:
    return Configure(
        id=f"configure:{vmid}", reason="drift", vmid=vmid, name=f"vm{vmid}", host="pve1",
        values=values,
    )  # fmt: skip


@pytest.fixture
def time_() -> FakeTime:
    return FakeTime()


@pytest.fixture
def cluster() -> FakeCluster:
    c = FakeCluster()
    c.add_vm(TEMPLATE, "tmpl", "pve1", template=True)
    return c


def executor(cluster: FakeCluster, time_: FakeTime) -> Executor:
    return Executor(cluster, cluster, clock=time_.clock, sleep=time_.sleep, rng=random.Random(7))


async def test_a_config_changed_between_read_and_write_is_requeued_not_failed(
    cluster: FakeCluster, time_: FakeTime
) -> None:
    cluster.add_vm(101, "vm101", tags=TAGS)

    def someone_else() -> None:  # a hand-made change lands between our read and our write
        cluster.vms[101] = replace(cluster.vms[101], memory_mib=1024)

    cluster.before_write[101] = someone_else
    ex = executor(cluster, time_)
    report = await ex.execute(Plan(actions=(configure(101, cores="4"),)), desired=desired(101))
    (r,) = report.results
    assert r.outcome is Outcome.REQUEUED
    assert "checksum mismatch" in r.detail
    assert r.retry_after == 0.0  # re-observed at once, not after a failure's backoff
    assert cluster.mutating() == [("configure", 101)]  # never re-sent with the stale digest
    assert ex.backoff.failures(101) == 0


async def test_configure_writes_only_what_the_config_just_read_still_lacks(
    cluster: FakeCluster, time_: FakeTime
) -> None:
    # Planned from an older observation: cores 2 → 4 and memory 2048 → 4096; someone already
    # set the memory meanwhile.
    cluster.add_vm(101, "vm101", tags=TAGS)
    cluster.vms[101] = replace(cluster.vms[101], memory_mib=4096)
    act = configure(101, cores="4", memory="4096")
    report = await executor(cluster, time_).execute(Plan(actions=(act,)), desired=desired(101))
    assert report.results[0].outcome is Outcome.SUCCEEDED
    assert cluster.written == [{"cores": "4"}]
    assert cluster.reads == [("config", 101)]  # one read of that VM, no cluster listing


async def test_configure_already_in_place_is_adopted_without_a_write(
    cluster: FakeCluster, time_: FakeTime
) -> None:
    cluster.add_vm(101, "vm101", tags=TAGS)
    cluster.vms[101] = replace(cluster.vms[101], cores=4, memory_mib=4096)
    act = configure(101, cores="4")
    report = await executor(cluster, time_).execute(Plan(actions=(act,)), desired=desired(101))
    assert report.results[0].outcome is Outcome.ADOPTED
    assert cluster.mutating() == []


@pytest.mark.parametrize(
    ("now", "expect", "detail"),
    [
        ({"tags": ("pd-other", "provisiond")}, Outcome.FAILED, "owned by fleet other"),
        ({"tags": ("pd-lab", "pd-paused", "provisiond")}, Outcome.FAILED, "paused"),
        ({"tags": TAGS, "lock": "backup"}, Outcome.REQUEUED, "locked (backup)"),
    ],
)
async def test_configure_and_start_recheck_ownership_on_the_fresh_read(
    cluster: FakeCluster, time_: FakeTime, now: dict[str, object], expect: Outcome, detail: str
) -> None:
    # The observation the plan came from showed the VM as ours; by now it is not.
    cluster.add_vm(101, "vm101", **now)
    start = Start(id="start:101", reason="stopped", vmid=101, name="vm101", host="pve1")
    for act in (configure(101, cores="4"), start):
        report = await executor(cluster, time_).execute(Plan(actions=(act,)), desired=desired(101))
        assert report.results[0].outcome is expect
        assert detail in report.results[0].detail
    assert cluster.mutating() == []


async def test_start_of_a_vm_already_running_is_adopted_on_one_read(
    cluster: FakeCluster, time_: FakeTime
) -> None:
    cluster.add_vm(101, "vm101", tags=TAGS, status=VMStatus.RUNNING)
    start = Start(id="start:101", reason="stopped", vmid=101, name="vm101", host="pve1")
    report = await executor(cluster, time_).execute(Plan(actions=(start,)))
    assert report.results[0].outcome is Outcome.ADOPTED
    assert cluster.reads == [("status", 101)]
    assert cluster.mutating() == []


async def test_destroy_rechecks_the_owner_fleet_on_the_fresh_read(
    cluster: FakeCluster, time_: FakeTime
) -> None:
    cluster.add_vm(101, "vm101", tags=("pd-other", "provisiond"))
    act = Destroy(
        id="destroy:101", reason="prune", vmid=101, name="vm101", host="pve1", fleet=FLEET,
        running=False,
    )  # fmt: skip
    report = await executor(cluster, time_).execute(Plan(actions=(act,)))
    assert report.results[0].outcome is Outcome.FAILED
    assert "owner is other" in report.results[0].detail
    assert cluster.mutating() == []


async def test_a_new_vm_is_created_without_listing_the_cluster(
    cluster: FakeCluster, time_: FakeTime
) -> None:
    """Clone trusts the observation the plan came from and its task's result; configure and
    start read their VM on its host. No ``find_vm`` (a listing of every VM) at all."""
    observed = await cluster.observe()
    clone = clone_action(101, fleet=FLEET, pool="p", target=None, storage=None)
    cfg = replace(configure(101, cores="4", tags="pd-lab;provisiond"), after=("clone:101",))
    start = Start(
        id="start:101", reason="new", after=("configure:101",), vmid=101, name="vm101",
        host="pve1",
    )  # fmt: skip
    report = await executor(cluster, time_).execute(
        Plan(actions=(clone, cfg, start)), desired=desired(101), observed=observed
    )
    assert [r.outcome for r in report.results] == [Outcome.SUCCEEDED] * 3
    assert cluster.mutating() == [("clone", 101), ("configure", 101), ("start", 101)]
    assert [r for r in cluster.reads if r[0] == "find_vm"] == []
    assert [r for r in cluster.reads if r[0] != "tasks"] == [("config", 101), ("status", 101)]
