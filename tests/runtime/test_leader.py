"""The leader-election state machine, the fence and the reconciler's standby mode, with a fake
monotonic clock and an in-memory Lease store that guards updates by resourceVersion the way the
API server does (the real client against the Kubernetes simulator: tests/adapters and tests/e2e).
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from runtime_fakes import FakeCluster, FakeSpec
from runtime_fleet import TEMPLATE, fleet_state
from structlog.testing import capture_logs
from test_reconciler import toy_plan

from provisiond.core.errors import NotLeaderError, ProvisiondError, TransientError
from provisiond.core.ports import LeaseRecord
from provisiond.runtime.executor import Executor, ExecutorConfig
from provisiond.runtime.fence import Fence
from provisiond.runtime.leader import ElectionConfig, LeaderElector
from provisiond.runtime.reconciler import Reconciler
from provisiond.runtime.results import Outcome


class Clock:
    def __init__(self) -> None:
        self.now = 500.0
        self.wall0 = datetime(2030, 1, 1, tzinfo=UTC)

    def __call__(self) -> float:
        return self.now

    def wall(self) -> datetime:
        return self.wall0 + timedelta(seconds=self.now)


class Store:
    """One Lease; ``update`` is refused with a 409 unless the version matches."""

    def __init__(self) -> None:
        self.record: LeaseRecord | None = None
        self.rv = 0
        self.fail: Exception | None = None  # raised by every call while set
        self.calls: list[str] = []

    def client(self, who: str) -> Client:
        return Client(self, who)


class Client:
    def __init__(self, store: Store, who: str) -> None:
        self.store = store
        self.who = who

    def _call(self, verb: str) -> None:
        self.store.calls.append(f"{self.who}:{verb}")
        if self.store.fail is not None:
            raise self.store.fail

    async def get(self) -> LeaseRecord | None:
        self._call("get")
        return self.store.record

    async def create(self, record: LeaseRecord) -> LeaseRecord:
        self._call("create")
        if self.store.record is not None:
            raise TransientError('leases "provisiond" already exists (409)')
        return self._store(record)

    async def update(self, record: LeaseRecord) -> LeaseRecord:
        self._call("update")
        assert self.store.record is not None
        if record.version != self.store.record.version:
            raise TransientError("the object has been modified (409)")
        return self._store(record)

    def _store(self, record: LeaseRecord) -> LeaseRecord:
        self.store.rv += 1
        self.store.record = replace(record, version=str(self.store.rv))
        return self.store.record


CONFIG = ElectionConfig(identity="a", lease_duration=15, renew_deadline=10, retry_period=2)


def elector(
    store: Store, clock: Clock, who: str = "a", changes: list[bool] | None = None
) -> LeaderElector:
    hooks = [changes.append] if changes is not None else []
    return LeaderElector(
        store.client(who),
        replace(CONFIG, identity=who),
        on_change=hooks,
        clock=clock,
        wall=clock.wall,
    )


def test_durations_are_checked_like_client_go() -> None:
    with pytest.raises(ValueError, match="lease_duration must be greater than renew_deadline"):
        ElectionConfig(identity="a", lease_duration=10, renew_deadline=10)
    with pytest.raises(ValueError, match=r"renew_deadline must be greater than 1.2"):
        ElectionConfig(identity="a", renew_deadline=2.4, retry_period=2)
    with pytest.raises(ValueError, match="positive"):
        ElectionConfig(identity="a", retry_period=0)
    with pytest.raises(ValueError, match="identity"):
        ElectionConfig(identity="")


async def test_first_candidate_creates_the_lease_second_stays_standby() -> None:
    store, clock = Store(), Clock()
    a_changes: list[bool] = []
    a, b = elector(store, clock, "a", a_changes), elector(store, clock, "b")
    with capture_logs() as logs:
        assert await a.step() is True
        assert await b.step() is False
    assert a.may_act()
    assert not b.may_act()
    assert a_changes == [True]
    rec = store.record
    assert rec is not None
    assert (rec.holder, rec.duration_seconds, rec.transitions) == ("a", 15, 0)
    assert rec.acquire_time == rec.renew_time == clock.wall()
    assert [e["event"] for e in logs] == ["leader_acquired", "leader_standby"]
    assert logs[1]["holder"] == "a"


async def test_renew_keeps_acquire_time_and_uses_the_cached_record() -> None:
    store, clock = Store(), Clock()
    a = elector(store, clock)
    await a.step()
    acquired = store.record
    assert acquired is not None
    store.calls.clear()
    clock.now += 2
    assert await a.step()
    assert store.calls == ["a:update"]  # the fast path: no GET
    assert store.record is not None
    assert store.record.acquire_time == acquired.acquire_time
    assert store.record.renew_time == clock.wall()


async def test_a_standby_takes_over_only_a_full_lease_after_it_last_saw_a_change() -> None:
    store, clock = Store(), Clock()
    a, b = elector(store, clock, "a"), elector(store, clock, "b")
    await a.step()
    await b.step()  # b sees a's record now
    clock.now += 14.9  # a died right after acquiring: no renewals
    assert await b.step() is False
    clock.now += 0.2
    with capture_logs() as logs:
        assert await b.step() is True
    assert [e["event"] for e in logs] == ["leader_acquired"]
    assert store.record is not None
    assert (store.record.holder, store.record.transitions) == ("b", 1)


async def test_renewals_seen_by_the_standby_keep_the_leader() -> None:
    store, clock = Store(), Clock()
    a, b = elector(store, clock, "a"), elector(store, clock, "b")
    for _ in range(20):  # 40 s of renewals, each observed by b
        await a.step()
        await b.step()
        clock.now += 2
    assert a.may_act()
    assert not b.is_leader


async def test_failing_renewals_stop_acting_at_the_deadline_before_the_loop_notices() -> None:
    store, clock = Store(), Clock()
    changes: list[bool] = []
    a = elector(store, clock, changes=changes)
    await a.step()
    store.fail = TransientError("503 ServiceUnavailable")
    clock.now += 2
    with capture_logs() as logs:
        assert await a.step() is True  # 2 s since the last renew: still leading
    assert logs[0]["event"] == "leader_renew_failed"
    clock.now += 7.99
    assert a.may_act()
    clock.now += 0.02  # 10.01 s since the last good renew: fenced without any round
    assert not a.may_act()
    assert a.is_leader  # the loop has not noticed yet, the fence already has
    with capture_logs() as logs:
        assert await a.step() is False
    assert [e["event"] for e in logs] == ["leader_lost"]
    assert "no successful renew for 10.0s" in logs[0]["reason"]
    assert changes == [True, False]


async def test_conflicts_on_renew_lose_the_lease_when_another_holds_it() -> None:
    store, clock = Store(), Clock()
    a, b = elector(store, clock, "a"), elector(store, clock, "b")
    await a.step()
    # An outside write hands the lease to b (e.g. a was paused and b took over).
    assert store.record is not None
    store.record = replace(store.record, holder="b", version="99")
    with capture_logs() as logs:
        assert await a.step() is False
    assert logs[0]["event"] == "leader_lost"
    assert logs[0]["reason"] == "the lease is held by b"
    assert not a.may_act()
    assert not b.is_leader


async def test_a_paused_leader_is_fenced_when_it_wakes_and_steps_down() -> None:
    store, clock = Store(), Clock()
    a, b = elector(store, clock, "a"), elector(store, clock, "b")
    await a.step()
    await b.step()
    clock.now += 30  # a is SIGSTOPped past its lease; b takes over
    assert await b.step() is True
    assert not a.may_act()  # on waking, before any request: fenced
    assert await a.step() is False
    assert b.may_act()
    assert not a.is_leader


async def test_release_hands_over_at_the_next_retry_and_waits_for_calls_in_flight() -> None:
    store, clock = Store(), Clock()
    order: list[str] = []

    async def drain(seconds: float) -> bool:
        order.append(f"drain {seconds} may_act={a.may_act()}")
        return True

    a = LeaderElector(
        store.client("a"), CONFIG, drain=drain, clock=clock, wall=clock.wall, on_change=[]
    )
    b = elector(store, clock, "b")
    await a.step()
    await b.step()
    with capture_logs() as logs:
        await a.shutdown()
    assert order == ["drain 10.0 may_act=False"]
    assert [e["event"] for e in logs] == ["leader_released"]
    rec = store.record
    assert rec is not None
    assert (rec.holder, rec.duration_seconds, rec.transitions) == ("", 1, 0)
    clock.now += 0.5
    assert await b.step() is True  # no waiting out the lease
    assert store.record is not None
    assert store.record.transitions == 1
    assert await a.step() is False  # a stopping elector never leads again


async def test_release_after_a_conflict_reads_afresh_and_skips_a_lease_not_ours() -> None:
    store, clock = Store(), Clock()
    a = elector(store, clock)
    await a.step()
    assert store.record is not None
    store.record = replace(store.record, version="77")  # our cache is stale, still ours
    await a.shutdown()
    assert store.record.holder == ""
    store2, clock2 = Store(), Clock()
    x = elector(store2, clock2, "x")
    await x.step()
    assert store2.record is not None
    store2.record = replace(store2.record, holder="y", version="5")
    await x.shutdown()
    assert store2.record.holder == "y"  # someone else's lease is left alone


async def test_a_hanging_lease_request_fails_the_round_within_the_deadline() -> None:
    store, clock = Store(), Clock()
    a = elector(store, clock)
    await a.step()

    class Hanging(Client):
        async def update(self, record: LeaseRecord) -> LeaseRecord:
            await asyncio.sleep(3600)
            raise AssertionError

        async def get(self) -> LeaseRecord | None:
            await asyncio.sleep(3600)
            raise AssertionError

    a._client = Hanging(store, "a")  # swap the port under a running machine
    clock.now += 9.9  # 0.1 s of budget left
    with capture_logs() as logs:
        await asyncio.wait_for(a.step(), 2)
    assert "took longer" in logs[0]["error"]


async def test_the_loop_acquires_and_releases_on_stop() -> None:
    store = Store()
    cfg = ElectionConfig(identity="a", lease_duration=0.5, renew_deadline=0.3, retry_period=0.05)
    changes: list[bool] = []
    a = LeaderElector(store.client("a"), cfg, on_change=[changes.append])
    stop = asyncio.Event()
    task = asyncio.create_task(a.run(stop))
    for _ in range(100):
        await asyncio.sleep(0.01)
        if a.may_act():
            break
    assert a.may_act()
    stop.set()
    await asyncio.wait_for(task, 2)
    assert store.record is not None
    assert store.record.holder == ""
    assert changes == [False, True, False]


async def test_a_failing_hook_is_logged_not_fatal() -> None:
    store, clock = Store(), Clock()

    def broken(_leader: bool) -> None:
        raise RuntimeError("boom")

    a = LeaderElector(store.client("a"), CONFIG, on_change=[broken], clock=clock, wall=clock.wall)
    with capture_logs() as logs:
        assert await a.step()
    assert "leader_hook_failed" in [e["event"] for e in logs]


# -- the fence ----------------------------------------------------------------------------------


async def test_the_fence_refuses_before_sending_and_counts_calls_in_flight() -> None:
    allowed = [True]
    fence = Fence(lambda: allowed[0])
    with fence.sending("POST", "/nodes/{node}/qemu/{vmid}/clone"):
        assert fence.in_flight == 1
        assert not await fence.drained(0.05, poll=0.01)
    assert await fence.drained(0.05)
    allowed[0] = False
    sent = []
    with (
        pytest.raises(NotLeaderError, match="clone not sent"),
        fence.sending("POST", "/nodes/{node}/qemu/{vmid}/clone"),
    ):
        sent.append(1)
    assert sent == []
    assert fence.refused == 1
    assert fence.in_flight == 0
    assert issubclass(NotLeaderError, ProvisiondError)


# -- the reconciler as a standby ----------------------------------------------------------------


class FencedCluster(FakeCluster):
    """The fake writer behind a fence, as the Proxmox client is in the daemon."""

    fence: Fence

    async def clone(self, **kw: object) -> object:  # type: ignore[override]
        with self.fence.sending("POST", "/nodes/{node}/qemu/{vmid}/clone"):
            return await super().clone(**kw)  # type: ignore[arg-type]


async def test_a_standby_plans_but_never_executes_and_does_not_spin() -> None:
    cluster = FencedCluster()
    cluster.add_vm(TEMPLATE, "tmpl", template=True)
    leading = [False]
    cluster.fence = Fence(lambda: leading[0])
    ex = Executor(cluster, cluster, config=ExecutorConfig(poll_initial=0.001, poll_max=0.001))
    r = Reconciler(
        FakeSpec(fleet_state(101, pool="p", cores=2, memory_mib=2048)),
        cluster,
        ex,
        toy_plan,
        interval=60,
        follow_up=0.01,
        may_act=lambda: leading[0],
    )
    with capture_logs() as logs:
        first = await r.cycle()
    assert first.standby
    assert first.report is None
    assert first.plan is not None
    assert len(first.plan.actions) == 1
    assert cluster.mutating() == []
    assert next(e for e in logs if e["event"] == "plan_ready")["role"] == "standby"
    assert r._next_delay(first) == 60  # the timer's pace, not follow_up's
    # Leadership lost between planning and the call: the fence refuses, the action is skipped
    # without backing the VM off.
    leading[0] = True
    r._may_act = lambda: True  # plan as leader …
    cluster.fence = Fence(lambda: False)  # … but the lease runs out before the call is sent
    second = await r.cycle()
    assert second.report is not None
    (result,) = second.report.results
    assert result.outcome is Outcome.SKIPPED
    assert "not sent" in result.detail
    assert ex.backoff.failures(101) == 0
    assert cluster.mutating() == []
