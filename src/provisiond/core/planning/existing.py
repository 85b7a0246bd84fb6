"""An existing (matched) VM: move, configure, grow, pending changes, power, node.

A VM is left alone — one ``Blocked`` or ``Waiting`` — when its host did not answer, it is tagged
``pd-paused``, its config could not be read, it is locked, or a task runs on it. Otherwise, in
this order: the move when it is misplaced or its host has no room for its new size (a VM that
cannot move is not resized either); the config drift against the pending config (the current one
when nothing is pending); a shutdown when it should be stopped; the move itself; disk growth on
the host it ends on; a reboot for pending changes; a start; its Kubernetes node.
"""

from __future__ import annotations

from dataclasses import replace

from provisiond.core.desired import DesiredVM, PowerState, Spread
from provisiond.core.drift import Drift, config_drift
from provisiond.core.observed import ObservedVM, VMStatus
from provisiond.core.ownership import owner, paused
from provisiond.core.planning.configure import configure, grow
from provisiond.core.planning.kube import converge_node, node_missing, node_of
from provisiond.core.planning.migration import choose_move, emit_move
from provisiond.core.planning.placement import misplaced, reaccount
from provisiond.core.planning.power import apply_pending, may_power_off, power_off, start
from provisiond.core.planning.state import Match, PlanState
from provisiond.core.scheduler import Constraints, Demand

_GROWS = frozenset({"cores", "memory"})
_STOPPED = "desired power state is stopped"  # with hostpciN: what needs room on the host


def manage(s: PlanState, m: Match) -> None:
    d, vm = m.d, m.vm
    if not _settled(s, d, vm):
        return
    cfg = vm.config
    assert cfg is not None  # checked by _settled
    host, now_demand = s.accounted[d.vmid]
    want, room, unseen = _resize(s, d, vm)
    move_why = misplaced(s, d, vm)
    if move_why is None and room is not None:
        move_why = f"{host} has no room for its new size ({room})"
    running = vm.status is VMStatus.RUNNING
    node = node_of(s, d, vm)
    # The shutdown is decided first: how the VM moves depends on whether it will still run
    # (a refused shutdown leaves it running, and a running GPU VM moves only offline, or live
    # when every mapping it uses is live-migration capable).
    stopping = running and may_power_off(s, d, _STOPPED) if d.power is PowerState.STOPPED else False
    running = running and not stopping
    if unseen is not None:
        move = None
        s.unseen(unseen, d, "its size, GPUs, move and start wait")
    else:
        move = choose_move(s, d, vm, want, why=move_why, running=running)

    default_storage = d.storage or next((x.storage for x in cfg.disks.values()), None)
    drift = config_drift(d, vm.pending or cfg, default_storage=default_storage)
    pending: list[str] = []
    if vm.pending is not None:
        unapplied = config_drift(d, cfg, default_storage=default_storage)
        pending = sorted(unapplied.keys - drift.keys)
    # A VM that must move (or grow) but cannot, now, stays as it is: a stopped one stays stopped
    # (it would start in the wrong place, or without its spec-owned size and GPUs).
    stays = move is None and (move_why is not None or unseen is not None)
    if move is None and (room is not None or unseen is not None):
        held = sorted(k for k in drift.values if k in _GROWS or k.startswith("hostpci"))
        drift = Drift({k: v for k, v in drift.values.items() if k not in held}, drift.delete)
        if unseen is None:
            s.block("no_room", f"not resized ({', '.join(held)}), not started: {move_why}", d)
        want = now_demand
    if drift:
        adopt = "adopt: " if owner(vm) is None else ""
        configure(s, d, vm.host, drift, f"{adopt}set {', '.join(sorted(drift.keys))}")
    if stopping:
        power_off(s, d, vm, node, _STOPPED)

    final_host, restarted = vm.host, False
    if move is not None:
        target, offline = move
        emit_move(s, d, vm, want, target=target, offline=offline, why=move_why or "", node=node)
        final_host, restarted = target, offline
    else:
        reaccount(s, d.vmid, host, want)

    grow(s, d, cfg, final_host, new_clone=False)

    if pending and running and not restarted:
        apply_pending(s, d, final_host, pending, node)

    if d.power is PowerState.RUNNING and vm.status is not VMStatus.RUNNING:
        if vm.status is VMStatus.PAUSED:
            s.block("vm_paused", "VM is paused in QEMU: not resumed by provisiond", d)
        elif not stays:
            taken = _devices_taken(s, d, final_host)
            if taken is None:
                start(s, d, final_host, "desired power state is running")
            else:
                s.wait(f"not started: {taken}", d)
    if node is not None:
        converge_node(s, d, vm, node)
    else:
        node_missing(s, d, vm)


def _settled(s: PlanState, d: DesiredVM, vm: ObservedVM) -> bool:
    """Whether ``vm`` is fully observed and idle; reports why not."""
    if vm.status is VMStatus.UNKNOWN:
        s.block("unknown_status", f"host {vm.host} did not answer: unknown, not missing", d)
        return False
    if paused(vm):
        s.block("paused", "tagged pd-paused: left alone", d)
        return False
    if s.observed.unobserved.tasks:
        s.unseen("running tasks", d)
        return False
    if vm.config is None:
        s.unseen(f"config of VM {vm.vmid}", d)
        return False
    if vm.lock is not None:
        s.wait(f"locked ({vm.lock}): retried next cycle", d)
        return False
    tasks = s.tasks_by_id.get(str(d.vmid))
    if tasks:
        s.wait(f"task {tasks[0]} running", d)
        return False
    return True


def _resize(s: PlanState, d: DesiredVM, vm: ObservedVM) -> tuple[Demand, str | None, str | None]:
    """The load ``vm`` will have at its spec size, why its host has no room for it (or None),
    and what that judgement rests on that was not observed (or None).

    Sizes only grow here: a smaller spec leaves the larger observed load accounted until the
    VM's config changes. Its own host's storage is not in question (its disks are there).
    """
    host, now_demand = s.accounted[d.vmid]
    claims = dict(now_demand.gpus)
    if d.gpus is not None:
        claims[d.gpus.mapping] = max(claims.get(d.gpus.mapping, 0), d.gpus.count)
    want = replace(
        now_demand,
        cores=max(vm.cores, d.cores),
        memory_mib=max(vm.memory_mib, d.memory_mib),
        gpus=claims,
    )
    # its own place is not in question: neither its spread nor its disks' storage
    grown = replace(want, spread=Spread.PREFERRED, storages=())
    unseen = s.sched.unseen(host, grown)
    if unseen is not None:
        return want, None, unseen
    if want == now_demand:
        return want, None, None
    s.sched.remove(host, now_demand)
    room = s.sched.refusal(host, grown, Constraints(s.fleet(d).policy.overcommit))
    s.sched.add(host, now_demand)
    return want, room, None


def _devices_taken(s: PlanState, d: DesiredVM, host: str) -> str | None:
    """Why starting ``d`` on ``host`` could take a device another claimant holds (a migration
    in flight may land there): a mapping binds its device at start, first come first served."""
    for mp in sorted(s.accounted[d.vmid][1].gpus):
        if s.sched.free_gpus(host, mp) < 0:
            vms = ", ".join(str(v) for v in s.reserved.get(host, ()))
            return f"{mp} on {host} is claimed by a migration or clone in flight (VM {vms})"
    return None
