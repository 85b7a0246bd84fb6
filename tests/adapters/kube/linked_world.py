"""Both simulators linked, settings for them, and the daemon running in the test's loop."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from provisiond import app
from provisiond.adapters.specsource import SpecFiles
from provisiond.runtime.reconciler import CycleResult
from provisiond.settings import Settings
from provisiond.sim.kube import KubeSim


@dataclass
class Linked:
    """Both simulators, linked, and settings pointing the daemon at them."""

    pve: Any  # provisiond.sim.pve SimHandle
    kube: KubeSim
    settings: Settings
    example: Path


@contextmanager
def linked(example: str, tmp: Path, *, interval: float = 600.0) -> Iterator[Linked]:
    from provisiond.cli import sandbox
    from provisiond.sim.kube import Membership, start_linked
    from provisiond.sim.pve.testing import running_simulator

    folder = sandbox.examples_dir() / example
    with running_simulator(example, time_scale=0.005) as pve:
        desired = SpecFiles([folder]).load()
        kube = start_linked(
            pve, membership=Membership.from_desired(desired), node_delay=0.1, ready_delay=0.1
        )
        try:
            endpoint = sandbox.Endpoint(
                url=pve.url,
                ca=pve.ca_path,
                token=pve.token,
                kubeconfig=kube.write_kubeconfig(tmp / "kubeconfig"),
            )
            s = sandbox.settings_for(endpoint, [folder], time_scale=0.005, interval=interval)
            yield Linked(pve, kube, s, folder)
        finally:
            kube.stop()


class Cycles:
    """A cycle listener that lets a test wait for a condition on the cycles."""

    def __init__(self) -> None:
        self.results: list[CycleResult] = []
        self.changed = asyncio.Event()

    def cycle_finished(self, result: CycleResult) -> None:
        self.results.append(result)
        self.changed.set()

    async def until(self, test: Callable[[CycleResult], bool], within: float = 60.0) -> CycleResult:
        async with asyncio.timeout(within):
            while True:
                if self.results and test(self.results[-1]):
                    return self.results[-1]
                self.changed.clear()
                await self.changed.wait()


@asynccontextmanager
async def running(s: Settings) -> AsyncIterator[tuple[app.Daemon, Cycles]]:
    """The daemon (reconciler, spec watcher, node watch) running in this loop."""
    cycles = Cycles()
    built = app.build_daemon(s, cycle_listener=cycles, follow_up=0.05, debounce=0.02)
    mgr = app.manager(built)
    task = asyncio.create_task(mgr.run())
    try:
        yield built, cycles
    finally:
        mgr.stop.set()
        await asyncio.wait_for(task, 30)
        built.close()
