"""A VM that must move but cannot is not started where it is (issue 13, point 3).

Host in maintenance, off its pin, outside its allowed hosts, its host lacking its GPU mapping:
when no move is possible now, the VM stays as it is — a stopped one stays stopped, a running one
keeps running — and is reported blocked with why.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
from plan_world import converged, dvm, host, kinds, mapping, state, world

from provisiond.core.actions import Migrate
from provisiond.core.desired import DesiredVM, GpuRequest, PowerState
from provisiond.core.observed import ObservedState, VMStatus
from provisiond.core.planner import plan

A = dvm("a", 101)
FULL = host("pve2", cpus=1, mem_gib=1)  # takes nothing


def _case(name: str) -> tuple[DesiredVM, ObservedState, dict[str, object], str]:
    if name == "maintenance":
        return (
            A,
            world(converged(A, status=VMStatus.STOPPED), hosts=(host("pve1"), FULL)),
            {"maintenance": ("pve1",)},
            "host pve1 is in maintenance",
        )
    if name == "pin":
        d = replace(A, host="pve2")
        return (
            d,
            world(converged(d, status=VMStatus.STOPPED), hosts=(host("pve1"), FULL)),
            {},
            ("pinned to pve2"),
        )
    if name == "allowed":
        d = replace(A, allowed_hosts=("pve2",))
        return (
            d,
            world(converged(d, status=VMStatus.STOPPED), hosts=(host("pve1"), FULL)),
            {},
            ("pve1 is not among its allowed hosts"),
        )
    d = replace(A, gpus=GpuRequest("m", 1))
    vm = converged(d, status=VMStatus.STOPPED)
    o = world(vm, mappings=(mapping("m", {"pve2": 1}),), hosts=(host("pve1"), FULL))
    return d, o, {}, "pve1 has no device of mapping m"


@pytest.mark.parametrize("why", ["maintenance", "pin", "allowed", "mapping"])
def test_a_stopped_vm_that_must_move_but_cannot_stays_stopped(why: str) -> None:
    d, o, policy, reason = _case(why)
    p = plan(state(d, **policy), o, now=0)
    assert "start" not in kinds(p), p.actions
    assert not p.actions
    assert [b.code for b in p.blocked] == ["no_target"]
    assert p.blocked[0].reason.startswith(reason), p.blocked[0].reason


@pytest.mark.parametrize("why", ["maintenance", "pin", "allowed", "mapping"])
def test_a_running_vm_that_must_move_but_cannot_keeps_running(why: str) -> None:
    d, o, policy, _ = _case(why)
    o = replace(
        o, vms=tuple(replace(v, status=VMStatus.RUNNING) if v.vmid == 101 else v for v in o.vms)
    )
    p = plan(state(d, **policy), o, now=0)
    assert not p.actions
    assert [b.code for b in p.blocked] == ["no_target"]


def test_once_it_can_move_it_moves_then_starts() -> None:
    d, o, policy, _ = _case("maintenance")
    o = replace(o, hosts=(host("pve1"), host("pve2")))
    assert kinds(plan(state(d, **policy), o, now=0)) == ["migrate", "start"]


def test_a_stopped_vm_that_cannot_grow_in_place_nor_move_stays_stopped() -> None:
    d = replace(A, cores=8)
    vm = converged(replace(A, cores=2), status=VMStatus.STOPPED)
    o = world(vm, hosts=(host("pve1", cpus=1), FULL))  # 4 vCPUs of room; 8 wanted
    p = plan(state(d), o, now=0)
    assert "start" not in kinds(p)
    assert [b.code for b in p.blocked] == ["no_target", "no_room"]
    assert p.blocked[0].reason.startswith("pve1 has no room for its new size (CPU)")


@pytest.mark.parametrize("refusal", ["self", "disruption_limit"])
def test_a_gpu_vm_whose_shutdown_is_refused_is_not_migrated_online(refusal: str) -> None:
    """The bug: the spec stops a running GPU VM on a host in maintenance; the shutdown is
    refused (the daemon runs in it, or the budget is spent), and the planner, having chosen the
    move for a stopped VM, migrated it live — with a mapping that cannot live-migrate."""
    g = replace(A, gpus=GpuRequest("m", 1), power=PowerState.STOPPED)
    other = dvm("b", 102)
    vms = [converged(g, status=VMStatus.RUNNING), converged(other, lock="migrate")]
    o = world(*vms, mappings=(mapping("m", {"pve1": 1, "pve2": 1}),))
    if refusal == "self":
        o = replace(o, self_vmid=101)
    p = plan(state(g, other, maintenance=("pve1",), max_disruptions=1), o, now=0)
    assert not [a for a in p.actions if isinstance(a, Migrate) and a.online], p.actions
    assert not p.actions
    assert refusal in [b.code for b in p.blocked]
