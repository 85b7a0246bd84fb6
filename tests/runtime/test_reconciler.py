"""The reconciler loop against in-memory ports and a toy planner (the real planner is tested in
tests/core; the whole daemon against the simulator in tests/e2e)."""

from __future__ import annotations

import asyncio
import logging
import threading

import pytest
import structlog
from runtime_fakes import FakeCluster, FakeSpec
from runtime_fleet import TEMPLATE, clone_action, fleet_state
from structlog.testing import capture_logs

from provisiond.core.actions import Action, Start
from provisiond.core.desired import DesiredState
from provisiond.core.errors import SpecError, SpecIssue, TransientError
from provisiond.core.observed import ObservedState, Unobserved, VMStatus
from provisiond.core.plan import Plan, Waiting
from provisiond.runtime.executor import Executor, ExecutorConfig
from provisiond.runtime.reconciler import CycleResult, Reconciler
from provisiond.runtime.specwatch import SpecWatcher


def fleet(*vmids: int) -> DesiredState:
    return fleet_state(*vmids, pool="p", cores=2, memory_mib=2048)


def toy_plan(desired: DesiredState, observed: ObservedState) -> Plan:
    """Clone what is missing, start what is stopped, wait for what is locked."""
    have = {vm.vmid: vm for vm in observed.vms}
    actions: list[Action] = []
    waiting: list[Waiting] = []
    for d in desired.all_vms():
        vm = have.get(d.vmid)
        if vm is None:
            actions.append(
                clone_action(
                    d.vmid, name=d.name, fleet=d.fleet, pool=d.pool, target=None, storage=None
                )
            )
        elif vm.lock is not None:
            waiting.append(Waiting(f"locked ({vm.lock})", d.vmid, d.name))
        elif vm.status is VMStatus.STOPPED:
            actions.append(
                Start(
                    id=f"start:{d.vmid}", reason="stopped", vmid=d.vmid, name=d.name, host=vm.host
                )
            )
    actions.sort(key=lambda a: a.phase)
    return Plan(actions=tuple(actions), waiting=tuple(waiting))


class Recorder:
    def __init__(self) -> None:
        self.cycles: list[CycleResult] = []
        self.event = asyncio.Event()

    def cycle_finished(self, result: CycleResult) -> None:
        self.cycles.append(result)
        self.event.set()


@pytest.fixture
def cluster() -> FakeCluster:
    c = FakeCluster()
    c.add_vm(TEMPLATE, "tmpl", template=True)
    return c


def reconciler(
    cluster: FakeCluster, spec: FakeSpec, rec: Recorder | None = None, **kw: object
) -> Reconciler:
    ex = Executor(cluster, cluster, config=ExecutorConfig(poll_initial=0.001, poll_max=0.001))
    return Reconciler(spec, cluster, ex, toy_plan, listener=rec, **kw)  # type: ignore[arg-type]


async def until(rec: Recorder, pred: object, limit: float = 5.0) -> CycleResult:
    async def wait() -> CycleResult:
        while True:
            for c in rec.cycles:
                if pred(c):  # type: ignore[operator]
                    return c
            rec.event.clear()
            await rec.event.wait()

    return await asyncio.wait_for(wait(), limit)


async def test_converges_then_a_converged_world_makes_no_calls(cluster: FakeCluster) -> None:
    r = reconciler(cluster, FakeSpec(fleet(101, 102, 103)))
    first = await r.cycle()
    assert first.report is not None
    assert first.report.by_kind() == {"clone": 3}
    second = await r.cycle()
    assert second.report is not None
    assert second.report.by_kind() == {"start": 3}
    calls = len(cluster.calls)
    third = await r.cycle()
    assert third.converged
    assert third.report is None
    assert len(cluster.calls) == calls  # zero mutating calls on a converged world


async def test_daemon_loop_keeps_converging_without_waiting_for_the_timer(
    cluster: FakeCluster,
) -> None:
    rec = Recorder()
    r = reconciler(cluster, FakeSpec(fleet(101, 102)), rec, interval=3600, debounce=0.01)
    stop = asyncio.Event()
    loop = asyncio.create_task(r.run(stop))
    done = await until(rec, lambda c: c.converged)
    assert done.id == 3  # clone, start, check — each follow-up came at once
    stop.set()
    await asyncio.wait_for(loop, 1)


async def test_invalid_spec_on_reload_keeps_the_last_good_one(cluster: FakeCluster) -> None:
    spec = FakeSpec(fleet(101))
    r = reconciler(cluster, spec)
    await r.cycle()
    # The operator writes a bad spec that would drop vm101 and add vm102.
    spec.desired = fleet(102)
    spec.error = SpecError([SpecIssue("fleet.d/bad.yaml", 7, "spec.pools[0].vms[0].vmid", "bad")])
    spec.version += 1
    with capture_logs() as logs:
        result = await r.cycle()
    assert result.spec_error is spec.error
    assert result.desired == fleet(101)  # acted on the last good spec
    assert result.report is not None
    assert result.report.by_kind() == {"start": 1}
    assert 102 not in cluster.vms
    invalid = [e for e in logs if e["event"] == "spec_invalid"]
    assert invalid[0]["issues"] == ["fleet.d/bad.yaml:7: spec.pools[0].vms[0].vmid: bad"]
    assert invalid[0]["using"] == "last good spec"
    # Unchanged bad files are not reloaded each cycle; a fix is picked up.
    loads = spec.loads
    await r.cycle()
    assert spec.loads == loads
    spec.error = None
    spec.version += 1
    fixed = await r.cycle()
    assert fixed.spec_error is None
    assert fixed.desired == fleet(102)


class SlowSpec(FakeSpec):
    """A spec whose load blocks (in the reconciler's load thread) until the test releases it."""

    def __init__(self, desired: DesiredState) -> None:
        super().__init__(desired)
        self.entered = threading.Event()
        self.release = threading.Event()

    def load(self) -> DesiredState:
        self.entered.set()
        self.release.wait(10)
        return super().load()


async def test_a_stop_during_a_long_spec_load_abandons_it_and_keeps_the_last_good_one(
    cluster: FakeCluster,
) -> None:
    spec = SlowSpec(fleet(101))
    spec.release.set()
    r = reconciler(cluster, spec)
    await r.cycle()
    spec.release.clear()
    spec.entered.clear()
    spec.desired = fleet(102)
    spec.version += 1
    stop = asyncio.Event()
    cycle = asyncio.create_task(r.cycle(stop))
    assert await asyncio.to_thread(spec.entered.wait, 5)
    assert not cycle.done()  # the loop is free while the load runs
    stop.set()
    stopped = await asyncio.wait_for(cycle, 1)  # not waiting for the load
    assert stopped.error == "stopped during the spec load"
    assert stopped.desired == fleet(101)
    assert r.desired == fleet(101)  # the last good spec is kept
    assert cluster.vms.keys() == {TEMPLATE, 101}
    spec.release.set()
    await asyncio.sleep(0.05)  # the abandoned load ends; its result is dropped
    assert r.desired == fleet(101)
    loads = spec.loads
    again = await r.cycle()  # the next cycle loads the changed files again
    assert spec.loads == loads + 1
    assert again.desired == fleet(102)


async def test_no_valid_spec_at_start_is_an_error_not_a_crash(cluster: FakeCluster) -> None:
    spec = FakeSpec(None, error=SpecError([SpecIssue("f.yaml", 1, "", "empty")]))
    rec = Recorder()
    r = reconciler(cluster, spec, rec, interval=3600, debounce=0.01)
    stop = asyncio.Event()
    loop = asyncio.create_task(r.run(stop))
    first = await until(rec, lambda c: True)
    assert first.error == "no valid spec loaded yet"
    assert cluster.observe_count == 0  # nothing observed or planned without a spec
    spec.desired, spec.error = fleet(101), None
    spec.version += 1
    r.trigger("spec_changed")
    await until(rec, lambda c: c.converged)
    stop.set()
    await asyncio.wait_for(loop, 1)


async def test_a_failing_observation_fails_the_cycle_only(cluster: FakeCluster) -> None:
    class Flaky(FakeCluster):
        fail = True

        async def observe(self) -> ObservedState:
            if self.fail:
                self.fail = False
                raise TransientError("cluster/resources: 503")
            return await super().observe()

    flaky = Flaky(vms=dict(cluster.vms))
    r = reconciler(flaky, FakeSpec(fleet(101)))
    bad = await r.cycle()
    assert bad.error is not None
    assert "503" in bad.error
    assert bad.result == "error"
    good = await r.cycle()
    assert good.error is None
    assert good.report is not None


async def test_a_plan_from_an_incomplete_observation_is_not_convergence(
    cluster: FakeCluster,
) -> None:
    """A failed read (the resource list answered 503: every VM absent, nothing to plan but
    "unobserved") is no convergence: logged with ``unobserved``, looked at again soon."""

    class Blind(FakeCluster):
        blind = True

        async def observe(self) -> ObservedState:
            if self.blind:
                self.blind = False
                return ObservedState(unobserved=Unobserved(lists=("cluster/resources",)))
            return await super().observe()

    def nothing_to_do(desired: DesiredState, observed: ObservedState) -> Plan:
        return Plan()

    blind = Blind(vms=dict(cluster.vms))
    ex = Executor(blind, blind)
    r = Reconciler(FakeSpec(fleet()), blind, ex, nothing_to_do, interval=3600, follow_up=0.01)
    config = structlog.get_config()  # another test may have left a warning-level filter
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.INFO))
    try:
        with capture_logs() as logs:
            first = await r.cycle()
    finally:
        structlog.configure(**config)
    assert first.plan is not None
    assert first.plan.empty
    assert first.incomplete == ("cluster/resources",)
    assert not first.converged
    assert first.result == "requeue"
    assert r._next_delay(first) == 5.0  # not the hour-long interval
    ready = next(e for e in logs if e["event"] == "plan_ready")
    assert ready["unobserved"] == ["cluster/resources"]
    second = await r.cycle()
    assert second.converged
    assert second.result == "success"
    assert r._next_delay(second) == 3600


async def test_read_only_observes_and_plans_but_never_acts(cluster: FakeCluster) -> None:
    r = reconciler(cluster, FakeSpec(fleet(101)), read_only=True)
    result = await r.cycle()
    assert result.plan is not None
    assert len(result.plan.actions) == 1
    assert result.report is None
    assert cluster.calls == []


async def test_triggers_are_debounced_into_one_cycle(cluster: FakeCluster) -> None:
    rec = Recorder()
    r = reconciler(cluster, FakeSpec(fleet()), rec, interval=3600, debounce=0.05)
    stop = asyncio.Event()
    loop = asyncio.create_task(r.run(stop))
    await until(rec, lambda c: c.id == 1)
    for i in range(10):
        r.trigger(f"watch-{i}")
    second = await until(rec, lambda c: c.id == 2)
    assert second.triggers == tuple(f"watch-{i}" for i in range(10))
    await asyncio.sleep(0.1)
    assert len(rec.cycles) == 2  # one cycle for the burst, then the hour-long timer
    stop.set()
    await asyncio.wait_for(loop, 1)


async def test_the_timer_guarantees_a_cycle(cluster: FakeCluster) -> None:
    rec = Recorder()
    r = reconciler(cluster, FakeSpec(fleet()), rec, interval=0.02)
    stop = asyncio.Event()
    loop = asyncio.create_task(r.run(stop))
    third = await until(rec, lambda c: c.id == 3)
    assert third.triggers == ("timer",)
    stop.set()
    await asyncio.wait_for(loop, 1)


async def test_reload_swaps_the_spec_source(cluster: FakeCluster) -> None:
    r = reconciler(cluster, FakeSpec(fleet(101)))
    await r.cycle()
    r.reload(FakeSpec(fleet(101, 102)))
    result = await r.cycle()
    assert "reload" in result.triggers
    assert result.desired == fleet(101, 102)


async def test_spec_watcher_triggers_on_change(cluster: FakeCluster) -> None:
    spec = FakeSpec(fleet())
    r = reconciler(cluster, spec)
    watcher = SpecWatcher(r, interval=0.01)
    stop = asyncio.Event()
    task = asyncio.create_task(watcher.run(stop))
    await asyncio.sleep(0.05)
    assert r._triggers.reasons == []
    spec.version += 1
    await asyncio.sleep(0.05)
    assert r._triggers.reasons == ["spec_changed"]
    stop.set()
    await asyncio.wait_for(task, 1)


async def test_stop_during_a_cycle_ends_the_loop_promptly(cluster: FakeCluster) -> None:
    cluster.task_polls = 10**6  # clones that never finish
    rec = Recorder()
    r = reconciler(cluster, FakeSpec(fleet(101, 102)), rec)
    stop = asyncio.Event()
    loop = asyncio.create_task(r.run(stop))
    for _ in range(500):
        if len(cluster.calls) >= 2:
            break
        await asyncio.sleep(0.01)
    stop.set()
    await asyncio.wait_for(loop, 1)
    (only,) = rec.cycles
    assert only.report is not None
    assert only.report.counts()["interrupted"] == 2
