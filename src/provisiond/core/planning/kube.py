"""The Kubernetes node of a VM: which node the plan manages, drain, labels, taints, uncordon.

A VM has a managed node only when its spec names one, Kubernetes was observed, the node exists,
is not annotated ``provisiond.dev/paused`` and is the VM's own machine: a node whose
``systemUUID`` differs from the VM's SMBIOS uuid is another machine's (a conflict: reported,
nothing done on it). With no Kubernetes configured nothing here emits.

Reported, not acted on: a running VM whose node has not appeared waits (``Waiting``) for
``node_join_timeout`` seconds of uptime, then is blocked ``node_not_joined``; a node named by the
spec whose VM does not exist, or carrying provisiond's record with no VM of the spec naming
it, is blocked ``node_without_vm``.

A node is uncordoned only when provisiond cordoned it (``provisiond.dev/cordoned``), it is
Ready, the VM runs and should, and this plan does not disrupt it (this is how a GPU move
interrupted after its start finishes: the next plans wait for Ready, then uncordon).

Kubernetes configured but unreadable (``unobserved.kubernetes``): every existing VM of the spec
with a node waits, "not observed: kubernetes nodes (labels, taints and uncordon of node <name>
wait)", instead of silently managing nothing; what would disrupt it is blocked
``kube_unobserved`` (``disruption``).
"""

from __future__ import annotations

from collections.abc import Sequence

from provisiond.core.actions import Cordon, Drain, Label, TaintNode, Uncordon
from provisiond.core.desired import DesiredVM, PowerState
from provisiond.core.nodes import diff_node
from provisiond.core.observed import (
    CORDONED_ANNOTATION,
    MANAGED_ANNOTATION,
    PAUSED_ANNOTATION,
    KubeNode,
    ObservedVM,
    VMStatus,
)
from provisiond.core.plan import Blocked, Conflict
from provisiond.core.planning.state import PlanState

KUBE_NODES = "kubernetes nodes"  # what an unreadable Kubernetes hides ("not observed: …")


def node_of(s: PlanState, d: DesiredVM, vm: ObservedVM | None = None) -> KubeNode | None:
    if d.kubernetes is None or s.nodes is None:
        return None
    found = s.nodes.get(d.kubernetes.node_name)
    if found is None or PAUSED_ANNOTATION in found.annotations:
        return None
    mine = vm.config.smbios_uuid if vm is not None and vm.config is not None else None
    if found.system_uuid and mine and found.system_uuid != mine:
        why = (
            f"node {found.name} is machine {found.system_uuid}, not this VM ({mine}): "
            "its labels, taints and drains are left alone"
        )
        s.conflicts.append(Conflict(why, d.vmid, d.name, d.fleet))
        return None
    return found


def node_missing(s: PlanState, d: DesiredVM, vm: ObservedVM) -> None:
    """A VM without a managed node: when Kubernetes could not be read, its node actions wait
    ("not observed: kubernetes nodes"); a running VM whose node is not in the observed cluster
    waits for it to join, then is reported."""
    if d.kubernetes is None:
        return
    if s.nodes is None:
        if s.observed.unobserved.kubernetes:
            why = f"labels, taints and uncordon of node {d.kubernetes.node_name} wait"
            s.unseen(KUBE_NODES, d, why)
        return
    if vm.status is not VMStatus.RUNNING:
        return
    name = d.kubernetes.node_name
    if name in s.nodes:
        return  # present but paused or another machine's: said where that was decided
    if vm.uptime is not None and vm.uptime >= s.node_join_timeout:
        why = f"node {name} has not joined Kubernetes {vm.uptime} s after the VM started"
        s.block("node_not_joined", why, d)
    else:
        s.wait(f"waiting for node {name} to join Kubernetes", d)


def nodes_without_vm(s: PlanState, every: Sequence[DesiredVM]) -> None:
    """Nodes of the fleets' VMs whose VM does not exist, and nodes provisiond recorded as
    managed that no VM of the spec names."""
    if s.nodes is None or not s.observed.unobserved.vmids_trustworthy:
        return
    named = {d.kubernetes.node_name: d for d in every if d.kubernetes is not None}
    for name in sorted(s.nodes):
        d = named.get(name)
        if d is not None and d.vmid not in s.by_vmid:
            why = f"node {name} has no VM: VM {d.vmid} ({d.name}) does not exist"
            s.blocked.append(Blocked("node_without_vm", why, d.vmid, d.name, d.fleet))
        elif d is None and MANAGED_ANNOTATION in s.nodes[name].annotations:
            why = f"node {name} carries provisiond's labels but no VM of the spec names it"
            s.blocked.append(Blocked("node_without_vm", why, name=name))


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
        and vm.status is VMStatus.RUNNING
        and d.power is PowerState.RUNNING
        and d.vmid not in s.disrupted
    ):
        if n.back:  # a moved or rebooted VM's node is back (Ready, on a new boot after a move)
            uncordon(s, d, n, "provisiond cordoned this node for work that has finished")
        else:
            stale = " (still on the boot before the move)" if n.ready else ""
            s.wait(f"node {n.name} not Ready yet{stale}: uncordoned once it is", d)
