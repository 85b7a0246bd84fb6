"""The Manager: runs every long-lived component until stop, like controller-runtime's Manager.

Each runnable is ``async run(stop: asyncio.Event) -> None`` and must return soon after ``stop``
is set (the reconciler finishes or abandons its cycle at a safe point; Proxmox tasks keep running
server-side and are adopted by the next start). SIGTERM/SIGINT set ``stop``; SIGHUP calls the
reload hooks. A runnable that raises stops the whole manager — the others get their graceful
stop — and the process exits non-zero; systemd/Kubernetes restarts it, which is safe because the
truth lives in Proxmox and Kubernetes.
Runnables that have not returned ``shutdown_timeout`` seconds after stop are cancelled.

``closers`` (e.g. the Kubernetes client's ``aclose``) run after every runnable has returned or
been cancelled, in order, on the manager's loop: a client shared by the runnables is closed only
once nothing can use it any more — an action finishing after the stop still writes its Event.
A closer that fails is logged; the others still run.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import Any, Protocol

import structlog

log = structlog.get_logger("provisiond.manager")


class Runnable(Protocol):
    @property
    def name(self) -> str: ...

    async def run(self, stop: asyncio.Event) -> None: ...


class Manager:
    def __init__(
        self,
        runnables: Sequence[Runnable],
        *,
        shutdown_timeout: float = 30.0,
        on_reload: Sequence[Callable[[], None]] = (),
        closers: Sequence[Callable[[], Awaitable[None]]] = (),
    ) -> None:
        self._runnables = tuple(runnables)
        self._closers = tuple(closers)
        self._shutdown_timeout = shutdown_timeout
        self._on_reload = tuple(on_reload)
        self.stop = asyncio.Event()
        self._failures: list[Exception] = []

    def _reload(self) -> None:
        log.info("reload_requested")
        for hook in self._on_reload:
            hook()

    @contextlib.contextmanager
    def _signals(self, loop: asyncio.AbstractEventLoop) -> Iterator[None]:
        installed: list[signal.Signals] = []
        try:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, self._request_stop, sig.name)
                installed.append(sig)
            loop.add_signal_handler(signal.SIGHUP, self._reload)
            installed.append(signal.SIGHUP)
        except (NotImplementedError, RuntimeError):  # not the main thread: no signals
            pass
        try:
            yield
        finally:
            for sig in installed:
                loop.remove_signal_handler(sig)

    def _request_stop(self, why: str) -> None:
        if not self.stop.is_set():
            log.info("stop_requested", signal=why)
            self.stop.set()

    async def _supervise(self, runnable: Runnable) -> None:
        try:
            await runnable.run(self.stop)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # Not raised inside the TaskGroup: that would cancel the others mid-action.
            # Stop everyone gracefully instead, and surface the failure once all returned.
            log.exception("runnable_failed", runnable=runnable.name)
            self._failures.append(exc)
            self.stop.set()

    async def run(self) -> None:
        """Run until stop; re-raise the first runnable failure (as an ExceptionGroup)."""
        loop = asyncio.get_running_loop()
        try:
            with self._signals(loop):
                async with asyncio.TaskGroup() as tg:
                    tasks = [
                        tg.create_task(self._supervise(r), name=r.name) for r in self._runnables
                    ]
                    tg.create_task(self._deadline(tasks), name="shutdown-deadline")
        finally:
            await self._close()
        if self._failures:
            raise ExceptionGroup("runnables failed", self._failures)

    async def _close(self) -> None:
        for close in self._closers:
            try:
                await close()
            except Exception:  # one failing close must not keep the others open
                log.exception("close_failed", closer=getattr(close, "__qualname__", repr(close)))

    async def _deadline(self, tasks: list[asyncio.Task[None]]) -> None:
        """After stop, give runnables ``shutdown_timeout`` seconds, then cancel them."""
        waiter: asyncio.Future[Any] = asyncio.ensure_future(
            asyncio.gather(*tasks, return_exceptions=True)
        )
        stopper: asyncio.Future[Any] = asyncio.ensure_future(self.stop.wait())
        try:
            await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
            if waiter.done():
                return
            _, pending = await asyncio.wait({waiter}, timeout=self._shutdown_timeout)
            if pending:
                late = [t.get_name() for t in tasks if not t.done()]
                log.warning("shutdown_timeout", cancelled=late, seconds=self._shutdown_timeout)
                for t in tasks:
                    t.cancel()
        finally:
            stopper.cancel()
            if not waiter.done():
                await asyncio.gather(waiter, return_exceptions=True)
