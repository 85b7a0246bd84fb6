"""Tasks: real-format UPIDs, workers on the simulator's loop, scaled simulated durations.

A task is created by a handler (``Tasks.start``) and runs its body as an asyncio task. The body
advances through simulated time with ``await ctx.progress_to(fraction, seconds)``; every
duration is multiplied by ``time_scale``. A body ends the task ``OK`` (``WARNINGS: n`` when it
logged warnings) or raises ``TaskError``, whose text becomes the exitstatus (newlines → spaces)
and the log's ``TASK ERROR: …`` line, as PVE's ``fork_worker`` does.

Holds (the crash-test seam): a ``Hold`` registered for a task type (and optionally an id) stops
the first matching task when it reaches the hold's fraction, until ``release()`` is called from
any thread.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Literal

from provisiond.sim.pve.errors import TaskError

UPID_FORMAT = "UPID:{node}:{pid:08X}:{pstart:08X}:{start:08X}:{type}:{id}:{user}:"

# Realistic durations in simulated seconds per task type (docs/simulator.md lists them).
DURATIONS: dict[str, float] = {
    "qmcreate": 2.0,
    "qmconfig": 0.5,
    "qmstart": 3.0,
    "qmstop": 1.0,
    "qmshutdown": 10.0,
    "qmreboot": 13.0,
    "qmsuspend": 1.0,
    "qmresume": 0.5,
    "qmreset": 0.5,
    "qmsnapshot": 2.0,  # plus the RAM when ``vmstate`` is saved (handlers/snapshots.py)
    "qmdelsnapshot": 1.0,
    "qmrollback": 2.0,
    "qmdestroy": 2.0,
    "qmtemplate": 3.0,
    "resize": 1.0,
    "qmclone-linked": 2.0,
    "qmclone-full-base": 15.0,  # plus CLONE_SECONDS_PER_GIB for every GiB copied, up to 120 s
    "qmigrate": 5.0,  # plus copying local disks and, live, memory (handlers/migrate.py)
}
CLONE_SECONDS_PER_GIB = 0.1
CLONE_FULL_MAX = 120.0


class Hold:
    """Stops one matching request or task until released. Thread-safe."""

    def __init__(self, loop: asyncio.AbstractEventLoop, description: str) -> None:
        self._loop = loop
        self._released = asyncio.Event()
        self._arrived = threading.Event()
        self.description = description
        self.used = False

    def wait(self, timeout: float = 10.0) -> bool:
        """Block until the held request or task has arrived at the hold; False on timeout."""
        return self._arrived.wait(timeout)

    @property
    def arrived(self) -> bool:
        return self._arrived.is_set()

    def release(self) -> None:
        self._loop.call_soon_threadsafe(self._released.set)

    async def block(self) -> None:
        """Called on the sim loop by whatever is held."""
        self._arrived.set()
        await self._released.wait()


@dataclass
class TaskHold:
    type: str
    id: str | None
    fraction: float
    hold: Hold


@dataclass
class Task:
    upid: str
    node: str
    pid: int
    pstart: int
    starttime: int
    type: str
    id: str
    user: str
    status: Literal["running", "stopped"] = "running"
    exitstatus: str | None = None
    endtime: int | None = None
    progress: float = 0.0
    seconds: float = 0.0  # simulated seconds the body has advanced (before time_scale)
    log: list[str] = field(default_factory=list)
    warnings: int = 0
    done: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def tokenid(self) -> str | None:
        return self.user.split("!", 1)[1] if "!" in self.user else None

    def status_dict(self) -> dict[str, object]:
        out: dict[str, object] = {
            "upid": self.upid,
            "node": self.node,
            "pid": self.pid,
            "pstart": self.pstart,
            "starttime": self.starttime,
            "type": self.type,
            "id": self.id,
            "user": self.user.split("!", 1)[0],
            "status": self.status,
        }
        if self.tokenid is not None:
            out["tokenid"] = self.tokenid
        if self.exitstatus is not None:
            out["exitstatus"] = self.exitstatus
        return out

    def list_item(self) -> dict[str, object]:
        out: dict[str, object] = {
            k: v for k, v in self.status_dict().items() if k not in ("status", "exitstatus")
        }
        out["status"] = "RUNNING" if self.status == "running" else self.exitstatus
        if self.endtime is not None:
            out["endtime"] = self.endtime
        return out


class TaskContext:
    """What a task body sees: logging, simulated time, and its own task."""

    def __init__(self, tasks: Tasks, task: Task) -> None:
        self._tasks = tasks
        self.task = task

    def log(self, line: str) -> None:
        self.task.log.append(line)

    def warn(self, line: str) -> None:
        self.task.warnings += 1
        self.task.log.append(f"WARN: {line}")

    async def progress_to(self, fraction: float, seconds: float) -> None:
        """Advance to ``fraction`` of the task over ``seconds`` simulated seconds."""
        start = self.task.progress
        scale = self._tasks.time_scale
        self.task.seconds += seconds
        for th in self._tasks.take_holds(self.task, start, fraction):
            part = (th.fraction - start) / (fraction - start)
            await asyncio.sleep(seconds * part * scale)
            seconds *= 1 - part
            start = self.task.progress = th.fraction
            await th.hold.block()
        await asyncio.sleep(seconds * scale)
        self.task.progress = fraction


Body = Callable[[TaskContext], Awaitable[None]]


def _failing(exitstatus: str, seconds: float) -> Body:
    """An injected task failure: runs ``seconds`` (wall clock), changes nothing, fails."""

    async def body(ctx: TaskContext) -> None:  # noqa: ARG001 - a body takes its context
        await asyncio.sleep(seconds)
        raise TaskError(exitstatus)

    return body


class Tasks:
    """Every task of the cluster, newest last; runs bodies on the running loop."""

    def __init__(self, time_scale: float) -> None:
        self.time_scale = time_scale
        self.all: list[Task] = []
        self.by_upid: dict[str, Task] = {}
        self._holds: list[TaskHold] = []
        self._pids = itertools.count(0x1A2B3)
        self._running: set[asyncio.Task[None]] = set()
        self.on_finish: Callable[[Task], None] | None = None
        # fault injection: (type, id) -> (exitstatus, wall seconds) for a task that must fail
        self.fault: Callable[[str, str], tuple[str, float] | None] | None = None

    def add_hold(self, th: TaskHold) -> None:
        self._holds.append(th)

    def take_holds(self, task: Task, start: float, end: float) -> list[TaskHold]:
        """The unused holds for ``task`` between ``start`` (excluded) and ``end``; consumed."""
        found = [
            th
            for th in self._holds
            if th.type == task.type and th.id in (None, task.id) and start < th.fraction <= end
        ]
        for th in found:
            th.hold.used = True
            self._holds.remove(th)
        return sorted(found, key=lambda th: th.fraction)

    def start(self, node: str, type_: str, id_: str, user: str, body: Body) -> Task:
        now = time.time()
        pid = next(self._pids)
        pstart = int(time.monotonic() * 100) & 0xFFFFFFFF
        upid = UPID_FORMAT.format(
            node=node, pid=pid, pstart=pstart, start=int(now), type=type_, id=id_, user=user
        )
        task = Task(
            upid=upid,
            node=node,
            pid=pid,
            pstart=pstart,
            starttime=int(now),
            type=type_,
            id=id_,
            user=user,
        )
        self.all.append(task)
        self.by_upid[upid] = task
        failure = self.fault(type_, id_) if self.fault is not None else None
        if failure is not None:
            body = _failing(*failure)
        runner = asyncio.get_running_loop().create_task(self._run(task, body))
        self._running.add(runner)
        runner.add_done_callback(self._running.discard)
        return task

    async def _run(self, task: Task, body: Body) -> None:
        ctx = TaskContext(self, task)
        try:
            await body(ctx)
        except TaskError as exc:
            text = str(exc).rstrip("\n")
            task.log.append(f"TASK ERROR: {text}")
            task.exitstatus = text.replace("\n", " ")
        else:
            if task.warnings:
                task.log.append(f"TASK WARNINGS: {task.warnings}")
                task.exitstatus = f"WARNINGS: {task.warnings}"
            else:
                task.log.append("TASK OK")
                task.exitstatus = "OK"
        task.status = "stopped"
        task.progress = 1.0
        task.endtime = int(time.time())
        task.done.set()
        if self.on_finish is not None:
            self.on_finish(task)

    def running(self) -> list[Task]:
        return [t for t in self.all if t.status == "running"]

    async def cancel_all(self) -> None:
        for r in list(self._running):
            r.cancel()
        await asyncio.gather(*self._running, return_exceptions=True)
