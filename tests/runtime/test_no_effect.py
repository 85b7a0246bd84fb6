"""No hot loop (issue 13, point 6b): an action that succeeds without effect is retried with
growing delays, the limit is forgotten when the VM changes, and cycles are capped globally.

The fake writer accepts a ``cores`` write and does nothing (``FakeCluster.configure`` applies
only tags) — as PVE does with a value it keeps pending, or a set hidden by a pending delete.
Time is fake: the loop is driven cycle by cycle, advancing the clock by the reconciler's own
next delay, so the delays are asserted exactly and nothing sleeps.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from dataclasses import replace

import structlog
from runtime_fakes import FakeCluster, FakeSpec, FakeTime
from runtime_fleet import fleet_state
from structlog.testing import capture_logs

from provisiond.core.actions import Action, Configure, Start
from provisiond.core.desired import DesiredState
from provisiond.core.observed import ObservedState, VMStatus
from provisiond.core.plan import Plan
from provisiond.runtime.backoff import CycleRate, RepeatLimiter
from provisiond.runtime.executor import Executor, ExecutorConfig
from provisiond.runtime.reconciler import Reconciler
from provisiond.runtime.results import ActionResult, Outcome

VMID = 101


def desired() -> DesiredState:
    return fleet_state(VMID, pool="p", cores=4, memory_mib=2048)


def cores_planner(desired: DesiredState, observed: ObservedState) -> Plan:
    """Set the cores of every VM whose observed cores differ from the spec's."""
    want = {d.vmid: d for d in desired.all_vms()}
    actions: list[Action] = []
    for vm in observed.vms:
        d = want.get(vm.vmid)
        if d is not None and vm.cores != d.cores:
            actions.append(
                Configure(
                    id=f"configure:{vm.vmid}",
                    reason="cores drift",
                    vmid=vm.vmid,
                    name=vm.name,
                    host=vm.host,
                    values={"cores": str(d.cores)},
                )
            )
    return Plan(actions=tuple(actions))


class Listener:
    def __init__(self) -> None:
        self.results: list[ActionResult] = []

    def plan_started(self, plan: Plan) -> None:
        pass

    def action_started(self, action: Action) -> None:
        pass

    def action_finished(self, result: ActionResult) -> None:
        self.results.append(result)


def setup() -> tuple[FakeCluster, FakeTime, Reconciler, Listener]:
    cluster = FakeCluster()
    cluster.add_vm(VMID, "vm101", tags=("pd-lab", "provisiond"))  # 2 cores; the spec wants 4
    time_ = FakeTime()
    listener = Listener()
    ex = Executor(cluster, cluster, clock=time_.clock, sleep=time_.sleep, listener=listener)
    r = Reconciler(
        FakeSpec(desired()), cluster, ex, cores_planner, interval=60.0, clock=time_.clock
    )
    return cluster, time_, r, listener


async def run_for(r: Reconciler, time_: FakeTime, seconds: float, on_write: list[float]) -> None:
    """The daemon's loop in fake time: a cycle, then the reconciler's own next delay."""
    end = time_.now + seconds
    while time_.now < end:
        result = await r.cycle()
        if result.report is not None:
            on_write.extend(
                time_.now for x in result.report.results if x.outcome is Outcome.SUCCEEDED
            )
        time_.now += r.next_delay(result)


async def test_a_write_without_effect_is_retried_with_growing_delays() -> None:
    cluster, time_, r, listener = setup()
    start = time_.now
    writes: list[float] = []
    config = structlog.get_config()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.INFO))
    try:
        with capture_logs() as logs:
            await run_for(r, time_, 3600.0, writes)
    finally:
        structlog.configure(**config)
    # Before: every cycle "progressed", the next came after the 0.1 s debounce: ~36,000 writes.
    assert len(cluster.mutating("configure")) == len(writes) <= 14
    gaps = [round(b - a, 1) for a, b in itertools.pairwise(writes)]
    # 1 s doubling (+ the 0.1 s debounce to notice each), then every (capped) 60 s timer tick
    # until the 15 min limit; never a tight loop.
    assert gaps[:6] == [1.1, 2.1, 4.1, 8.1, 16.1, 32.1]
    assert all(b >= a for a, b in itertools.pairwise(gaps))
    assert writes[0] == start
    noted = [e for e in logs if e["event"] == "action_no_effect"]
    assert len(noted) == 1  # logged once per streak, with the object and the key
    assert noted[0]["vm"] == VMID
    assert noted[0]["keys"] == ["cores"]
    assert noted[0]["action_id"] == "configure:101"
    # Counted once per wasted run (not per skip): each write was judged by the next cycle.
    counted = [x for x in listener.results if x.no_effect]
    assert r._executor.no_effect_total == len(counted) == len(writes)
    assert [x.retry_after for x in counted][:11] == [2.0**n for n in range(10)] + [900.0]
    assert all(x.outcome is Outcome.SKIPPED for x in counted)


async def test_the_limit_is_forgotten_when_the_vm_changes() -> None:
    cluster, time_, r, _ = setup()
    writes: list[float] = []
    await run_for(r, time_, 100.0, writes)
    streak = len(writes)
    # Someone changes the VM by hand (memory): the next cycle acts at once.
    cluster.vms[VMID] = replace(cluster.vms[VMID], memory_mib=4096)
    result = await r.cycle()
    assert result.report is not None
    assert [x.outcome for x in result.report.results] == [Outcome.SUCCEEDED]
    assert len(cluster.mutating("configure")) == streak + 1


async def test_an_action_with_effect_is_never_limited() -> None:
    """Started, seen running (nothing planned), stopped by hand: started again at once, though
    the VM looks exactly as it did the first time."""
    cluster = FakeCluster()
    cluster.add_vm(VMID, "vm101", tags=("pd-lab", "provisiond"))
    time_ = FakeTime()

    def start_stopped(desired: DesiredState, observed: ObservedState) -> Plan:
        return Plan(
            actions=tuple(
                Start(id=f"start:{v.vmid}", reason="stopped", vmid=v.vmid, name=v.name, host="pve1")
                for v in observed.vms
                if v.status is VMStatus.STOPPED
            )
        )

    ex = Executor(cluster, cluster, clock=time_.clock, sleep=time_.sleep)
    r = Reconciler(FakeSpec(desired()), cluster, ex, start_stopped, clock=time_.clock)
    for _ in range(3):
        started = await r.cycle()
        assert started.report is not None
        assert started.report.results[0].outcome is Outcome.SUCCEEDED
        assert (await r.cycle()).converged
        cluster.vms[VMID] = replace(cluster.vms[VMID], status=VMStatus.STOPPED)
    assert ex.no_effect_total == 0


def test_repeat_limiter_doubles_up_to_its_maximum() -> None:
    time_ = FakeTime()
    lim = RepeatLimiter(clock=time_.clock, base=1.0, maximum=900.0)
    waits = []
    for _ in range(12):
        assert lim.admit("k", "a", "s").wait == 0.0  # new, or its wait is over: go
        lim.ran("k", "a", "s")
        seen = lim.admit("k", "a", "s")
        assert seen.no_effect
        waits.append(seen.wait)
        time_.now += seen.wait
    assert waits == [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 900, 900]
    assert lim.admit("k", "a", "other state").wait == 0.0  # forgotten on change
    lim.ran("k", "a", "other state")
    assert lim.admit("k", "b", "other state") == lim.admit("k", "b", "other state")


def test_cycle_rate_is_a_token_bucket() -> None:
    time_ = FakeTime()
    rate = CycleRate(clock=time_.clock, rate=2.0, burst=3.0)
    for _ in range(3):
        assert rate.delay() == 0.0
        rate.take()
    assert rate.delay() == 0.5
    time_.now += 0.5
    assert rate.delay() == 0.0


async def test_the_loop_never_exceeds_the_cycle_cap() -> None:
    """A planner that always finds work that "progresses" at once (debounce 0): without the
    cap this spins as fast as the loop can; with 10 cycles/s after a burst of 1, at most
    ~1 + 10 x the seconds run (an upper bound: CPU load only lowers it)."""
    cluster = FakeCluster()
    cluster.add_vm(VMID, "vm101")

    def restart(desired: DesiredState, observed: ObservedState) -> Plan:
        cluster.vms[VMID] = replace(cluster.vms[VMID], status=VMStatus.STOPPED, memory_mib=0)
        start = Start(id="start:101", reason="x", vmid=VMID, name="vm101", host="pve1")
        return Plan(actions=(start,))

    cycles = 0

    class Count:
        def cycle_finished(self, result: object) -> None:
            nonlocal cycles
            cycles += 1

    ex = Executor(cluster, cluster, config=ExecutorConfig(poll_initial=0.0, poll_max=0.0))
    r = Reconciler(
        FakeSpec(desired()),
        cluster,
        ex,
        restart,
        debounce=0.0,
        max_cycle_rate=10.0,
        cycle_burst=1.0,
        listener=Count(),
    )
    stop = asyncio.Event()
    loop = asyncio.create_task(r.run(stop))
    await asyncio.sleep(0.5)
    stop.set()
    await asyncio.wait_for(loop, 2)
    assert 1 <= cycles <= 8
