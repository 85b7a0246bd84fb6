"""PVE 9.x HA rules and the CRS balancer in the plan (``core.hacluster`` holds the facts).

- ``narrowed``: where a VM may go, within its rules — a strict node-affinity rule is a hard
  limit (placement, evacuation, rebalance, GPU moves all ask ``placement.constraints``), a
  non-strict one a preference for its highest-priority online nodes, negative resource affinity
  excludes the partners' hosts, positive affinity keeps the VM with its partners;
- ``conflicted``: a spec that contradicts a strict rule (its pin or allowed hosts outside the
  rule's nodes) is a ``Conflict`` naming both sources, and nothing is moved or created for it —
  the HA manager would move the VM back: a fight loop, one live migration per round;
- ``rebalance_excluded``: one balancer at a time — with the CRS auto-rebalance on (or possibly
  on) HA-managed VMs are left to it (``rebalance.haManaged`` overrides), VMs with positive
  partners are never moved alone, and a VM in a node-affinity rule is rebalanced only among the
  rule's top nodes (the HA manager's failback would undo any other move).

A node-affinity rule provisiond published for the VM's own fleet (``harules_publish.own_rule``)
is not a constraint here: it follows the spec, which decides (the rule is rewritten first).
"""

from __future__ import annotations

from dataclasses import replace

from provisiond.core.desired import DesiredVM, HaBalance
from provisiond.core.hacluster import NodeAffinity
from provisiond.core.observed import ObservedVM
from provisiond.core.plan import Conflict
from provisiond.core.planning.harules_publish import own_rule
from provisiond.core.planning.state import PlanState
from provisiond.core.rebalance import over
from provisiond.core.scheduler import Constraints


def _online(s: PlanState) -> frozenset[str]:
    return frozenset(h.name for h in s.observed.hosts if h.online)


def _partner_hosts(s: PlanState, d: DesiredVM, *, positive: bool) -> set[str]:
    return {
        s.accounted[other][0]
        for _, other in s.observed.ha.partners(d.vmid, positive=positive)
        if other in s.accounted
    }


def _node_rule(s: PlanState, d: DesiredVM) -> NodeAffinity | None:
    rule = s.observed.ha.node_rule(d.vmid)
    return None if rule is None or own_rule(s, rule.rule, d.fleet) else rule


def narrowed(s: PlanState, d: DesiredVM, c: Constraints) -> Constraints:
    """``c`` within the HA rules naming ``d``."""
    rule = _node_rule(s, d)
    hosts = c.hosts
    preferred = c.preferred
    if rule is not None and rule.strict:
        hosts = tuple(sorted(set(hosts if hosts is not None else rule.nodes) & set(rule.nodes)))
    elif rule is not None:
        preferred = rule.top(_online(s))
    exclude = (*c.exclude, *sorted(_partner_hosts(s, d, positive=False)))
    together = _partner_hosts(s, d, positive=True) - set(exclude)
    if together:
        hosts = tuple(sorted(set(hosts if hosts is not None else together) & together))
    return replace(c, hosts=hosts, exclude=exclude, preferred=preferred)


def conflicted(s: PlanState, d: DesiredVM) -> bool:
    """Whether the spec contradicts a strict rule for ``d`` (then reported as a conflict)."""
    rule = _node_rule(s, d)
    wanted = (d.host,) if d.host else d.allowed_hosts
    if rule is None or not rule.strict or wanted is None or set(wanted) & set(rule.nodes):
        return False
    spec = f"pins {d.name} to {d.host}" if d.host else f"allows {d.name} {', '.join(wanted)}"
    reason = (
        f"spec (fleet {d.fleet}, pool {d.pool}) {spec}; PVE HA rule '{rule.rule}' (strict "
        f"node-affinity) allows {', '.join(sorted(rule.nodes))}: nothing moved"
    )
    s.conflicts.append(Conflict(reason, d.vmid, d.name, d.fleet))  # asked once per VM
    return True


def rebalance_excluded(s: PlanState, d: DesiredVM, vm: ObservedVM) -> bool:
    """Whether provisiond's rebalance leaves ``vm`` alone for the HA stack (reported)."""
    if vm.ha_state is None:
        return False
    ha = s.observed.ha
    policy = s.fleet(d).policy
    mode = policy.rebalance.ha_managed
    why = None
    if mode is HaBalance.NEVER:
        why = "rebalance.haManaged is never"
    elif mode is HaBalance.AUTO and ha.auto_rebalance is None:
        why = "ha-auto-rebalance may be on: /cluster/options unreadable"
    elif mode is HaBalance.AUTO and ha.auto_rebalance:
        why = "ha-auto-rebalance is on"
    if why is None:
        return bool(ha.partners(d.vmid, positive=True))  # moved with its partners only
    host = s.accounted[d.vmid][0]
    if host in s.sched.hosts and over(
        s.sched, host, Constraints(policy.overcommit), policy.rebalance
    ):
        s.block("left_to_crs", f"HA-managed: left to the Proxmox CRS ({why})", d)
    return True


def rebalance_narrowed(s: PlanState, d: DesiredVM, c: Constraints) -> Constraints:
    """A rebalance move of a VM in a node-affinity rule stays on the rule's top nodes."""
    rule = _node_rule(s, d)
    if rule is None:
        return c
    top = set(rule.top(_online(s)))
    return replace(c, hosts=tuple(sorted(set(c.hosts if c.hosts is not None else top) & top)))
