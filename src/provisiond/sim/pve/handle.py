"""``SimHandle``: what a test (or the demo) holds to inspect and steer a running simulator.

Every method is safe to call from any thread but the simulator's own: state access runs on the
simulator loop (``call``), so it never races a handler or a task body. Holds are the
deterministic seam crash tests use: hold the next matching request (before the handler runs, or
after it ran but before the answer leaves) or a task at a fraction of its run, then release.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Callable
from typing import Literal, TypeVar

from provisiond.sim.pve.server import RequestHold, SimServer
from provisiond.sim.pve.state import Cluster, Value, VmState
from provisiond.sim.pve.tasks import Hold, TaskHold

T = TypeVar("T")


class SimHandle:
    def __init__(self, server: SimServer) -> None:
        self.server = server

    # -- connection ------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return self.server.url

    @property
    def host(self) -> str:
        return self.server.host

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def ca_path(self) -> str:
        return str(self.server.ca_path)

    @property
    def token(self) -> str:
        """``user@realm!id=secret``."""
        return self.server.token

    # -- state -----------------------------------------------------------------------------
    def call(self, fn: Callable[[Cluster], T], timeout: float = 10.0) -> T:
        """Run ``fn(cluster)`` on the simulator loop and return its result."""

        async def run() -> T:
            return fn(self.server.cluster)

        return asyncio.run_coroutine_threadsafe(run(), self.server.loop).result(timeout)

    def vm(self, vmid: int) -> VmState | None:
        """A copy of the VM's state (None when the VMID does not exist)."""
        return self.call(lambda c: copy.deepcopy(c.vms.get(vmid)))

    def vmids(self) -> list[int]:
        return self.call(lambda c: sorted(c.vms))

    def set_config(self, vmid: int, **values: Value | None) -> None:
        """Write config keys directly (None deletes a key), as an admin editing the file."""

        def apply(c: Cluster) -> None:
            cfg = c.vms[vmid].config
            for key, value in values.items():
                if value is None:
                    cfg.pop(key, None)
                else:
                    cfg[key] = value

        self.call(apply)

    def set_lock(self, vmid: int, lock: str | None) -> None:
        self.set_config(vmid, lock=lock)

    def move_vm(self, vmid: int, node: str) -> None:
        """Move a VM's config to another node (as a migration done behind our back)."""

        def apply(c: Cluster) -> None:
            c.node(node)
            c.vms[vmid].node = node

        self.call(apply)

    def set_power(self, vmid: int, status: Literal["running", "stopped"]) -> None:
        def apply(c: Cluster) -> None:
            vm = c.vms[vmid]
            vm.status = status
            if status == "stopped":
                vm.bound.clear()

        self.call(apply)

    def set_acpi(self, vmid: int, *, responds: bool) -> None:
        """A guest that ignores ACPI makes shutdown time out."""
        self.call(lambda c: setattr(c.vms[vmid], "acpi_responds", responds))

    def tasks(self) -> list[dict[str, object]]:
        return self.call(lambda c: [t.status_dict() for t in c.tasks.all])

    def task_log(self, upid: str) -> list[str]:
        return self.call(lambda c: list(c.tasks.by_upid[upid].log))

    def running_tasks(self) -> int:
        return self.call(lambda c: len(c.tasks.running()))

    # -- requests --------------------------------------------------------------------------
    def requests(self, method: str, template: str) -> int:
        """Requests served for ``(method, endpoint template)``, e.g. ``("POST", ".../clone")``."""
        return self.call(lambda _c: self.server.seams.counts[(method, template)])

    def request_counts(self) -> dict[tuple[str, str], int]:
        return self.call(lambda _c: dict(self.server.seams.counts))

    def reset_counts(self) -> None:
        self.call(lambda _c: self.server.seams.counts.clear())

    # -- holds -----------------------------------------------------------------------------
    def hold_request(
        self, method: str, template: str, *, when: Literal["before", "after"] = "before"
    ) -> Hold:
        """Hold the next matching request before its handler runs, or after it ran."""
        hold = Hold(self.server.loop, f"{method} {template} ({when})")
        self.call(
            lambda _c: self.server.seams.holds.append(RequestHold(method, template, when, hold))
        )
        return hold

    def hold_task(self, task_type: str, *, at: float = 0.5, vmid: int | None = None) -> Hold:
        """Hold the next task of ``task_type`` (for ``vmid``) when it reaches fraction ``at``."""
        if not 0.0 < at <= 1.0:
            raise ValueError("at must be in (0, 1]")
        hold = Hold(self.server.loop, f"task {task_type} at {at:.0%}")
        task_id = None if vmid is None else str(vmid)
        self.call(lambda c: c.tasks.add_hold(TaskHold(task_type, task_id, at, hold)))
        return hold
