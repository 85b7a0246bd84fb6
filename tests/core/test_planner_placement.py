"""The most constrained VMs are placed first, and a placement is found when one exists
(issue 13, point 4).

The generator builds the answer first: every VM is given a host and sized to fit what that host
has left (CPU, memory, devices of the mapping, one member per host for a strict pool), then some
are pinned to it or limited to a set of hosts containing it. So a valid placement exists by
construction; the planner must find one (no VM blocked for want of a host).
"""

from __future__ import annotations

from collections import Counter

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from plan_world import apply, dvm, host, kinds, mapping, state, template

from provisiond.core.actions import Clone
from provisiond.core.desired import DesiredState, DesiredVM, GpuRequest, Overcommit, Spread
from provisiond.core.observed import Host, ObservedState
from provisiond.core.planner import plan
from provisiond.core.scheduler import Constraints, Demand, Request, Scheduler

HOSTS = ("pve1", "pve2", "pve3", "pve4")


@st.composite
def solvable(draw: st.DrawFn) -> tuple[DesiredState, ObservedState]:
    n = draw(st.integers(2, 4))
    names = HOSTS[:n]
    cpus = {h: draw(st.integers(1, 4)) for h in names}  # x4 overcommit: 4..16 vCPUs
    mem = {h: draw(st.integers(2, 8)) for h in names}  # GiB
    devices = {h: draw(st.integers(0, 2)) for h in names}
    left_cpu = {h: cpus[h] * 4 for h in names}
    left_mem = {h: mem[h] * 1024 for h in names}
    left_gpu = dict(devices)
    strict_used: set[str] = set()
    vms: list[DesiredVM] = []
    for i in range(draw(st.integers(1, 8))):
        on = draw(st.sampled_from(names))
        if left_cpu[on] < 1 or left_mem[on] < 512:
            continue
        strict = draw(st.integers(0, 4)) == 0 and on not in strict_used
        gpu = left_gpu[on] > 0 and draw(st.booleans())
        cores = draw(st.integers(1, left_cpu[on]))
        memory = 512 * draw(st.integers(1, left_mem[on] // 512))
        left_cpu[on] -= cores
        left_mem[on] -= memory
        if gpu:
            left_gpu[on] -= 1
        if strict:
            strict_used.add(on)
        how = draw(st.sampled_from(("free", "pinned", "allowed")))
        others = draw(st.lists(st.sampled_from(names), max_size=2))
        vms.append(
            dvm(
                f"vm{i}",
                100 + i,
                cores=cores,
                memory_mib=memory,
                disks=(),
                gpus=GpuRequest("m", 1) if gpu else None,
                pool="strict" if strict else f"p{i}",
                spread=Spread.STRICT if strict else Spread.PREFERRED,
                host=on if how == "pinned" else None,
                allowed_hosts=tuple(sorted({on, *others})) if how == "allowed" else None,
            )
        )
    hosts = tuple(host(h, cpus[h], mem[h]) for h in names)
    o = ObservedState(
        hosts=hosts,
        mappings=(mapping("m", devices),),
        vms=(template(on="pve1", storage="nfs"),),
    )
    return state(*vms, max_disruptions=100, max_disruptions_per_pool=100), o


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(solvable())
def test_a_placement_is_found_whenever_one_exists(w: tuple[DesiredState, ObservedState]) -> None:
    d, o = w
    p = plan(d, o, now=0)
    assert not p.blocked, p.blocked
    cloned = {a.vmid for a in p.actions if isinstance(a, Clone)}
    assert cloned == {v.vmid for v in d.all_vms()}
    after = apply(o, p)
    gpus: Counter[str] = Counter()
    for vm in after.vms:
        gpus[vm.host] += sum(vm.gpu_claims().values())
    assert all(gpus[h.name] <= o.mappings[0].devices_on(h.name) for h in o.hosts)


def test_an_unpinned_vm_leaves_the_only_slot_to_the_pinned_one() -> None:
    """The bug: ``free`` (lower VMID) took pve1, the only host of pinned ``fixed``, which was
    then blocked forever although ``free`` fits on pve2."""
    free = dvm("free", 101, cores=4, disks=())
    fixed = dvm("fixed", 102, cores=8, disks=(), host="pve1")
    o = ObservedState(
        hosts=(host("pve1", cpus=2), host("pve2", cpus=1)),  # 8 and 4 vCPUs
        vms=(template(on="pve1"),),
    )
    p = plan(state(free, fixed), o, now=0)
    assert not p.blocked, p.blocked
    assert kinds(p).count("clone") == 2


def test_the_search_finds_the_full_placement_greedy_scoring_misses() -> None:
    """Two hosts of 2 vCPUs, VMs of 1, 1 and 2 (overcommit 1). Greedy spreads the two small ones
    (each to the host with most free after it), and the 2 then fits nowhere; the search
    backtracks to both small ones on one host. (The property above reaches this path only on
    some of its random examples: this keeps the coverage gate deterministic.)"""
    oc = Overcommit(cpu=1.0, memory=1.0)
    sched = Scheduler(
        [Host("a", True, cpus=2, memory_mib=65536), Host("b", True, cpus=2, memory_mib=65536)], []
    )
    requests = [
        Request(key, Demand(cores=cores, memory_mib=1024), Constraints(overcommit=oc))
        for key, cores in ((1, 1), (2, 1), (3, 2))
    ]
    placed = sched.place_all(requests)
    assert sorted(placed) == [1, 2, 3]
    assert placed[1] == placed[2] != placed[3]
    # the loads are those of the placement returned
    assert sorted((load.cpu, load.mem) for load in sched.loads.values()) == [(2, 1024), (2, 2048)]
