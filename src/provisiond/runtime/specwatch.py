"""The spec-change trigger: polls the spec source's fingerprint and asks for a cycle on change.

Polling (default every 0.5 s) instead of inotify: it works the same for a plain directory, a
Kubernetes ConfigMap volume (whose files are swapped through a ``..data`` symlink) and network
file systems, and costs a few ``stat`` calls. It only *triggers*; the reconciler loads the files,
so a burst of writes becomes one load of the final content (debounced).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Protocol

import structlog

from provisiond.core.ports import SpecSource

log = structlog.get_logger("provisiond.specwatch")


class _Target(Protocol):
    @property
    def spec_source(self) -> SpecSource: ...

    def trigger(self, reason: str) -> None: ...


class SpecWatcher:
    name = "spec-watcher"

    def __init__(self, target: _Target, *, interval: float = 0.5) -> None:
        self._target = target
        self.interval = interval

    def _fingerprint(self) -> str | None:
        try:
            return self._target.spec_source.fingerprint()
        except OSError as exc:  # a directory being replaced: look again next tick
            log.warning("spec_fingerprint_failed", error=str(exc))
            return None

    async def run(self, stop: asyncio.Event) -> None:
        last = self._fingerprint()
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.interval)
            if stop.is_set():
                return
            current = self._fingerprint()
            if current is not None and current != last:
                log.info("spec_changed")
                last = current
                self._target.trigger("spec_changed")
