"""Backoff and rate limits of the runtime: per object after failures or no effect, and per loop.

Three limiters, all on an injected monotonic clock so tests drive them without sleeping:

- ``ObjectBackoff`` — a *failing* object waits longer each time: after the n-th consecutive
  failure it is left alone for ``min(maximum, base * 2**(n-1))`` seconds; a success (or
  adoption) resets it. Keyed by VMID (the idempotency key).
- ``RepeatLimiter`` — an action that *succeeds without effect*: the same action planned again on
  an object whose observed state is the same as when the action last ran (a write PVE accepted
  but kept pending, or a pending delete that still hides the key). Like controller-runtime's
  per-item exponential limiter: the n-th repeat waits ``min(maximum, base * 2**(n-1))`` seconds
  (about 1 s up to about 15 min), and the entry is forgotten as soon as the object's observed
  state changes or another action is planned for it. Keyed by action id (``configure:1038``),
  so a VM's configure and start are limited separately.
- ``CycleRate`` — a global cap on reconcile cycles: a token bucket (``rate`` cycles per second,
  ``burst`` in a row), the safety net under every per-object rule.

Invariant: none of them ever blocks forever; each answers "how long until it may go".
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Generic, TypeVar

K = TypeVar("K")
E = TypeVar("E")


@dataclass(frozen=True, slots=True)
class _Doubling:
    """The n-th delay in a row (n >= 1): ``min(maximum, base * 2**(n-1))`` seconds."""

    base: float
    maximum: float

    def delay(self, n: int) -> float:
        return min(self.maximum, self.base * 2.0 ** (n - 1))


class _PerKey(Generic[K, E]):
    """What a per-object limiter keeps: an entry per key, its doubling delay and its clock."""

    def __init__(self, *, clock: Callable[[], float], base: float, maximum: float) -> None:
        self._clock = clock
        self._delay = _Doubling(base, maximum)
        self._entries: dict[K, E] = {}


@dataclass(slots=True)
class _Entry:
    failures: int
    until: float


class ObjectBackoff(_PerKey[int, _Entry]):
    def __init__(
        self, *, clock: Callable[[], float], base: float = 5.0, maximum: float = 300.0
    ) -> None:
        super().__init__(clock=clock, base=base, maximum=maximum)

    def failed(self, key: int) -> float:
        """Record a failure; returns the seconds the object now waits."""
        entry = self._entries.get(key)
        failures = entry.failures + 1 if entry else 1
        delay = self._delay.delay(failures)
        self._entries[key] = _Entry(failures, self._clock() + delay)
        return delay

    def succeeded(self, key: int) -> None:
        self._entries.pop(key, None)

    def remaining(self, key: int) -> float:
        """Seconds until the object may be tried again (0: now)."""
        entry = self._entries.get(key)
        return max(0.0, entry.until - self._clock()) if entry else 0.0

    def failures(self, key: int) -> int:
        entry = self._entries.get(key)
        return entry.failures if entry else 0


@dataclass(slots=True)
class _Ran:
    action: object  # what was done (compared with ==)
    state: object  # the object's observed state it was done on (compared with ==)
    judged: bool = False  # its effect was looked at by a later plan
    repeats: int = 0  # consecutive times it had no effect
    until: float = 0.0


@dataclass(frozen=True, slots=True)
class Admission:
    """``RepeatLimiter.admit``'s answer: wait ``wait`` seconds (0: go now)."""

    wait: float = 0.0
    no_effect: bool = False  # the last run just proved to have had no effect
    repeats: int = 0  # consecutive runs without effect so far


class RepeatLimiter(_PerKey[str, _Ran]):
    def __init__(
        self, *, clock: Callable[[], float], base: float = 1.0, maximum: float = 900.0
    ) -> None:
        super().__init__(clock=clock, base=base, maximum=maximum)

    def admit(self, key: str, action: object, state: object) -> Admission:
        """May ``action`` (planned from an observation showing ``state``) run now?"""
        entry = self._entries.get(key)
        if entry is None or entry.action != action or entry.state != state:
            self._entries.pop(key, None)  # the object changed (or the plan did): forget
            return Admission()
        if not entry.judged:  # planned again on the very state it ran on: it had no effect
            entry.judged = True
            entry.repeats += 1
            delay = self._delay.delay(entry.repeats)
            entry.until = self._clock() + delay
            return Admission(delay, no_effect=True, repeats=entry.repeats)
        return Admission(max(0.0, entry.until - self._clock()), repeats=entry.repeats)

    def ran(self, key: str, action: object, state: object) -> None:
        """``action`` completed (succeeded or adopted) on ``state``: judge it next time."""
        entry = self._entries.get(key)
        if entry is not None and entry.action == action and entry.state == state:
            entry.judged = False  # keep the repeat count: the streak goes on
        else:
            self._entries[key] = _Ran(action, state)

    def forget(self, key: str) -> None:
        self._entries.pop(key, None)

    def keep_only(self, keys: Iterable[str]) -> None:
        """Drop entries of actions no longer planned (their objects converged)."""
        wanted = set(keys)
        for key in [k for k in self._entries if k not in wanted]:
            del self._entries[key]


class CycleRate:
    def __init__(
        self, *, clock: Callable[[], float], rate: float = 2.0, burst: float = 10.0
    ) -> None:
        self._clock = clock
        self._rate = rate
        self._burst = burst
        self._tokens = burst
        self._at = clock()

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self._burst, self._tokens + (now - self._at) * self._rate)
        self._at = now

    def delay(self) -> float:
        """Seconds until the next cycle may start (0: now)."""
        self._refill()
        return 0.0 if self._tokens >= 1.0 else (1.0 - self._tokens) / self._rate

    def take(self) -> None:
        """A cycle starts now."""
        self._refill()
        self._tokens -= 1.0
