"""Moving an existing VM: whether it may move now, where to, and how.

``choose_move`` picks a target with the scheduler (the VM's own load lifted off its host first,
its host excluded) and decides *offline* when the VM runs and a PCI mapping it claims cannot
live-migrate. A move whose inputs were not observed (the source's storage: are its disks local?;
a target that might fit but was not seen) waits. It refuses — one ``Blocked`` each — a VM
passing a raw PCI device, a VM no host fits, an offline move of the daemon's own VM or of a node
Kubernetes could not read, and a move of a running VM over the disruption budget. ``emit_move``
then moves the VM in the ledger and emits a live/offline ``Migrate`` or, for an offline move of
a running VM, the ``GpuMove`` workflow (with cordon/drain/uncordon steps when the VM is a
managed Kubernetes node).
"""

from __future__ import annotations

from provisiond.core.actions import GpuMove, Migrate, MoveStep
from provisiond.core.desired import DesiredVM
from provisiond.core.observed import KubeNode, ObservedVM, VMStatus
from provisiond.core.planning.disruption import disrupt, kube_unobserved, self_guard
from provisiond.core.planning.placement import constraints, local_disks, reaccount
from provisiond.core.planning.state import PlanState
from provisiond.core.scheduler import Demand


def migrate(
    vmid: int, name: str, *, source: str, target: str, online: bool, local: bool, reason: str
) -> Migrate:
    return Migrate(
        id=f"migrate:{vmid}",
        reason=reason,
        vmid=vmid,
        name=name,
        source=source,
        target=target,
        online=online,
        with_local_disks=local,
    )


def choose_move(
    s: PlanState, d: DesiredVM, vm: ObservedVM, want: Demand, *, why: str | None, running: bool
) -> tuple[str, bool] | None:
    """(target, offline) when ``vm`` must and may move now; else None (reported)."""
    if why is None:
        return None
    raw = vm.raw_pci()
    if raw:
        s.block("raw_pci", f"{why}, but {', '.join(raw)} passes a raw device: cannot move", d)
        return None
    source, now_demand = s.accounted[d.vmid]
    if source in s.observed.unobserved.storage:  # are its disks local? (with-local-disks)
        s.unseen(f"storage of host {source}", d, f"{why}: the move waits")
        return None
    c = constraints(s, d, source)
    s.sched.remove(source, now_demand)
    target, refusals = s.sched.place(want, c)
    unseen = s.sched.unseen_among(want, c)
    s.sched.add(source, now_demand)
    if target is None:
        if unseen:
            s.unseen(", ".join(unseen), d, f"{why}: the move waits")
        else:
            s.block("no_target", f"{why}, but no host fits ({refusals})", d)
        return None
    maps = [s.sched.mappings.get(m) for m in want.gpus]
    offline = running and any(mp is None or not mp.live_migration for mp in maps)
    if offline and (self_guard(s, d, "migrated offline") or kube_unobserved(s, d)):
        return None
    if running and not disrupt(s, d, why):
        return None
    return target, offline


def emit_move(
    s: PlanState,
    d: DesiredVM,
    vm: ObservedVM,
    want: Demand,
    *,
    target: str,
    offline: bool,
    why: str,
    node: KubeNode | None,
) -> None:
    source = s.accounted[d.vmid][0]
    reaccount(s, d.vmid, target, want)
    local = local_disks(s, vm)
    reason = f"{why}: move {source} -> {target}"
    if not offline:
        online = vm.status is VMStatus.RUNNING and d.vmid not in s.stopped
        s.emit(
            migrate(
                d.vmid,
                d.name,
                source=source,
                target=target,
                online=online,
                local=local,
                reason=reason,
            ),
            d.vmid,
        )
        return
    steps = [MoveStep.SHUTDOWN, MoveStep.MIGRATE_OFFLINE, MoveStep.START]
    if node is not None:
        steps = [MoveStep.CORDON, MoveStep.DRAIN, *steps, MoveStep.WAIT_READY, MoveStep.UNCORDON]
    s.emit(
        GpuMove(
            id=f"gpu_move:{d.vmid}",
            reason=reason,
            vmid=d.vmid,
            name=d.name,
            source=source,
            target=target,
            node=node.name if node is not None else None,
            steps=tuple(steps),
            with_local_disks=local,
            force_stop=s.fleet(d).policy.force_stop_after_shutdown_timeout,
            drain_timeout=s.fleet(d).policy.drain.timeout,
            delete_empty_dir_data=s.fleet(d).policy.drain.delete_empty_dir_data,
        ),
        d.vmid,
    )
