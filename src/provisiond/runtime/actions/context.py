"""What one ``execute`` gives every action, and how an action says "already done".

``ActionContext`` carries the ports, the executor's retrying call, the run's task waiter, the
observation the plan was made from, the desired VMs and the run's ownership facts (which fleet
a VMID belongs to, which VMs this run cloned). Its reads are always fresh — the plan may be
stale by the time an action runs — and cheap: one VM on the host the plan names
(``status`` = ``GET …/status/current``, ``config`` = ``GET …/config`` with its digest); the
cluster-wide ``read`` (``find_vm``, which lists every VM) only where the host is unknown.

``check_ours`` is the guard before every disruptive call (shutdown, reboot, migrate, destroy):
the VM must be ours and this fleet's, unpaused and unlocked, re-read right then, so two
overlapping leaders stay harmless. ``check_not_foreign`` is the lighter guard before configure,
resize and start, which also act on VMs being adopted: not another fleet's, not paused, not
locked. A lock is never broken: it raises ``LockedError`` (requeued).

The signals are control flow, not errors: ``AdoptedSignal`` — the effect already exists or was
under way and has completed (outcome *adopted*); ``ReplanSignal`` — the effect may exist but a
fresh read cannot prove it, so the next cycle's full observation decides (outcome *skipped*).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field, replace

from provisiond.core.desired import DesiredVM
from provisiond.core.errors import LockedError, PermanentError
from provisiond.core.observed import ObservedState, ObservedVM, Task
from provisiond.core.ownership import owner, paused
from provisiond.core.ports import (
    ClusterReader,
    KubeReader,
    KubeWriter,
    ProxmoxWriter,
    VMConfigRead,
)
from provisiond.runtime.actions.tasks import Caller, TaskWaiter
from provisiond.runtime.limits import Group


class ReplanSignal(Exception):  # noqa: N818 - a control-flow signal, not an error
    """The effect may exist but cannot be verified from a fresh read: replan next cycle."""


class RequeueSignal(Exception):  # noqa: N818 - a control-flow signal, not an error
    """The VM changed under the action (a stale digest): re-observe and replan; not a failure."""


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
    observed: ObservedState | None = None  # what the plan was made from
    desired: dict[int, DesiredVM] = field(default_factory=dict)
    kube_reader: KubeReader | None = None  # None: no Kubernetes configured
    kube_writer: KubeWriter | None = None

    async def read(self, vmid: int) -> ObservedVM | None:
        """Wherever the VM is: lists every VM of the cluster, so only when the host is unknown."""
        return await self.call(f"find_vm {vmid}", lambda: self.reader.find_vm(vmid))

    async def status(self, vmid: int, host: str) -> ObservedVM | None:
        return await self.call(f"status {vmid}", lambda: self.reader.vm_status(vmid, host))

    async def config(self, vmid: int, host: str) -> VMConfigRead | None:
        return await self.call(f"config {vmid}", lambda: self.reader.vm_config(vmid, host))

    async def owned(self, vm: ObservedVM) -> ObservedVM:
        """``vm`` (a status read, tags only) with its config when only the description marker
        could prove who owns it: one more read, and only for such VMs."""
        if vm.config is not None or owner(vm) is not None or vm.vmid in self.created:
            return vm
        read = await self.config(vm.vmid, vm.host)
        return vm if read is None else replace(vm, config=read.config)

    def check_not_foreign(self, vm: ObservedVM, what: str) -> None:
        """Before configure, resize, start: not another fleet's, not paused, not locked."""
        self._check_free(vm, owner(vm), what)

    async def active_tasks(self) -> tuple[Task, ...]:
        return await self.call("active_tasks", self.reader.active_tasks)

    def check_ours(self, vm: ObservedVM, what: str) -> None:
        """Before a disruptive call: the VM must be ours (and this fleet's), unpaused, unlocked."""
        fleet = owner(vm)
        if fleet is None and vm.config is None:
            # A fresh read may not carry the config (the description marker) of a VM this run
            # just cloned: the clone's success is the proof then.
            fleet = self.created.get(vm.vmid)
        if fleet is None:
            raise PermanentError(f"refusing to {what} VM {vm.vmid}: not owned by provisiond")
        self._check_free(vm, fleet, what)

    def _check_free(self, vm: ObservedVM, fleet: str | None, what: str) -> None:
        """Owned by ``fleet``: not another fleet's than planned, not paused, not locked."""
        expected = self.fleets.get(vm.vmid)
        if fleet is not None and expected is not None and fleet != expected:
            raise PermanentError(
                f"refusing to {what} VM {vm.vmid}: owned by fleet {fleet}, not {expected}"
            )
        if paused(vm):
            raise PermanentError(f"refusing to {what} VM {vm.vmid}: paused (tag pd-paused)")
        if vm.lock is not None:
            raise locked(vm.vmid, vm.lock)
