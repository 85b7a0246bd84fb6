"""Leader election on a ``coordination.k8s.io/v1`` Lease: exactly one replica acts.

The algorithm is client-go's (``tools/leaderelection``, SEMANTICS §10), written here as a
small state machine over the ``LeaseClient`` port:

- **acquire**: every ``retry_period`` (jittered up to 1.2 times, so replicas do not march in step)
  read the Lease. None → create it holding it. Held by another and not expired → stay standby.
  Otherwise update it — guarded by its ``resourceVersion``, so of two candidates only one
  wins, the other gets a 409 and stays standby. ``leaseTransitions`` grows when the holder
  changes; ``acquireTime`` is kept while the holder stays the same.
- **expiry is judged by the local monotonic clock**: another holder's lease counts as valid
  until (when *this* process last saw the record change) + ``leaseDurationSeconds``. The
  server's ``renewTime`` is never compared with a local clock, so clock offsets between
  machines do not matter.
- **renew**: the leader updates its cached record every ``retry_period`` (fast path, no GET;
  on a failure it reads afresh). A renew counts from the moment its request was *sent*.
- **losing the lease stops acting at once**: ``may_act()`` is true only while leading and
  less than ``renew_deadline`` has passed since the last successful renew — a local clock
  check, no request. It is what the fence (``runtime.fence``) asks right before every mutating
  call, so a leader whose renewals fail, or that was paused (SIGSTOP, a VM freeze) past its
  deadline, sends nothing more when it wakes, even before its loop notices. Since
  ``renew_deadline < lease_duration``, a fenced leader stops at least ``lease_duration -
  renew_deadline`` seconds before any standby may take over.
- **stop** (SIGTERM): ``may_act()`` turns false first; then the calls already sent are given
  ``release_timeout`` seconds to be answered (``drain``); then the Lease is released as
  client-go's ``ReleaseOnCancel`` does (holder ``""``, ``leaseDurationSeconds`` 1, times now),
  so a standby takes over at its next retry instead of waiting out the lease.

Why not ``kubernetes.aio.leaderelection`` (37.x): its ``LeaseLock.create`` passes an argument
the validated API method rejects, so it cannot create its Lease; it writes local wall time
labelled as UTC; it never writes ``leaseTransitions``; it does not release on stop; and it
exposes no "held until" for a per-call fence. The state machine is ~150 lines on the port.

Transitions are logged ``leader_acquired``, ``leader_lost`` (with why), ``leader_released``,
and reported to the ``on_change(is_leader)`` hooks (the metrics gauge, the reconciler's
trigger, MQTT). A failing hook is logged, never fatal.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime

import structlog

from provisiond.core.errors import ConfigError, ProvisiondError
from provisiond.core.ports import LeaseClient, LeaseRecord

log = structlog.get_logger("provisiond.leader")

JITTER = 1.2  # client-go's JitterFactor for acquisition retries


@dataclass(frozen=True, slots=True)
class ElectionConfig:
    """Who competes for which Lease, and the durations (seconds; the Python client has no
    defaults, these are client-go's usual ones)."""

    identity: str
    name: str = "provisiond"
    namespace: str = "default"
    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0
    release_timeout: float = 10.0  # SIGTERM: longest wait for calls in flight before release

    def __post_init__(self) -> None:
        if not self.identity:
            raise ValueError("leader election needs a non-empty identity")
        if min(self.lease_duration, self.renew_deadline, self.retry_period) <= 0:
            raise ValueError("leader election durations must be positive")
        if self.lease_duration <= self.renew_deadline:
            raise ValueError("lease_duration must be greater than renew_deadline")
        if self.renew_deadline <= JITTER * self.retry_period:
            raise ValueError("renew_deadline must be greater than 1.2 * retry_period")


def _utc_now() -> datetime:
    return datetime.now(UTC)


class LeaderElector:
    name = "leader-election"

    def __init__(
        self,
        client: LeaseClient,
        config: ElectionConfig,
        *,
        on_change: Sequence[Callable[[bool], None]] = (),
        drain: Callable[[float], Awaitable[bool]] | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], datetime] = _utc_now,
        rng: random.Random | None = None,
    ) -> None:
        self._client = client
        self.config = config
        self._on_change = tuple(on_change)
        self._drain = drain
        self._clock = clock
        self._wall = wall
        self._rng = rng or random.Random()  # noqa: S311 - retry jitter, not cryptography
        self._leading = False
        self._stopping = False
        self._renewed_at: float | None = None  # monotonic send time of the last good renew
        self._record: LeaseRecord | None = None  # the record as last seen or written
        self._observed_at = 0.0  # when _record last changed, local monotonic clock
        self._holder_seen: str | None = None  # another holder last reported (standby log)

    def set_drain(self, drain: Callable[[float], Awaitable[bool]]) -> None:
        """What ``shutdown`` awaits before releasing (wiring: the fence is built after)."""
        self._drain = drain

    def subscribe(self, hook: Callable[[bool], None]) -> None:
        """Add an ``on_change(is_leader)`` hook (wiring: built after the elector)."""
        self._on_change = (*self._on_change, hook)

    # ---------------------------------------------------------------- what others ask

    @property
    def is_leader(self) -> bool:
        """Leadership as the state machine stands (status, logs, gauge)."""
        return self._leading

    @property
    def holder(self) -> str | None:
        """Who holds the Lease as last seen (None before the first read)."""
        return self._record.holder if self._record is not None else None

    def may_act(self) -> bool:
        """True only while leading, not stopping, and within ``renew_deadline`` of the last
        successful renew by the monotonic clock. Cheap; safe from any thread."""
        renewed = self._renewed_at
        return (
            self._leading
            and not self._stopping
            and renewed is not None
            and self._clock() - renewed < self.config.renew_deadline
        )

    # ---------------------------------------------------------------- the loop

    async def run(self, stop: asyncio.Event) -> None:
        c = self.config
        log.info(
            "leader_election_started",
            identity=c.identity,
            lease=f"{c.namespace}/{c.name}",
            lease_duration=c.lease_duration,
            renew_deadline=c.renew_deadline,
            retry_period=c.retry_period,
        )
        self._notify(leader=False)
        while not stop.is_set():
            await self.step()
            delay = c.retry_period
            if not self._leading:
                delay *= 1.0 + (JITTER - 1.0) * self._rng.random()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)
        await self.shutdown()

    async def step(self) -> bool:
        """One round: acquire or renew; loses leadership once the renew deadline has passed.
        Returns whether this process leads afterwards."""
        sent = self._clock()
        budget = self.config.renew_deadline
        if self._leading and self._renewed_at is not None:
            budget = max(0.1, self._renewed_at + self.config.renew_deadline - sent)
        error = ""
        try:
            async with asyncio.timeout(budget):
                ok = await self._try_acquire_or_renew()
        except TimeoutError:
            ok, error = False, f"lease request took longer than {budget:.1f}s"
        except ConfigError:
            raise  # unusable settings (a kubeconfig that does not load): retrying will not help
        except ProvisiondError as exc:
            ok, error = False, str(exc)
        if ok:
            self._renewed_at = sent
            if not self._leading and not self._stopping:
                self._leading = True
                self._holder_seen = None
                log.info("leader_acquired", identity=self.config.identity, lease=self.config.name)
                self._notify(leader=True)
            return self._leading
        if self._leading:
            assert self._renewed_at is not None
            since = self._clock() - self._renewed_at
            holder = self.holder
            if holder and holder != self.config.identity:
                self._lose(f"the lease is held by {holder}")
            elif since >= self.config.renew_deadline:
                self._lose(f"no successful renew for {since:.1f}s: {error or 'held by another'}")
            elif error:
                log.warning("leader_renew_failed", error=error, seconds_since_renew=round(since, 1))
        elif error:
            log.debug("leader_acquire_failed", error=error)
        return self._leading

    async def shutdown(self) -> None:
        """Stop acting now; once calls in flight are answered (bounded), release the Lease."""
        self._stopping = True  # may_act() is false from here on
        if not self._leading:
            return
        if self._drain is not None and not await self._drain(self.config.release_timeout):
            log.warning("leader_release_not_drained", seconds=self.config.release_timeout)
        try:
            async with asyncio.timeout(self.config.retry_period * 2):
                await self._release()
        except (TimeoutError, ProvisiondError) as exc:
            log.warning("leader_release_failed", error=str(exc) or type(exc).__name__)
        self._leading = False
        log.info("leader_released", identity=self.config.identity, lease=self.config.name)
        self._notify(leader=False)

    # ---------------------------------------------------------------- the rounds

    async def _try_acquire_or_renew(self) -> bool:
        c = self.config
        now = self._wall()
        duration = max(1, round(c.lease_duration))
        cached = self._record
        if self._leading and cached is not None and cached.holder == c.identity:
            with contextlib.suppress(ProvisiondError):  # stale cache or a blip: read afresh
                renewed = replace(cached, renew_time=now, duration_seconds=duration)
                self._seen(await self._client.update(renewed))
                return True
        current = await self._client.get()
        if current is None:
            self._seen(await self._client.create(LeaseRecord(c.identity, duration, now, now, 0)))
            return True
        self._seen(current)
        other = current.holder and current.holder != c.identity
        if other and self._clock() < self._observed_at + current.duration_seconds:
            if not self._leading:  # a leader reports the loss instead (step)
                self._note_holder(current.holder)
            return False
        ours = current.holder == c.identity
        self._seen(
            await self._client.update(
                LeaseRecord(
                    holder=c.identity,
                    duration_seconds=duration,
                    acquire_time=current.acquire_time if ours and current.acquire_time else now,
                    renew_time=now,
                    transitions=current.transitions if ours else current.transitions + 1,
                    version=current.version,
                )
            )
        )
        return True

    async def _release(self) -> None:
        record = self._record
        for _ in range(2):  # the cached record, then (after a conflict) a fresh read
            if record is None or record.holder != self.config.identity:
                return  # not ours any more: nothing to release
            now = self._wall()
            try:
                self._seen(
                    await self._client.update(
                        replace(
                            record, holder="", duration_seconds=1, acquire_time=now, renew_time=now
                        )
                    )
                )
                return
            except ProvisiondError:
                record = await self._client.get()

    def _seen(self, record: LeaseRecord) -> None:
        if self._record is None or record.version != self._record.version:
            self._observed_at = self._clock()
        self._record = record

    def _note_holder(self, holder: str) -> None:
        if holder != self._holder_seen:
            self._holder_seen = holder
            log.info("leader_standby", identity=self.config.identity, holder=holder)

    def _lose(self, why: str) -> None:
        self._leading = False
        log.warning("leader_lost", identity=self.config.identity, reason=why)
        self._notify(leader=False)

    def _notify(self, *, leader: bool) -> None:
        for hook in self._on_change:
            try:
                hook(leader)
            except Exception:  # a reporting hook must not stop the election
                log.exception("leader_hook_failed")
