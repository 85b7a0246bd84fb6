"""Placement: what each VM weighs on its host, and whether it stands where the spec allows.

``account`` loads every observed non-template VM on its host in the scheduler before any step
decides (so capacity, GPU counts and spread see the whole cluster), records the members of every
(fleet, pool, host) for strict spread, and counts the disruptions already under way (a migrate
lock, a running migrate/shutdown/reboot task) against the disruption budget. ``reaccount`` keeps
that ledger true when the plan resizes or moves a VM.
"""

from __future__ import annotations

import bisect

from provisiond.core.desired import DesiredVM, Policy, Spread
from provisiond.core.observed import ObservedVM
from provisiond.core.planning.state import PlanState
from provisiond.core.scheduler import Constraints, Demand

_DISRUPTING_TASKS = frozenset({"qmigrate", "hamigrate", "qmshutdown", "qmreboot"})


def demand(vm: ObservedVM, d: DesiredVM | None) -> Demand:
    storages = tuple(sorted({x.storage for x in vm.config.disks.values()})) if vm.config else ()
    if d is None:
        return Demand(vm.cores, vm.memory_mib, vm.gpu_claims(), storages=storages)
    return Demand(vm.cores, vm.memory_mib, vm.gpu_claims(), (d.fleet, d.pool), d.spread, storages)


def account(s: PlanState) -> None:
    for vm in s.observed.vms:
        if vm.template:
            continue
        m = s.matched.get(vm.vmid)
        load = demand(vm, m.d if m else None)
        s.sched.add(vm.host, load)
        s.accounted[vm.vmid] = (vm.host, load)
        if m is not None:
            s.members.setdefault((m.d.fleet, m.d.pool, vm.host), []).append(vm.vmid)
        if m is not None and (
            vm.lock == "migrate" or _DISRUPTING_TASKS & set(s.tasks_by_id.get(str(vm.vmid), ()))
        ):
            s.budget.count(m.d.fleet, m.d.pool)
    for members in s.members.values():
        members.sort()


def reaccount(s: PlanState, vmid: int, host: str, load: Demand) -> None:
    old_host, old = s.accounted[vmid]
    s.sched.remove(old_host, old)
    s.sched.add(host, load)
    s.accounted[vmid] = (host, load)
    if old_host != host and load.group is not None:
        s.members[(*load.group, old_host)].remove(vmid)
        bisect.insort(s.members.setdefault((*load.group, host), []), vmid)


def constraints(s: PlanState, d: DesiredVM, *exclude: str) -> Constraints:
    """Where ``d`` may go: its pin or allowed hosts, minus maintenance and ``exclude``."""
    policy = s.fleet(d).policy
    hosts = (d.host,) if d.host else d.allowed_hosts
    return Constraints(policy.overcommit, hosts, (*in_maintenance(s, policy), *exclude))


def in_maintenance(s: PlanState, policy: Policy) -> tuple[str, ...]:
    """Hosts to evacuate: the fleet's ``maintenance`` and hosts in Proxmox HA maintenance."""
    ha = tuple(h.name for h in s.observed.hosts if h.maintenance)
    return tuple(dict.fromkeys((*policy.maintenance, *ha)))


def misplaced(s: PlanState, d: DesiredVM, vm: ObservedVM) -> str | None:
    """Why ``vm`` may not stay on its host (maintenance, pin, allowed hosts, strict spread)."""
    policy = s.fleet(d).policy
    if vm.host in policy.maintenance:
        return f"host {vm.host} is in maintenance"
    if vm.host in in_maintenance(s, policy):
        return f"host {vm.host} is in Proxmox HA maintenance mode"
    if d.host and vm.host != d.host:
        return f"pinned to {d.host}"
    if d.allowed_hosts is not None and vm.host not in d.allowed_hosts:
        return f"{vm.host} is not among its allowed hosts"
    if d.spread is Spread.STRICT:
        first = s.members.get((d.fleet, d.pool, vm.host), [d.vmid])[0]
        if first != d.vmid:
            return f"strict spread: shares {vm.host} with {s.matched[first].d.name}"
    return None


def local_disks(s: PlanState, vm: ObservedVM) -> bool:
    """Whether a disk of ``vm`` is on storage its host does not share (migrate with disks)."""
    host = s.sched.hosts.get(vm.host)
    disks = vm.config.disks.values() if vm.config else ()
    for disk in disks:
        st = host.storage(disk.storage) if host else None
        if st is None or not st.shared:
            return True
    return False
