"""What the cluster's HA stack declares, as the planner reads it: the enabled PVE 9.x HA rules
and whether the CRS rebalances HA resources by itself.

Facts from pve-ha-manager (docs/pve9.md): a *strict* node-affinity rule restricts its resources
to its nodes — the HA manager migrates one that stands elsewhere back (failback, on by
default) and recovers it only there; a *non-strict* one makes them prefer the nodes of its
highest priority among the online ones, and with failback the HA manager also pulls them back
there; a negative resource-affinity rule keeps its resources on separate nodes, a positive one on
one node (a migrate request moves the positive partners along). A resource is in at most one
node-affinity rule (PVE drops the later ones).

``rules`` is every rule as PVE lists it (disabled and infeasible ones too), for publishing the
spec's own rules (``core.planning.harules_publish``): compared by value, never interpreted here.

``maintenance``: the nodes in HA node maintenance (``ha-manager crm-command node-maintenance
enable``: requested, or entered — the CRM's ``node_request`` / ``node_status``; PVE 8.x and
9.x). The HA manager migrates the HA resources off such a node itself; the planner evacuates
the rest (``planning.placement``).

Invariants: only enabled rules are in ``node_affinity`` / ``resource_affinity`` (the observer
drops disabled ones); ``rules_api`` is true only when ``/cluster/ha/rules`` answered;
``auto_rebalance`` is ``None`` when the options could not be read (a token without ``Sys.Audit``
on ``/``), which the planner treats as "may be on". On PVE 8.x there are no rules and no
auto-rebalance.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class NodeAffinity:
    rule: str
    vmids: frozenset[int]
    nodes: Mapping[str, int]  # node -> priority (higher first)
    strict: bool = False

    def top(self, online: frozenset[str] | None = None) -> tuple[str, ...]:
        """The nodes of the highest priority (among ``online`` when given), sorted."""
        ranked = {n: p for n, p in self.nodes.items() if online is None or n in online}
        if not ranked:
            return ()
        best = max(ranked.values())
        return tuple(sorted(n for n, p in ranked.items() if p == best))


@dataclass(frozen=True, slots=True)
class ResourceAffinity:
    rule: str
    vmids: frozenset[int]
    positive: bool


NODE_AFFINITY = "node-affinity"
RESOURCE_AFFINITY = "resource-affinity"


@dataclass(frozen=True, slots=True)
class HaRule:
    """One HA rule as written to / listed by ``/cluster/ha/rules``. ``nodes`` is sorted
    (node, priority) pairs (node-affinity only), ``affinity`` ``positive``/``negative``
    (resource-affinity only); ``digest`` (of the whole rules file) is not part of the value."""

    rule: str
    type: str  # NODE_AFFINITY | RESOURCE_AFFINITY
    vmids: frozenset[int]
    nodes: tuple[tuple[str, int], ...] = ()
    strict: bool = False
    affinity: str | None = None
    comment: str = ""
    disabled: bool = False
    digest: str | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class HaCluster:
    node_affinity: tuple[NodeAffinity, ...] = ()
    resource_affinity: tuple[ResourceAffinity, ...] = ()
    auto_rebalance: bool | None = False  # None: unknown, may be on
    rules_unread: bool = False  # 9.x rules could not be read this cycle (reported)
    rules_api: bool = False  # /cluster/ha/rules answered: PVE 9.x, rules readable
    rules: tuple[HaRule, ...] = ()  # every rule as listed, disabled ones too
    maintenance: frozenset[str] = frozenset()  # nodes in HA node maintenance
    _by_vmid: dict[int, NodeAffinity] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        for rule in self.node_affinity:
            for vmid in rule.vmids:
                self._by_vmid.setdefault(vmid, rule)  # the first rule wins, as PVE's check

    def node_rule(self, vmid: int) -> NodeAffinity | None:
        return self._by_vmid.get(vmid)

    def partners(self, vmid: int, *, positive: bool) -> tuple[tuple[str, int], ...]:
        """(rule id, VMID) of every resource kept together with / apart from ``vmid``."""
        return tuple(
            (r.rule, other)
            for r in self.resource_affinity
            if r.positive is positive and vmid in r.vmids
            for other in sorted(r.vmids - {vmid})
        )
