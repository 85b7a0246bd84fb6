"""The three example clusters planned from their own fleet.yaml and topology.yaml."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

from plan_world import apply, load_fleet, load_topology, observed_from_topology

from provisiond.core.actions import Migrate
from provisiond.core.desired import DesiredState, Spread
from provisiond.core.observed import KubeNode, ObservedState
from provisiond.core.plan import Plan
from provisiond.core.planner import plan
from provisiond.core.rebalance import over
from provisiond.core.scheduler import Constraints, Demand, Scheduler


def cycles(d: DesiredState, o: ObservedState, limit: int = 10) -> tuple[list[Plan], ObservedState]:
    plans = []
    for _ in range(limit):
        p = plan(d, o, now=0)
        plans.append(p)
        if p.empty:
            return plans, o
        o = apply(o, p)
    raise AssertionError(f"no convergence in {limit} cycles: {plans[-1].actions}")


def test_cps_gpu_from_nothing_claims_all_eight_gpus() -> None:
    d = load_fleet("cps-gpu")
    o = observed_from_topology(load_topology("cps-gpu"), self_vmid=1042)
    first = plan(d, o, now=0)
    assert Counter(a.kind for a in first.actions) == {
        "clone": 8,
        "configure": 8,
        "grow_disk": 8,
        "start": 8,
    }
    plans, done = cycles(d, o)
    assert len(plans) == 2
    claims = Counter()
    for vm in done.vms:
        for m, n in vm.gpu_claims().items():
            claims[(vm.host, m)] += n
    assert claims == {("cit-gpu-01", "a100-40g"): 8}
    assert done.mappings[0].devices_on("cit-gpu-01") == 8
    # 208 vCPUs on 128 logical CPUs fits under the default overcommit
    assert sum(vm.cores for vm in done.vms if not vm.template) == 208


def test_cps_gpu_nodes_get_their_labels_and_taints_once() -> None:
    d = load_fleet("cps-gpu")
    o = observed_from_topology(load_topology("cps-gpu"))
    _, done = cycles(d, o)
    names = [vm.kubernetes.node_name for vm in d.all_vms() if vm.kubernetes is not None]
    joined = replace(
        done, kube=tuple(KubeNode(n, labels={"kubernetes.io/hostname": n}) for n in names)
    )
    p = plan(d, joined, now=0)
    assert Counter(a.kind for a in p.actions) == {"label": 4, "taint": 3}
    assert plan(d, apply(joined, p), now=0).empty


def test_inferno_converges_with_gpus_on_their_hosts() -> None:
    d = load_fleet("inferno")
    o = observed_from_topology(load_topology("inferno"))
    plans, done = cycles(d, o)
    assert len(plans) == 2
    for vm in done.vms:
        for m in vm.gpu_claims():
            assert done.mappings[[x.id for x in done.mappings].index(m)].devices_on(vm.host) > 0


def test_astronomy_lab_adopts_and_rebalances_under_thresholds() -> None:
    d = load_fleet("astronomy-lab")
    policy = d.fleets[0].policy
    o = observed_from_topology(load_topology("astronomy-lab"))
    hosts = {vm.host for vm in o.vms}
    assert {vm.cores for vm in o.vms if vm.host == "node02"}
    assert sum(vm.cores for vm in o.vms if vm.host == "node02" and not vm.template) == 18
    plans, done = cycles(d, o)
    migrations = [a for p in plans for a in p.actions if isinstance(a, Migrate)]
    moved = Counter(m.vmid for m in migrations)
    print(
        f"\nastronomy-lab rebalance: {len(migrations)} live migrations, {len(plans) - 1} cycle(s):"
    )
    for m in migrations:
        print(f"  {m.name} {m.source} -> {m.target}")
    assert migrations
    assert all(n == 1 for n in moved.values())
    assert not any(b.code == "rebalance" for p in plans for b in p.blocked)
    sched = Scheduler(done.hosts, done.mappings)
    for vm in done.vms:
        if not vm.template:
            sched.add(vm.host, Demand(vm.cores, vm.memory_mib))
    base = Constraints(policy.overcommit)
    assert not [h for h in sorted(hosts) if over(sched, h, base, policy.rebalance)]
    wanted = {v.vmid: v for v in d.all_vms()}
    strict = Counter(
        (wanted[v.vmid].pool, v.host)
        for v in done.vms
        if v.vmid in wanted and wanted[v.vmid].spread is Spread.STRICT
    )
    assert all(n == 1 for n in strict.values())
