"""Waiting for Proxmox tasks (DESIGN §5): the one wait loop every action family shares.

Invariants:
- a task is polled through the executor's retrying call (``Caller``), with delays growing from
  ``poll_initial`` by ``poll_factor`` up to ``poll_max``;
- ``OK`` or ``WARNINGS: n`` is success; any other exit status is classified like an API error
  (``error_for``): a lock → ``LockedError`` (requeued), anything else → ``PermanentError``, both
  carrying the task log's last ``log_lines`` lines;
- a task still running after ``task_timeout`` is a ``TransientError`` naming its UPID: it is
  adopted by the next cycle, never repeated;
- stop interrupts a wait at once (``WaitInterruptedError``); the task continues server-side.

The UPID is opaque here: the Proxmox adapter builds the ``TaskRef`` (node, UPID) from the API's
answer, so the runtime never parses one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol, TypeVar

from provisiond.core.errors import LockedError, PermanentError, ProvisiondError, TransientError
from provisiond.core.ports import ProxmoxWriter, TaskRef, TaskStatus
from provisiond.core.pve_errors import error_for
from provisiond.runtime.actions.config import ExecutorConfig

T = TypeVar("T")
Sleep = Callable[[float], Awaitable[None]]


class Caller(Protocol):
    """One Proxmox call with the executor's transient retries (``Executor._call``)."""

    async def __call__(self, what: str, fn: Callable[[], Awaitable[T]]) -> T: ...


class WaitInterruptedError(Exception):
    """Stop was requested while waiting; the Proxmox task goes on server-side."""


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskWaiter:
    """Waits for one run's tasks; ``stop`` is that run's stop event."""

    writer: ProxmoxWriter
    call: Caller
    config: ExecutorConfig
    clock: Callable[[], float]
    sleep: Sleep
    stop: asyncio.Event

    async def pause(self, seconds: float, why: str) -> None:
        """Sleep, unless stop is requested first (then raise ``WaitInterruptedError``)."""
        if self.stop.is_set():
            raise WaitInterruptedError(why)
        sleeper = asyncio.ensure_future(self.sleep(seconds))
        stopper = asyncio.ensure_future(self.stop.wait())
        try:
            await asyncio.wait({sleeper, stopper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeper.cancel()
            stopper.cancel()
        if self.stop.is_set():
            raise WaitInterruptedError(why)

    def polls(self) -> Callable[[], float]:
        """The successive poll delays of one wait."""
        delay = self.config.poll_initial / self.config.poll_factor

        def nxt() -> float:
            nonlocal delay
            delay = min(self.config.poll_max, delay * self.config.poll_factor)
            return delay

        return nxt

    def deadline(self) -> float:
        """When a wait that starts now has taken ``task_timeout``."""
        return self.clock() + self.config.task_timeout

    async def wait(self, task: TaskRef, what: str) -> TaskStatus:
        """Poll the task until it stops; raise with the log tail unless it succeeded."""
        deadline = self.deadline()
        nxt = self.polls()
        while True:
            status = await self.call(f"task_status {what}", lambda: self.writer.task_status(task))
            if not status.running:
                break
            if self.clock() >= deadline:
                raise TransientError(
                    f"{what}: task {task.upid} still running after "
                    f"{self.config.task_timeout:.0f}s; it is adopted next cycle, never repeated"
                )
            await self.pause(
                nxt(), f"{what}: stopped while task {task.upid} runs (adopted next time)"
            )
        if status.ok:
            return status
        try:
            lines = await self.writer.task_log_tail(task, self.config.log_lines)
        except ProvisiondError:
            lines = ()
        text = status.exitstatus or "unknown error"
        err = error_for(500, text, context=f"{what}: task failed")
        tail = " | ".join(lines)
        msg = f"{err}; task log: {tail}" if tail else str(err)
        if isinstance(err, LockedError):
            raise LockedError(msg, lock=err.lock) from None
        raise PermanentError(msg) from None
