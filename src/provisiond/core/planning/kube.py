"""The Kubernetes node of a VM: which node the plan manages, drain, labels, taints, uncordon.

A VM has a managed node only when its spec names one, Kubernetes was observed, the node exists
and is not annotated ``provisiond.dev/paused``; with no Kubernetes configured nothing here
emits. A node is uncordoned only when provisiond cordoned it (``provisiond.dev/cordoned``), it is
Ready, the VM runs and should, and this plan does not disrupt it (this is how a GPU move
interrupted after its start finishes: the next plans wait for Ready, then uncordon).
"""

from __future__ import annotations

from provisiond.core.actions import Cordon, Drain, Label, TaintNode, Uncordon
from provisiond.core.desired import DesiredVM, PowerState
from provisiond.core.nodes import diff_node
from provisiond.core.observed import (
    CORDONED_ANNOTATION,
    PAUSED_ANNOTATION,
    KubeNode,
    ObservedVM,
    VMStatus,
)
from provisiond.core.planning.state import PlanState


def node_of(s: PlanState, d: DesiredVM) -> KubeNode | None:
    if d.kubernetes is None or s.nodes is None:
        return None
    found = s.nodes.get(d.kubernetes.node_name)
    if found is None or PAUSED_ANNOTATION in found.annotations:
        return None
    return found


def drain(s: PlanState, d: DesiredVM, n: KubeNode | None, why: str) -> None:
    """Cordon (unless already unschedulable) and drain ``n`` before ``d`` is disrupted."""
    if n is None:
        return
    if not n.unschedulable:
        s.emit(Cordon(id=f"cordon:{n.name}", reason=why, node=n.name, vmid=d.vmid), d.vmid)
    policy = s.fleet(d).policy.drain
    s.emit(
        Drain(
            id=f"drain:{n.name}",
            reason=why,
            node=n.name,
            vmid=d.vmid,
            timeout=policy.timeout,
            delete_empty_dir_data=policy.delete_empty_dir_data,
        ),
        d.vmid,
    )


def uncordon(s: PlanState, d: DesiredVM, n: KubeNode, why: str) -> None:
    s.emit(Uncordon(id=f"uncordon:{n.name}", reason=why, node=n.name, vmid=d.vmid), d.vmid)


def converge_node(s: PlanState, d: DesiredVM, vm: ObservedVM, n: KubeNode) -> None:
    """Labels and taints as the spec says; uncordon what provisiond cordoned and is done."""
    assert d.kubernetes is not None
    diff = diff_node(d.kubernetes, n)
    if diff.labels_changed or (diff.record_changed and not diff.taints_changed):
        changes = [f"{k}={v}" for k, v in diff.set_labels.items()]
        changes += [f"-{k}" for k in diff.remove_labels]
        s.emit(
            Label(
                id=f"label:{n.name}",
                reason="labels " + (", ".join(changes) or "recorded as managed"),
                node=n.name,
                vmid=d.vmid,
                labels=diff.set_labels,
                remove=diff.remove_labels,
                managed=diff.record,
            ),
            d.vmid,
        )
    if diff.taints_changed:
        changes = [str(t) for t in diff.add_taints] + [f"-{t}" for t in diff.remove_taints]
        s.emit(
            TaintNode(
                id=f"taint:{n.name}",
                reason="taints " + ", ".join(changes),
                node=n.name,
                vmid=d.vmid,
                add=diff.add_taints,
                remove=diff.remove_taints,
                managed=diff.record,
            ),
            d.vmid,
        )
    if (
        n.unschedulable
        and CORDONED_ANNOTATION in n.annotations
        and n.ready  # a moved or rebooted VM's node is back
        and vm.status is VMStatus.RUNNING
        and d.power is PowerState.RUNNING
        and d.vmid not in s.disrupted
    ):
        uncordon(s, d, n, "provisiond cordoned this node for work that has finished")
