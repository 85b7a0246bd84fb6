"""The guards before the plan stops, reboots or moves a VM offline; each reports why it refuses.

- ``self_guard``: the daemon's own VM is never shut down, rebooted or moved offline by itself;
- ``kube_unobserved``: a Kubernetes node that could not be read cannot be drained, so its VM is
  not stopped;
- ``disrupt``: takes one disruption from the fleet's and pool's budget (``core.guards``), or
  defers the work.

Each returns whether the work may go ahead and, when not, appends exactly one ``Blocked``.
"""

from __future__ import annotations

from provisiond.core.desired import DesiredVM
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


def disrupt(s: PlanState, d: DesiredVM, why: str) -> bool:
    """Take a disruption from the budget, or report why not (and return False)."""
    refusal = s.budget.take(d.fleet, d.pool)
    if refusal is not None:
        s.block("disruption_limit", f"{why}: deferred, {refusal}", d)
        return False
    s.disrupted.add(d.vmid)
    return True
