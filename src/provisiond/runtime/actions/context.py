"""What one ``execute`` gives every action, and how an action says "already done".

``ActionContext`` carries the ports, the executor's retrying call, the run's task waiter and the
run's ownership facts (which fleet a VMID belongs to, which VMs this run cloned). Its reads are
always fresh (``ClusterReader.find_vm``): the plan may be stale by the time an action runs.

``check_ours`` is the guard before every disruptive call (shutdown, reboot, migrate, destroy):
the VM must be ours and this fleet's, unpaused and unlocked, re-read right then, so two
overlapping leaders stay harmless. A lock is never broken: it raises ``LockedError`` (requeued).

The signals are control flow, not errors: ``AdoptedSignal`` — the effect already exists or was
under way and has completed (outcome *adopted*); ``ReplanSignal`` — the effect may exist but a
fresh read cannot prove it, so the next cycle's full observation decides (outcome *skipped*).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from provisiond.core.errors import LockedError, PermanentError, TransientError
from provisiond.core.observed import ObservedVM, Task, VMStatus
from provisiond.core.ownership import owner, paused
from provisiond.core.ports import ClusterReader, ProxmoxWriter
from provisiond.runtime.actions.tasks import Caller, TaskWaiter
from provisiond.runtime.limits import Group


class ReplanSignal(Exception):  # noqa: N818 - a control-flow signal, not an error
    """The effect may exist but cannot be verified from a fresh read: replan next cycle."""


class AdoptedSignal(Exception):  # noqa: N818 - a control-flow signal, not an error
    """The effect already exists (or was under way and has completed)."""


def locked(vmid: int, lock: str) -> LockedError:
    """The error for a VM holding a lock (backup, snapshot, migrate…): requeue, never unlock."""
    return LockedError(f"VM {vmid} is locked ({lock})", lock=lock)


@dataclass(slots=True)
class ActionContext:
    """State of one ``execute`` call, shared by its actions."""

    reader: ClusterReader
    writer: ProxmoxWriter
    call: Caller
    tasks: TaskWaiter
    stop: asyncio.Event
    groups: dict[int, Group] = field(default_factory=dict)
    fleets: dict[int, str] = field(default_factory=dict)
    created: dict[int, str] = field(default_factory=dict)  # cloned by this run: vmid -> fleet

    async def read(self, vmid: int) -> ObservedVM | None:
        return await self.call(f"find_vm {vmid}", lambda: self.reader.find_vm(vmid))

    async def active_tasks(self) -> tuple[Task, ...]:
        return await self.call("active_tasks", self.reader.active_tasks)

    async def present(self, vmid: int, what: str) -> ObservedVM:
        """The VM, freshly read; it must exist and its host must answer."""
        vm = await self.read(vmid)
        if vm is None:
            raise PermanentError(f"cannot {what} VM {vmid}: it does not exist (any more)")
        if vm.status is VMStatus.UNKNOWN:
            raise TransientError(f"cannot {what} VM {vmid}: its host {vm.host} does not answer")
        return vm

    def check_ours(self, vm: ObservedVM, what: str) -> None:
        """Before a disruptive call: the VM must be ours (and this fleet's), unpaused, unlocked."""
        fleet = owner(vm)
        if fleet is None and vm.config is None:
            # A fresh read may not carry the config (the description marker) of a VM this run
            # just cloned: the clone's success is the proof then.
            fleet = self.created.get(vm.vmid)
        if fleet is None:
            raise PermanentError(f"refusing to {what} VM {vm.vmid}: not owned by provisiond")
        expected = self.fleets.get(vm.vmid)
        if expected is not None and fleet != expected:
            raise PermanentError(
                f"refusing to {what} VM {vm.vmid}: owned by fleet {fleet}, not {expected}"
            )
        if paused(vm):
            raise PermanentError(f"refusing to {what} VM {vm.vmid}: paused (tag pd-paused)")
        if vm.lock is not None:
            raise locked(vm.vmid, vm.lock)
