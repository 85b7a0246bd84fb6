"""A blocking call run in a daemon thread that a stop can walk away from (``offload.call``).

The reconciler parses the spec in pure Python (ruamel round-trip): a valid spec near the limits
takes seconds to tens of seconds, during which the event loop must keep serving signals, health
and the stop. ``asyncio.to_thread`` would do the first, not the second: its threads belong to the
loop's default executor, and ``asyncio.run`` joins that executor at shutdown, so a SIGTERM would
still wait for the whole parse. Here each call gets its own daemon thread, which the interpreter
does not wait for at exit.

Invariants:
- the call's value or exception reaches the awaiting coroutine as if it had been called there;
- when ``stop`` is set first, ``call`` returns ``ABANDONED`` at once; the thread finishes on its
  own and its result is dropped (the call must therefore only compute, never change state the
  caller shares);
- a thread that finishes after its loop has closed drops its result silently.
``unless_stopped`` is the same walk-away for any future (the reconciler's observation uses it).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import functools
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


class Abandoned(enum.Enum):
    ABANDONED = "abandoned"


ABANDONED = Abandoned.ABANDONED


def _resolve(future: asyncio.Future[T], value: T) -> None:
    if not future.done():  # else the awaiting task was cancelled or walked away
        future.set_result(value)


def _fail(future: asyncio.Future[T], exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)


async def call(fn: Callable[[], T], stop: asyncio.Event, *, name: str) -> T | Abandoned:
    """``fn()`` in a daemon thread named ``name``; ``ABANDONED`` when ``stop`` comes first."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def work() -> None:
        try:
            value = fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the awaiting coroutine as is
            settle = functools.partial(_fail, future, exc)
        else:
            settle = functools.partial(_resolve, future, value)
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: nobody waits
            loop.call_soon_threadsafe(settle)

    threading.Thread(target=work, name=name, daemon=True).start()
    return await unless_stopped(future, stop)


async def unless_stopped(future: asyncio.Future[T], stop: asyncio.Event) -> T | Abandoned:
    """``future``'s value (or exception); ``ABANDONED`` when ``stop`` comes first. ``future`` is
    cancelled when it is walked away from, and when the awaiting task is cancelled."""
    stopping: asyncio.Future[Any] = asyncio.ensure_future(stop.wait())
    waiters: set[asyncio.Future[Any]] = {future, stopping}
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        future.cancel()
        raise
    finally:
        stopping.cancel()
    if not future.done():
        future.cancel()
        return ABANDONED
    return future.result()
