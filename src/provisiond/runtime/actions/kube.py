"""Kubernetes node actions: label, taint, cordon, uncordon — each checked, patched, announced.

Every action re-reads its node first (``KubeReader.nodes``: the watch's copy while it is in
sync) and recomputes what is still to do from that read:
- nothing left → *adopted*, no request;
- the node is gone → *skipped* (the next observation decides);
- the node is annotated ``provisiond.dev/paused`` → *skipped*, nothing written;
- else one merge patch with the node's ``resourceVersion`` as read. Labels and taints the
  action does not name are never written (a taint patch carries the whole list as read, with
  only the action's taints added or removed); a 409 (``ConflictError``) is *requeued*: the
  next cycle re-reads and replans.
After a patch, a Kubernetes Event on the Node (reason ``ProvisiondLabels``,
``ProvisiondTaints``, ``ProvisiondCordon``, ``ProvisiondUncordon``; ``source.component``
provisiond) says what changed and why; an Event that cannot be written is logged, it does not
undo or fail the action.

Drain and the Kubernetes steps of a GPU move live in ``runtime/actions/drain.py`` (the
``not_configured`` seam below stays for them until it exists). Without a Kubernetes port every
node action fails loudly (``PermanentError``); the planner plans none while ``observed.kube``
is ``None``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NoReturn

import structlog

from provisiond.core.actions import Cordon, Label, MoveStep, TaintNode, Uncordon
from provisiond.core.desired import Taint
from provisiond.core.errors import PermanentError, ProvisiondError
from provisiond.core.nodes import taint_id
from provisiond.core.observed import (
    BOOT_ID_ANNOTATION,
    CORDONED_ANNOTATION,
    MANAGED_ANNOTATION,
    PAUSED_ANNOTATION,
    KubeNode,
)
from provisiond.core.ports import ConflictError, KubeReader, KubeWriter
from provisiond.runtime.actions.context import (
    ActionContext,
    AdoptedSignal,
    ReplanSignal,
    RequeueSignal,
)

log = structlog.get_logger("provisiond.executor")

KUBE_NOT_CONFIGURED = "Kubernetes is not configured: provisiond cannot {what} (no Kubernetes port)"
NODE_STEPS = (MoveStep.CORDON, MoveStep.DRAIN, MoveStep.WAIT_READY, MoveStep.UNCORDON)
NodeAction = Label | TaintNode | Cordon | Uncordon


def not_configured(what: str) -> NoReturn:
    raise PermanentError(KUBE_NOT_CONFIGURED.format(what=what))


def _ports(ctx: ActionContext, what: str) -> tuple[KubeReader, KubeWriter]:
    if ctx.kube_reader is None or ctx.kube_writer is None:
        not_configured(what)
    return ctx.kube_reader, ctx.kube_writer


async def fresh_node(ctx: ActionContext, name: str, what: str) -> KubeNode:
    """The node read now; skipped (not failed) when gone or paused."""
    reader, _ = _ports(ctx, what)
    found = {n.name: n for n in await ctx.call(f"nodes ({what})", reader.nodes)}.get(name)
    if found is None:
        raise ReplanSignal(f"node {name} is gone: the next observation decides")
    if PAUSED_ANNOTATION in found.annotations:
        raise ReplanSignal(f"node {name} is annotated {PAUSED_ANNOTATION}: left alone")
    return found


async def _patch(
    ctx: ActionContext,
    a: NodeAction,
    node: KubeNode,
    *,
    event: tuple[str, str],
    labels: Mapping[str, str | None] | None = None,
    taints: tuple[Taint, ...] | None = None,
    unschedulable: bool | None = None,
    annotations: Mapping[str, str | None] | None = None,
) -> None:
    _, writer = _ports(ctx, a.kind)
    try:
        await ctx.call(
            f"{a.kind} node {node.name}",
            lambda: writer.patch_node(
                node.name,
                resource_version=node.resource_version,
                labels=labels or {},
                taints=taints,
                unschedulable=unschedulable,
                annotations=annotations or {},
            ),
        )
    except ConflictError as exc:
        raise RequeueSignal(f"node {node.name} changed since read ({exc}); requeued") from exc
    reason, message = event
    try:
        await writer.node_event(node.name, reason=reason, message=f"{message}: {a.reason}")
    except ProvisiondError as exc:  # the change is made; a missing Event must not undo it
        log.warning("kube_event_failed", node=node.name, reason=reason, error=str(exc))


async def label(a: Label, ctx: ActionContext) -> None:
    node = await fresh_node(ctx, a.node, "label")
    todo: dict[str, str | None] = {k: v for k, v in a.labels.items() if node.labels.get(k) != v}
    todo |= {k: None for k in a.remove if k in node.labels}
    record = node.annotations.get(MANAGED_ANNOTATION) != a.managed
    if not todo and not record:
        raise AdoptedSignal(f"node {a.node} already has its labels")
    shown = [f"{k}={v}" if v is not None else f"-{k}" for k, v in sorted(todo.items())]
    await _patch(
        ctx,
        a,
        node,
        event=("ProvisiondLabels", "labels " + (", ".join(shown) or "recorded as managed")),
        labels=todo,
        annotations={MANAGED_ANNOTATION: a.managed} if record else None,
    )


def tainted(
    have: tuple[Taint, ...], add: tuple[Taint, ...], remove: tuple[Taint, ...]
) -> tuple[Taint, ...]:
    """``have`` without ``remove`` (by key and effect) and with ``add`` (replacing the taint
    of the same key and effect), in the order read, additions last."""
    gone = {taint_id(t) for t in (*remove, *add)}
    return (*(t for t in have if taint_id(t) not in gone), *add)


async def taint(a: TaintNode, ctx: ActionContext) -> None:
    node = await fresh_node(ctx, a.node, "taint")
    want = tainted(node.taints, a.add, a.remove)
    record = node.annotations.get(MANAGED_ANNOTATION) != a.managed
    if set(want) == set(node.taints) and not record:
        raise AdoptedSignal(f"node {a.node} already has its taints")
    changes = [str(t) for t in a.add if t not in node.taints]
    changes += [f"-{t}" for t in a.remove if t in node.taints]
    await _patch(
        ctx,
        a,
        node,
        event=("ProvisiondTaints", "taints " + (", ".join(changes) or "recorded as managed")),
        taints=want if set(want) != set(node.taints) else None,
        annotations={MANAGED_ANNOTATION: a.managed} if record else None,
    )


async def cordon(a: Cordon, ctx: ActionContext, *, record_boot: bool = False) -> None:
    """``record_boot`` (a GPU move): the node's bootID goes into ``BOOT_ID_ANNOTATION`` in the
    same patch, so the move's wait for Ready — and the plan's uncordon, after a restart — can
    tell the new boot from a Ready condition the old one left behind."""
    node = await fresh_node(ctx, a.node, "cordon")
    if node.unschedulable:
        raise AdoptedSignal(f"node {a.node} is already unschedulable")
    annotations = {CORDONED_ANNOTATION: "true"}
    if record_boot and node.boot_id:
        annotations[BOOT_ID_ANNOTATION] = node.boot_id
    await _patch(
        ctx,
        a,
        node,
        event=("ProvisiondCordon", "cordoned"),
        unschedulable=True,
        annotations=annotations,
    )


async def uncordon(a: Uncordon, ctx: ActionContext) -> None:
    node = await fresh_node(ctx, a.node, "uncordon")
    if CORDONED_ANNOTATION not in node.annotations:
        # not cordoned by provisiond (or already uncordoned): someone else's decision
        raise AdoptedSignal(f"node {a.node} is not cordoned by provisiond")
    await _patch(
        ctx,
        a,
        node,
        event=("ProvisiondUncordon", "uncordoned"),
        unschedulable=False,
        annotations={CORDONED_ANNOTATION: None, BOOT_ID_ANNOTATION: None},
    )
