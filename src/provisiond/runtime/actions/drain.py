"""Node work for a drain and for the Kubernetes steps of a GPU move: cordon, drain, wait for
Ready, uncordon (DESIGN §6, issue 16).

Every step reads first and does only what is missing, so a step interrupted or already done —
by this process before a restart, or by a human — is never repeated:

- **cordon** and **uncordon** are ``runtime/actions/kube.py``'s (a node already unschedulable is
  left as it is, and not marked ours; only a node provisiond cordoned is uncordoned);
- **drain**: cordon first when needed; then, until done, list the node's pods (never cached) and
  evict (``policy/v1`` Eviction API; never a direct delete) every pod ``core.drain`` says to:
  DaemonSet and mirror pods stay; a pod with ``emptyDir`` is evicted only when the fleet's
  ``drain.deleteEmptyDirData`` allows, else the drain fails at once (the node stays cordoned,
  a Warning Event says which pods). A 429 (a PodDisruptionBudget allows no disruption now) is
  retried with doubling delays (``eviction_retry`` up to ``eviction_retry_max``) until the
  action's ``timeout``; then the drain fails with a ``DrainTimeoutError``, the node stays
  cordoned and a Warning Event ``DrainTimeout`` on the Node names the blocked pods. Done when
  no pod is left to evict and none is still terminating;
- **wait Ready**: polls the node until its Ready condition is True on a new boot: a node whose
  bootID is still the one the cordon recorded (``BOOT_ID_ANNOTATION``) shows the Ready its old
  boot left behind — a real node stays Ready ~40 s after its VM shut down (``ready_timeout``).

A drain that evicted pods, or that gives up, emits a Kubernetes Event on the Node
(``source.component=provisiond``). Stop
interrupts any wait at once (``WaitInterruptedError``): the node stays as it is, and the next
cycle's plan resumes from what it observes. With Kubernetes unreachable every call is a
``TransientError``: retried, then the action fails — nothing is evicted on a stale view, since
pods are read right before their eviction.
"""

from __future__ import annotations

import contextlib
import functools

import structlog

from provisiond.core.actions import Cordon, Drain
from provisiond.core.drain import sort_pods
from provisiond.core.errors import PermanentError, ProvisiondError
from provisiond.core.observed import Eviction, KubeNode, KubePod
from provisiond.core.ports import KubeReader, KubeWriter
from provisiond.runtime.actions import kube
from provisiond.runtime.actions.context import ActionContext, AdoptedSignal

log = structlog.get_logger("provisiond.executor")


class DrainTimeoutError(PermanentError):
    """Evictions stayed blocked (or pods terminating) until the drain's timeout."""


def _names(pods: tuple[KubePod, ...], limit: int = 5) -> str:
    shown = ", ".join(str(p) for p in pods[:limit])
    return shown + (f" and {len(pods) - limit} more" if len(pods) > limit else "")


def _ports(ctx: ActionContext, what: str) -> tuple[KubeReader, KubeWriter]:
    if ctx.kube_reader is None or ctx.kube_writer is None:
        kube.not_configured(what)
    return ctx.kube_reader, ctx.kube_writer


async def _event(ctx: ActionContext, writer: KubeWriter, node: str, reason: str, text: str) -> None:
    """A Warning/Normal Event on the Node; one that cannot be written is logged, not raised."""
    kind = "Warning" if reason in ("DrainTimeout", "DrainBlocked") else "Normal"
    try:
        await ctx.call(
            f"event {reason} on {node}",
            lambda: writer.node_event(node, reason=reason, message=text, type=kind),
        )
    except ProvisiondError as exc:
        log.warning("kube_event_failed", node=node, reason=reason, error=str(exc))


async def cordon_first(node: str, vmid: int, why: str, ctx: ActionContext) -> None:
    """Cordon ``node`` unless it already is unschedulable (``kube.cordon``'s check)."""
    with contextlib.suppress(AdoptedSignal):  # already unschedulable
        await kube.cordon(Cordon(id=f"cordon:{node}", reason=why, node=node, vmid=vmid), ctx)


async def drain(a: Drain, ctx: ActionContext) -> None:
    await cordon_first(a.node, a.vmid, a.reason, ctx)
    await evict_all(
        a.node,
        limit=a.timeout,
        delete_empty_dir_data=a.delete_empty_dir_data,
        why=a.reason,
        ctx=ctx,
    )


async def evict_all(
    name: str, *, limit: float, delete_empty_dir_data: bool, why: str, ctx: ActionContext
) -> int:
    """Evict until no evictable pod is left (``limit`` seconds at most); the evictions made."""
    _, writer = _ports(ctx, "drain")
    waiter, config = ctx.tasks, ctx.tasks.config
    deadline = waiter.clock() + limit
    delay = config.eviction_retry
    evicted = 0
    while True:
        pods = await ctx.call(f"pods on {name}", functools.partial(writer.pods_on, name))
        view = sort_pods(pods, delete_empty_dir_data=delete_empty_dir_data)
        if view.refused:
            text = (
                f"drain of node {name} refused: pods with emptyDir volumes "
                f"({_names(view.refused)}) lose their data when evicted, and the fleet's "
                "policy.drain.deleteEmptyDirData is off; the node stays cordoned"
            )
            await _event(ctx, writer, name, "DrainBlocked", text)
            raise PermanentError(text)
        if view.done:
            if evicted:
                await _event(ctx, writer, name, "Drained", f"drained by provisiond: {why}")
            log.info("node_drained", node=name, evicted=evicted, kept=len(view.kept))
            return evicted
        blocked: list[KubePod] = []
        for pod in view.evict:
            evict = functools.partial(writer.evict, pod.namespace, pod.name)
            answer = await ctx.call(f"evict {pod}", evict)
            if answer is Eviction.BLOCKED:
                blocked.append(pod)
            elif answer is Eviction.EVICTED:
                evicted += 1
                log.info("pod_evicted", node=name, pod=str(pod))
        left = deadline - waiter.clock()
        if left <= 0:
            what = (
                f"evictions blocked by a PodDisruptionBudget ({_names(tuple(blocked))})"
                if blocked
                else f"pods still terminating ({_names(view.terminating)})"
            )
            text = f"drain of node {name} timed out after {limit:g} s: {what}; node stays cordoned"
            await _event(ctx, writer, name, "DrainTimeout", text)
            raise DrainTimeoutError(text)
        if blocked:
            pause = min(delay, left)
            log.info("eviction_blocked", node=name, pods=[str(p) for p in blocked], retry_in=pause)
            await waiter.pause(pause, f"drain {name}")
            delay = min(delay * 2, config.eviction_retry_max)
        else:
            delay = config.eviction_retry  # progress: back to the short delay
            await waiter.pause(min(config.pod_poll, left), f"drain {name}")


async def wait_ready(name: str, ctx: ActionContext) -> None:
    """Until the node is back (``KubeNode.back``: Ready, and on another boot than the one
    recorded at the cordon) — ``ready_timeout``, then a ``PermanentError``."""
    reader, _ = _ports(ctx, "wait for node Ready")
    waiter, config = ctx.tasks, ctx.tasks.config
    deadline = waiter.clock() + config.ready_timeout
    while True:
        nodes: tuple[KubeNode, ...] = await ctx.call(f"nodes ({name} Ready?)", reader.nodes)
        if any(n.name == name and n.back for n in nodes):
            return
        if waiter.clock() >= deadline:
            raise PermanentError(
                f"node {name} not Ready {config.ready_timeout:g} s after its VM started; "
                "left cordoned"
            )
        await waiter.pause(config.pod_poll, f"node {name} Ready")
