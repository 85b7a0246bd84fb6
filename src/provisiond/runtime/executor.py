"""The executor: a plan's actions become Proxmox calls, safely and idempotently (DESIGN §2, §5, §6).

For every action, in plan order as far as ``after`` and the limits allow:
1. **Adopt** what already exists or is under way — our VMID present (a clone's placeholder with
   ``lock: clone`` is waited for), a clone of our template running before our VMID appeared
   (waited for, never re-POSTed), the VM already on its migration target or a ``qmigrate``
   running for it, the VM already in the wanted power state.
2. **Call** through ``ProxmoxWriter``. Transient errors are retried here — the one place tenacity
   is used — with jittered exponential backoff, at most ``max_attempts`` attempts per call (an
   unclassified 500 at most ``1 + UnclassifiedError.max_retries``). A clone or migrate POST is
   never repeated without re-observing first: a timed-out POST may have been accepted.
3. **Wait** for the task: poll ``task_status`` with backoff up to ``task_timeout``; ``OK`` or
   ``WARNINGS: n`` is success, anything else fails the action with the task log's last lines.
4. **Verify** the effect with a fresh read (``ClusterReader.find_vm``). Values that need no
   fresh read to be trusted — the full current config — are re-checked by the next cycle, which
   re-observes everything (level-triggered).

Errors by type: ``LockedError`` → *requeued* (never unlocked, no ``skiplock``); an exhausted
``TransientError`` or a ``PermanentError`` → *failed*, and the VM backs off exponentially
(``ObjectBackoff``) while the rest of the plan goes on. Right before a destroy, migrate or
shutdown the VM is re-read (lock, tags, host): two overlapping leaders stay harmless.

Kubernetes actions (cordon, drain, uncordon, label, taint and the kube steps of a GPU move) have
no port yet: they fail with a ``PermanentError`` saying Kubernetes is not configured. The planner
does not plan them while ``observed.kube is None``; this arm makes a mismatch loud, not silent.

Stop: no new action starts; an action waiting for a Proxmox task returns *interrupted* at once
(the task continues server-side and is adopted by the next cycle or start); an HTTP call in
flight completes first.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import NoReturn, TypeVar, assert_never

import structlog
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception

from provisiond.core.actions import (
    Action,
    Clone,
    Configure,
    Cordon,
    Destroy,
    Drain,
    GpuMove,
    GrowDisk,
    Label,
    Migrate,
    MoveStep,
    Reboot,
    Shutdown,
    Start,
    TaintNode,
    Uncordon,
)
from provisiond.core.desired import DesiredState
from provisiond.core.errors import (
    LockedError,
    PermanentError,
    ProvisiondError,
    TransientError,
    UnclassifiedError,
)
from provisiond.core.observed import ObservedVM, VMStatus
from provisiond.core.ownership import owner, paused
from provisiond.core.plan import Plan
from provisiond.core.ports import ClusterReader, ProxmoxWriter, TaskRef, TaskStatus
from provisiond.core.pve_errors import error_for
from provisiond.runtime.backoff import ObjectBackoff
from provisiond.runtime.limits import Group, Limits, Slots, hosts_of
from provisiond.runtime.results import ActionListener, ActionResult, ExecutionReport, Outcome

log = structlog.get_logger("provisiond.executor")

T = TypeVar("T")
Sleep = Callable[[float], Awaitable[None]]

KUBE_NOT_CONFIGURED = "Kubernetes is not configured: provisiond cannot {what} (no Kubernetes port)"
_KUBE_STEPS = (MoveStep.CORDON, MoveStep.DRAIN, MoveStep.WAIT_READY, MoveStep.UNCORDON)


@dataclass(frozen=True, slots=True)
class ExecutorConfig:
    task_timeout: float = 900.0  # seconds a single Proxmox task may take
    poll_initial: float = 0.5  # first task-status poll delay; grows by poll_factor
    poll_factor: float = 1.5
    poll_max: float = 5.0
    max_attempts: int = 5  # per call, transient errors
    retry_initial: float = 0.5  # jittered exponential backoff between attempts
    retry_max: float = 10.0
    backoff_base: float = 5.0  # per-object backoff after a failed action
    backoff_max: float = 300.0
    requeue_after: float = 10.0  # when a locked object is worth another look
    log_lines: int = 10  # task log lines attached to a failure


class _InterruptedError(Exception):
    """Stop was requested while waiting; the Proxmox task goes on server-side."""


class _ReplanSignal(Exception):  # noqa: N818 - a control-flow signal, not an error
    """The effect may exist but cannot be verified from a fresh read: replan next cycle."""


class _AdoptedSignal(Exception):  # noqa: N818 - a control-flow signal, not an error
    """The effect already exists (or was under way and has completed)."""


@dataclass(slots=True)
class _Run:
    """State of one ``execute`` call."""

    stop: asyncio.Event
    groups: dict[int, Group] = field(default_factory=dict)
    fleets: dict[int, str] = field(default_factory=dict)
    created: dict[int, str] = field(default_factory=dict)  # cloned by this run: vmid -> fleet


class Executor:
    def __init__(
        self,
        reader: ClusterReader,
        writer: ProxmoxWriter,
        *,
        config: ExecutorConfig | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Sleep = asyncio.sleep,
        listener: ActionListener | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self._reader = reader
        self._writer = writer
        self.config = config or ExecutorConfig()
        self._clock = clock
        self._sleep = sleep
        self._listener = listener
        self._rng = rng or random.Random()  # noqa: S311 - retry jitter, not cryptography
        self.backoff = ObjectBackoff(
            clock=clock, base=self.config.backoff_base, maximum=self.config.backoff_max
        )
        self._own_upids: set[str] = set()  # tasks this process started
        self._posting: dict[int, int] = {}  # template vmid -> clone POSTs awaiting their UPID

    # ---------------------------------------------------------------- scheduling

    async def execute(
        self,
        plan: Plan,
        *,
        desired: DesiredState | None = None,
        stop: asyncio.Event | None = None,
        limits: Limits | None = None,
    ) -> ExecutionReport:
        """Run ``plan`` once under the limits; returns every action's result."""
        run = _Run(stop=stop or asyncio.Event())
        if desired is not None:
            for vm in desired.all_vms():
                run.groups[vm.vmid] = (vm.fleet, vm.pool)
                run.fleets[vm.vmid] = vm.fleet
        slots = Slots(limits or Limits.from_desired(desired), run.groups)
        started = self._clock()
        pending = list(plan.actions)
        results: dict[str, ActionResult] = {}
        running: dict[asyncio.Task[ActionResult], Action] = {}
        busy: set[int] = set()  # one action per VM at a time

        def finish(result: ActionResult) -> None:
            results[result.action.id] = result
            if self._listener is not None:
                self._listener.action_finished(result)

        plan_ids = {a.id for a in plan.actions}
        if self._listener is not None:
            self._listener.plan_started(plan)
        try:
            while pending or running:
                for action in list(pending):
                    if run.stop.is_set():
                        pending.remove(action)
                        finish(ActionResult(action, Outcome.SKIPPED, "stopping"))
                        continue
                    deps = [results.get(d) for d in action.after if d in plan_ids]
                    bad = next((d for d in deps if d is not None and not d.outcome.done), None)
                    if bad is not None:
                        pending.remove(action)
                        why = f"{bad.action.id} did not complete ({bad.outcome})"
                        finish(ActionResult(action, Outcome.SKIPPED, why, 0.0, bad.retry_after))
                        continue
                    if any(d is None for d in deps):
                        continue  # a dependency is still to run
                    wait = self.backoff.remaining(action.vmid)
                    if wait > 0:
                        pending.remove(action)
                        n = self.backoff.failures(action.vmid)
                        why = f"backing off after {n} failure(s)"
                        finish(ActionResult(action, Outcome.SKIPPED, why, 0.0, wait))
                        continue
                    if action.vmid in busy or not slots.fits(action):
                        continue
                    pending.remove(action)
                    slots.take(action)
                    busy.add(action.vmid)
                    if self._listener is not None:
                        self._listener.action_started(action)
                    running[asyncio.create_task(self._one(action, run), name=action.id)] = action
                if not running:
                    for action in pending:  # unreachable for a valid plan (topological order)
                        finish(ActionResult(action, Outcome.SKIPPED, "dependency cycle"))
                    break
                stop_wait = asyncio.ensure_future(run.stop.wait())
                await asyncio.wait({*running, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
                stop_wait.cancel()
                for task in [t for t in running if t.done()]:
                    action = running.pop(task)
                    slots.give(action)
                    busy.discard(action.vmid)
                    finish(task.result())
        finally:
            for task in running:  # only when execute() itself is cancelled
                task.cancel()
        ordered = tuple(results[a.id] for a in plan.actions if a.id in results)
        return ExecutionReport(ordered, self._clock() - started)

    async def _one(self, action: Action, run: _Run) -> ActionResult:
        started = self._clock()
        hosts = hosts_of(action)
        bound = log.bind(action_id=action.id, vm=action.vmid, host=hosts[0] if hosts else None)
        bound.info("action_started", kind=action.kind, reason=action.reason)
        try:
            await self._dispatch(action, run)
        except _AdoptedSignal as adopted:
            outcome, detail, retry = Outcome.ADOPTED, str(adopted), None
        except _InterruptedError as exc:
            outcome, detail, retry = Outcome.INTERRUPTED, str(exc), None
        except _ReplanSignal as exc:
            outcome, detail, retry = Outcome.SKIPPED, str(exc), 0.0
        except LockedError as exc:
            outcome, detail = Outcome.REQUEUED, str(exc)
            retry = exc.retry_after or self.config.requeue_after
        except ProvisiondError as exc:
            outcome, detail = Outcome.FAILED, str(exc)
            retry = self.backoff.failed(action.vmid)
        except Exception as exc:  # noqa: BLE001 - a bug in one action must not stop the others
            bound.exception("action_crashed")
            outcome, detail = Outcome.FAILED, f"internal error: {type(exc).__name__}: {exc}"
            retry = self.backoff.failed(action.vmid)
        else:
            outcome, detail, retry = Outcome.SUCCEEDED, "", None
        if outcome.done:
            self.backoff.succeeded(action.vmid)
        seconds = self._clock() - started
        event = "action_failed" if outcome is Outcome.FAILED else "action_finished"
        (bound.warning if outcome is Outcome.FAILED else bound.info)(
            event, kind=action.kind, outcome=outcome.value, detail=detail, seconds=seconds
        )
        return ActionResult(action, outcome, detail, seconds, retry)

    async def _dispatch(self, action: Action, run: _Run) -> None:
        match action:
            case Clone():
                await self._clone(action, run)
            case Configure():
                await self._configure(action)
            case GrowDisk():
                await self._grow(action, run)
            case Start():
                await self._start(action.vmid, action.host, run)
            case Shutdown():
                await self._shutdown(action.vmid, action.host, action.force_stop, run)
            case Reboot():
                await self._reboot(action, run)
            case Migrate():
                await self._migrate(
                    action.vmid,
                    action.source,
                    action.target,
                    online=action.online,
                    local_disks=action.with_local_disks,
                    run=run,
                )
            case GpuMove():
                await self._gpu_move(action, run)
            case Destroy():
                await self._destroy(action, run)
            case Cordon() | Drain() | Uncordon() | Label() | TaintNode():
                _no_kube(action.kind)
            case _:
                assert_never(action)

    # ---------------------------------------------------------------- calls, tasks, reads

    async def _call(self, what: str, fn: Callable[[], Awaitable[T]]) -> T:
        """One Proxmox call with transient retries (the only use of tenacity)."""
        cfg = self.config

        def should_stop(state: RetryCallState) -> bool:
            exc = state.outcome.exception() if state.outcome else None
            if isinstance(exc, UnclassifiedError):
                return state.attempt_number > UnclassifiedError.max_retries
            return state.attempt_number >= cfg.max_attempts

        def wait(state: RetryCallState) -> float:
            exc = state.outcome.exception() if state.outcome else None
            ceiling = min(cfg.retry_max, cfg.retry_initial * 2 ** (state.attempt_number - 1))
            delay = self._rng.uniform(0, ceiling)  # "full jitter"
            hint = exc.retry_after if isinstance(exc, TransientError) else None
            return max(delay, min(hint, cfg.retry_max)) if hint else delay

        def before_sleep(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            log.info("call_retry", call=what, attempt=state.attempt_number, error=str(exc))

        retrying = AsyncRetrying(
            sleep=self._sleep,
            stop=should_stop,
            wait=wait,
            retry=retry_if_exception(
                lambda e: isinstance(e, TransientError) and not isinstance(e, LockedError)
            ),
            before_sleep=before_sleep,
            reraise=True,
        )

        async def attempt() -> T:  # tenacity awaits only coroutine *functions*
            return await fn()

        try:
            return await retrying(attempt)
        except UnclassifiedError as exc:
            raise PermanentError(f"{exc} (unrecognised error, gave up after retries)") from exc

    async def _pause(self, seconds: float, run: _Run, why: str) -> None:
        """Sleep, unless stop is requested first (then raise ``_InterruptedError``)."""
        if run.stop.is_set():
            raise _InterruptedError(why)
        sleeper = asyncio.ensure_future(self._sleep(seconds))
        stopper = asyncio.ensure_future(run.stop.wait())
        try:
            await asyncio.wait({sleeper, stopper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeper.cancel()
            stopper.cancel()
        if run.stop.is_set():
            raise _InterruptedError(why)

    def _polls(self) -> Callable[[], float]:
        delay = self.config.poll_initial / self.config.poll_factor

        def nxt() -> float:
            nonlocal delay
            delay = min(self.config.poll_max, delay * self.config.poll_factor)
            return delay

        return nxt

    async def _wait_task(self, task: TaskRef, what: str, run: _Run) -> TaskStatus:
        """Poll the task until it stops; raise with the log tail unless it succeeded."""
        deadline = self._clock() + self.config.task_timeout
        nxt = self._polls()
        while True:
            status = await self._call(f"task_status {what}", lambda: self._writer.task_status(task))
            if not status.running:
                break
            if self._clock() >= deadline:
                raise TransientError(
                    f"{what}: task {task.upid} still running after "
                    f"{self.config.task_timeout:.0f}s; it is adopted next cycle, never repeated"
                )
            await self._pause(
                nxt(), run, f"{what}: stopped while task {task.upid} runs (adopted next time)"
            )
        if status.ok:
            return status
        try:
            lines = await self._writer.task_log_tail(task, self.config.log_lines)
        except ProvisiondError:
            lines = ()
        text = status.exitstatus or "unknown error"
        err = error_for(500, text, context=f"{what}: task failed")
        tail = " | ".join(lines)
        msg = f"{err}; task log: {tail}" if tail else str(err)
        if isinstance(err, LockedError):
            raise LockedError(msg, lock=err.lock) from None
        raise PermanentError(msg) from None

    async def _read(self, vmid: int) -> ObservedVM | None:
        return await self._call(f"find_vm {vmid}", lambda: self._reader.find_vm(vmid))

    async def _foreign_clone_running(self, template_vmid: int) -> bool:
        """A clone of ``template_vmid`` runs that this process did not start (or is starting)."""
        tasks = await self._call("active_tasks", self._reader.active_tasks)
        unknown = [
            t
            for t in tasks
            if t.type == "qmclone" and t.id == str(template_vmid) and t.upid not in self._own_upids
        ]
        return len(unknown) > self._posting.get(template_vmid, 0)

    async def _migration_running(self, vmid: int) -> TaskRef | None:
        tasks = await self._call("active_tasks", self._reader.active_tasks)
        for t in tasks:
            if t.type in ("qmigrate", "hamigrate") and t.id == str(vmid):
                return TaskRef(node=t.node, upid=t.upid)
        return None

    def _check_ours(self, vm: ObservedVM, run: _Run, what: str) -> None:
        """Before a disruptive call: the VM must be ours (and this fleet's), unpaused, unlocked."""
        fleet = owner(vm)
        if fleet is None and vm.config is None:
            # A fresh read may not carry the config (the description marker) of a VM this run
            # just cloned: the clone's success is the proof then.
            fleet = run.created.get(vm.vmid)
        if fleet is None:
            raise PermanentError(f"refusing to {what} VM {vm.vmid}: not owned by provisiond")
        expected = run.fleets.get(vm.vmid)
        if expected is not None and fleet != expected:
            raise PermanentError(
                f"refusing to {what} VM {vm.vmid}: owned by fleet {fleet}, not {expected}"
            )
        if paused(vm):
            raise PermanentError(f"refusing to {what} VM {vm.vmid}: paused (tag pd-paused)")
        if vm.lock is not None:
            raise LockedError(f"VM {vm.vmid} is locked ({vm.lock})", lock=vm.lock)

    # ---------------------------------------------------------------- clone

    async def _clone(self, a: Clone, run: _Run) -> None:
        try:
            await self._clone_once(a, run)
        except _AdoptedSignal:
            run.created[a.vmid] = a.fleet
            raise
        run.created[a.vmid] = a.fleet

    async def _clone_once(self, a: Clone, run: _Run) -> None:
        vm = await self._settle_clone(a, run)
        if vm is not None:
            self._adopt_clone(a, vm, "already exists")
        attempts = 0
        adopted = False

        async def attempt() -> TaskRef | None:
            nonlocal attempts, adopted
            attempts += 1
            # The previous POST may have been accepted: look before re-POSTing.
            if attempts > 1 and (
                await self._read(a.vmid) is not None
                or await self._foreign_clone_running(a.template_vmid)
            ):
                adopted = True
                return None
            self._posting[a.template_vmid] = self._posting.get(a.template_vmid, 0) + 1
            try:
                ref = await self._writer.clone(
                    template_host=a.template_host,
                    template_vmid=a.template_vmid,
                    newid=a.vmid,
                    name=a.name,
                    description=a.description,
                    target=a.target,
                    full=a.full,
                    storage=a.storage,
                    pool=a.proxmox_pool,
                )
                self._own_upids.add(ref.upid)
                return ref
            finally:
                self._posting[a.template_vmid] -= 1

        try:
            ref = await self._call(f"clone {a.vmid}", attempt)
        except PermanentError as exc:
            if "already exists" not in str(exc):
                raise
            ref = None  # a racing POST (ours, or another leader's) took the VMID: re-observe
            adopted = True
        if ref is not None:
            try:
                await self._wait_task(ref, f"clone {a.vmid}", run)
            finally:
                self._own_upids.discard(ref.upid)
        vm = await self._settle_clone(a, run)
        if vm is None:
            raise PermanentError(f"clone {a.vmid}: the task ended but VM {a.vmid} is not there")
        if adopted:
            self._adopt_clone(a, vm, "appeared after a clone request whose answer was lost")

    @staticmethod
    def _adopt_clone(a: Clone, vm: ObservedVM, how: str) -> NoReturn:
        """A VM at our VMID we did not just create: adopt it if it provably is ours."""
        if owner(vm) == a.fleet:
            raise _AdoptedSignal(f"VM {a.vmid} {how} (adopted)")
        # The fresh read carries no config (description marker): let the next full observation
        # decide ownership instead of configuring a VM that might not be ours.
        raise _ReplanSignal(f"VM {a.vmid} {how}; its ownership is checked by the next observation")

    async def _settle_clone(self, a: Clone, run: _Run) -> ObservedVM | None:
        """Wait out a clone under way; the settled VM if it exists (ours), else ``None``.

        - our VMID with ``lock: clone``: a clone is in progress → wait for the lock to clear
          (stuck, i.e. no clone task of the template running → fail; never unlock);
        - our VMID absent but a clone of our template running that this process did not start:
          it may be ours from before a restart → wait until it ends, then look again;
        - our VMID present with another owner, or with its config read and no marker or tags:
          a conflict — fail, never touch it.
        """
        deadline = self._clock() + self.config.task_timeout
        nxt = self._polls()
        while True:
            vm = await self._read(a.vmid)
            if vm is None:
                if not await self._foreign_clone_running(a.template_vmid):
                    return None
                why = f"clone of template {a.template_vmid} running; waiting for VM {a.vmid}"
            elif vm.lock == "clone":
                tasks = await self._call("active_tasks", self._reader.active_tasks)
                cloning = any(t.type == "qmclone" and t.id == str(a.template_vmid) for t in tasks)
                if not cloning and not self._posting.get(a.template_vmid):
                    raise PermanentError(
                        f"VM {a.vmid} is locked (clone) but no clone task runs: stuck "
                        "placeholder; provisiond never unlocks it — check the task log"
                    )
                why = f"VM {a.vmid} is being cloned (lock: clone)"
            elif vm.lock is not None:
                raise LockedError(f"VM {a.vmid} is locked ({vm.lock})", lock=vm.lock)
            else:
                fleet = owner(vm)
                if (fleet is not None and fleet != a.fleet) or (
                    fleet is None and vm.config is not None
                ):
                    raise PermanentError(
                        f"VMID {a.vmid} is taken by a VM provisiond does not own "
                        f"({vm.name!r}); conflict left alone"
                    )
                return vm
            if self._clock() >= deadline:
                raise TransientError(f"{why} for over {self.config.task_timeout:.0f}s")
            await self._pause(nxt(), run, why)

    # ---------------------------------------------------------------- configure, resize

    async def _configure(self, a: Configure) -> None:
        if not a.values and not a.delete:
            raise _AdoptedSignal("nothing to change")
        await self._call(
            f"configure {a.vmid}",
            lambda: self._writer.configure(
                host=a.host, vmid=a.vmid, values=a.values, delete=a.delete
            ),
        )
        if "tags" in a.values:
            vm = await self._read(a.vmid)
            want = tuple(sorted({t.strip().lower() for t in a.values["tags"].split(";") if t}))
            if vm is None or tuple(sorted(vm.tags)) != want:
                got = vm.tags if vm is not None else "VM gone"
                raise TransientError(
                    f"configure {a.vmid}: tags not applied (want {want}, got {got})"
                )

    async def _grow(self, a: GrowDisk, run: _Run) -> None:
        ref = await self._call(
            f"resize {a.vmid}",
            lambda: self._writer.resize(
                host=a.host, vmid=a.vmid, disk=a.disk, size_bytes=a.size_bytes
            ),
        )
        await self._wait_task(ref, f"resize {a.vmid} {a.disk}", run)

    # ---------------------------------------------------------------- power

    async def _start(self, vmid: int, host: str, run: _Run) -> None:
        vm = await self._present(vmid, "start")
        if vm.status is VMStatus.RUNNING:
            raise _AdoptedSignal(f"VM {vmid} already running")
        if vm.lock is not None:
            raise LockedError(f"VM {vmid} is locked ({vm.lock})", lock=vm.lock)
        node = vm.host or host
        ref = await self._call(f"start {vmid}", lambda: self._writer.start(host=node, vmid=vmid))
        await self._wait_for_effect(ref, vmid, VMStatus.RUNNING, "start", run)

    async def _shutdown(self, vmid: int, host: str, force_stop: bool, run: _Run) -> None:
        vm = await self._present(vmid, "shut down")
        if vm.status is VMStatus.STOPPED:
            raise _AdoptedSignal(f"VM {vmid} already stopped")
        self._check_ours(vm, run, "shut down")
        if vm.host != host:
            raise PermanentError(f"VM {vmid} moved to {vm.host} since the plan; replanning")
        ref = await self._call(
            f"shutdown {vmid}",
            lambda: self._writer.shutdown(
                host=host, vmid=vmid, shutdown_timeout=60, force_stop=force_stop
            ),
        )
        await self._wait_for_effect(ref, vmid, VMStatus.STOPPED, "shutdown", run)

    async def _reboot(self, a: Reboot, run: _Run) -> None:
        vm = await self._present(a.vmid, "reboot")
        self._check_ours(vm, run, "reboot")
        if vm.status is not VMStatus.RUNNING:
            raise PermanentError(f"VM {a.vmid} is {vm.status}, not running: nothing to reboot")
        ref = await self._call(
            f"reboot {a.vmid}", lambda: self._writer.reboot(host=vm.host, vmid=a.vmid)
        )
        await self._wait_task(ref, f"reboot {a.vmid}", run)

    async def _present(self, vmid: int, what: str) -> ObservedVM:
        vm = await self._read(vmid)
        if vm is None:
            raise PermanentError(f"cannot {what} VM {vmid}: it does not exist (any more)")
        if vm.status is VMStatus.UNKNOWN:
            raise TransientError(f"cannot {what} VM {vmid}: its host {vm.host} does not answer")
        return vm

    async def _wait_for_effect(
        self, ref: TaskRef, vmid: int, want: VMStatus, what: str, run: _Run
    ) -> None:
        """Wait for a power task; success is the VM in ``want``. A failed task whose effect is
        there anyway — a retried POST whose first answer was lost, so the second task found the
        VM already started/stopped — is success, not a failure to back off from."""
        try:
            await self._wait_task(ref, f"{what} {vmid}", run)
        except PermanentError:
            vm = await self._read(vmid)
            if vm is None or vm.status is not want:
                raise
            log.info("task_failed_but_effect_present", vmid=vmid, action=what)
            return
        await self._expect_status(vmid, want, what)

    async def _expect_status(self, vmid: int, want: VMStatus, what: str) -> None:
        vm = await self._read(vmid)
        if vm is None or vm.status is not want:
            got = vm.status if vm is not None else "gone"
            # HA-managed VMs reach the state after the HA manager acts: not an error yet.
            raise TransientError(f"{what} {vmid}: task OK but VM is {got}, not {want}")

    # ---------------------------------------------------------------- migrate

    async def _migrate(
        self,
        vmid: int,
        source: str,
        target: str,
        *,
        online: bool,
        local_disks: bool,
        run: _Run,
    ) -> None:
        vm = await self._present(vmid, "migrate")
        if vm.host == target and vm.lock is None:
            raise _AdoptedSignal(f"VM {vmid} already on {target}")
        running = await self._migration_running(vmid)
        if running is not None:
            await self._wait_task(running, f"migrate {vmid} (adopted)", run)
            await self._expect_host(vmid, target)
            raise _AdoptedSignal(f"VM {vmid} migration to {target} was under way (adopted)")
        self._check_ours(vm, run, "migrate")
        if vm.host != source:
            raise PermanentError(f"VM {vmid} is on {vm.host}, not {source}: replanning")
        attempts = 0

        async def attempt() -> TaskRef | None:
            nonlocal attempts
            attempts += 1
            if attempts > 1:  # the last POST may have been accepted: look first
                again = await self._read(vmid)
                if again is not None and again.host == target:
                    return None
                if await self._migration_running(vmid) is not None:
                    return None
            return await self._writer.migrate(
                host=source, vmid=vmid, target=target, online=online, with_local_disks=local_disks
            )

        ref = await self._call(f"migrate {vmid}", attempt)
        if ref is None:
            ref = await self._migration_running(vmid)
        if ref is not None:
            await self._wait_task(ref, f"migrate {vmid}", run)
        await self._expect_host(vmid, target)

    async def _expect_host(self, vmid: int, target: str) -> None:
        vm = await self._read(vmid)
        if vm is None or vm.host != target:
            got = vm.host if vm is not None else "gone"
            raise TransientError(f"migrate {vmid}: VM is on {got}, not {target} yet")

    async def _gpu_move(self, a: GpuMove, run: _Run) -> None:
        did_something = False
        for step in a.steps:
            if step in _KUBE_STEPS:
                _no_kube(f"{step.value} node {a.node} of VM {a.vmid}")
            try:
                if step is MoveStep.SHUTDOWN:
                    await self._shutdown(a.vmid, a.source, a.force_stop, run)
                elif step is MoveStep.MIGRATE_OFFLINE:
                    await self._migrate(
                        a.vmid,
                        a.source,
                        a.target,
                        online=False,
                        local_disks=a.with_local_disks,
                        run=run,
                    )
                elif step is MoveStep.START:
                    await self._start(a.vmid, a.target, run)
                did_something = True
            except _AdoptedSignal:
                continue  # this step's effect is in place: go on with the next one
        if not did_something:
            raise _AdoptedSignal(f"VM {a.vmid} already on {a.target} in the wanted state")

    # ---------------------------------------------------------------- destroy

    async def _destroy(self, a: Destroy, run: _Run) -> None:
        vm = await self._read(a.vmid)
        if vm is None:
            raise _AdoptedSignal(f"VM {a.vmid} already gone")
        if vm.status is VMStatus.UNKNOWN:
            raise TransientError(f"not destroying VM {a.vmid}: host {vm.host} does not answer")
        fleet = owner(vm)
        if fleet != a.fleet:
            raise PermanentError(
                f"refusing to destroy VM {a.vmid}: owner is {fleet or 'not provisiond'}, "
                f"not fleet {a.fleet}"
            )
        run.fleets.setdefault(a.vmid, a.fleet)
        self._check_ours(vm, run, "destroy")
        if vm.host != a.host:
            raise PermanentError(f"VM {a.vmid} moved to {vm.host} since the plan; replanning")
        if vm.status is VMStatus.RUNNING:
            ref = await self._call(
                f"stop {a.vmid}", lambda: self._writer.stop(host=vm.host, vmid=a.vmid)
            )
            await self._wait_task(ref, f"stop {a.vmid}", run)
            again = await self._read(a.vmid)
            if again is None:
                raise _AdoptedSignal(f"VM {a.vmid} already gone")
            self._check_ours(again, run, "destroy")
        ref = await self._call(
            f"destroy {a.vmid}", lambda: self._writer.destroy(host=vm.host, vmid=a.vmid)
        )
        await self._wait_task(ref, f"destroy {a.vmid}", run)
        if await self._read(a.vmid) is not None:
            raise TransientError(f"destroy {a.vmid}: task OK but the VM is still listed")


def _no_kube(what: str) -> NoReturn:
    raise PermanentError(KUBE_NOT_CONFIGURED.format(what=what))
