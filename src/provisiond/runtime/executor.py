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
4. **Verify** the effect where the task's result does not prove it (an HA-managed start, a
   migration's landing, a destroy) with a fresh read of that one VM; everything else — the
   config a write left, a task that ended ``OK`` — is re-checked by the next cycle, which
   re-observes everything (level-triggered).

Before acting, each action re-reads its VM on the host the plan names (one request: status or
config with its digest), re-checks ownership and that the action is still needed; a clone
trusts the observation the plan was made from (``execute(observed=…)``) instead of re-listing.

Errors by type: ``LockedError`` → *requeued* (never unlocked, no ``skiplock``); a write whose
``digest`` went stale (``StaleDigestError``: the VM changed since it was read) → *requeued* for
the next observation, never re-sent as is; an exhausted
``TransientError`` or a ``PermanentError`` → *failed*, and the VM backs off exponentially
(``ObjectBackoff``) while the rest of the plan goes on.

No effect: given the observation the plan was made from (``execute(observed=…)``), an action
that completed, yet is planned again on the very same observed VM, had no effect (PVE accepted a
write but kept it pending, a pending delete still hides the key…). It is not run again at once:
``RepeatLimiter`` spaces its retries from ``repeat_base`` doubling up to ``repeat_max``, and
forgets as soon as the VM's observed state changes. The first detection of a streak is logged as
``action_no_effect`` (VM, action, config keys); every detection is counted in
``no_effect_total`` and marked ``ActionResult.no_effect`` (what the metrics listener counts).

Right before a destroy, migrate or shutdown the VM is re-read (lock, tags, host): two
overlapping leaders stay harmless.

Layout: this module schedules (order, limits, one action per VM, stop), retries calls and turns
each action's ending into an outcome (``_one``); how each kind of action is carried out — its
adoption rules and effect check — lives in ``runtime/actions/``, one module per family (create/
adopt, configure/resize, power, migrate, destroy, Kubernetes, PVE HA rules), over the shared
task waiter (``actions/tasks.py``). Kubernetes node actions go through ``KubeReader``/
``KubeWriter`` (``kube_reader``/``kube_writer``); without them they fail as not configured.

Stop: no new action starts; an action waiting for a Proxmox task returns *interrupted* at once
(the task continues server-side and is adopted by the next cycle or start); an HTTP call in
flight completes first.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import fields
from typing import TypeVar, assert_never

import structlog
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception

from provisiond.core import actions as act
from provisiond.core.actions import Action, hosts_of
from provisiond.core.desired import DesiredState
from provisiond.core.errors import (
    LockedError,
    NotLeaderError,
    PermanentError,
    ProvisiondError,
    TransientError,
    UnclassifiedError,
)
from provisiond.core.observed import ObservedState, ObservedVM
from provisiond.core.plan import Plan
from provisiond.core.ports import (
    ClusterReader,
    KubeReader,
    KubeWriter,
    ProxmoxWriter,
    StaleDigestError,
)
from provisiond.runtime.actions import (
    configure,
    destroy,
    drain,
    gpumove,
    harules,
    kube,
    migrate,
    power,
)
from provisiond.runtime.actions.clone import Cloner
from provisiond.runtime.actions.config import ExecutorConfig
from provisiond.runtime.actions.context import (
    ActionContext,
    AdoptedSignal,
    ReplanSignal,
    RequeueSignal,
)
from provisiond.runtime.actions.tasks import Sleep, TaskWaiter, WaitInterruptedError
from provisiond.runtime.backoff import ObjectBackoff, RepeatLimiter
from provisiond.runtime.limits import Limits, Slots
from provisiond.runtime.results import ActionListener, ActionResult, ExecutionReport, Outcome

__all__ = ["Executor", "ExecutorConfig"]  # ExecutorConfig lives in actions.config

log = structlog.get_logger("provisiond.executor")

T = TypeVar("T")


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
        kube_reader: KubeReader | None = None,
        kube_writer: KubeWriter | None = None,
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._kube = (kube_reader, kube_writer)
        self.config = config or ExecutorConfig()
        self._clock = clock
        self._sleep = sleep
        self._listener = listener
        self._rng = rng or random.Random()  # noqa: S311 - retry jitter, not cryptography
        self.backoff = ObjectBackoff(
            clock=clock, base=self.config.backoff_base, maximum=self.config.backoff_max
        )
        self.repeats = RepeatLimiter(
            clock=clock, base=self.config.repeat_base, maximum=self.config.repeat_max
        )
        self.no_effect_total = 0  # actions that completed without effect (monotonic)
        self._cloner = Cloner()  # remembers this process's clone tasks across runs

    # ---------------------------------------------------------------- scheduling

    async def execute(
        self,
        plan: Plan,
        *,
        desired: DesiredState | None = None,
        observed: ObservedState | None = None,
        stop: asyncio.Event | None = None,
        limits: Limits | None = None,
    ) -> ExecutionReport:
        """Run ``plan`` once under the limits; returns every action's result.

        ``observed``: the observation ``plan`` was made from; it enables the no-effect limit.
        """
        ctx = self._context(stop or asyncio.Event())
        ctx.observed = observed
        states: dict[int, ObservedVM] | None = None
        if observed is not None:
            states = {vm.vmid: vm for vm in observed.vms}
            self.planned(plan)
        if desired is not None:
            for vm in desired.all_vms():
                ctx.groups[vm.vmid] = (vm.fleet, vm.pool)
                ctx.fleets[vm.vmid] = vm.fleet
                ctx.desired[vm.vmid] = vm
        slots = Slots(limits or Limits.from_desired(desired), ctx.groups)
        started = self._clock()
        pending = list(plan.actions)
        results: dict[str, ActionResult] = {}
        running: dict[asyncio.Task[ActionResult], Action] = {}
        busy: set[int] = set()  # one action per VM at a time

        def finish(result: ActionResult) -> None:
            results[result.action.id] = result
            if states is not None:
                if result.outcome.done:
                    a = result.action
                    self.repeats.ran(a.id, _identity(a), states.get(a.vmid))
                elif result.outcome is Outcome.FAILED:
                    self.repeats.forget(result.action.id)  # failures back off on their own
            if self._listener is not None:
                self._listener.action_finished(result)

        plan_ids = {a.id for a in plan.actions}
        if self._listener is not None:
            self._listener.plan_started(plan)
        try:
            while pending or running:
                for action in list(pending):
                    if ctx.stop.is_set():
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
                    if states is not None:
                        limited = self._limit_repeat(action, states.get(action.vmid))
                        if limited is not None:
                            pending.remove(action)
                            finish(limited)
                            continue
                    if action.vmid in busy or not slots.fits(action):
                        continue
                    pending.remove(action)
                    slots.take(action)
                    busy.add(action.vmid)
                    if self._listener is not None:
                        self._listener.action_started(action)
                    running[asyncio.create_task(self._one(action, ctx), name=action.id)] = action
                if not running:
                    for action in pending:  # unreachable for a valid plan (topological order)
                        finish(ActionResult(action, Outcome.SKIPPED, "dependency cycle"))
                    break
                stop_wait = asyncio.ensure_future(ctx.stop.wait())
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

    def planned(self, plan: Plan) -> None:
        """A plan was made (executed or not): actions it no longer holds are forgotten by the
        no-effect limit, so a VM that converged and later regressed is acted on at once."""
        self.repeats.keep_only(a.id for a in plan.actions)

    def _limit_repeat(self, action: Action, state: ObservedVM | None) -> ActionResult | None:
        """The skip of an action planned again on the state its last run left unchanged."""
        seen = self.repeats.admit(action.id, _identity(action), state)
        if seen.no_effect:
            self.no_effect_total += 1
            if seen.repeats == 1:  # once per streak: the first time it is seen
                log.warning(
                    "action_no_effect",
                    action_id=action.id,
                    vm=action.vmid,
                    kind=action.kind,
                    keys=_keys(action),
                    retry_in=round(seen.wait, 3),
                )
        if seen.wait <= 0:
            return None
        why = (
            f"no effect after {seen.repeats} identical run(s) on an unchanged VM; "
            f"next try in {seen.wait:.0f}s"
        )
        return ActionResult(action, Outcome.SKIPPED, why, 0.0, seen.wait, seen.no_effect)

    async def _one(self, action: Action, ctx: ActionContext) -> ActionResult:
        started = self._clock()
        hosts = hosts_of(action)
        bound = log.bind(action_id=action.id, vm=action.vmid, host=hosts[0] if hosts else None)
        bound.info("action_started", kind=action.kind, reason=action.reason)
        try:
            await self._dispatch(action, ctx)
        except AdoptedSignal as adopted:
            outcome, detail, retry = Outcome.ADOPTED, str(adopted), None
        except WaitInterruptedError as exc:
            outcome, detail, retry = Outcome.INTERRUPTED, str(exc), None
        except ReplanSignal as exc:
            outcome, detail, retry = Outcome.SKIPPED, str(exc), 0.0
        except NotLeaderError as exc:  # the fence refused a call: not this object's failure
            outcome, detail, retry = Outcome.SKIPPED, str(exc), None
        except RequeueSignal as exc:  # changed under us: the next observation decides
            outcome, detail, retry = Outcome.REQUEUED, str(exc), 0.0
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

    async def _dispatch(self, action: Action, ctx: ActionContext) -> None:
        match action:
            case act.Clone():
                await self._cloner.clone(action, ctx)
            case act.Configure():
                await configure.configure(action, ctx)
            case act.GrowDisk():
                await configure.grow(action, ctx)
            case act.Start():
                await power.start(action.vmid, action.host, ctx)
            case act.Shutdown():
                await power.shutdown(action.vmid, action.host, action.force_stop, ctx)
            case act.Reboot():
                await power.reboot(action, ctx)
            case act.Migrate():
                await migrate.migrate(
                    action.vmid,
                    action.source,
                    action.target,
                    online=action.online,
                    local_disks=action.with_local_disks,
                    ctx=ctx,
                )
            case act.GpuMove():
                await gpumove.gpu_move(action, ctx)
            case act.Destroy():
                await destroy.destroy(action, ctx)
            case act.Label():
                await kube.label(action, ctx)
            case act.TaintNode():
                await kube.taint(action, ctx)
            case act.Cordon():
                await kube.cordon(action, ctx)
            case act.Uncordon():
                await kube.uncordon(action, ctx)
            case act.Drain():
                await drain.drain(action, ctx)
            case act.HaRuleCreate():
                await harules.create(action, ctx)
            case act.HaRuleUpdate():
                await harules.update(action, ctx)
            case act.HaRuleDelete():
                await harules.delete(action, ctx)
            case _:
                assert_never(action)

    def _context(self, stop: asyncio.Event) -> ActionContext:
        """What one ``execute`` call shares among its actions."""
        tasks = TaskWaiter(
            writer=self._writer,
            call=self._call,
            config=self.config,
            clock=self._clock,
            sleep=self._sleep,
            stop=stop,
        )
        return ActionContext(
            self._reader,
            self._writer,
            self._call,
            tasks,
            stop,
            kube_reader=self._kube[0],
            kube_writer=self._kube[1],
        )

    # ---------------------------------------------------------------- calls

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
            retry=retry_if_exception(  # a lock or a stale digest is requeued, never retried as is
                lambda e: (
                    isinstance(e, TransientError)
                    and not isinstance(e, LockedError | StaleDigestError)
                )
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


def _identity(action: Action) -> dict[str, object]:
    """What makes two plans' actions the same action: every field but the prose and order."""
    return {
        f.name: getattr(action, f.name) for f in fields(action) if f.name not in ("reason", "after")
    }


def _keys(action: Action) -> list[str]:
    """The config keys an action writes (for the ``action_no_effect`` log)."""
    if isinstance(action, act.Configure):
        return sorted({*action.values, *action.delete})
    if isinstance(action, act.GrowDisk):
        return [action.disk]
    return []
