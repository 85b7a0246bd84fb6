"""The reconciler: level-triggered cycles of observe → plan → execute (DESIGN §2, STYLE §3).

Every cycle re-observes the whole cluster and re-plans from scratch; nothing is learned from
event deltas, so a crash, a restart or a lost trigger loses nothing. Triggers only make the next
cycle come sooner:
- the timer (``interval``) guarantees one comes;
- ``trigger(reason)`` — the API other components call (spec-directory watcher, Kubernetes
  watch, MQTT ``cmd/reconcile``), also ``reload()`` for SIGHUP;
- the cycle itself: after progress, or while work is under way or locked, the next cycle comes
  after ``follow_up`` seconds (or the executor's retry hint), not after the full interval; after
  a failed cycle or an incomplete observation (a read failed), after ``max(follow_up, 5)`` s (the
  interval if shorter).

"Progress" is only a hint that the next step may be plannable: whether an action had an effect
is judged by the next observation. An action planned again on an unchanged VM is held back by
the executor's per-action ``RepeatLimiter`` (1 s doubling to 15 min, forgotten when the VM
changes), so it reports no progress and a growing retry hint; ``CycleRate`` caps cycles globally
(``max_cycle_rate`` per second after a ``cycle_burst``) under every rule, triggers included.

Invariants:
- one cycle at a time; triggers arriving during a cycle coalesce into one next cycle, and a burst
  of triggers is debounced (``debounce`` seconds); never more than ``max_cycle_rate`` cycles per
  second in the long run;
- a failing cycle (observation error, a bug) is logged and counted, never kills the loop;
- a cycle is *converged* only when its observation was complete (``read_failures`` empty): a
  plan with nothing to do made from a failed read (every missing VM blocked as unobserved) is not
  convergence, and is logged with ``unobserved``;
- a spec that fails to load never reaches the planner: the last good spec is kept and acted on,
  and the error (every issue with file:line) is reported each time the files change;
- ``read_only``: observe, plan and report; never execute;
- ``may_act`` (leader election): a standby observes and plans (staying warm) but never
  executes, and its cycles come at the timer's pace, not the follow-up's;
- Proxmox that cannot be talked to at all (``core.errors.ACCESS_ERRORS``: unreachable, TLS, a
  rejected token) is a state of its own, not a failed read: one ``proxmox_access_failed`` error
  event per distinct cause (and ``proxmox_access_restored`` once it passes), nothing planned,
  the last good spec and the caches kept, and the next try on a backoff — doubling from
  ``max(follow_up, 5)`` s up to a minute for unreachable/TLS, from ``auth_backoff`` up to
  ``auth_backoff_max`` (minutes) for authentication and permission failures;
- a stop abandons an observation under way (a read is safe to drop): stop is honoured at once
  even while Proxmox hangs; likewise a spec load under way, which runs in a daemon thread
  (``runtime.offload``: pure-Python parsing of a large spec takes seconds) and, abandoned, leaves
  the last good spec in place and is redone by the next cycle.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Protocol

import structlog

from provisiond.core.desired import DesiredState
from provisiond.core.errors import ACCESS_ERRORS, AuthError, ProvisiondError, SpecError, TLSError
from provisiond.core.observed import ObservedState, Unobserved
from provisiond.core.plan import Plan
from provisiond.core.ports import ClusterReader, SpecSource
from provisiond.runtime import offload
from provisiond.runtime.backoff import CycleRate
from provisiond.runtime.executor import Executor
from provisiond.runtime.results import ExecutionReport

log = structlog.get_logger("provisiond.reconciler")

PlanFn = Callable[[DesiredState, ObservedState], Plan]


@dataclass(frozen=True, slots=True)
class CycleResult:
    id: int
    seconds: float
    triggers: tuple[str, ...] = ()
    desired: DesiredState | None = None
    observed: ObservedState | None = None
    plan: Plan | None = None
    report: ExecutionReport | None = None
    error: str | None = None  # the cycle failed (nothing was planned or executed)
    spec_error: SpecError | None = None  # the spec on disk is invalid (last good one used)
    read_only: bool = False
    standby: bool = False  # planned but not executed: another replica holds the lease
    access: str | None = None  # "unreachable" / "tls" / "auth": Proxmox could not be talked to

    @property
    def incomplete(self) -> tuple[str, ...]:
        """What the observation failed to read (``ObservedState.read_failures``)."""
        return self.observed.read_failures if self.observed is not None else ()

    @property
    def converged(self) -> bool:
        """Nothing left to do and nothing under way (blocked items and conflicts may remain),
        as seen by a complete observation: a plan made from a failed read is not converged."""
        return (
            self.error is None
            and self.plan is not None
            and self.plan.empty
            and not self.plan.waiting
            and not self.incomplete
        )

    @property
    def result(self) -> str:
        """``success`` / ``error`` / ``requeue`` — the reconcile_total{result} label."""
        if self.error is not None:
            return "error"
        if self.report is not None and self.report.failed:
            return "error"
        if self.plan is not None and (self.plan.waiting or not self.plan.empty):
            return "requeue"
        if self.incomplete:
            return "requeue"
        return "success"


class CycleListener(Protocol):
    def cycle_finished(self, result: CycleResult) -> None: ...


@dataclass(slots=True)
class _SpecState:
    source: SpecSource
    desired: DesiredState | None = None
    fingerprint: str | None = None  # of the files last loaded (good or bad)
    error: SpecError | None = None
    reload: bool = True


@dataclass(slots=True)
class _Access:
    """Why Proxmox cannot be talked to, since how many consecutive cycles."""

    kind: str
    message: str
    failures: int = 1


def _access_kind(exc: ProvisiondError) -> str:
    if isinstance(exc, AuthError):
        return "auth"
    return "tls" if isinstance(exc, TLSError) else "unreachable"


@dataclass(slots=True)
class _Triggers:
    event: asyncio.Event = field(default_factory=asyncio.Event)
    reasons: list[str] = field(default_factory=list)


class Reconciler:
    name = "reconciler"

    def __init__(
        self,
        spec: SpecSource,
        reader: ClusterReader,
        executor: Executor,
        planner: PlanFn,
        *,
        interval: float = 60.0,
        follow_up: float = 2.0,
        debounce: float = 0.1,
        read_only: bool = False,
        max_cycle_rate: float = 2.0,
        cycle_burst: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
        listener: CycleListener | None = None,
        may_act: Callable[[], bool] | None = None,
        auth_backoff: float = 60.0,
        auth_backoff_max: float = 900.0,
    ) -> None:
        self._spec = _SpecState(spec)
        self._reader = reader
        self._executor = executor
        self._planner = planner
        self.interval = interval
        self.follow_up = follow_up
        self.debounce = debounce
        self.read_only = read_only
        self._clock = clock
        self._rate = CycleRate(clock=clock, rate=max_cycle_rate, burst=cycle_burst)
        self._listener = listener
        self._may_act = may_act or (lambda: True)
        self._triggers = _Triggers()
        self._ids = itertools.count(1)
        self._cycle_lock = asyncio.Lock()
        self.auth_backoff = auth_backoff
        self.auth_backoff_max = auth_backoff_max
        self._access: _Access | None = None
        self.last: CycleResult | None = None

    # ---------------------------------------------------------------- the trigger API

    def trigger(self, reason: str) -> None:
        """Ask for a cycle soon. Cheap, idempotent; call from the event loop's thread."""
        self._triggers.reasons.append(reason)
        self._triggers.event.set()

    def reload(self, spec: SpecSource | None = None) -> None:
        """SIGHUP: reload the spec (from a new source if given) and reconcile soon."""
        if spec is not None:
            self._spec.source = spec
        self._spec.reload = True
        self.trigger("reload")

    @property
    def spec_source(self) -> SpecSource:
        return self._spec.source

    @property
    def planner(self) -> PlanFn:
        return self._planner

    @property
    def spec_error(self) -> SpecError | None:
        return self._spec.error

    @property
    def desired(self) -> DesiredState | None:
        return self._spec.desired

    # ---------------------------------------------------------------- the loop

    async def run(self, stop: asyncio.Event) -> None:
        self.trigger("start")
        while not stop.is_set():
            await self._sleep_unless(self._rate.delay(), stop)
            if stop.is_set():
                break
            self._rate.take()
            result = await self.cycle(stop)
            delay = self._next_delay(result)
            if not await self._wait(delay, stop):
                continue  # timer
            # a trigger: let a burst settle, then go
            await self._sleep_unless(self.debounce, stop)

    def next_delay(self, result: CycleResult) -> float:
        """Seconds until the cycle after ``result`` (without triggers), the cycle cap included."""
        return max(self._next_delay(result), self._rate.delay())

    def _next_delay(self, result: CycleResult) -> float:
        retry_soon = min(self.interval, max(self.follow_up, 5.0))
        if result.access is not None and self._access is not None:
            n = self._access.failures - 1
            if result.access == "auth":  # a token does not come back by itself: minutes
                return min(self.auth_backoff_max, self.auth_backoff * 2.0**n)
            return min(max(retry_soon, min(self.interval, 60.0)), retry_soon * 2.0**n)
        if result.plan is None or result.error is not None:
            return retry_soon
        delay = self.interval
        if result.incomplete:
            delay = retry_soon  # a read failed: look again soon, not after the full interval
        report = result.report
        if result.plan.waiting and not result.standby:  # a standby waits on nothing
            delay = min(delay, self.follow_up)
        if report is not None:
            if report.progressed and not result.converged:
                delay = min(delay, self.debounce)  # keep converging: the next step is planned
            if report.retry_after is not None:
                delay = min(delay, max(self.debounce, report.retry_after))
        elif not result.plan.empty and not self.read_only and not result.standby:
            delay = min(delay, self.follow_up)
        return delay

    async def _wait(self, delay: float, stop: asyncio.Event) -> bool:
        """Wait for a trigger, the timer or stop; True when triggered."""
        if self._triggers.event.is_set():
            return True
        waiters = {
            asyncio.ensure_future(self._triggers.event.wait()),
            asyncio.ensure_future(stop.wait()),
        }
        try:
            _done, _ = await asyncio.wait(
                waiters, timeout=delay, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            for w in waiters:
                w.cancel()
        return self._triggers.event.is_set()

    @staticmethod
    async def _sleep_unless(seconds: float, stop: asyncio.Event) -> None:
        if seconds <= 0:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), seconds)

    # ---------------------------------------------------------------- one cycle

    async def cycle(self, stop: asyncio.Event | None = None) -> CycleResult:
        """One full observe → plan → execute cycle. Never raises (except cancellation)."""
        async with self._cycle_lock:
            reasons = tuple(self._triggers.reasons) or ("timer",)
            self._triggers.reasons.clear()
            self._triggers.event.clear()
            cid = next(self._ids)
            structlog.contextvars.bind_contextvars(reconcile_id=cid)
            started = self._clock()
            try:
                result = await self._cycle(cid, reasons, stop or asyncio.Event(), started)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a failing cycle never kills the daemon: log, go on
                log.exception("reconcile_failed", triggers=list(reasons))
                result = CycleResult(
                    cid,
                    self._clock() - started,
                    reasons,
                    desired=self._spec.desired,
                    error=f"{type(exc).__name__}: {exc}",
                    spec_error=self._spec.error,
                    read_only=self.read_only,
                )
            finally:
                structlog.contextvars.unbind_contextvars("reconcile_id")
            self.last = result
            if self._listener is not None:
                self._listener.cycle_finished(result)
            return result

    async def _load_spec(self, stop: asyncio.Event) -> bool:
        """Load the spec when its files changed (or a reload was asked); False when stop came
        first: the load, off the loop in a daemon thread, is abandoned and nothing changes."""
        st = self._spec
        fingerprint = st.source.fingerprint()
        if not st.reload and st.desired is not None and fingerprint == st.fingerprint:
            return True
        if not st.reload and st.error is not None and fingerprint == st.fingerprint:
            return True  # still the same bad files: reported already
        reload, previous = st.reload, st.fingerprint
        st.reload, st.fingerprint = False, fingerprint
        log.info("spec_loading")  # a spec near the limits takes seconds: say it started
        try:
            loaded = await offload.call(st.source.load, stop, name="spec-load")
        except SpecError as exc:
            st.error = exc
            log.error(
                "spec_invalid",
                issues=[str(i) for i in exc.issues],
                using="last good spec" if st.desired is not None else "nothing",
            )
            return True
        if loaded is offload.ABANDONED:
            st.reload, st.fingerprint = st.reload or reload, previous  # load again next time
            return False
        st.desired, st.error = loaded, None
        log.info("spec_loaded", fleets=[f.name for f in loaded.fleets])
        return True

    async def _cycle(
        self, cid: int, reasons: tuple[str, ...], stop: asyncio.Event, started: float
    ) -> CycleResult:
        loaded = await self._load_spec(stop)
        desired = self._spec.desired
        if not loaded:
            return self._failed(cid, reasons, started, desired, "stopped during the spec load")
        if desired is None:
            return self._failed(cid, reasons, started, None, "no valid spec loaded yet")
        try:
            observed = await self._observe(stop)
        except ACCESS_ERRORS as exc:
            return self._no_access(cid, reasons, started, desired, exc)
        if observed is None:
            return self._failed(cid, reasons, started, desired, "stopped during the observation")
        if self._access is not None:
            log.info("proxmox_access_restored", cause=self._access.kind)
            self._access = None
        plan = self._planner(desired, observed)
        standby = not self._may_act()
        log.info(
            "plan_ready",
            role="standby" if standby else "leader",
            triggers=list(reasons),
            actions=len(plan.actions),
            blocked=len(plan.blocked),
            conflicts=len(plan.conflicts),
            waiting=len(plan.waiting),
            **({"unobserved": list(observed.read_failures)} if observed.read_failures else {}),
        )
        report: ExecutionReport | None = None
        self._executor.planned(plan)
        if not self.read_only and not standby and not plan.empty and not stop.is_set():
            report = await self._executor.execute(
                plan, desired=desired, observed=observed, stop=stop
            )
        result = CycleResult(
            cid,
            self._clock() - started,
            reasons,
            desired=desired,
            observed=observed,
            plan=plan,
            report=report,
            spec_error=self._spec.error,
            read_only=self.read_only,
            standby=standby,
        )
        log.info(
            "reconcile_finished",
            result=result.result,
            seconds=round(result.seconds, 3),
            outcomes=report.counts() if report is not None else None,
        )
        return result

    async def _observe(self, stop: asyncio.Event) -> ObservedState | None:
        """The observation, or None when stop came first: it is abandoned, not waited for."""
        observed = await offload.unless_stopped(asyncio.ensure_future(self._reader.observe()), stop)
        return None if observed is offload.ABANDONED else observed

    def _no_access(
        self,
        cid: int,
        reasons: tuple[str, ...],
        started: float,
        desired: DesiredState,
        exc: ProvisiondError,
    ) -> CycleResult:
        """Proxmox cannot be talked to: log the cause once per change, plan nothing."""
        kind, message = _access_kind(exc), str(exc)
        prev = self._access
        if prev is not None and (prev.kind, prev.message) == (kind, message):
            prev.failures += 1
            log.debug("proxmox_access_failed", cause=kind, error=message, failures=prev.failures)
        else:
            self._access = _Access(kind, message)
            log.error("proxmox_access_failed", cause=kind, error=message)
        return replace(
            self._failed(cid, reasons, started, desired, message),
            # nothing could be read: the observation is the empty, incomplete one (not ready)
            observed=ObservedState(unobserved=Unobserved(lists=("cluster/resources",))),
            access=kind,
        )

    def _failed(
        self,
        cid: int,
        reasons: tuple[str, ...],
        started: float,
        desired: DesiredState | None,
        error: str,
    ) -> CycleResult:
        """A cycle that ended before its plan: nothing planned or executed, ``error`` says why."""
        return CycleResult(
            cid,
            self._clock() - started,
            reasons,
            desired=desired,
            error=error,
            spec_error=self._spec.error,
            read_only=self.read_only,
        )
