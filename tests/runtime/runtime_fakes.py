"""In-memory implementations of the ports (ClusterReader, ProxmoxWriter, SpecSource) and fake time.

These are fakes of *our* seams, not of proxmoxer: they model the Proxmox facts the executor
relies on (a clone's placeholder with ``lock: clone`` and its task logged under the template's
VMID, locks refusing config writes, tasks that take a few polls) so executor and reconciler logic
can be tested exactly. The real client against the simulator is tested in tests/e2e.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace

from provisiond.core.desired import DesiredState
from provisiond.core.errors import LockedError, PermanentError
from provisiond.core.observed import ObservedState, ObservedVM, Task, VMConfig, VMStatus
from provisiond.core.ports import (
    MigratePrecondition,
    StaleDigestError,
    TaskRef,
    TaskStatus,
    VMConfigRead,
)


class FakeTime:
    """A clock that moves only when someone sleeps: backoff delays are asserted exactly."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)


@dataclass
class FakeTask:
    node: str
    type: str
    id: str
    polls: int  # status polls until it stops
    exitstatus: str = "OK"
    effect: Callable[[], None] | None = None
    log: tuple[str, ...] = ()
    upid: str = ""
    vmid: int = 0  # the VM it acts on (for qmclone: the new one)


@dataclass
class FakeCluster:
    vms: dict[int, ObservedVM] = field(default_factory=dict)
    tasks: dict[str, FakeTask] = field(default_factory=dict)
    task_polls: int = 2
    calls: list[tuple[str, int]] = field(default_factory=list)  # mutating calls (name, vmid)
    faults: dict[str, list[BaseException]] = field(default_factory=dict)  # call -> to raise
    accept_then_fail: set[str] = field(default_factory=set)  # do the call, then raise the fault
    task_failures: dict[tuple[str, int], str] = field(default_factory=dict)  # exitstatus
    # runs when that (task type, vmid) stops, failed or not: another actor's doing meanwhile
    after_task: dict[tuple[str, int], Callable[[], None]] = field(default_factory=dict)
    in_flight: int = 0
    max_in_flight: int = 0
    in_flight_by_host: dict[str, int] = field(default_factory=dict)
    max_by_host: dict[str, int] = field(default_factory=dict)
    observe_count: int = 0
    progress_on_read: bool = True  # tasks advance when the VM is read, not only when polled
    reads: list[tuple[str, int]] = field(default_factory=list)  # per-VM and listing reads
    written: list[dict[str, str]] = field(default_factory=list)  # values of each config write
    # runs between the executor's config read and its write: someone else's change meanwhile
    before_write: dict[int, Callable[[], None]] = field(default_factory=dict)
    # GET …/migrate answers per VMID (default: the target allowed, nothing local)
    preconditions: dict[int, MigratePrecondition] = field(default_factory=dict)
    migrations: dict[int, tuple[bool, bool]] = field(default_factory=dict)  # online, local disks
    _seq: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    # -- helpers
    def add_vm(self, vmid: int, name: str, host: str = "pve1", **kw: object) -> ObservedVM:
        vm = ObservedVM(
            vmid=vmid,
            name=name,
            host=host,
            status=kw.pop("status", VMStatus.STOPPED),  # type: ignore[arg-type]
            cores=2,
            memory_mib=2048,
            **kw,  # type: ignore[arg-type]
        )
        self.vms[vmid] = vm
        return vm

    def _fault(self, call: str) -> BaseException | None:
        queue = self.faults.get(call)
        if queue:
            return queue.pop(0)
        return None

    def _maybe_raise(self, call: str) -> BaseException | None:
        exc = self._fault(call)
        if exc is not None and call not in self.accept_then_fail:
            raise exc
        return exc

    def _task(
        self, node: str, type_: str, id_: int, vmid: int, effect: Callable[[], None] | None
    ) -> TaskRef:
        upid = f"UPID:{node}:{next(self._seq):08X}:00000000:00000000:{type_}:{id_}:root@pam!t:"
        fail = self.task_failures.pop((type_, vmid), None)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        self.in_flight_by_host[node] = self.in_flight_by_host.get(node, 0) + 1
        self.max_by_host[node] = max(self.max_by_host.get(node, 0), self.in_flight_by_host[node])
        self.tasks[upid] = FakeTask(
            node,
            type_,
            str(id_),
            self.task_polls,
            exitstatus=fail or "OK",
            effect=None if fail else effect,
            log=("step 1", f"TASK ERROR: {fail}") if fail else ("TASK OK",),
            upid=upid,
            vmid=vmid,
        )
        return TaskRef(node=node, upid=upid)

    def finish_all(self) -> None:
        for t in list(self.tasks.values()):
            if t.polls > 0:
                t.polls = 0
                self._complete(t)

    def _complete(self, t: FakeTask) -> None:
        self.in_flight -= 1
        self.in_flight_by_host[t.node] -= 1
        if t.effect is not None:
            t.effect()
        elif t.type == "qmclone":  # a failed clone removes its placeholder
            self.vms.pop(t.vmid, None)
        hook = self.after_task.pop((t.type, t.vmid), None)
        if hook is not None:
            hook()

    def _set(self, vmid: int, **changes: object) -> None:
        self.vms[vmid] = replace(self.vms[vmid], **changes)  # type: ignore[arg-type]

    # -- ClusterReader
    async def observe(self) -> ObservedState:
        self.observe_count += 1
        await asyncio.sleep(0)
        return ObservedState(vms=tuple(self.vms.values()), tasks=await self.active_tasks())

    async def find_vm(self, vmid: int) -> ObservedVM | None:
        self._maybe_raise("find_vm")
        self.reads.append(("find_vm", vmid))
        await asyncio.sleep(0)
        if self.progress_on_read:
            self.tick()
        return self.vms.get(vmid)

    async def vm_status(self, vmid: int, host: str) -> ObservedVM | None:
        self._maybe_raise("vm_status")
        self.reads.append(("status", vmid))
        await asyncio.sleep(0)
        if self.progress_on_read:
            self.tick()
        vm = self.vms.get(vmid)
        return None if vm is None or vm.host != host else replace(vm, config=None, pending=None)

    async def vm_config(self, vmid: int, host: str) -> VMConfigRead | None:
        self._maybe_raise("vm_config")
        self.reads.append(("config", vmid))
        await asyncio.sleep(0)
        vm = self.vms.get(vmid)
        if vm is None or vm.host != host:
            return None
        cfg = vm.pending or vm.config or VMConfig()
        cfg = replace(cfg, tags=vm.tags, cores=vm.cores, memory_mib=vm.memory_mib)
        hook = self.before_write.pop(vmid, None)
        read = VMConfigRead(
            vmid=vmid, host=host, config=cfg, digest=self.digest(vmid), lock=vm.lock
        )
        if hook is not None:
            hook()
        return read

    def digest(self, vmid: int) -> str:
        vm = self.vms[vmid]
        return str(hash(repr((vm.config, vm.pending, vm.tags, vm.cores, vm.memory_mib))))

    def tick(self) -> None:
        """Server-side progress: every running task advances one step."""
        for t in list(self.tasks.values()):
            if t.polls > 0:
                t.polls -= 1
                if t.polls == 0:
                    self._complete(t)

    async def active_tasks(self) -> tuple[Task, ...]:
        await asyncio.sleep(0)
        return tuple(
            Task(upid=u, type=t.type, id=t.id, node=t.node)
            for u, t in self.tasks.items()
            if t.polls > 0
        )

    # -- ProxmoxWriter
    async def clone(
        self,
        *,
        template_host: str,
        template_vmid: int,
        newid: int,
        name: str,
        description: str,
        target: str | None,
        full: bool,
        storage: str | None,
        pool: str | None,
    ) -> TaskRef:
        del full, storage, pool
        await asyncio.sleep(0)
        exc = self._maybe_raise("clone")
        self.calls.append(("clone", newid))
        if newid in self.vms:
            raise PermanentError(f"500 unable to create VM {newid}: config file already exists")
        self.add_vm(newid, name, target or template_host, lock="clone")

        def done() -> None:
            self._set(newid, lock=None, config=VMConfig(description=description), tags=())

        ref = self._task(template_host, "qmclone", template_vmid, newid, done)
        if exc is not None:
            raise exc
        return ref

    async def configure(
        self,
        *,
        host: str,
        vmid: int,
        values: Mapping[str, str],
        delete: tuple[str, ...],
        digest: str | None = None,
    ) -> None:
        del host, delete
        await asyncio.sleep(0)
        self._maybe_raise("configure")
        self.calls.append(("configure", vmid))
        self.written.append(dict(values))
        vm = self.vms.get(vmid)
        if vm is None:
            raise PermanentError(
                f"500 Configuration file 'nodes/x/qemu-server/{vmid}.conf' does not exist"
            )
        if vm.lock is not None:
            raise LockedError(f"500 VM is locked ({vm.lock})", lock=vm.lock)
        if digest is not None and digest != self.digest(vmid):
            raise StaleDigestError("500 checksum mismatch (file change by other user?)")
        if "tags" in values:
            self._set(vmid, tags=tuple(sorted(t for t in values["tags"].split(";") if t)))

    async def resize(
        self, *, host: str, vmid: int, disk: str, size_bytes: int, digest: str | None = None
    ) -> TaskRef:
        del disk, size_bytes, digest
        self._maybe_raise("resize")
        self.calls.append(("resize", vmid))
        return self._task(host, "resize", vmid, vmid, None)

    async def start(self, *, host: str, vmid: int) -> TaskRef:
        await asyncio.sleep(0)
        self._maybe_raise("start")
        self.calls.append(("start", vmid))
        return self._task(
            host, "qmstart", vmid, vmid, lambda: self._set(vmid, status=VMStatus.RUNNING)
        )

    async def shutdown(
        self, *, host: str, vmid: int, shutdown_timeout: int, force_stop: bool
    ) -> TaskRef:
        del shutdown_timeout, force_stop
        self._maybe_raise("shutdown")
        self.calls.append(("shutdown", vmid))
        return self._task(
            host, "qmshutdown", vmid, vmid, lambda: self._set(vmid, status=VMStatus.STOPPED)
        )

    async def stop(self, *, host: str, vmid: int) -> TaskRef:
        self._maybe_raise("stop")
        self.calls.append(("stop", vmid))
        return self._task(
            host, "qmstop", vmid, vmid, lambda: self._set(vmid, status=VMStatus.STOPPED)
        )

    async def reboot(self, *, host: str, vmid: int) -> TaskRef:
        self._maybe_raise("reboot")
        self.calls.append(("reboot", vmid))
        return self._task(host, "qmreboot", vmid, vmid, None)

    async def migrate_precondition(
        self, *, host: str, vmid: int, target: str
    ) -> MigratePrecondition:
        del host
        await asyncio.sleep(0)
        self._maybe_raise("migrate_precondition")
        running = self.vms[vmid].status is VMStatus.RUNNING
        return self.preconditions.get(vmid, MigratePrecondition(running, (target,)))

    async def migrate(
        self, *, host: str, vmid: int, target: str, online: bool, with_local_disks: bool
    ) -> TaskRef:
        self.migrations[vmid] = (online, with_local_disks)
        await asyncio.sleep(0)
        exc = self._maybe_raise("migrate")
        self.calls.append(("migrate", vmid))
        self._set(vmid, lock="migrate")
        ref = self._task(
            host, "qmigrate", vmid, vmid, lambda: self._set(vmid, host=target, lock=None)
        )
        if exc is not None:
            raise exc
        return ref

    async def destroy(self, *, host: str, vmid: int) -> TaskRef:
        self._maybe_raise("destroy")
        self.calls.append(("destroy", vmid))
        return self._task(host, "qmdestroy", vmid, vmid, lambda: self.vms.pop(vmid, None) and None)

    async def task_status(self, task: TaskRef) -> TaskStatus:
        await asyncio.sleep(0)
        self._maybe_raise("task_status")
        t = self.tasks[task.upid]
        if t.polls > 0:
            t.polls -= 1
            if t.polls == 0:
                self._complete(t)
                return TaskStatus(running=False, exitstatus=t.exitstatus)
            return TaskStatus(running=True)
        return TaskStatus(running=False, exitstatus=t.exitstatus)

    async def running_tasks(self, node: str) -> frozenset[str]:
        """One listing of a node's running tasks: server-side progress happens meanwhile."""
        await asyncio.sleep(0)
        self._maybe_raise("running_tasks")
        self.reads.append(("tasks", 0))
        self.tick()
        return frozenset(u for u, t in self.tasks.items() if t.polls > 0 and t.node == node)

    async def task_log_tail(self, task: TaskRef, lines: int = 10) -> tuple[str, ...]:
        return self.tasks[task.upid].log[-lines:]

    def mutating(self, name: str | None = None) -> list[tuple[str, int]]:
        return [c for c in self.calls if name is None or c[0] == name]


@dataclass
class FakeSpec:
    """A SpecSource whose content and validity the test switches."""

    desired: DesiredState | None
    error: BaseException | None = None
    version: int = 0
    loads: int = 0

    def load(self) -> DesiredState:
        self.loads += 1
        if self.error is not None:
            raise self.error
        assert self.desired is not None
        return self.desired

    def fingerprint(self) -> str:
        return str(self.version)
