"""Per-object exponential backoff: a failing VM waits longer each time; the others go on.

Keyed by VMID (the idempotency key). After the n-th consecutive failure the object is left alone
for ``min(maximum, base * 2**(n-1))`` seconds; a success (or adoption) resets it. Time comes from
an injected monotonic clock, so tests drive it without sleeping.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(slots=True)
class _Entry:
    failures: int
    until: float


class ObjectBackoff:
    def __init__(
        self, *, clock: Callable[[], float], base: float = 5.0, maximum: float = 300.0
    ) -> None:
        self._clock = clock
        self._base = base
        self._maximum = maximum
        self._entries: dict[int, _Entry] = {}

    def failed(self, key: int) -> float:
        """Record a failure; returns the seconds the object now waits."""
        entry = self._entries.get(key)
        failures = entry.failures + 1 if entry else 1
        delay = min(self._maximum, self._base * 2.0 ** (failures - 1))
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
