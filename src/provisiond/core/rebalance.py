"""Rebalance (opt-in): shed VMs from hosts above their thresholds with few live migrations.

Greedy per host: if one candidate alone brings the host under, move the smallest such one;
otherwise move the largest (by its dominant share) and look again. A move lands only where the
target stays at or under the thresholds (and every placement rule holds: strict spread, storage,
allowed hosts). The planner passes only live-migratable, unpinned, non-GPU VMs as candidates:
GPU VMs are never moved for balance.

Invariants: each candidate moves at most once; a host that cannot be brought under is reported
by the caller, never pushed over elsewhere.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from provisiond.core.desired import RebalancePolicy
from provisiond.core.scheduler import Constraints, Demand, Scheduler


@dataclass(frozen=True, slots=True)
class Candidate:
    vmid: int
    demand: Demand
    constraints: Constraints  # where it may go (its own host excluded)


def over(sched: Scheduler, host: str, c: Constraints, policy: RebalancePolicy) -> bool:
    cpu, mem = sched.usage(host, c.overcommit)
    return cpu > policy.cpu_threshold or mem > policy.memory_threshold


def shed(
    sched: Scheduler,
    host: str,
    candidates: list[Candidate],
    policy: RebalancePolicy,
    admit: Callable[[int], bool],
) -> list[tuple[int, str]]:
    """Moves (vmid, target) that bring ``host`` under; stops early when ``admit`` refuses."""
    moves: list[tuple[int, str]] = []
    pool = sorted(candidates, key=lambda c: c.vmid)
    while pool and over(sched, host, pool[0].constraints, policy):
        oc = pool[0].constraints.overcommit
        cpu_cap, mem_cap = sched.capacity(host, oc)
        load = sched.loads[host]
        need_cpu = load.cpu - policy.cpu_threshold * cpu_cap
        need_mem = load.mem - policy.memory_threshold * mem_cap

        def share(c: Candidate, cpu_cap: float = cpu_cap, mem_cap: float = mem_cap) -> float:
            return max(c.demand.cores / max(cpu_cap, 1.0), c.demand.memory_mib / max(mem_cap, 1.0))

        solo = [c for c in pool if c.demand.cores >= need_cpu and c.demand.memory_mib >= need_mem]
        if solo:
            ordered = sorted(solo, key=lambda c: (share(c), c.vmid))
        else:
            ordered = sorted(pool, key=lambda c: (-share(c), c.vmid))
        for c in ordered:
            pool.remove(c)
            limits = replace(
                c.constraints, cpu_limit=policy.cpu_threshold, mem_limit=policy.memory_threshold
            )
            target, _ = sched.place(c.demand, limits)
            if target is None:
                continue
            if not admit(c.vmid):
                return moves
            sched.remove(host, c.demand)
            sched.add(target, c.demand)
            moves.append((c.vmid, target))
            break
    return moves
