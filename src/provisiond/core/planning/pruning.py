"""Pruning: destroy VMs a fleet owns that its spec no longer lists (``policy.prune``).

Refused for the whole fleet when the observation is incomplete or the surplus exceeds the
destroy limit (``core.guards.destroy_refusal``); refused per VM when it is not fully observed,
paused, the daemon's own, locked, or running over the disruption budget. At most one destroy
per plan, and it comes after every other action of the plan.
"""

from __future__ import annotations

from provisiond.core.actions import Destroy
from provisiond.core.desired import DesiredFleet
from provisiond.core.guards import destroy_refusal
from provisiond.core.observed import ObservedVM, VMStatus
from provisiond.core.ownership import owner, paused
from provisiond.core.plan import Blocked
from provisiond.core.planning.state import PlanState


def prune(s: PlanState, fleet: DesiredFleet) -> None:
    wanted = {d.vmid for d in fleet.vms}
    owned = [v for v in s.observed.vms if not v.template and owner(v) == fleet.name]
    surplus = sorted((v for v in owned if v.vmid not in wanted), key=lambda v: v.vmid)
    if not surplus:
        return
    managed = len(
        {v.vmid for v in owned} | {i for i, m in s.matched.items() if m.d.fleet == fleet.name}
    )
    refusal = destroy_refusal(len(surplus), managed)
    if not s.observed.unobserved.vmids_trustworthy or s.observed.unobserved.tasks:
        refusal = "not destroyed: the observation is incomplete"
    if refusal is not None:
        s.blocked.append(Blocked("destroy_limit", refusal, fleet=fleet.name))
        return
    for vm in surplus:
        code, why = _refusal(s, fleet, vm)
        if code is None:
            others = tuple(a.id for a in s.actions)
            s.last.pop(vm.vmid, None)
            s.emit(
                Destroy(
                    id=f"destroy:{vm.vmid}",
                    reason=f"owned by fleet {fleet.name}, no longer in its spec (prune)",
                    vmid=vm.vmid,
                    name=vm.name,
                    host=vm.host,
                    fleet=fleet.name,
                    running=vm.status is VMStatus.RUNNING,
                ),
                vm.vmid,
                *others,
            )
            continue
        s.blocked.append(Blocked(code, why, vm.vmid, vm.name, fleet.name))


def _refusal(s: PlanState, fleet: DesiredFleet, vm: ObservedVM) -> tuple[str | None, str]:
    if any(isinstance(a, Destroy) for a in s.actions):
        return "destroy_deferred", "not destroyed: one destroy per cycle"
    if vm.status is VMStatus.UNKNOWN or vm.config is None:
        return "observation_incomplete", "not destroyed: not fully observed"
    if paused(vm):
        return "paused", "not destroyed: tagged pd-paused"
    if vm.vmid == s.observed.self_vmid:
        return "self", "not destroyed: provisiond runs in it"
    if vm.lock is not None:
        return "locked", f"not destroyed: locked ({vm.lock})"
    if vm.status is VMStatus.RUNNING:
        refusal = s.budget.take(fleet.name, None)
        if refusal is not None:
            return "disruption_limit", f"not destroyed now: {refusal}"
    return None, ""
