"""The executor against in-memory ports: adoption, retries, requeue, backoff, limits, stop."""

from __future__ import annotations

import asyncio
import random
from dataclasses import replace

import pytest
from runtime_fakes import FakeCluster, FakeTime
from runtime_fleet import TEMPLATE, clone_action, fleet_state

from provisiond.core.actions import (
    Action,
    Clone,
    Configure,
    Destroy,
    GpuMove,
    Label,
    Migrate,
    MoveStep,
    Shutdown,
    Start,
)
from provisiond.core.desired import (
    DesiredState,
    Policy,
    ownership_marker,
)
from provisiond.core.errors import TransientError, UnclassifiedError
from provisiond.core.observed import ObservedVM, VMConfig, VMStatus
from provisiond.core.plan import Plan
from provisiond.runtime.executor import Executor, ExecutorConfig
from provisiond.runtime.results import ActionResult, Outcome

FLEET = "lab"


def clone(vmid: int, *, host: str = "pve1", after: tuple[str, ...] = ()) -> Clone:
    return clone_action(
        vmid, fleet=FLEET, pool="workers", target=host, storage="local", after=after
    )


def configure(vmid: int, *, host: str = "pve1") -> Configure:
    return Configure(
        id=f"configure:{vmid}",
        reason="drift",
        after=(f"clone:{vmid}",),
        vmid=vmid,
        name=f"vm{vmid}",
        host=host,
        values={"cores": "4", "tags": f"provisiond;pd-{FLEET}"},
    )


def start(vmid: int, *, host: str = "pve1") -> Start:
    return Start(
        id=f"start:{vmid}",
        reason="stopped",
        after=(f"configure:{vmid}",),
        vmid=vmid,
        name=f"vm{vmid}",
        host=host,
    )


def new_vm(vmid: int, host: str = "pve1") -> list[Action]:
    return [clone(vmid, host=host), configure(vmid, host=host), start(vmid, host=host)]


def migrate(vmid: int, source: str = "pve1", target: str = "pve2") -> Migrate:
    return Migrate(
        id=f"migrate:{vmid}",
        reason="balance",
        vmid=vmid,
        name=f"vm{vmid}",
        source=source,
        target=target,
        online=True,
    )


def desired(*vmids: int, pool: str = "workers", **policy: int) -> DesiredState:
    return fleet_state(
        *vmids,
        fleet=FLEET,
        pool=pool,
        cores=4,
        memory_mib=4096,
        policy=Policy(**policy),  # type: ignore[arg-type]
    )


def owned(cluster: FakeCluster, vmid: int, host: str = "pve1", **kw: object) -> None:
    cluster.add_vm(vmid, f"vm{vmid}", host, tags=("pd-lab", "provisiond"), **kw)  # type: ignore[arg-type]


class NoConfigReads(FakeCluster):
    """A fresh read that shows a VM but not its config (no ownership marker visible)."""

    async def find_vm(self, vmid: int) -> ObservedVM | None:
        vm = await super().find_vm(vmid)
        return None if vm is None else replace(vm, config=None)


@pytest.fixture
def time_() -> FakeTime:
    return FakeTime()


@pytest.fixture
def cluster() -> FakeCluster:
    c = FakeCluster()
    c.add_vm(TEMPLATE, "tmpl", "pve1", template=True)
    return c


def executor(cluster: FakeCluster, time_: FakeTime, **cfg: float) -> Executor:
    return Executor(
        cluster,
        cluster,
        config=ExecutorConfig(**cfg),  # type: ignore[arg-type]
        clock=time_.clock,
        sleep=time_.sleep,
        rng=random.Random(7),
    )


def outcomes(report_results: tuple[ActionResult, ...]) -> dict[str, Outcome]:
    return {r.action.id: r.outcome for r in report_results}


async def test_new_vm_is_cloned_with_marker_configured_and_started(
    cluster: FakeCluster, time_: FakeTime
) -> None:
    report = await executor(cluster, time_).execute(Plan(actions=tuple(new_vm(101))))
    assert outcomes(report.results) == {
        "clone:101": Outcome.SUCCEEDED,
        "configure:101": Outcome.SUCCEEDED,
        "start:101": Outcome.SUCCEEDED,
    }
    assert cluster.mutating() == [("clone", 101), ("configure", 101), ("start", 101)]
    vm = cluster.vms[101]
    assert vm.status is VMStatus.RUNNING
    assert vm.lock is None
    assert vm.tags == ("pd-lab", "provisiond")
    assert report.counts()["succeeded"] == 3
    assert report.by_kind() == {"clone": 1, "configure": 1, "start": 1}


async def test_placeholder_locked_by_clone_is_waited_for_and_adopted(
    cluster: FakeCluster, time_: FakeTime
) -> None:
    # A clone POSTed by a previous process: placeholder locked, qmclone under the template's id.
    cluster.task_polls = 4
    await cluster.clone(
        template_host="pve1",
        template_vmid=TEMPLATE,
        newid=101,
        name="vm101",
        description=ownership_marker(FLEET, "vm101"),
        target="pve1",
        full=True,
        storage=None,
        pool=None,
    )
    cluster.calls.clear()
    report = await executor(cluster, time_).execute(Plan(actions=(clone(101),)))
    assert outcomes(report.results) == {"clone:101": Outcome.ADOPTED}
    assert cluster.mutating("clone") == []  # never cloned twice
    assert cluster.vms[101].lock is None
    assert len(time_.sleeps) >= 2  # it waited for the lock to clear


async def test_clone_of_our_template_running_without_vmid_is_waited_for(
    cluster: FakeCluster, time_: FakeTime
) -> None:
    # The POST was accepted before a crash but the placeholder is not there yet.
    cluster.task_polls = 3
    marker = VMConfig(description=ownership_marker(FLEET, "vm101"))
    cluster._task(
        "pve1", "qmclone", TEMPLATE, 101, lambda: cluster.add_vm(101, "vm101", config=marker)
    )
    report = await executor(cluster, time_, poll_initial=1.0).execute(Plan(actions=(clone(101),)))
    assert outcomes(report.results) == {"clone:101": Outcome.ADOPTED}
    assert cluster.mutating("clone") == []
    assert time_.sleeps == [1.0, 1.5]  # poll backoff while waiting


async def test_vmid_held_by_a_vm_we_do_not_own_is_a_conflict_never_touched(
    cluster: FakeCluster, time_: FakeTime
) -> None:
    cluster.add_vm(101, "someone-elses", config=VMConfig(description="hand-made"))
    report = await executor(cluster, time_).execute(Plan(actions=tuple(new_vm(101))))
    res = {r.action.id: r for r in report.results}
    assert res["clone:101"].outcome is Outcome.FAILED
    assert "does not own" in res["clone:101"].detail
    assert res["configure:101"].outcome is Outcome.SKIPPED
    assert cluster.mutating() == []


async def test_stuck_clone_placeholder_is_reported_never_unlocked(
    cluster: FakeCluster, time_: FakeTime
) -> None:
    cluster.add_vm(101, "vm101", lock="clone")  # no qmclone task runs
    report = await executor(cluster, time_).execute(Plan(actions=(clone(101),)))
    (r,) = report.results
    assert r.outcome is Outcome.FAILED
    assert "stuck" in r.detail
    assert cluster.vms[101].lock == "clone"
    assert cluster.mutating() == []


async def test_transient_errors_are_retried_with_jittered_exponential_backoff(
    cluster: FakeCluster, time_: FakeTime
) -> None:
    cluster.faults["start"] = [TransientError("503 busy"), TransientError("595 no route")]
    owned(cluster, 101)
    ex = executor(cluster, time_, retry_initial=0.5, retry_max=10.0, poll_initial=0.25)
    report = await ex.execute(
        Plan(actions=(Start(id="s", reason="r", vmid=101, name="vm101", host="pve1"),))
    )
    assert outcomes(report.results) == {"s": Outcome.SUCCEEDED}
    retry_sleeps = time_.sleeps[:2]
    assert 0 <= retry_sleeps[0] <= 0.5
    assert 0 <= retry_sleeps[1] <= 1.0
    assert cluster.mutating("start") == [("start", 101)]


async def test_at_most_five_attempts_then_failed_and_the_vm_backs_off(
    cluster: FakeCluster, time_: FakeTime
) -> None:
    owned(cluster, 101)
    cluster.faults["configure"] = [TransientError("500 got timeout")] * 20
    ex = executor(cluster, time_, backoff_base=5.0, backoff_max=300.0)
    act = Configure(id="c", reason="r", vmid=101, name="vm101", host="pve1", values={"cores": "4"})
    attempts_before = len(cluster.faults["configure"])
    report = await ex.execute(Plan(actions=(act,)))
    assert attempts_before - len(cluster.faults["configure"]) == 5
    (r,) = report.results
    assert r.outcome is Outcome.FAILED
    assert r.retry_after == 5.0
    # The next cycle leaves the VM alone while it backs off, then tries again.
    again = await ex.execute(Plan(actions=(act,)))
    assert again.results[0].outcome is Outcome.SKIPPED
    assert "backing off" in again.results[0].detail
    assert attempts_before - len(cluster.faults["configure"]) == 5
    time_.now += 5.0
    third = await ex.execute(Plan(actions=(act,)))
    assert third.results[0].outcome is Outcome.FAILED
    assert third.results[0].retry_after == 10.0  # doubled
    delays = [ex.backoff.failed(101) for _ in range(10)]
    assert delays[-1] == 300.0  # capped at five minutes


async def test_unclassified_500_is_retried_twice_then_permanent(
    cluster: FakeCluster, time_: FakeTime
) -> None:
    owned(cluster, 101)
    cluster.faults["configure"] = [UnclassifiedError("500 something odd")] * 10
    act = Configure(id="c", reason="r", vmid=101, name="vm101", host="pve1", values={"cores": "4"})
    report = await executor(cluster, time_).execute(Plan(actions=(act,)))
    assert 10 - len(cluster.faults["configure"]) == 3
    assert report.results[0].outcome is Outcome.FAILED
    assert "gave up" in report.results[0].detail


async def test_clone_post_that_timed_out_but_was_accepted_is_never_reposted(
    cluster: FakeCluster, time_: FakeTime
) -> None:
    cluster.faults["clone"] = [TransientError("POST clone: timed out")]
    cluster.accept_then_fail.add("clone")  # the server did it; the answer got lost
    report = await executor(cluster, time_).execute(Plan(actions=tuple(new_vm(101))))
    assert cluster.mutating("clone") == [("clone", 101)]
    res = outcomes(report.results)
    assert res["clone:101"] is Outcome.ADOPTED
    assert res["start:101"] is Outcome.SUCCEEDED
    assert cluster.vms[101].status is VMStatus.RUNNING


async def test_migrate_post_that_timed_out_is_observed_before_retrying(
    cluster: FakeCluster, time_: FakeTime
) -> None:
    owned(cluster, 101, status=VMStatus.RUNNING)
    cluster.faults["migrate"] = [TransientError("POST migrate: timed out")]
    cluster.accept_then_fail.add("migrate")
    report = await executor(cluster, time_).execute(
        Plan(actions=(migrate(101),)), desired=desired(101)
    )
    assert cluster.mutating("migrate") == [("migrate", 101)]
    assert report.results[0].outcome is Outcome.SUCCEEDED
    assert cluster.vms[101].host == "pve2"


async def test_locked_vm_is_requeued_not_failed_and_never_unlocked(
    cluster: FakeCluster, time_: FakeTime
) -> None:
    owned(cluster, 101, lock="backup")
    acts = (
        Configure(id="c", reason="r", vmid=101, name="vm101", host="pve1", values={"cores": "4"}),
        Start(id="s", reason="r", after=("c",), vmid=101, name="vm101", host="pve1"),
    )
    ex = executor(cluster, time_, requeue_after=10.0)
    report = await ex.execute(Plan(actions=acts))
    res = {r.action.id: r for r in report.results}
    assert res["c"].outcome is Outcome.REQUEUED
    assert res["c"].retry_after == 10.0
    assert res["s"].outcome is Outcome.SKIPPED
    assert report.failed == ()
    assert ex.backoff.remaining(101) == 0  # a lock is not a failure
    assert cluster.vms[101].lock == "backup"


async def test_a_permanent_error_fails_one_vm_and_the_others_converge(
    cluster: FakeCluster, time_: FakeTime
) -> None:
    cluster.task_failures[("qmclone", 102)] = "clone failed: storage 'local' is full"
    plan = Plan(actions=(*new_vm(101), *new_vm(102), *new_vm(103)))
    report = await executor(cluster, time_).execute(plan, desired=desired(101, 102, 103))
    res = {r.action.id: r for r in report.results}
    assert res["clone:102"].outcome is Outcome.FAILED
    assert "storage 'local' is full" in res["clone:102"].detail
    assert "task log:" in res["clone:102"].detail  # the log's last lines are attached
    assert res["start:101"].outcome is Outcome.SUCCEEDED
    assert res["start:103"].outcome is Outcome.SUCCEEDED
    assert res["configure:102"].outcome is Outcome.SKIPPED
    assert 102 not in cluster.vms  # the failed clone removed its placeholder


async def test_task_wait_gives_up_after_the_timeout_without_reposting(
    cluster: FakeCluster, time_: FakeTime
) -> None:
    cluster.task_polls = 10_000
    ex = executor(cluster, time_, task_timeout=30.0, poll_max=5.0)
    report = await ex.execute(Plan(actions=(clone(101),)))
    (r,) = report.results
    assert r.outcome is Outcome.FAILED
    assert "still running" in r.detail
    assert cluster.mutating("clone") == [("clone", 101)]
    assert 30.0 <= sum(time_.sleeps) <= 36.0


@pytest.mark.parametrize(
    ("setup", "expect", "detail"),
    [
        ({"host": "pve2"}, Outcome.ADOPTED, "already on pve2"),
        ({"lock": "backup"}, Outcome.REQUEUED, "locked (backup)"),
        ({"tags": ()}, Outcome.FAILED, "not owned"),
        ({"tags": ("pd-other", "provisiond")}, Outcome.FAILED, "owned by fleet other"),
        ({"tags": ("pd-lab", "pd-paused", "provisiond")}, Outcome.FAILED, "paused"),
        ({"host": "pve3"}, Outcome.SKIPPED, "on neither pve1 nor pve2: replanning"),
    ],
)
async def test_migrate_rereads_the_vm_right_before(
    cluster: FakeCluster,
    time_: FakeTime,
    setup: dict[str, object],
    expect: Outcome,
    detail: str,
) -> None:
    kw: dict[str, object] = {"tags": ("pd-lab", "provisiond"), "status": VMStatus.RUNNING}
    kw.update(setup)
    host = str(kw.pop("host", "pve1"))
    cluster.add_vm(101, "vm101", host, **kw)
    report = await executor(cluster, time_).execute(
        Plan(actions=(migrate(101),)), desired=desired(101)
    )
    (r,) = report.results
    assert r.outcome is expect
    assert detail in r.detail
    assert cluster.mutating("migrate") == []


async def test_running_migration_is_adopted(cluster: FakeCluster, time_: FakeTime) -> None:
    owned(cluster, 101, status=VMStatus.RUNNING)
    await cluster.migrate(host="pve1", vmid=101, target="pve2", online=True, with_local_disks=False)
    cluster.calls.clear()
    report = await executor(cluster, time_).execute(
        Plan(actions=(migrate(101),)), desired=desired(101)
    )
    assert report.results[0].outcome is Outcome.ADOPTED
    assert cluster.mutating() == []
    assert cluster.vms[101].host == "pve2"


async def test_shutdown_and_destroy_check_ownership_first(
    cluster: FakeCluster, time_: FakeTime
) -> None:
    cluster.add_vm(101, "vm101", status=VMStatus.RUNNING)  # no tags, no marker
    owned(cluster, 102, status=VMStatus.RUNNING)
    cluster.add_vm(103, "vm103", status=VMStatus.RUNNING, tags=("pd-other", "provisiond"))
    acts = (
        Shutdown(id="sd", reason="r", vmid=101, name="vm101", host="pve1"),
        Destroy(
            id="d1", reason="r", vmid=103, name="vm103", host="pve1", fleet=FLEET, running=True
        ),
        Destroy(
            id="d2", reason="r", vmid=102, name="vm102", host="pve1", fleet=FLEET, running=True
        ),
    )
    report = await executor(cluster, time_).execute(Plan(actions=acts))
    res = {r.action.id: r for r in report.results}
    assert res["sd"].outcome is Outcome.FAILED
    assert res["d1"].outcome is Outcome.FAILED
    assert "owner is other" in res["d1"].detail
    assert 101 in cluster.vms
    assert 103 in cluster.vms
    assert res["d2"].outcome is Outcome.SUCCEEDED
    assert cluster.mutating() == [("stop", 102), ("destroy", 102)]


async def test_kubernetes_actions_fail_loudly_without_a_kubernetes_port(
    cluster: FakeCluster, time_: FakeTime
) -> None:
    owned(cluster, 101, status=VMStatus.RUNNING)
    acts = (
        Label(id="l", reason="r", node="n1", vmid=102, labels={"a": "b"}, managed="{}"),
        GpuMove(
            id="g",
            reason="r",
            vmid=101,
            name="vm101",
            source="pve1",
            target="pve2",
            node="n1",
            steps=(MoveStep.CORDON, MoveStep.SHUTDOWN, MoveStep.MIGRATE_OFFLINE, MoveStep.START),
        ),
    )
    report = await executor(cluster, time_).execute(Plan(actions=acts), desired=desired(101))
    for r in report.results:
        assert r.outcome is Outcome.FAILED
        assert "Kubernetes is not configured" in r.detail
    assert cluster.mutating() == []  # the GPU move did not shut the VM down first


async def test_gpu_move_resumes_mid_way(cluster: FakeCluster, time_: FakeTime) -> None:
    # A crash after the offline migration: the VM is stopped on the target already.
    owned(cluster, 101, host="pve2", status=VMStatus.STOPPED)
    move = GpuMove(
        id="g",
        reason="r",
        vmid=101,
        name="vm101",
        source="pve1",
        target="pve2",
        node=None,
        steps=(MoveStep.SHUTDOWN, MoveStep.MIGRATE_OFFLINE, MoveStep.START),
    )
    report = await executor(cluster, time_).execute(Plan(actions=(move,)), desired=desired(101))
    assert report.results[0].outcome is Outcome.SUCCEEDED
    assert cluster.mutating() == [("start", 101)]
    assert cluster.vms[101].status is VMStatus.RUNNING


async def test_global_and_per_host_limits(cluster: FakeCluster, time_: FakeTime) -> None:
    cluster.task_polls = 30
    vmids = range(101, 113)
    plan = Plan(actions=tuple(clone(v, host=f"pve{v % 3 + 1}") for v in vmids))
    ex = executor(cluster, time_)
    report = await ex.execute(
        plan, desired=desired(*vmids, max_concurrent_actions=4, max_concurrent_per_host=1)
    )
    assert all(r.outcome is Outcome.SUCCEEDED for r in report.results)
    assert cluster.max_in_flight == 3  # per-host 1 on three hosts caps below the global 4
    cluster2 = FakeCluster(task_polls=30)
    cluster2.add_vm(TEMPLATE, "tmpl", template=True)
    await executor(cluster2, time_).execute(
        plan, desired=desired(*vmids, max_concurrent_actions=4, max_concurrent_per_host=10)
    )
    assert cluster2.max_in_flight == 4


async def test_disruptions_are_limited_per_pool(cluster: FakeCluster, time_: FakeTime) -> None:
    for v in (101, 102, 103):
        owned(cluster, v, status=VMStatus.RUNNING)
    cluster.task_polls = 30
    plan = Plan(actions=tuple(migrate(v) for v in (101, 102, 103)))
    report = await executor(cluster, time_).execute(
        plan, desired=desired(101, 102, 103, max_disruptions_per_pool=1, max_disruptions=5)
    )
    assert all(r.outcome is Outcome.SUCCEEDED for r in report.results)
    assert cluster.max_in_flight == 1


async def test_stop_interrupts_task_waits_and_starts_nothing_new(
    cluster: FakeCluster, time_: FakeTime
) -> None:
    cluster.task_polls = 10_000
    stop = asyncio.Event()
    ex = Executor(cluster, cluster, config=ExecutorConfig(poll_initial=0.01, poll_max=0.01))
    plan = Plan(actions=(*new_vm(101), clone(102), clone(103), clone(104), clone(105)))
    want = desired(101, 102, 103, 104, 105, max_concurrent_per_host=10)
    run = asyncio.create_task(ex.execute(plan, desired=want, stop=stop))
    await asyncio.sleep(0.05)
    stop.set()
    report = await asyncio.wait_for(run, 1.0)
    res = outcomes(report.results)
    assert res["clone:101"] is Outcome.INTERRUPTED
    assert res["configure:101"] is Outcome.SKIPPED
    assert res["clone:105"] is Outcome.SKIPPED  # beyond the global limit of 4: never started
    assert len(cluster.mutating("clone")) == 4


async def test_configure_of_a_vm_not_on_its_host_is_replanned(
    cluster: FakeCluster, time_: FakeTime
) -> None:
    act = Configure(id="c", reason="r", vmid=404, name="x", host="pve1", values={"cores": "2"})
    report = await executor(cluster, time_).execute(Plan(actions=(act,)))
    assert report.results[0].outcome is Outcome.SKIPPED
    assert "not on pve1 (any more); replanning" in report.results[0].detail
    assert cluster.mutating() == []


async def test_a_vmid_that_appeared_unverifiable_is_left_to_the_next_observation(
    cluster: FakeCluster, time_: FakeTime
) -> None:
    # A fresh read shows the VM but not its config (no marker visible): never configure it now.
    cluster.add_vm(101, "vm101", config=None)
    report = await executor(cluster, time_).execute(Plan(actions=tuple(new_vm(101))))
    res = {r.action.id: r for r in report.results}
    assert res["clone:101"].outcome is Outcome.SKIPPED
    assert "next observation" in res["clone:101"].detail
    assert res["clone:101"].retry_after == 0.0
    assert res["configure:101"].outcome is Outcome.SKIPPED
    assert cluster.mutating() == []


async def test_our_own_clone_is_ours_even_when_the_read_shows_no_config(
    cluster: FakeCluster, time_: FakeTime
) -> None:
    blind = NoConfigReads(vms=dict(cluster.vms))
    report = await executor(blind, time_).execute(Plan(actions=tuple(new_vm(101))))
    assert {r.outcome for r in report.results} == {Outcome.SUCCEEDED}


async def test_a_vm_cloned_in_this_run_may_be_migrated_before_its_tags_exist(
    cluster: FakeCluster, time_: FakeTime
) -> None:
    blind = NoConfigReads(vms=dict(cluster.vms))
    blind.add_vm(102, "vm102", config=None)  # untagged, unreadable, not cloned by us
    plan = Plan(
        actions=(
            clone(101, host="pve1"),
            replace(migrate(101), after=("clone:101",)),
            migrate(102),
        )
    )
    report = await executor(blind, time_).execute(plan, desired=desired(101, 102))
    res = {r.action.id: r for r in report.results}
    assert res["migrate:101"].outcome is Outcome.SUCCEEDED
    assert blind.vms[101].host == "pve2"
    assert res["migrate:102"].outcome is Outcome.FAILED
    assert "not owned" in res["migrate:102"].detail


async def test_a_failed_start_task_whose_effect_is_there_is_success(
    cluster: FakeCluster, time_: FakeTime
) -> None:
    # A retried start POST (its first answer lost) finds the VM already started: the task fails
    # with "already running", but the VM runs — the effect is what counts.
    owned(cluster, 101)
    cluster.task_failures[("qmstart", 101)] = "VM 101 already running"
    cluster.after_task[("qmstart", 101)] = lambda: cluster._set(101, status=VMStatus.RUNNING)
    start = Start(id="s", reason="r", vmid=101, name="vm101", host="pve1")
    report = await executor(cluster, time_).execute(Plan(actions=(start,)))
    assert outcomes(report.results)["s"] is Outcome.SUCCEEDED


async def test_a_failed_start_task_without_its_effect_fails(
    cluster: FakeCluster, time_: FakeTime
) -> None:
    owned(cluster, 101)
    cluster.task_failures[("qmstart", 101)] = "start failed: QEMU exited with code 1"
    start = Start(id="s", reason="r", vmid=101, name="vm101", host="pve1")
    report = await executor(cluster, time_).execute(Plan(actions=(start,)))
    assert outcomes(report.results)["s"] is Outcome.FAILED
    assert "QEMU exited with code 1" in report.results[0].detail
