"""What is in flight is reserved (issue 13, point 2).

A running migration (a ``qmigrate``/``hamigrate`` task, ``lock: migrate``, HA state ``migrate``)
keeps its source's claim and holds one on every host it may be moving to — its target is not
observable — until the task ends; a running clone holds its VM's claim on every host it may land
on. An over-assignment that exists anyway is repaired by moving the VM the plan owns, never by
starting a second claimant.
"""

from __future__ import annotations

from dataclasses import replace

from plan_world import converged, dvm, host, kinds, mapping, state, template, world

from provisiond.core.actions import Clone, GpuMove, Migrate, Start
from provisiond.core.desired import GpuRequest
from provisiond.core.observed import ObservedState, Task, VMStatus
from provisiond.core.planner import plan

G1 = dvm("g1", 101, gpus=GpuRequest("m", 1))
G2 = dvm("g2", 102, gpus=GpuRequest("m", 1))
ONE_EACH = (mapping("m", {"pve1": 1, "pve2": 1}),)


def migrating(vm_on: str = "pve1", **kw: object) -> ObservedState:
    """G1 running on ``vm_on``, being migrated (by hand, HA, or a run that timed out)."""
    vm = converged(G1, on=vm_on, lock="migrate")
    task = Task("UPID:pve1:1:1:1:qmigrate:101:root@pam:", "qmigrate", "101", vm_on)
    return world(vm, mappings=ONE_EACH, tasks=(task,), **kw)  # type: ignore[arg-type]


def test_a_running_migration_reserves_the_gpus_where_it_may_land() -> None:
    """The bug: G1's migration to pve2 ran; pve2's only device looked free; G2 was cloned onto
    pve2 with the same mapping, and whichever started second could never start."""
    p = plan(state(G1, G2), migrating(), now=0)
    assert not [a for a in p.actions if isinstance(a, Clone)], p.actions
    assert {w.vmid for w in p.waiting} >= {101}


def test_a_migration_known_only_by_its_lock_or_ha_state_reserves_too() -> None:
    for vm in (
        converged(G1, lock="migrate"),
        converged(G1, ha_state="migrate"),
    ):
        o = world(vm, mappings=ONE_EACH)
        assert "clone" not in kinds(plan(state(G1, G2), o, now=0))


def test_the_source_keeps_its_claim_while_the_migration_runs() -> None:
    two = (mapping("m", {"pve1": 1, "pve2": 2}),)
    vm = converged(G1, lock="migrate")
    p = plan(state(G1, G2), world(vm, mappings=two), now=0)
    clones = [a for a in p.actions if isinstance(a, Clone)]
    assert [(c.vmid, c.target or c.template_host) for c in clones] == [(102, "pve2")]


def test_a_running_clone_reserves_the_gpus_where_it_may_land() -> None:
    """G1's clone runs (its placeholder not there yet): G2 may not take the device G1 lands on."""
    task = Task("UPID:pve1:1:1:1:qmclone:9000:root@pam:", "qmclone", "9000", "pve1")
    o = world(mappings=(mapping("m", {"pve2": 1}),), tasks=(task,))
    g2 = replace(G2, template=replace(G2.template, name="other"))
    other = replace(template(9001, "other"), host="pve1")
    o = replace(o, vms=(*o.vms, other))
    p = plan(state(G1, g2), o, now=0)
    assert "clone" not in kinds(p)
    # the same with the placeholder already there (lock: clone)
    placeholder = replace(converged(G1, on="pve1"), lock="clone", config=None)
    o = world(placeholder, other, mappings=(mapping("m", {"pve2": 1}),), tasks=(task,))
    assert "clone" not in kinds(plan(state(G1, g2), o, now=0))


def test_an_over_assignment_is_repaired_by_moving_not_by_starting_a_second_claimant() -> None:
    """By hand, G1 (running) and G2 (stopped) both reference pve1's only device."""
    g1 = converged(G1, on="pve1")
    g2 = converged(G2, on="pve1", status=VMStatus.STOPPED)
    p = plan(state(G1, G2), world(g1, g2, mappings=ONE_EACH), now=0)
    starts = [a for a in p.actions if isinstance(a, Start)]
    moves = [a for a in p.actions if isinstance(a, Migrate | GpuMove)]
    assert [(m.vmid, m.target) for m in moves] == [(102, "pve2")]
    assert [(s.vmid, s.host) for s in starts] == [(102, "pve2")]
    # with nowhere to go, it stays stopped
    only = (mapping("m", {"pve1": 1}),)
    p = plan(state(G1, G2), world(g1, g2, mappings=only), now=0)
    assert "start" not in kinds(p)
    assert [b.vmid for b in p.blocked] == [102]


def test_a_stopped_vm_is_not_started_onto_devices_a_migration_may_take() -> None:
    g2 = converged(G2, on="pve2", status=VMStatus.STOPPED)
    o = migrating()
    o = replace(o, vms=(*o.vms, g2))
    p = plan(state(G1, G2), o, now=0)
    assert "start" not in kinds(p)
    assert any(w.vmid == 102 for w in p.waiting)


def test_pinned_hosts_are_unaffected_by_a_migration_that_cannot_land_there() -> None:
    maps = (mapping("m", {"pve1": 1, "pve2": 1}),)
    o = world(
        converged(G1, lock="migrate"),
        mappings=maps,
        hosts=(host("pve1"), host("pve2"), host("pve3")),
    )
    d = dvm("plain", 103, host="pve3")
    assert kinds(plan(state(G1, d), o, now=0))[0] == "clone"
