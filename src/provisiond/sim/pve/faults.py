"""Fault injection: failing, slow and hanging requests, failing tasks, hosts going offline.

A ``FaultPlan`` (YAML: ``provisiond sim serve --faults FILE``; in tests: ``SimHandle.inject``,
``fail_tasks``, ``host_offline``) holds rules; the ``Injector`` applies them on the simulator's
loop with one seeded RNG, so a run with the same seed, the same rules and the same request
sequence injects the same faults.

Request rules match on the endpoint **template** (an ``fnmatch`` glob such as
``/nodes/{node}/qemu/{vmid}/*``), the method (``*`` for any) and optionally the ``{node}`` and
``{vmid}`` path variables (one VM's requests). A matching rule fires with probability ``rate``
and at most ``times`` times, then:

- ``status`` (+ ``message``): answers with that status and PVE's envelope, the message's first
  line as the reason phrase (500 ``got timeout``, 503, 595 ``No route to host``, 596 …);
- ``latency``: waits that many seconds (a number, or ``[low, high]`` drawn uniformly);
- ``hang``: never answers (until the simulator stops or ``release_hangs()``), so the client's
  timeout fires.

``when: before`` (default) injects before the handler runs — the request has no effect;
``when: after`` injects after the handler ran — the effect happened, the answer is lost or slow
(the case retries must survive). Several rules can match one request; latencies add up and the
first error or hang wins.

Task rules make the next matching tasks (type glob, optional ``vmid``) end with ``exitstatus``
after a short run, with no effect. Durations in faults are wall-clock seconds: they are about
client timeouts, so ``--time-scale`` does not shrink them.

Hosts offline: requests proxied to the node (every ``/nodes/{node}/…`` route) fail with
**595** and the reason ``No route to host`` (``Connection refused`` when the host is up but
pveproxy is not), as pveproxy's AnyEvent proxy reports a connection failure; ``/nodes`` and
``/cluster/status`` show it offline and ``/cluster/resources`` its VMs ``unknown``.
"""

from __future__ import annotations

import asyncio
import fnmatch
import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Annotated, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from provisiond.sim.pve.errors import PveError
from provisiond.sim.pve.state import Cluster

OFFLINE_STATUS = 595
OFFLINE_REASON = "No route to host"


class _Rule(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class RequestFault(_Rule):
    """One request rule. Exactly one of ``status``, ``latency``, ``hang`` says what happens."""

    path: str = "*"  # glob on the endpoint template
    method: str = "*"
    node: str | None = None  # only requests whose {node} path variable is this
    vmid: int | None = None  # only requests whose {vmid} path variable is this
    rate: Annotated[float, Field(ge=0.0, le=1.0)] = 1.0
    times: Annotated[int, Field(ge=1)] | None = None  # at most this many injections
    when: Literal["before", "after"] = "before"
    status: Annotated[int, Field(ge=400, le=599)] | None = None
    message: str | None = None
    latency: float | tuple[float, float] | None = None
    hang: bool = False

    @model_validator(mode="after")
    def _one_effect(self) -> Self:
        if sum((self.status is not None, self.latency is not None, self.hang)) != 1:
            raise ValueError("a request fault needs exactly one of status, latency, hang")
        return self

    @property
    def kind(self) -> str:
        if self.hang:
            return "hang"
        if self.status is not None:
            return f"error {self.status}"
        return "latency"

    def matches(
        self, method: str, template: str, node: str | None, vmid: str | None = None
    ) -> bool:
        return (
            self.method in ("*", method)
            and fnmatch.fnmatchcase(template, self.path)
            and (self.node is None or self.node == node)
            and (self.vmid is None or str(self.vmid) == vmid)
        )


class TaskFault(_Rule):
    """The next matching tasks end with ``exitstatus`` (after ``seconds``), doing nothing."""

    type: str = "*"  # glob on the task type (qmclone, qmstart, qmigrate, …)
    vmid: int | None = None
    exitstatus: str
    rate: Annotated[float, Field(ge=0.0, le=1.0)] = 1.0
    times: Annotated[int, Field(ge=1)] | None = None
    seconds: Annotated[float, Field(ge=0.0)] = 0.05  # wall clock before the task ends

    def matches(self, task_type: str, task_id: str) -> bool:
        return fnmatch.fnmatchcase(task_type, self.type) and (
            self.vmid is None or str(self.vmid) == task_id
        )


class HostEvent(_Rule):
    """``host`` goes ``offline`` (or comes back ``online``) ``after`` seconds of serving."""

    host: str
    state: Literal["offline", "online"] = "offline"
    after: Annotated[float, Field(ge=0.0)] = 0.0
    reason: str = OFFLINE_REASON


class FaultPlan(_Rule):
    """A faults file: ``seed``, ``requests``, ``tasks``, ``events``."""

    seed: int = 0
    requests: tuple[RequestFault, ...] = ()
    tasks: tuple[TaskFault, ...] = ()
    events: tuple[HostEvent, ...] = ()


@dataclass
class _Armed:
    """A rule with its remaining budget."""

    rule: RequestFault | TaskFault
    left: int | None

    def fire(self, rng: random.Random) -> bool:
        if self.left == 0:
            return False
        if self.rule.rate < 1.0 and rng.random() >= self.rule.rate:
            return False
        if self.left is not None:
            self.left -= 1
        return True


@dataclass
class Injector:
    """Applies a plan. Loop-thread owned; the handle reaches it through ``SimHandle.call``."""

    rng: random.Random = field(default_factory=lambda: random.Random(0))  # noqa: S311 - not crypto
    requests: list[_Armed] = field(default_factory=list)
    tasks: list[_Armed] = field(default_factory=list)
    offline: dict[str, str] = field(default_factory=dict)  # node -> reason phrase of its 595
    injected: Counter[tuple[str, str, str]] = field(default_factory=Counter)  # method, tpl, kind
    task_injected: Counter[str] = field(default_factory=Counter)  # task type
    _stopping: asyncio.Event | None = None

    def load(self, plan: FaultPlan) -> None:
        self.rng.seed(plan.seed)
        for r in plan.requests:
            self.add_request(r)
        for t in plan.tasks:
            self.add_task(t)

    def add_request(self, rule: RequestFault) -> None:
        self.requests.append(_Armed(rule, rule.times))

    def add_task(self, rule: TaskFault) -> None:
        self.tasks.append(_Armed(rule, rule.times))

    def clear(self) -> None:
        self.requests.clear()
        self.tasks.clear()

    # -- requests --------------------------------------------------------------------------
    async def apply(
        self,
        when: Literal["before", "after"],
        method: str,
        template: str,
        node: str | None,
        vmid: str | None = None,
    ) -> float:
        """Sleep, hang or raise ``PveError`` as the matching rules say; the seconds slept."""
        if when == "before" and node is not None and node in self.offline:
            self.injected[(method, template, "offline")] += 1
            raise PveError(self.offline[node], status=OFFLINE_STATUS)
        delay = 0.0
        failure: RequestFault | None = None
        for armed in self.requests:
            rule = armed.rule
            assert isinstance(rule, RequestFault)
            if rule.when != when or not rule.matches(method, template, node, vmid):
                continue
            if not armed.fire(self.rng):
                continue
            self.injected[(method, template, rule.kind)] += 1
            if rule.latency is not None:
                low, high = rule.latency if isinstance(rule.latency, tuple) else (rule.latency,) * 2
                delay += self.rng.uniform(low, high)
            elif failure is None:
                failure = rule
        if delay:
            await asyncio.sleep(delay)
        if failure is None:
            return delay
        if failure.hang:
            await self._stopping_event().wait()
            raise PveError("simulator stopping", status=503)
        assert failure.status is not None
        text = failure.message or _DEFAULT_TEXT.get(failure.status, "error")
        raise PveError(text, status=failure.status)

    def _stopping_event(self) -> asyncio.Event:
        if self._stopping is None:
            self._stopping = asyncio.Event()
        return self._stopping

    def release_hangs(self) -> None:
        """Let every hanging request end (with a 503); new hangs hang again."""
        event = self._stopping_event()
        event.set()
        self._stopping = None

    # -- tasks -----------------------------------------------------------------------------
    def task_failure(self, task_type: str, task_id: str) -> tuple[str, float] | None:
        """(exitstatus, seconds) when a task rule fires for this new task."""
        for armed in self.tasks:
            rule = armed.rule
            assert isinstance(rule, TaskFault)
            if rule.matches(task_type, task_id) and armed.fire(self.rng):
                self.task_injected[task_type] += 1
                return rule.exitstatus, rule.seconds
        return None


def set_host(
    cluster: Cluster,
    injector: Injector,
    host: str,
    *,
    online: bool,
    reason: str = OFFLINE_REASON,
    power_loss: bool = False,
) -> None:
    """Take ``host`` offline (its proxied requests fail with 595 ``reason``) or bring it back.

    ``power_loss`` (when coming back): the host rebooted, so its VMs are stopped.
    """
    node = cluster.node(host)
    node.online = online
    if not online:
        injector.offline[host] = reason
        return
    injector.offline.pop(host, None)
    if power_loss:
        for vm in cluster.vms.values():
            if vm.node == host and vm.running:
                vm.status = "stopped"
                vm.paused = False
                vm.started_at = None
                vm.bound.clear()


async def run_events(cluster: Cluster, injector: Injector, events: tuple[HostEvent, ...]) -> None:
    """Play a plan's host events in time order (wall clock since the call)."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    for ev in sorted(events, key=lambda e: e.after):
        await asyncio.sleep(max(0.0, start + ev.after - loop.time()))
        set_host(cluster, injector, ev.host, online=ev.state == "online", reason=ev.reason)


_DEFAULT_TEXT = {
    500: "Internal Server Error",
    501: "Not Implemented",
    502: "Bad Gateway",
    503: "Service Unavailable",
    595: OFFLINE_REASON,
    596: "Connection timed out",
    599: "Internal Server Error",
}
