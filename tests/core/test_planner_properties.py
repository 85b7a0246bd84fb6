"""Planner properties over generated fleets and clusters (hypothesis)."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from plan_world import apply, converged, dvm, host, mapping, state, template

from provisiond.core.actions import Migrate
from provisiond.core.desired import DesiredState, DesiredVM, GpuRequest, PowerState, Spread
from provisiond.core.observed import ObservedState, ObservedVM, VMStatus
from provisiond.core.ownership import owner
from provisiond.core.plan import Plan
from provisiond.core.planner import plan

HOSTS = ("pve1", "pve2", "pve3", "pve4")
POLICY = {"max_disruptions": 100, "max_disruptions_per_pool": 100, "adopt": True}


@st.composite
def worlds(draw: st.DrawFn, *, refusals: bool = False) -> tuple[DesiredState, ObservedState]:
    """A fleet and a cluster. ``refusals``: also the paths where a guard refuses a shutdown or
    a move — the daemon runs in one of the VMs, and disruption budgets are tight."""
    n_hosts = draw(st.integers(2 if refusals else 1, 4))
    hosts = tuple(
        host(HOSTS[i], draw(st.integers(2, 16)), draw(st.integers(8, 64))) for i in range(n_hosts)
    )
    gpus = {h.name: draw(st.integers(1 if refusals else 0, 4)) for h in hosts}
    live = draw(st.booleans())
    # with refusals, any host may be in maintenance and VMs are stopped by the spec more often
    maybe = hosts if refusals else hosts[1:]
    maintenance = tuple(h.name for h in maybe if draw(st.integers(0, 3)) == 0)
    stop_odds = 1 if refusals else 4
    vms: list[DesiredVM] = [
        dvm(
            f"vm{i}",
            100 + i,
            fleet=draw(st.sampled_from(("f", "g"))),
            pool=draw(st.sampled_from(("p", "q", "r"))),
            cores=draw(st.integers(1, 8)),
            memory_mib=1024 * draw(st.integers(1, 16)),
            gpus=GpuRequest("m", draw(st.integers(1, 2))) if draw(st.booleans()) else None,
            spread=Spread.STRICT if draw(st.integers(0, 3)) == 0 else Spread.PREFERRED,
            power=PowerState.STOPPED
            if draw(st.integers(0, stop_odds)) == 0
            else PowerState.RUNNING,
            host=draw(st.sampled_from(HOSTS[:n_hosts])) if draw(st.integers(0, 6)) == 0 else None,
        )
        for i in range(draw(st.integers(1, 10)))
    ]
    # strict pools of one fleet must agree on their spread (validation guarantees it)
    strict = {(v.fleet, v.pool) for v in vms if v.spread is Spread.STRICT}
    vms = [
        replace(v, spread=Spread.STRICT if (v.fleet, v.pool) in strict else v.spread) for v in vms
    ]

    observed: list[ObservedVM] = []
    claims: Counter[str] = Counter()
    cpu: Counter[str] = Counter()
    mem: Counter[str] = Counter()
    groups: set[tuple[str, str, str]] = set()
    by_name = {h.name: h for h in hosts}
    for v in vms:
        what = draw(
            st.sampled_from(
                ("missing", "converged", "drifted", "running", "foreign", "unknown")
                + (("running",) * 4 if refusals else ())
            )
        )
        if what == "missing":
            continue
        on = draw(st.sampled_from(HOSTS[:n_hosts]))
        h = by_name[on]
        held = v.gpus.count if v.gpus else 0
        if (
            claims[on] + held > gpus[on]
            or cpu[on] + v.cores > h.cpus * 4
            or mem[on] + v.memory_mib > h.memory_mib
            or (v.spread is Spread.STRICT and (v.fleet, v.pool, on) in groups)
        ):
            continue
        claims[on] += held
        cpu[on] += v.cores
        mem[on] += v.memory_mib
        groups.add((v.fleet, v.pool, on))
        vm = converged(v, on=on)
        if what == "drifted":
            vm = replace(vm, status=VMStatus.STOPPED)
            assert vm.config is not None
            vm = replace(
                vm, config=replace(vm.config, cores=max(1, v.cores - 1)), cores=max(1, v.cores - 1)
            )
        elif what == "running":
            vm = replace(vm, status=VMStatus.RUNNING)
        elif what == "foreign":
            assert vm.config is not None
            vm = replace(vm, tags=(), config=replace(vm.config, tags=(), description=""))
            vm = replace(vm, name=vm.name + "-x")
        elif what == "unknown":
            vm = replace(vm, status=VMStatus.UNKNOWN)
        observed.append(vm)
    policy = dict(POLICY)
    self_vmid = None
    if refusals:
        # the daemon most often in a running VM: the shutdown a move may need is refused
        running = [v.vmid for v in observed if v.status is VMStatus.RUNNING]
        self_vmid = draw(st.sampled_from([None, *(running or [v.vmid for v in observed])]))
        limit = draw(st.sampled_from((1, 2, 100)))
        policy |= {"max_disruptions": limit, "max_disruptions_per_pool": limit}
    o = ObservedState(
        hosts=hosts,
        mappings=(mapping("m", gpus, live=live),),
        vms=(template(on=hosts[0].name), *observed),
        self_vmid=self_vmid,
    )
    return state(*vms, maintenance=maintenance, **policy), o


def _loads(o: ObservedState) -> tuple[Counter[tuple[str, str]], Counter[str], Counter[str]]:
    gpu: Counter[tuple[str, str]] = Counter()
    cpu: Counter[str] = Counter()
    mem: Counter[str] = Counter()
    for vm in o.vms:
        if vm.template:
            continue
        for m, n in vm.gpu_claims().items():
            gpu[(vm.host, m)] += n
        cpu[vm.host] += vm.cores
        mem[vm.host] += vm.memory_mib
    return gpu, cpu, mem


PROPS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPS
@given(worlds())
def test_never_over_assigns_gpus_or_capacity_and_keeps_strict_spread(
    w: tuple[DesiredState, ObservedState],
) -> None:
    d, o = w
    after = apply(o, plan(d, o, now=0))
    gpu, cpu, mem = _loads(after)
    _, cpu0, mem0 = _loads(o)
    devices = {h.name: o.mappings[0].devices_on(h.name) for h in o.hosts}
    for (h, _m), n in gpu.items():
        assert n <= devices[h]
    for h in o.hosts:
        assert cpu[h.name] <= max(h.cpus * 4, cpu0[h.name])
        assert mem[h.name] <= max(h.memory_mib, mem0[h.name])
    wanted = {v.vmid: v for v in d.all_vms()}
    strict = Counter(
        (wanted[v.vmid].fleet, wanted[v.vmid].pool, v.host)
        for v in after.vms
        if v.vmid in wanted and wanted[v.vmid].spread is Spread.STRICT and owner(v) is not None
    )
    assert all(n == 1 for n in strict.values())


@PROPS
@given(worlds())
def test_plan_is_deterministic_and_ordered(w: tuple[DesiredState, ObservedState]) -> None:
    d, o = w
    p = plan(d, o, now=0)
    assert p == plan(d, o, now=0)
    seen: set[str] = set()
    for a in p.actions:
        assert a.id not in seen
        assert set(a.after) <= seen
        seen.add(a.id)


def _untouchable(d: DesiredState, o: ObservedState) -> set[int]:
    wanted = {v.vmid: v for v in d.all_vms()}
    out = set()
    for vm in o.vms:
        if (
            vm.template
            or vm.status is VMStatus.UNKNOWN
            or (owner(vm) is None and (vm.vmid not in wanted or wanted[vm.vmid].name != vm.name))
        ):
            out.add(vm.vmid)
    return out


@PROPS
@given(worlds())
def test_never_touches_unowned_or_unobserved_vms(w: tuple[DesiredState, ObservedState]) -> None:
    d, o = w
    p = plan(d, o, now=0)
    assert not {a.vmid for a in p.actions} & _untouchable(d, o)


@PROPS
@given(worlds())
def test_replanning_after_the_effects_is_empty(w: tuple[DesiredState, ObservedState]) -> None:
    d, o = w
    p = plan(d, o, now=0)
    again = plan(d, apply(o, p), now=0)
    assert again.empty, (p.actions, again.actions)


def _converges(d: DesiredState, o: ObservedState) -> Plan:
    p = plan(d, o, now=0)
    for _ in range(10):
        if p.empty:
            break
        o = apply(o, p)
        p = plan(d, o, now=0)
    return p


@settings(max_examples=60, deadline=None)
@given(worlds(), st.integers(0, 2))
def test_tight_disruption_limits_still_converge(
    w: tuple[DesiredState, ObservedState], limit: int
) -> None:
    d, o = w
    tight = DesiredState(
        tuple(
            replace(
                f, policy=replace(f.policy, max_disruptions=limit + 1, max_disruptions_per_pool=1)
            )
            for f in d.fleets
        )
    )
    assert _converges(tight, o).empty


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(worlds(refusals=True))
def test_a_gpu_vm_is_never_migrated_online_unless_its_mappings_are_live(
    w: tuple[DesiredState, ObservedState],
) -> None:
    """PCI passthrough does not live-migrate unless the mapping says so (SEMANTICS §6): every
    live ``Migrate`` in a plan is of a VM none of whose mappings — claimed now or by its spec —
    is missing or not live-migration capable, whatever guards refused on the way (a shutdown
    of the daemon's own VM, a spent disruption budget)."""
    d, o = w
    live = {m.id for m in o.mappings if m.live_migration}
    wanted = {v.vmid: v for v in d.all_vms()}
    vms = {v.vmid: v for v in o.vms}
    for a in plan(d, o, now=0).actions:
        if isinstance(a, Migrate) and a.online:
            claims = set(vms[a.vmid].gpu_claims()) if a.vmid in vms else set()
            spec = wanted.get(a.vmid)
            if spec is not None and spec.gpus is not None:
                claims.add(spec.gpus.mapping)
            assert claims <= live, a
