"""Waiting for Proxmox tasks (DESIGN §5): the one wait loop every action family shares.

Invariants:
- a task is polled through the executor's retrying call (``Caller``), with delays growing from
  ``poll_initial`` by ``poll_factor`` up to ``poll_max`` (defaults 0.5 s → 5 s: PVE tasks take
  seconds to minutes);
- a poll is one listing of the node's *running* tasks (``ProxmoxWriter.running_tasks``: PVE's
  ``GET /nodes/{n}/tasks?source=active``), shared by every task waited for on that node: a
  waiter that is due uses the newest listing fetched since its previous look, or joins the
  fetch in flight, and only fetches itself when there is none — so N concurrent tasks on a
  node cost about one listing per poll interval, not N status reads. A task absent from the
  listing has stopped (PVE moves a finished task out of the active list); its exit status is
  then read once (``task_status``). Should that read still say running (a listing raced the
  task's start), waiting simply goes on;
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
from dataclasses import dataclass, field
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


@dataclass(frozen=True, slots=True)
class _Listing:
    at: float  # when its fetch began: it shows no task as running that had stopped by then
    running: frozenset[str]


@dataclass(slots=True)
class _Board:
    """One node's shared listing of running tasks."""

    latest: _Listing | None = None
    fetching: asyncio.Future[_Listing] | None = None
    fetch_began: float = 0.0


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskWaiter:
    """Waits for one run's tasks; ``stop`` is that run's stop event."""

    writer: ProxmoxWriter
    call: Caller
    config: ExecutorConfig
    clock: Callable[[], float]
    sleep: Sleep
    stop: asyncio.Event
    _boards: dict[str, _Board] = field(default_factory=dict)

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

    async def _listing(self, node: str, newer_than: float) -> _Listing:
        """The node's running tasks as of a moment after ``newer_than``: shared when possible."""
        board = self._boards.setdefault(node, _Board())
        if board.latest is not None and board.latest.at > newer_than:
            return board.latest
        if board.fetching is not None and board.fetch_began > newer_than:
            return await asyncio.shield(board.fetching)
        began = self.clock()
        fetch: asyncio.Future[_Listing] = asyncio.get_running_loop().create_future()
        board.fetching, board.fetch_began = fetch, began
        try:
            running = await self.call(
                f"running_tasks {node}", lambda: self.writer.running_tasks(node)
            )
        except BaseException as exc:
            fetch.set_exception(exc)
            fetch.exception()  # retrieved: joiners, if any, re-raise it themselves
            raise
        finally:
            if board.fetching is fetch:
                board.fetching = None
        listing = _Listing(began, running)
        if board.latest is None or board.latest.at <= began:
            board.latest = listing
        fetch.set_result(listing)
        return listing

    async def wait(self, task: TaskRef, what: str) -> TaskStatus:
        """Wait until the task stops; raise with the log tail unless it succeeded."""
        deadline = self.deadline()
        nxt = self.polls()
        seen = self.clock()  # the newest moment this waiter knows the task's state at
        while True:
            due = seen + nxt()
            await self.pause(
                max(0.0, due - self.clock()),
                f"{what}: stopped while task {task.upid} runs (adopted next time)",
            )
            listing = await self._listing(task.node, newer_than=seen)
            seen = max(seen, listing.at)
            if task.upid not in listing.running:
                status = await self.call(
                    f"task_status {what}", lambda: self.writer.task_status(task)
                )
                if not status.running:
                    break
            if self.clock() >= deadline:
                raise TransientError(
                    f"{what}: task {task.upid} still running after "
                    f"{self.config.task_timeout:.0f}s; it is adopted next cycle, never repeated"
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
