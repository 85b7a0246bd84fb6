"""Placement: what each VM weighs on its host, and whether it stands where the spec allows.

``account`` loads every observed non-template VM on its host in the scheduler before any step
decides (so capacity, GPU counts and spread see the whole cluster), records the members of every
(fleet, pool, host) for strict spread, and counts the disruptions already under way (a migrate
lock, a running migrate/shutdown/reboot task) against the disruption budget. ``reaccount`` keeps
that ledger true when the plan resizes or moves a VM.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from dataclasses import replace

from provisiond.core.desired import DesiredVM, Policy, Spread
from provisiond.core.observed import ObservedVM, VMStatus
from provisiond.core.planning.harules import conflicted, narrowed
from provisiond.core.planning.matching import template
from provisiond.core.planning.state import PlanState
from provisiond.core.scheduler import Constraints, Demand

_DISRUPTING_TASKS = frozenset({"qmigrate", "hamigrate", "qmshutdown", "qmreboot"})
_MIGRATING = frozenset({"qmigrate", "hamigrate"})


def demand(vm: ObservedVM, d: DesiredVM | None) -> Demand:
    storages = tuple(sorted({x.storage for x in vm.config.disks.values()})) if vm.config else ()
    if d is None:
        return Demand(vm.cores, vm.memory_mib, vm.gpu_claims(), storages=storages)
    return Demand(vm.cores, vm.memory_mib, vm.gpu_claims(), (d.fleet, d.pool), d.spread, storages)


def account(s: PlanState, desired: Iterable[DesiredVM] = ()) -> None:
    """Load every observed VM on its host, then reserve what is in flight, then find the VMs an
    over-assignment (made by hand) leaves without a device (``overclaimed``)."""
    _observed(s)
    _in_flight(s, desired)
    _overclaimed(s)


def _observed(s: PlanState) -> None:
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


def _in_flight(s: PlanState, desired: Iterable[DesiredVM]) -> None:
    """Reserve, on every host it may land on, what a running migration or clone will bring.

    Neither target is observable: a migration's task and lock name only the VM (its source
    keeps the claim, accounted above, until the task ends), a clone's task names the template
    and its placeholder sits on the template's host until the end. So the claim is held on every
    online host that could take it — for GPUs, every host the mapping has devices on — until the
    task ends; the next cycle sees where it went.
    """
    for vm in s.observed.vms:
        tasks = set(s.tasks_by_id.get(str(vm.vmid), ()))
        moving = vm.lock == "migrate" or vm.ha_state == "migrate" or bool(tasks & _MIGRATING)
        if vm.template or not moving:
            continue
        _reserve(s, vm.vmid, vm.host, s.accounted[vm.vmid][1], None)
    for d in desired:
        holder = s.by_vmid.get(d.vmid)
        tmpl, _ = template(s, d)
        if holder is not None:
            cloning = holder.lock == "clone" and not holder.template
        else:
            cloning = tmpl is not None and tmpl.vmid in s.clones
        if cloning:
            gpus = {d.gpus.mapping: d.gpus.count} if d.gpus else {}
            load = Demand(d.cores, d.memory_mib, gpus, (d.fleet, d.pool), d.spread)
            _reserve(s, d.vmid, None, load, constraints(s, d))


def _reserve(
    s: PlanState, vmid: int, source: str | None, load: Demand, c: Constraints | None
) -> None:
    for name, h in sorted(s.sched.hosts.items()):
        if name == source or not h.online or (c is not None and c.hosts and name not in c.hosts):
            continue
        if any(
            s.sched.mappings.get(m) is None or not s.sched.mappings[m].devices_on(name)
            for m in load.gpus
        ):
            continue
        s.sched.add(name, replace(load, group=None))
        s.reserved.setdefault(name, []).append(vmid)


def _overclaimed(s: PlanState) -> None:
    """Per host and mapping with more claims than devices (made by hand): the VMs that keep
    one — running ones first (they hold a device), then those provisiond does not manage, then
    those pinned there, then by VMID — and, for the rest that provisiond manages, why not."""
    for name in sorted(s.sched.hosts):
        on = [v for v in s.observed.vms if v.host == name and not v.template]
        for mp in sorted({m for v in on for m in v.gpu_claims()}):
            devices = s.sched.mappings[mp].devices_on(name) if mp in s.sched.mappings else 0
            claimants = [v for v in on if v.gpu_claims().get(mp)]

            def keep(v: ObservedVM, host: str = name) -> tuple[bool, bool, bool, int]:
                m = s.matched.get(v.vmid)
                return (
                    v.status is not VMStatus.RUNNING,
                    m is not None,
                    m is None or m.d.host != host,
                    v.vmid,
                )

            held = 0
            for v in sorted(claimants, key=keep):
                held += v.gpu_claims()[mp]
                if held > devices and v.vmid in s.matched and v.status is not VMStatus.RUNNING:
                    s.overclaimed[v.vmid] = (
                        f"{mp} on {name} has {devices} device(s) for {held} claim(s)"
                    )


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
    return narrowed(
        s, d, Constraints(policy.overcommit, hosts, (*in_maintenance(s, policy), *exclude))
    )


def in_maintenance(s: PlanState, policy: Policy) -> tuple[str, ...]:
    """Hosts to evacuate: the fleet's ``maintenance`` and hosts in Proxmox HA maintenance."""
    ha = tuple(h.name for h in s.observed.hosts if h.maintenance)
    return tuple(dict.fromkeys((*policy.maintenance, *ha)))


def misplaced(s: PlanState, d: DesiredVM, vm: ObservedVM) -> str | None:
    """Why ``vm`` may not stay on its host (maintenance, pin, allowed hosts, a GPU mapping with no
    device there, a device over-assigned, strict spread); never when the spec contradicts a
    strict HA rule (a conflict: nothing moved), nor for an HA-managed VM on a host in Proxmox HA
    maintenance (the HA manager moves it: two movers would fight; reported waiting)."""
    if conflicted(s, d):
        return None
    policy = s.fleet(d).policy
    if vm.host in policy.maintenance:
        return f"host {vm.host} is in maintenance"
    if vm.host in in_maintenance(s, policy):
        if vm.ha_state is not None:  # the HA manager migrates its resources off by itself
            s.wait(f"HA-managed: the Proxmox HA manager moves it off {vm.host} (maintenance)", d)
            return None
        return f"host {vm.host} is in Proxmox HA maintenance mode"
    if d.host and vm.host != d.host:
        return f"pinned to {d.host}"
    if d.allowed_hosts is not None and vm.host not in d.allowed_hosts:
        return f"{vm.host} is not among its allowed hosts"
    claims = {**vm.gpu_claims(), **({d.gpus.mapping: d.gpus.count} if d.gpus else {})}
    for mp in sorted(claims):
        known = s.sched.mappings.get(mp)
        if known is None or not known.devices_on(vm.host):
            return f"{vm.host} has no device of mapping {mp}"
    if d.vmid in s.overclaimed:
        return f"over-assigned: {s.overclaimed[d.vmid]}"
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
