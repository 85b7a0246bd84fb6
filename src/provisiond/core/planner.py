"""The planner: ``plan(desired, observed, *, now) -> Plan``. Pure: no I/O, clock or randomness.

Steps, each deterministic (VMIDs and host names sorted), each in its module of
``core.planning``:
1. match every desired VM to what holds its VMID (ownership, adoption, conflicts, work under way);
2. account every observed VM on its host (scheduler loads), reserve what is in flight (running
   migrations and clones, on every host they may land on), find over-assigned GPU devices;
3. existing VMs: move when misplaced (maintenance, pin, allowed hosts, a GPU mapping missing or
   over-assigned, strict spread, no room to grow), configure spec-owned keys, grow disks, apply
   pending changes, power, node labels/taints; what rests on an unobserved input waits;
4. missing VMs: placed jointly, the most constrained first (``Scheduler.place_all``), clone (on
   the template's host and migrate when the target cannot be reached directly), configure,
   grow, start;
5. opt-in rebalance; 6. PVE 9.x HA rules published from the spec (opt-in); 7. prune, last.

Invariants (tests): an unowned VM is never acted on; an unobserved one (unknown status, config
not read, a failed list) is never cloned over or destroyed; the daemon's own VM is never shut
down, rebooted, moved offline or destroyed; ``pd-paused`` VMs are left alone; with no Kubernetes
configured no Kubernetes action is planned; applying the plan and replanning gives no actions.
"""

from __future__ import annotations

from provisiond.core.desired import DesiredState
from provisiond.core.guards import empty_refusal
from provisiond.core.observed import ObservedState
from provisiond.core.plan import Blocked, Plan
from provisiond.core.planning.creation import create
from provisiond.core.planning.disruption import count_out
from provisiond.core.planning.existing import manage
from provisiond.core.planning.harules_publish import publish
from provisiond.core.planning.kube import nodes_without_vm
from provisiond.core.planning.matching import match
from provisiond.core.planning.ordering import ordered
from provisiond.core.planning.placement import account
from provisiond.core.planning.pruning import prune
from provisiond.core.planning.rebalancing import rebalance
from provisiond.core.planning.state import PlanState


def plan(
    desired: DesiredState,
    observed: ObservedState,
    *,
    now: float,
    node_join_timeout: float = 900.0,
) -> Plan:
    """``node_join_timeout``: seconds a running VM's Kubernetes node may be missing before it is
    reported blocked (``node_not_joined``) rather than waited for."""
    s = PlanState.start(desired, observed, now, node_join_timeout)
    if not s.fleets:
        s.blocked.append(Blocked("empty_spec", "no fleet declared: nothing is planned"))
        return _result(s)
    refused: set[str] = set()
    for fleet in s.fleets.values():
        why = empty_refusal(fleet)
        if why is not None:
            refused.add(fleet.name)
            s.blocked.append(Blocked("empty_spec", why, fleet=fleet.name))
    every = sorted((vm for f in s.fleets.values() for vm in f.vms), key=lambda d: d.vmid)
    missing = [d for d in every if match(s, d)]
    account(s, every)
    count_out(s)
    for vmid in sorted(s.matched):
        manage(s, s.matched[vmid])
    create(s, missing)
    nodes_without_vm(s, every)
    for name in sorted(s.fleets):
        if s.fleets[name].policy.rebalance.enabled:
            rebalance(s, s.fleets[name])
    for name in sorted(s.fleets):
        if name not in refused:
            publish(s, s.fleets[name])
    for name in sorted(s.fleets):
        if s.fleets[name].policy.prune and name not in refused:
            prune(s, s.fleets[name])
    return _result(s)


def _result(s: PlanState) -> Plan:
    return Plan(
        actions=ordered(s.actions),
        blocked=tuple(s.blocked),
        conflicts=tuple(s.conflicts),
        waiting=tuple(s.waiting),
    )
