"""Publishing the spec's placement as PVE 9.x HA rules provisiond owns (``publishHaRules``).

So that the HA manager's recovery keeps the spec's placement while provisiond is down, a fleet
with ``placement.publishHaRules: true`` has, for its HA-managed VMs (PVE refuses rules on
unmanaged resources):
- per pool with ``spread: strict`` and at least two HA-managed members:
  ``pd-<fleet>-spread-<pool>``, ``resource-affinity`` ``negative``;
- per HA-managed VM pinned (``host``) or limited (``placement.hosts``): ``pd-<fleet>-pin-<vmid>``,
  ``node-affinity`` with those nodes, ``strict=1``.

Ownership: a rule is the fleet's when its id starts with ``pd-<fleet>-`` *and* its comment is
the marker ``provisiond:<fleet>`` (first word). A rule with our id but without the marker is
someone else's: a conflict, never written. Rules whose id lacks the prefix are never looked at.

Guards (DESIGN §8, as for VMs): nothing is decided when the rules or the VM list were not read
(``rules_unread``, untrustworthy VMIDs) or the fleet is refused as empty; on PVE 8.x (no rules
API) the flag is reported and nothing is done. A node-affinity rule is written only when the
VM already stands on one of its nodes or this plan moves it there — the rule first, the move
after it (the old rule would make the HA manager move the VM back): a strict rule elsewhere
would make the HA manager migrate the VM outside provisiond's disruption budget. Writes come
first in the plan (phase 1), deletes last (phase 9).
Deleting a rule of ours the spec no longer asks for needs no ``prune`` — a rule holds no data and
the next cycle can write it again — but it is guarded like a destroy: only our own rules, at
most one delete per plan (which also keeps it within the max(1, 10 %) destroy limit), the rest
deferred to the next cycles.

All rule actions share the pseudo-VMID ``HA_RULES_VMID`` and run in emission order.
"""

from __future__ import annotations

import re
from dataclasses import replace

from provisiond.core.actions import (
    HA_RULES_VMID,
    HaRuleAction,
    HaRuleCreate,
    HaRuleDelete,
    HaRuleUpdate,
)
from provisiond.core.desired import DesiredFleet, DesiredVM, Spread
from provisiond.core.hacluster import NODE_AFFINITY, RESOURCE_AFFINITY, HaRule
from provisiond.core.plan import Blocked, Conflict
from provisiond.core.planning.state import PlanState

_MOVES = frozenset({"migrate", "gpu_move"})
_ID_UNSAFE = re.compile(r"[^a-z0-9_-]")  # pve-configid: ^[a-z][a-z0-9_-]+$


def prefix(fleet: str) -> str:
    """The id prefix of the fleet's rules (a fleet name's '.' and '+' become '_')."""
    return f"pd-{_ID_UNSAFE.sub('_', fleet)}-"


def marker(fleet: str) -> str:
    return f"provisiond:{fleet}"


def owned(rule: HaRule, fleet: str) -> bool:
    """Prefix *and* marker: either alone proves nothing."""
    words = rule.comment.split()
    return rule.rule.startswith(prefix(fleet)) and bool(words) and words[0] == marker(fleet)


def own_rule(s: PlanState, rule_id: str, fleet: str) -> bool:
    """Whether the observed rule ``rule_id`` is ``fleet``'s: the spec, not the rule, then
    decides where its VMs go (the rule follows the spec)."""
    return any(r.rule == rule_id and owned(r, fleet) for r in s.observed.ha.rules)


def _comment(fleet: str) -> str:
    return f"{marker(fleet)} published from the fleet spec; edits are overwritten"


def wanted(s: PlanState, fleet: DesiredFleet) -> dict[str, tuple[HaRule, tuple[DesiredVM, ...]]]:
    """The fleet's rules as the spec and the HA-managed VMs ask: id -> (rule, its VMs)."""
    managed = [  # ours (owned or adopted) and HA-managed
        d for d in fleet.vms if d.vmid in s.matched and s.matched[d.vmid].vm.ha_state is not None
    ]
    out: dict[str, tuple[HaRule, tuple[DesiredVM, ...]]] = {}
    pools: dict[str, list[DesiredVM]] = {}
    for d in managed:
        if d.spread is Spread.STRICT:
            pools.setdefault(d.pool, []).append(d)
        nodes = (d.host,) if d.host else d.allowed_hosts
        if nodes is not None:
            rule = HaRule(
                rule=f"{prefix(fleet.name)}pin-{d.vmid}",
                type=NODE_AFFINITY,
                vmids=frozenset({d.vmid}),
                nodes=tuple((n, 0) for n in sorted(nodes)),
                strict=True,
                comment=_comment(fleet.name),
            )
            out[rule.rule] = (rule, (d,))
    for pool, members in sorted(pools.items()):
        if len(members) < 2:
            continue  # PVE: "rule is ineffective as there are less than two resources"
        rule = HaRule(
            rule=f"{prefix(fleet.name)}spread-{pool}",
            type=RESOURCE_AFFINITY,
            vmids=frozenset(d.vmid for d in members),
            affinity="negative",
            comment=_comment(fleet.name),
        )
        out[rule.rule] = (rule, tuple(members))
    return out


def _refusal(s: PlanState) -> tuple[str, str] | None:
    ha = s.observed.ha
    if ha.rules_unread:
        return "ha_rules_unread", "HA rules not published: /cluster/ha/rules could not be read"
    if not ha.rules_api:
        return (
            "ha_rules_unsupported",
            "placement.publishHaRules: this cluster has no HA rules (PVE 8.x): nothing published",
        )
    if not s.observed.unobserved.vmids_trustworthy:
        return "observation_incomplete", "HA rules not published: the VM list was not read"
    return None


def publish(s: PlanState, fleet: DesiredFleet) -> None:
    """The create/update/delete actions that bring the fleet's owned rules to ``wanted``."""
    ours = [r for r in s.observed.ha.rules if owned(r, fleet.name)]
    if not fleet.publish_ha_rules and not ours:
        return
    refusal = _refusal(s)
    if refusal is not None:
        s.blocked.append(Blocked(*refusal, fleet=fleet.name))
        return
    want = wanted(s, fleet) if fleet.publish_ha_rules else {}
    seen = {r.rule: r for r in s.observed.ha.rules}
    for rule_id, (rule, vms) in sorted(want.items()):
        _write(s, fleet, rule, vms, seen.get(rule_id))
    deleted = False
    for old in sorted(ours, key=lambda r: r.rule):
        if old.rule in want:
            continue
        if deleted:
            why = f"HA rule '{old.rule}' not deleted now: one rule delete per cycle"
            s.blocked.append(Blocked("ha_rule_deferred", why, fleet=fleet.name))
            continue
        deleted = True
        why = (
            "not asked for by the spec any more"
            if fleet.publish_ha_rules
            else ("placement.publishHaRules is off")
        )
        _emit(s, HaRuleDelete(id=f"ha_rule_delete:{old.rule}", reason=why, fleet=fleet.name,
                              rule=old))  # fmt: skip


def _write(
    s: PlanState, fleet: DesiredFleet, rule: HaRule, vms: tuple[DesiredVM, ...], old: HaRule | None
) -> None:
    first = vms[0]
    if old is not None and not owned(old, fleet.name):
        s.conflicts.append(
            Conflict(
                f"PVE HA rule '{rule.rule}' exists but is not provisiond's (its comment lacks "
                f"'{marker(fleet.name)}'): not published, left alone",
                first.vmid,
                first.name,
                fleet.name,
            )
        )
        return
    if old == rule:
        return
    if old is not None and old.type != rule.type:
        why = f"HA rule '{rule.rule}' is a {old.type} rule, expected {rule.type}: not written"
        s.block("ha_rule_conflict", why, first)
        return
    if rule.type == NODE_AFFINITY:
        taken = s.observed.ha.node_rule(first.vmid)
        if taken is not None and not own_rule(s, taken.rule, fleet.name):
            why = f"VM in PVE HA rule '{taken.rule}' (not provisiond's): '{rule.rule}' not written"
            s.block("ha_rule_taken", why, first)
            return
        if s.accounted[first.vmid][0] not in dict(rule.nodes):  # where this plan leaves it
            why = f"'{rule.rule}' waits until the VM stands on {', '.join(dict(rule.nodes))}"
            s.block("ha_rule_waiting", why, first)
            return
    if rule.type == RESOURCE_AFFINITY and len(rule.vmids) > len(s.observed.hosts):
        why = f"'{rule.rule}': more HA-managed VMs than hosts (PVE refuses the rule)"
        s.block("ha_rule_infeasible", why, first)
        return
    kind = "node-affinity strict" if rule.type == NODE_AFFINITY else "anti-affinity"
    what = f"{kind} of {', '.join(d.name for d in vms)}"
    if old is None:
        action: HaRuleAction = HaRuleCreate(
            id=f"ha_rule_create:{rule.rule}", reason=f"publish {what}", fleet=fleet.name, rule=rule
        )
    else:
        action = HaRuleUpdate(
            id=f"ha_rule_update:{rule.rule}", reason=f"{what} changed", fleet=fleet.name, rule=rule
        )
    done = _emit(s, action)
    # Every move of the rule's VMs waits for the rule: the old rule (or none) would make the HA
    # manager move a VM back after provisiond's move; the new one agrees with the target.
    members = {d.vmid for d in vms}
    for i, a in enumerate(s.actions):
        if a.vmid in members and a.kind in _MOVES:
            s.actions[i] = replace(a, after=(*a.after, done))


def _emit(s: PlanState, action: HaRuleAction) -> str:
    """Rule actions are not chained to each other (the executor runs them one at a time)."""
    done = s.emit(action, HA_RULES_VMID)
    s.last.pop(HA_RULES_VMID)
    return done
