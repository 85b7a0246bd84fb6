"""Publishing the spec's placement as PVE 9.x HA rules provisiond owns (``publishHaRules``):
tables over the planner, and a property — applying a publishing plan and replanning gives no
rule action, and a rule provisiond does not own is never in an action."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from plan_world import converged, dvm, host, state, world

from provisiond.core.actions import (
    HA_RULES_VMID,
    HaRuleAction,
    HaRuleCreate,
    HaRuleDelete,
    HaRuleUpdate,
    Migrate,
)
from provisiond.core.desired import DesiredState, DesiredVM, Spread
from provisiond.core.hacluster import NODE_AFFINITY, RESOURCE_AFFINITY, HaCluster, HaRule
from provisiond.core.observed import ObservedState, Unobserved
from provisiond.core.plan import Plan
from provisiond.core.planner import plan
from provisiond.core.planning.harules_publish import marker, owned, prefix
from provisiond.core.privileges import needed
from provisiond.core.resolve import resolve_fleet
from provisiond.core.spec import Fleet, SourcedFleet

HOSTS = tuple(host(f"pve{i}") for i in range(1, 5))
COMMENT = "provisiond:f published from the fleet spec; edits are overwritten"


def _publishing(*vms: DesiredVM, publish: bool = True, **policy: object) -> DesiredState:
    d = state(*vms, **policy)
    return replace(d, fleets=tuple(replace(f, publish_ha_rules=publish) for f in d.fleets))


def _world(
    placed: dict[DesiredVM, str], *rules: HaRule, managed: bool = True, **ha: object
) -> ObservedState:
    vms = [converged(d, on=h, ha_state="started" if managed else None) for d, h in placed.items()]
    cluster = HaCluster(rules_api=True, rules=rules, **ha)  # type: ignore[arg-type]
    return world(*vms, hosts=HOSTS, ha=cluster)


def _rules(p: Plan) -> list[HaRuleAction]:
    return [a for a in p.actions if isinstance(a, HaRuleCreate | HaRuleUpdate | HaRuleDelete)]


def _applied(o: ObservedState, p: Plan) -> ObservedState:
    """The rules as the plan's rule actions leave them (what PVE would list)."""
    rules = {r.rule: r for r in o.ha.rules}
    for a in _rules(p):
        if isinstance(a, HaRuleDelete):
            del rules[a.rule.rule]
        else:
            rules[a.rule.rule] = a.rule
    return replace(o, ha=replace(o.ha, rules=tuple(rules.values())))


SPREAD = [dvm(f"db{i}", 100 + i, pool="db", spread=Spread.STRICT) for i in (1, 2, 3)]
PINNED = dvm("dc01", 110, pool="dc", host="pve4")


def _spread_world(*rules: HaRule) -> ObservedState:
    placed = {SPREAD[0]: "pve1", SPREAD[1]: "pve2", SPREAD[2]: "pve3", PINNED: "pve4"}
    return _world(placed, *rules)


def test_publishing_creates_the_rules_once_and_then_nothing() -> None:
    d = _publishing(*SPREAD, PINNED)
    o = _spread_world()
    p = plan(d, o, now=0)
    created = {a.rule.rule: a.rule for a in _rules(p)}
    assert all(isinstance(a, HaRuleCreate) for a in _rules(p))
    assert created == {
        "pd-f-pin-110": HaRule(
            "pd-f-pin-110", NODE_AFFINITY, frozenset({110}), (("pve4", 0),), True, None, COMMENT
        ),
        "pd-f-spread-db": HaRule(
            "pd-f-spread-db", RESOURCE_AFFINITY, frozenset({101, 102, 103}), (), False,
            "negative", COMMENT,
        ),
    }  # fmt: skip
    assert all(a.vmid == HA_RULES_VMID and a.after == () for a in _rules(p))
    assert {a.name for a in _rules(p)} == set(created)
    assert "publish anti-affinity of db1, db2, db3" in {a.reason for a in _rules(p)}
    again = plan(d, _applied(o, p), now=0)
    assert not again.actions
    assert not again.blocked
    assert not again.conflicts


def test_only_ha_managed_vms_of_ours_and_pools_of_two() -> None:
    placed = {SPREAD[0]: "pve1", PINNED: "pve4"}
    assert not plan(_publishing(SPREAD[0], PINNED), _world(placed, managed=False), now=0).actions
    p = plan(_publishing(SPREAD[0], PINNED), _world(placed), now=0)
    assert [a.rule.rule for a in _rules(p)] == ["pd-f-pin-110"]  # one db member: no spread rule
    limited = dvm("web", 120, allowed_hosts=("pve2", "pve3"))
    p = plan(_publishing(limited), _world({limited: "pve2"}), now=0)
    assert [a.rule.nodes for a in _rules(p)] == [(("pve2", 0), ("pve3", 0))]


def test_a_rule_with_our_id_but_not_our_marker_is_a_conflict_and_left_alone() -> None:
    theirs = HaRule("pd-f-spread-db", RESOURCE_AFFINITY, frozenset({101, 102}), affinity="negative")
    other = HaRule("pd-f-pin-999", NODE_AFFINITY, frozenset({999}), (("pve1", 0),), True)
    p = plan(_publishing(*SPREAD, PINNED), _spread_world(theirs, other), now=0)
    assert [a.rule.rule for a in _rules(p)] == ["pd-f-pin-110"]  # neither theirs touched
    [c] = p.conflicts
    assert c.name == "db1"
    assert "'pd-f-spread-db' exists but is not provisiond's" in c.reason
    assert not owned(other, "f")
    assert not owned(replace(other, comment="provisiond:g x"), "f")


def test_a_spec_change_updates_ours_and_a_removed_pin_deletes_it() -> None:
    d = _publishing(*SPREAD, PINNED)
    o = _spread_world()
    o = _applied(o, plan(d, o, now=0))
    db4 = dvm("db4", 104, pool="db", spread=Spread.STRICT)
    o4 = replace(o, vms=(*o.vms, converged(db4, on="pve4", ha_state="started")))
    unpinned = replace(PINNED, host=None)
    p = plan(_publishing(*SPREAD, db4, unpinned), o4, now=0)
    [upd, gone] = _rules(p)
    assert isinstance(upd, HaRuleUpdate)
    assert upd.rule.vmids == {101, 102, 103, 104}
    assert upd.reason == "anti-affinity of db1, db2, db3, db4 changed"
    assert isinstance(gone, HaRuleDelete)
    assert gone.rule.rule == "pd-f-pin-110"
    assert gone.reason == "not asked for by the spec any more"


def test_a_changed_pin_rewrites_our_rule_before_the_move_and_is_no_conflict() -> None:
    d = _publishing(*SPREAD, PINNED)
    o = _spread_world()
    o = _applied(o, plan(d, o, now=0))
    o = replace(o, ha=replace(o.ha, node_affinity=(_node_affinity(o, "pd-f-pin-110"),)))
    moved = replace(PINNED, host="pve1")
    p = plan(_publishing(*SPREAD, moved, max_disruptions_per_pool=1), o, now=0)
    assert not p.conflicts  # our own rule follows the spec
    upd = next(a for a in _rules(p) if isinstance(a, HaRuleUpdate))
    mig = next(a for a in p.actions if isinstance(a, Migrate))
    assert upd.rule.nodes == (("pve1", 0),)
    assert upd.id in mig.after
    assert [a.id for a in p.actions].index(upd.id) < [a.id for a in p.actions].index(mig.id)


def _node_affinity(o: ObservedState, rule_id: str) -> object:
    from provisiond.core.hacluster import NodeAffinity

    r = next(r for r in o.ha.rules if r.rule == rule_id)
    return NodeAffinity(r.rule, r.vmids, dict(r.nodes), r.strict)


def test_no_move_allowed_now_means_the_pin_rule_waits() -> None:
    p = plan(
        _publishing(PINNED, max_disruptions=0), _world({PINNED: "pve1"}), now=0
    )  # the pin asks for a move the budget refuses
    assert not _rules(p)
    assert any(b.code == "ha_rule_waiting" for b in p.blocked)


def test_removing_the_flag_deletes_ours_only_one_per_cycle() -> None:
    d = _publishing(*SPREAD, PINNED)
    o = _spread_world(HaRule("keep-dc", NODE_AFFINITY, frozenset({110}), (("pve4", 0),), True))
    o = replace(
        o, ha=replace(o.ha, rules=(*o.ha.rules, *(a.rule for a in _rules(plan(d, o, now=0)))))
    )
    off = _publishing(*SPREAD, PINNED, publish=False)
    p = plan(off, o, now=0)
    [first] = _rules(p)
    assert isinstance(first, HaRuleDelete)
    assert first.reason == "placement.publishHaRules is off"
    assert first.phase == 9
    assert [b.code for b in p.blocked] == ["ha_rule_deferred"]
    o = _applied(o, p)
    [second] = _rules(plan(off, o, now=0))
    o = _applied(o, plan(off, o, now=0))
    assert second.rule.rule != first.rule.rule
    assert [r.rule for r in o.ha.rules] == ["keep-dc"]
    assert plan(off, o, now=0).empty


def test_guards_unsupported_unread_and_incomplete() -> None:
    d = _publishing(*SPREAD, PINNED)
    o = _spread_world()
    for ha, code in (
        (HaCluster(), "ha_rules_unsupported"),  # PVE 8.x: no rules endpoint
        (HaCluster(auto_rebalance=None, rules_unread=True), "ha_rules_unread"),
    ):
        p = plan(d, replace(o, ha=ha), now=0)
        assert not p.actions
        assert [b.code for b in p.blocked] == [code]
    p = plan(d, replace(o, unobserved=Unobserved(lists=("cluster/resources",))), now=0)
    assert not _rules(p)
    assert "observation_incomplete" in {b.code for b in p.blocked}
    assert plan(_publishing(*SPREAD, PINNED, publish=False), o, now=0).empty  # nothing of ours


def test_a_vm_in_someone_elses_node_rule_and_odd_cases_are_blocked() -> None:
    from provisiond.core.hacluster import NodeAffinity

    foreign = NodeAffinity("site-rule", frozenset({110}), {"pve4": 0}, strict=True)
    o = _spread_world()
    o = replace(o, ha=replace(o.ha, node_affinity=(foreign,)))
    p = plan(_publishing(PINNED), o, now=0)
    assert not _rules(p)
    assert [b.code for b in p.blocked] == ["ha_rule_taken"]
    typed = HaRule("pd-f-pin-110", RESOURCE_AFFINITY, frozenset({110}), comment=COMMENT)
    p = plan(_publishing(PINNED), _spread_world(typed), now=0)
    assert not _rules(p)
    assert [b.code for b in p.blocked] == ["ha_rule_conflict"]
    five = [dvm(f"n{i}", 200 + i, pool="n", spread=Spread.STRICT) for i in range(5)]
    crowded = _world({v: f"pve{i % 4 + 1}" for i, v in enumerate(five)})
    p = plan(_publishing(*five), crowded, now=0)
    assert not _rules(p)
    assert "ha_rule_infeasible" in {b.code for b in p.blocked}


def test_ids_fit_pve_and_the_marker_is_the_first_word() -> None:
    assert prefix("lab.x+1") == "pd-lab_x_1-"
    assert marker("f") == "provisiond:f"
    rule = HaRule("pd-f-pin-1", NODE_AFFINITY, frozenset({1}))
    assert not owned(rule, "f")  # no comment
    assert owned(replace(rule, comment="provisiond:f"), "f")
    assert not owned(replace(rule, rule="other", comment="provisiond:f"), "f")


def test_privileges_to_publish_on_a_9x_cluster() -> None:
    d = _publishing(PINNED)
    pairs = {(n.path, n.privilege) for n in needed(d, _world({PINNED: "pve4"}))}
    assert {("/", "Sys.Audit"), ("/", "Sys.Console")} <= pairs
    on_84 = replace(_world({PINNED: "pve4"}), ha=HaCluster())
    assert ("/", "Sys.Console") not in {(n.path, n.privilege) for n in needed(d, on_84)}


def test_spec_field_is_fleet_level_and_resolved() -> None:
    doc = {
        "apiVersion": "provisiond.dev/v1alpha1",
        "kind": "Fleet",
        "metadata": {"name": "f"},
        "spec": {
            "placement": {"publishHaRules": True},
            "defaults": {"template": "t", "cores": 1, "memory": "1GiB"},
            "pools": [{"name": "p", "vms": [{"name": "a", "vmid": 100}]}],
        },
    }
    assert resolve_fleet(SourcedFleet(Fleet.model_validate(doc))).publish_ha_rules
    assert not resolve_fleet(
        SourcedFleet(Fleet.model_validate({**doc, "spec": {}}))
    ).publish_ha_rules
    bad = {**doc, "spec": {"pools": [{"name": "p", "placement": {"publishHaRules": True}}]}}
    with pytest.raises(ValueError, match="publishHaRules"):
        Fleet.model_validate(bad)


@settings(max_examples=60, deadline=None)
@given(
    hosts_of=st.lists(st.sampled_from(["pve1", "pve2", "pve3", "pve4"]), min_size=1, max_size=6),
    pins=st.lists(st.sampled_from([None, "pve1", "pve3"]), min_size=6, max_size=6),
    managed=st.lists(st.booleans(), min_size=6, max_size=6),
    foreign=st.booleans(),
)
def test_property_publishing_converges_and_never_touches_foreign_rules(
    hosts_of: list[str], pins: list[str | None], managed: list[bool], foreign: bool
) -> None:
    vms = [
        dvm(f"v{i}", 100 + i, pool="s", spread=Spread.STRICT, host=pins[i])
        for i in range(len(hosts_of))
    ]
    observed = [
        converged(v, on=h, ha_state="started" if managed[i] else None)
        for i, (v, h) in enumerate(zip(vms, hosts_of, strict=True))
    ]
    theirs = HaRule("pd-f-spread-s", RESOURCE_AFFINITY, frozenset({100, 101}), affinity="negative")
    o = world(
        *observed, hosts=HOSTS, ha=HaCluster(rules_api=True, rules=(theirs,) if foreign else ())
    )
    d = _publishing(*vms)
    for _ in range(3):
        p = plan(d, o, now=0)
        for a in _rules(p):
            assert owned(a.rule, "f")
            assert not (foreign and a.rule.rule == theirs.rule)
            assert isinstance(a, HaRuleCreate) or owned(
                next(r for r in o.ha.rules if r.rule == a.rule.rule), "f"
            )
        o = _applied(o, p)
    assert not _rules(plan(d, o, now=0))
