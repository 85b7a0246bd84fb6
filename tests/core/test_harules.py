"""PVE 9.x HA rules and the CRS balancer in the planner: tables, and properties over generated
worlds with rules (no placement or move breaks an enabled strict rule; a contradicting spec is a
conflict, never an action)."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from plan_world import converged, dvm, host, state, world
from test_planner_properties import worlds

from provisiond.core.actions import Clone, GpuMove, Migrate
from provisiond.core.desired import DesiredState, HaBalance, RebalancePolicy
from provisiond.core.hacluster import HaCluster, NodeAffinity, ResourceAffinity
from provisiond.core.observed import ObservedState, VMStatus
from provisiond.core.plan import Plan
from provisiond.core.planner import plan

HOSTS = (host("pve1", 16, 64), host("pve2", 16, 64), host("pve3", 16, 64), host("pve4", 16, 64))


def _targets(p: Plan) -> dict[int, str]:
    out: dict[int, str] = {}
    for a in p.actions:
        if isinstance(a, Migrate | GpuMove):
            out[a.vmid] = a.target
        elif isinstance(a, Clone):
            out[a.vmid] = a.target or a.template_host
    return out


def _strict(rule: str, nodes: tuple[str, ...], *vmids: int) -> NodeAffinity:
    return NodeAffinity(rule, frozenset(vmids), dict.fromkeys(nodes, 0), strict=True)


def _ha(o: ObservedState, ha: HaCluster) -> ObservedState:
    managed = {v for r in ha.node_affinity for v in r.vmids}
    managed |= {v for r in ha.resource_affinity for v in r.vmids}
    vms = tuple(replace(v, ha_state="started") if v.vmid in managed else v for v in o.vms)
    return replace(o, vms=vms, ha=ha)


# -- tables ------------------------------------------------------------------------------------


def test_spec_pin_against_a_strict_rule_is_a_conflict_naming_both() -> None:
    d = dvm("k3s-wk1", 101, host="pve4")
    o = _ha(
        world(converged(d, on="pve1"), hosts=HOSTS),
        HaCluster((_strict("keep-123", ("pve1", "pve2", "pve3"), 101),)),
    )
    p = plan(state(d), o, now=0)
    assert not _targets(p)
    [c] = p.conflicts
    assert "pins k3s-wk1 to pve4" in c.reason
    assert "PVE HA rule 'keep-123' (strict node-affinity) allows pve1, pve2, pve3" in c.reason
    missing = plan(state(d), _ha(world(hosts=HOSTS), o.ha), now=0)  # not cloned either
    assert not missing.actions
    assert len(missing.conflicts) == 1


def test_strict_rule_limits_placement_and_evacuation() -> None:
    rule = _strict("keep", ("pve3",), 101, 102)
    new = plan(state(dvm("a", 101)), _ha(world(hosts=HOSTS), HaCluster((rule,))), now=0)
    assert _targets(new) == {101: "pve3"}
    d = dvm("b", 102)
    o = _ha(world(converged(d, on="pve3"), hosts=HOSTS), HaCluster((rule,)))
    evac = plan(state(d, maintenance=("pve3",)), o, now=0)
    assert not _targets(evac)
    assert any(b.code == "no_target" for b in evac.blocked)


def test_non_strict_rule_prefers_its_top_nodes() -> None:
    rule = NodeAffinity("pref", frozenset({101}), {"pve2": 1, "pve4": 2})
    p = plan(state(dvm("a", 101)), _ha(world(hosts=HOSTS), HaCluster((rule,))), now=0)
    assert _targets(p) == {101: "pve4"}
    down = (*HOSTS[:3], replace(HOSTS[3], online=False))
    p = plan(state(dvm("a", 101)), _ha(world(hosts=down), HaCluster((rule,))), now=0)
    assert _targets(p) == {101: "pve2"}
    assert rule.top(frozenset()) == ()


def test_resource_affinity_apart_and_together() -> None:
    a, b, c = dvm("a", 101), dvm("b", 102), dvm("c", 103)
    apart = ResourceAffinity("apart", frozenset({101, 102}), positive=False)
    together = ResourceAffinity("together", frozenset({101, 103}), positive=True)
    o = _ha(world(converged(a, on="pve2"), hosts=HOSTS), HaCluster((), (apart, together)))
    t = _targets(plan(state(a, b, c), o, now=0))
    assert t[102] != "pve2"
    assert t[103] == "pve2"
    assert o.ha.partners(101, positive=True) == (("together", 103),)


def _crowded(
    mode: HaBalance, auto: bool | None, ha: bool = True
) -> tuple[DesiredState, ObservedState]:
    vms = [dvm(f"v{i}", 100 + i, cores=4, memory_mib=16 * 1024) for i in range(4)]
    policy = RebalancePolicy(enabled=True, memory_threshold=0.5, ha_managed=mode)
    o = world(*(converged(v, on="pve1") for v in vms), hosts=HOSTS[:2])
    if ha:
        o = replace(o, vms=tuple(replace(v, ha_state="started") for v in o.vms))
    return state(*vms, rebalance=policy), replace(o, ha=HaCluster(auto_rebalance=auto))


def test_one_balancer_at_a_time() -> None:
    d, o = _crowded(HaBalance.AUTO, auto=True)
    p = plan(d, o, now=0)
    assert not _targets(p)
    assert {b.code for b in p.blocked} >= {"left_to_crs"}
    assert "left to the Proxmox CRS (ha-auto-rebalance is on)" in p.blocked[0].reason
    d, o = _crowded(HaBalance.AUTO, auto=None)
    assert "may be on" in plan(d, o, now=0).blocked[0].reason
    d, o = _crowded(HaBalance.NEVER, auto=False)
    assert not _targets(plan(d, o, now=0))
    d, o = _crowded(HaBalance.ALWAYS, auto=True)
    assert _targets(plan(d, o, now=0))
    d, o = _crowded(HaBalance.AUTO, auto=False)
    assert _targets(plan(d, o, now=0))
    d, o = _crowded(HaBalance.AUTO, auto=True, ha=False)  # not HA-managed: still balanced
    assert _targets(plan(d, o, now=0))


def test_an_ha_managed_vm_on_a_quiet_host_is_left_to_the_crs_without_a_report() -> None:
    """With the CRS balancing, an HA-managed VM is not provisiond's to move; reported only where
    its host is above the thresholds (a quiet host is nothing to report)."""
    quiet = dvm("quiet", 200, cores=1, memory_mib=1024)
    policy = RebalancePolicy(enabled=True, memory_threshold=0.5, ha_managed=HaBalance.AUTO)
    o = world(converged(quiet, on="pve2"), hosts=HOSTS[:2])
    o = replace(o, vms=tuple(replace(v, ha_state="started") for v in o.vms))
    p = plan(state(quiet, rebalance=policy), replace(o, ha=HaCluster(auto_rebalance=True)), now=0)
    assert not _targets(p)
    assert not p.blocked


def test_rebalance_keeps_rule_members_on_top_nodes_and_partners_together() -> None:
    d, o = _crowded(HaBalance.ALWAYS, auto=False)
    three = (*HOSTS[:2], HOSTS[2])
    rule = NodeAffinity("pref", frozenset({100, 101, 102, 103}), {"pve1": 1, "pve3": 1})
    o = replace(o, hosts=three, ha=HaCluster((rule,)))
    assert set(_targets(plan(d, o, now=0)).values()) <= {"pve3"}
    pair = ResourceAffinity("pair", frozenset({100, 101, 102, 103}), positive=True)
    o = replace(o, ha=HaCluster((), (pair,)))
    assert not _targets(plan(d, o, now=0))


# -- properties --------------------------------------------------------------------------------


@st.composite
def ruled_worlds(draw: st.DrawFn) -> tuple[DesiredState, ObservedState, HaCluster]:
    d, o = draw(worlds())
    names = [h.name for h in o.hosts]
    vmids = sorted(v.vmid for v in d.all_vms())
    rules = []
    for i, vmid in enumerate(vmids):
        if draw(st.integers(0, 2)):
            continue
        nodes = draw(st.lists(st.sampled_from(names), min_size=1, unique=True))
        rules.append(
            NodeAffinity(f"r{i}", frozenset({vmid}), dict.fromkeys(nodes, 0), draw(st.booleans()))
        )
    auto = draw(st.sampled_from((True, False, None)))
    rebalance = RebalancePolicy(enabled=draw(st.booleans()), memory_threshold=0.6)
    fleets = tuple(replace(f, policy=replace(f.policy, rebalance=rebalance)) for f in d.fleets)
    ha = HaCluster(tuple(rules), auto_rebalance=auto)
    return DesiredState(fleets), _ha(o, ha), ha


PROPS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPS
@given(ruled_worlds())
def test_no_placement_or_move_breaks_a_strict_rule(
    w: tuple[DesiredState, ObservedState, HaCluster],
) -> None:
    d, o, ha = w
    p = plan(d, o, now=0)
    conflicted = {c.vmid for c in p.conflicts}
    for vmid, target in _targets(p).items():
        rule = ha.node_rule(vmid)
        assert vmid not in conflicted, "a conflict is never an action"
        if rule is not None and rule.strict:
            assert target in rule.nodes, (vmid, target, rule)


@PROPS
@given(ruled_worlds())
def test_a_contradicting_spec_is_a_conflict(
    w: tuple[DesiredState, ObservedState, HaCluster],
) -> None:
    d, o, ha = w
    p = plan(d, o, now=0)
    for v in d.all_vms():
        rule = ha.node_rule(v.vmid)
        if rule is None or not rule.strict or v.host is None or v.host in rule.nodes:
            continue
        observed = next((x for x in o.vms if x.vmid == v.vmid), None)
        if observed is not None and observed.status is VMStatus.UNKNOWN:
            continue  # left alone before any placement question
        assert v.vmid in {c.vmid for c in p.conflicts}, (v, rule)
