"""The opt-in rebalance of a fleet: which of its VMs may move, and the moves ``core.rebalance``
chooses for every online host above the fleet's thresholds.

Only VMs this plan leaves alone are candidates: running or stopped, fully observed, unlocked,
not paused, not the daemon's own, not pinned, without GPUs or raw PCI devices, no task running.
Moving a running VM takes a disruption from the budget. A host still above its thresholds after
the moves is reported (``Blocked("rebalance")``).
"""

from __future__ import annotations

from provisiond.core.desired import DesiredFleet, DesiredVM
from provisiond.core.observed import ObservedVM, VMStatus
from provisiond.core.ownership import paused
from provisiond.core.plan import Blocked
from provisiond.core.planning.disruption import disrupt
from provisiond.core.planning.harules import rebalance_excluded, rebalance_narrowed
from provisiond.core.planning.migration import migrate
from provisiond.core.planning.placement import constraints, in_maintenance, local_disks
from provisiond.core.planning.state import PlanState
from provisiond.core.rebalance import Candidate, over, shed
from provisiond.core.scheduler import Constraints


def rebalance(s: PlanState, fleet: DesiredFleet) -> None:
    if s.observed.unobserved.tasks:  # what is in flight is unknown: no move for balance
        return
    policy = fleet.policy
    by_host: dict[str, list[Candidate]] = {}
    for vmid in sorted(s.matched):
        m = s.matched[vmid]
        d, vm = m.d, m.vm
        if d.fleet != fleet.name or not _movable(s, d, vm):
            continue
        if rebalance_excluded(s, d, vm):  # PVE 9.x: the HA stack's (harules.py)
            continue
        host, load = s.accounted[vmid]
        where = rebalance_narrowed(s, d, constraints(s, d, host))
        by_host.setdefault(host, []).append(Candidate(vmid, load, where))
    base = Constraints(policy.overcommit)
    for host in sorted(s.sched.hosts):
        if not s.sched.hosts[host].online or host in in_maintenance(s, policy):
            continue
        if not over(s.sched, host, base, policy.rebalance):
            continue

        def admit(vmid: int, host: str = host) -> bool:
            m = s.matched[vmid]
            if m.vm.status is not VMStatus.RUNNING:
                return True
            return disrupt(s, m.d, f"rebalance {host}")

        moves = shed(s.sched, host, by_host.get(host, []), policy.rebalance, admit)
        for vmid, target in moves:
            m = s.matched[vmid]
            s.disrupted.add(vmid)
            s.accounted[vmid] = (target, s.accounted[vmid][1])
            reason = f"rebalance: {host} is above its thresholds; move to {target}"
            running = m.vm.status is VMStatus.RUNNING
            local = local_disks(s, m.vm)
            move = migrate(
                vmid,
                m.d.name,
                source=host,
                target=target,
                online=running,
                local=local,
                reason=reason,
            )
            s.emit(move, vmid)
        if over(s.sched, host, base, policy.rebalance):
            cpu, mem = s.sched.usage(host, base.overcommit)
            s.blocked.append(
                Blocked(
                    "rebalance",
                    f"{host} stays above its thresholds (CPU {cpu:.0%}, memory {mem:.0%})",
                    fleet=fleet.name,
                )
            )


def _movable(s: PlanState, d: DesiredVM, vm: ObservedVM) -> bool:
    """Whether rebalance may live-migrate this VM (never GPU, pinned, self or busy VMs)."""
    if d.vmid in s.busy:  # already powered, moved or drained by this plan
        return False
    return (
        vm.status in (VMStatus.RUNNING, VMStatus.STOPPED)
        and vm.config is not None
        and vm.lock is None
        and not paused(vm)
        and vm.vmid != s.observed.self_vmid
        and d.host is None
        and d.gpus is None
        and not vm.gpu_claims()
        and not vm.raw_pci()
        and str(vm.vmid) not in s.tasks_by_id
        and vm.host not in s.observed.unobserved.storage  # local disks unknown
    )
