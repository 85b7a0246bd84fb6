"""The Manager: runs runnables until stop, bounds shutdown, propagates failures, handles signals."""

from __future__ import annotations

import asyncio
import os
import signal
from dataclasses import dataclass, field

import pytest

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
