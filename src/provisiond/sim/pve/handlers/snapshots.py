"""VM snapshots: list, create, delete, rollback, description (qemu-server ``API2/Qemu.pm``
snapshot methods over guest-common ``AbstractConfig`` ``snapshot_*``).

[sync] ``current``/``pending`` are reserved names, the VM must exist. [task] ``qmsnapshot``
holds ``lock: snapshot`` while it runs, refuses a used name (``snapshot name '<n>' already
used``), copies the config (pending changes are not part of it) and makes the new snapshot the
VM's ``parent``; with ``vmstate`` on a running VM the RAM is saved too. ``qmdelsnapshot`` hooks
the deleted snapshot's children to its parent. ``qmrollback`` stops the VM, puts the snapshot's
config back (pending changes dropped), and runs the VM again when the snapshot holds its RAM or
``start`` is given. ``update_snapshot_config`` sets a snapshot's description under the config
lock (no ``description``: nothing is read, ``null``). Disks are not copied: a snapshot is a config
record here.
"""

from __future__ import annotations

import time

from provisiond.sim.pve.errors import PveError, TaskError
from provisiond.sim.pve.handlers import Call
from provisiond.sim.pve.handlers.guards import check_lock, task_lock
from provisiond.sim.pve.handlers.power import start_vm
from provisiond.sim.pve.state import GiB, Snapshot, VmState
from provisiond.sim.pve.tasks import DURATIONS, TaskContext

SAVE_SECONDS_PER_GIB = 1.0  # writing the guest's RAM into the vmstate volume


def _snapshot(vm: VmState, name: str) -> Snapshot:
    snap = vm.snapshots.get(name)
    if snap is None:
        raise TaskError(f"snapshot '{name}' does not exist")
    return snap


async def list_snapshots(call: Call) -> object:
    vm = call.vm()
    out: list[dict[str, object]] = []
    for snap in vm.snapshots.values():
        item: dict[str, object] = {
            "name": snap.name,
            "snaptime": snap.snaptime,
            "description": snap.description,
            "vmstate": int(snap.vmstate),
        }
        if snap.parent is not None:
            item["parent"] = snap.parent
        out.append(item)
    current: dict[str, object] = {
        "name": "current",
        "digest": vm.digest(),
        "running": int(vm.running),
        "description": "You are here!",
    }
    if "parent" in vm.config:
        current["parent"] = vm.config["parent"]
    out.append(current)
    return out


async def create_snapshot(call: Call) -> object:
    vm = call.vm()
    name = str(call.params["snapname"])
    if name in ("current", "pending"):
        raise PveError(f"unable to use snapshot name '{name}' (reserved name)")
    description = call.get_str("description") or ""
    save_ram = call.flag("vmstate")

    async def body(ctx: TaskContext) -> None:
        task_lock(vm)
        if name in vm.snapshots:
            raise TaskError(f"snapshot name '{name}' already used")
        vm.config["lock"] = "snapshot"
        try:
            ram = save_ram and vm.running
            seconds = DURATIONS["qmsnapshot"]
            if ram:
                seconds += SAVE_SECONDS_PER_GIB * vm.memory_bytes() / GiB
                ctx.log(f"saving VM state and RAM using storage '{_state_storage(vm)}'")
            await ctx.progress_to(1.0, seconds)
        finally:
            vm.config.pop("lock", None)
        parent = vm.config.get("parent")
        config = {k: v for k, v in vm.config.items() if k != "parent"}
        vm.snapshots[name] = Snapshot(
            name=name,
            config=config,
            snaptime=int(time.time()),
            description=description,
            parent=None if parent is None else str(parent),
            vmstate=ram,
        )
        vm.config["parent"] = name

    return call.cluster.tasks.start(vm.node, "qmsnapshot", str(vm.vmid), call.user, body).upid


def _state_storage(vm: VmState) -> str:
    disks = vm.disks()
    first = next(iter(disks.values()), "local")
    return first.split(":", 1)[0]


async def delete_snapshot(call: Call) -> object:
    vm = call.vm()
    name = str(call.params["snapname"])
    force = call.flag("force")

    async def body(ctx: TaskContext) -> None:
        if not force:
            task_lock(vm)
        snap = _snapshot(vm, name)
        await ctx.progress_to(1.0, DURATIONS["qmdelsnapshot"])
        for other in vm.snapshots.values():
            if other.parent == name:
                other.parent = snap.parent
        if vm.config.get("parent") == name:
            if snap.parent is None:
                vm.config.pop("parent")
            else:
                vm.config["parent"] = snap.parent
        del vm.snapshots[name]

    return call.cluster.tasks.start(vm.node, "qmdelsnapshot", str(vm.vmid), call.user, body).upid


async def rollback(call: Call) -> object:
    vm = call.vm()
    name = str(call.params["snapname"])
    start = call.flag("start")
    cluster = call.cluster

    async def body(ctx: TaskContext) -> None:
        task_lock(vm)
        snap = _snapshot(vm, name)
        if vm.running:
            vm.status = "stopped"
            vm.paused = False
            vm.started_at = None
            vm.bound.clear()
        await ctx.progress_to(1.0, DURATIONS["qmrollback"])
        vm.config = dict(snap.config)
        vm.config["parent"] = name
        vm.pending.clear()
        vm.pending_delete.clear()
        if snap.vmstate or start:
            await start_vm(cluster, vm, ctx)

    return cluster.tasks.start(vm.node, "qmrollback", str(vm.vmid), call.user, body).upid


async def snapshot_index(call: Call) -> object:
    vm = call.vm()
    name = str(call.params["snapname"])
    if name not in vm.snapshots:
        raise PveError(f"snapshot '{name}' does not exist")
    return [{"cmd": "rollback"}, {"cmd": "config"}]


async def snapshot_config(call: Call) -> object:
    vm = call.vm()
    name = str(call.params["snapname"])
    snap = vm.snapshots.get(name)
    if snap is None:
        raise PveError(f"snapshot '{name}' does not exist")
    out: dict[str, object] = dict(snap.config)
    out["snaptime"] = snap.snaptime
    if snap.description:
        out["description"] = snap.description
    if snap.parent is not None:
        out["parent"] = snap.parent
    if snap.vmstate:
        out["vmstate"] = 1
    return out


async def update_snapshot_config(call: Call) -> object:
    description = call.get_str("description")
    if description is None:
        return None  # qemu-server returns before it loads the config
    vm = call.vm()
    check_lock(vm)
    name = str(call.params["snapname"])
    snap = vm.snapshots.get(name)
    if snap is None:
        raise PveError(f"snapshot '{name}' does not exist")
    snap.description = description
    return None
