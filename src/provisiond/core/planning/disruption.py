"""The guards before the plan stops, reboots or moves a VM offline; each reports why it refuses.

- ``self_guard``: the daemon's own VM is never shut down, rebooted or moved offline by itself;
- ``kube_unobserved``: a Kubernetes node that could not be read cannot be drained, so its VM is
  not stopped;
- ``disrupt``: takes one disruption from the fleet's and pool's budget (``core.guards``), or
  defers the work; a VM already counted as out (``count_out``) is not charged twice;
- ``count_out``: nodes already out count against the budget before anything is planned — a node
  provisiond cordoned (``provisiond.dev/cordoned``: a drain or GPU move under way, or
  interrupted) and a node not Ready whose VM should run — so a pool never has more nodes out
  than its budget, across cycles and restarts.

Each returns whether the work may go ahead and, when not, appends exactly one ``Blocked``.
"""

from __future__ import annotations

from provisiond.core.desired import DesiredVM, PowerState
from provisiond.core.observed import CORDONED_ANNOTATION
from provisiond.core.planning.kube import node_of
from provisiond.core.planning.state import PlanState


def self_guard(s: PlanState, d: DesiredVM, what: str) -> bool:
    """True (and blocked) when provisiond runs in ``d``."""
    if d.vmid == s.observed.self_vmid:
        s.block("self", f"provisiond runs in this VM: never {what} by itself", d)
        return True
    return False


def kube_unobserved(s: PlanState, d: DesiredVM) -> bool:
    """True (and blocked) when ``d`` is a Kubernetes node and Kubernetes could not be read."""
    if d.kubernetes is not None and s.observed.unobserved.kubernetes:
        s.block("kube_unobserved", "Kubernetes could not be read: its node cannot be drained", d)
        return True
    return False


def count_out(s: PlanState) -> None:
    """Count the managed Kubernetes nodes already out (see the module docstring). VMs with a
    lock or a task running are left to ``placement.account``, which counts those that
    disrupt."""
    for vmid in sorted(s.matched):
        d, vm = s.matched[vmid].d, s.matched[vmid].vm
        n = node_of(s, d)
        if n is None or vm.lock is not None or str(vmid) in s.tasks_by_id:
            continue
        mine = vm.config.smbios_uuid if vm.config is not None else None
        if n.system_uuid and mine and n.system_uuid != mine:
            continue  # another machine's node (a conflict, reported by ``manage``)
        ours = n.unschedulable and CORDONED_ANNOTATION in n.annotations
        if ours or (not n.ready and d.power is PowerState.RUNNING):
            s.budget.count(d.fleet, d.pool)
            s.out.add(vmid)


def disrupt(s: PlanState, d: DesiredVM, why: str) -> bool:
    """Take a disruption from the budget, or report why not (and return False)."""
    if d.vmid in s.out:  # already counted: its own work goes on
        s.disrupted.add(d.vmid)
        return True
    refusal = s.budget.take(d.fleet, d.pool)
    if refusal is not None:
        s.block("disruption_limit", f"{why}: deferred, {refusal}", d)
        return False
    s.disrupted.add(d.vmid)
    return True
