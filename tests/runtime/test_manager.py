"""The Manager: runs runnables until stop, bounds shutdown, propagates failures, handles signals."""

from __future__ import annotations

import asyncio
import os
import signal
from dataclasses import dataclass, field

import pytest
from structlog.testing import capture_logs

from provisiond.runtime.manager import Manager


@dataclass
class Worker:
    name: str
    linger: float = 0.0  # seconds it takes to reach a safe point after stop
    fail: bool = False
    events: list[str] = field(default_factory=list)

    async def run(self, stop: asyncio.Event) -> None:
        self.events.append("started")
        if self.fail:
            raise RuntimeError(f"{self.name} broke")
        await stop.wait()
        self.events.append("stopping")
        await asyncio.sleep(self.linger)
        self.events.append("stopped")


async def test_runs_all_until_stop_and_lets_them_finish() -> None:
    a, b = Worker("a"), Worker("b", linger=0.05)
    m = Manager([a, b], shutdown_timeout=5)
    run = asyncio.create_task(m.run())
    await asyncio.sleep(0.01)
    assert a.events == ["started"]
    assert b.events == ["started"]
    m.stop.set()
    await asyncio.wait_for(run, 2)
    assert b.events == ["started", "stopping", "stopped"]


async def test_cancels_runnables_past_the_shutdown_timeout() -> None:
    slow = Worker("slow", linger=60)
    m = Manager([slow], shutdown_timeout=0.05)
    run = asyncio.create_task(m.run())
    await asyncio.sleep(0.01)
    m.stop.set()
    await asyncio.wait_for(run, 2)
    assert slow.events == ["started", "stopping"]  # cancelled before "stopped"


async def test_a_failing_runnable_stops_the_others_and_surfaces() -> None:
    ok, bad = Worker("ok"), Worker("bad", fail=True)
    m = Manager([ok, bad], shutdown_timeout=1)
    with pytest.raises(ExceptionGroup) as exc:
        await asyncio.wait_for(m.run(), 2)
    assert exc.group_contains(RuntimeError, match="bad broke")
    assert ok.events == ["started", "stopping", "stopped"]


async def test_sigterm_stops_and_sighup_reloads() -> None:
    reloads: list[int] = []
    w = Worker("w")
    m = Manager([w], shutdown_timeout=1, on_reload=[lambda: reloads.append(1)])
    run = asyncio.create_task(m.run())
    await asyncio.sleep(0.01)
    os.kill(os.getpid(), signal.SIGHUP)
    await asyncio.sleep(0.01)
    assert reloads == [1]
    assert not m.stop.is_set()
    os.kill(os.getpid(), signal.SIGTERM)
    await asyncio.wait_for(run, 2)
    assert w.events[-1] == "stopped"
    # handlers are removed afterwards: the default SIGHUP disposition is back
    assert signal.getsignal(signal.SIGHUP) in (signal.SIG_DFL, signal.default_int_handler)


async def test_closers_run_after_every_runnable_returned_even_a_failing_one() -> None:
    """A client the runnables share is closed only once none of them can use it any more."""
    lingering = Worker("lingering", linger=0.1)  # an action finishing after the stop
    order: list[str] = []

    async def close_client() -> None:
        order.append(f"close after {lingering.events[-1]}")

    async def broken() -> None:
        raise OSError("already closed")

    m = Manager([lingering], shutdown_timeout=5, closers=[broken, close_client])
    run = asyncio.create_task(m.run())
    await asyncio.sleep(0.01)
    m.stop.set()
    with capture_logs() as logs:
        await asyncio.wait_for(run, 2)
    assert order == ["close after stopped"]
    assert [e["event"] for e in logs if e["log_level"] == "error"] == ["close_failed"]


async def test_closers_run_when_a_runnable_failed() -> None:
    closed: list[bool] = []

    async def close() -> None:
        closed.append(True)

    m = Manager([Worker("bad", fail=True)], shutdown_timeout=1, closers=[close])
    with pytest.raises(ExceptionGroup):
        await asyncio.wait_for(m.run(), 2)
    assert closed == [True]
