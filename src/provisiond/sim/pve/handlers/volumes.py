"""VM endpoints that copy, convert, remove or grow volumes: clone, template, destroy, resize.
Early checks [sync] answer with an HTTP error; the rest runs inside the task (SEMANTICS §4-6).
"""

from __future__ import annotations

import uuid

from provisiond.core.topology import StorageType
from provisiond.sim.pve.errors import PveError, TaskError
from provisiond.sim.pve.formats import split_propstring
from provisiond.sim.pve.handlers import Call
from provisiond.sim.pve.handlers.guards import check_lock, refuse_skiplock, task_lock
from provisiond.sim.pve.handlers.privileges import check_hostpci_perm
from provisiond.sim.pve.permissions import perm_error
from provisiond.sim.pve.state import (
    HOSTPCI_RE,
    NET_RE,
    GiB,
    Value,
    VmState,
    format_size,
    parse_disk_size,
    volume_storage,
)
from provisiond.sim.pve.tasks import CLONE_FULL_MAX, CLONE_SECONDS_PER_GIB, DURATIONS, TaskContext

# -- clone -----------------------------------------------------------------------------------


def _clone_duration(full: bool, disk_bytes: int) -> float:
    if not full:
        return DURATIONS["qmclone-linked"]
    seconds = DURATIONS["qmclone-full-base"] + CLONE_SECONDS_PER_GIB * disk_bytes / GiB
    return min(seconds, CLONE_FULL_MAX)


async def clone(call: Call) -> object:
    cluster = call.cluster
    src = call.vm()
    newid = int(call.params["newid"])
    target = call.get_str("target")
    storage = call.get_str("storage")
    pool = call.get_str("pool")
    # [sync] early checks (clone_vm's $load_and_check before the fork)
    check_lock(src)
    existing = cluster.vms.get(newid)
    if existing is not None and existing.node == src.node:
        raise PveError(f"unable to create VM {newid}: config file already exists")
    full = bool(call.params["full"]) if "full" in call.params else not src.is_template
    if not full and storage is not None:
        raise PveError("parameter 'storage' not allowed for linked clones")
    if not full and "format" in call.params:
        raise PveError("parameter 'format' not allowed for linked clones")
    disks = src.disks()
    if not full and not src.is_template:
        slot, value = next(iter(sorted(disks.items())), ("scsi0", ""))
        volid = value.split(",")[0]
        raise PveError(f"Linked clone feature is not supported for '{volid}' ({slot})")
    if target is not None and target != src.node:
        if target not in cluster.nodes:
            raise PveError(f"no such cluster node '{target}'")
        stores = [cluster.storages.get(volume_storage(v)) for v in disks.values()]
        if not all(st is not None and st.shared for st in stores):
            raise PveError(f"can't clone VM to node '{target}' (VM uses local storage)")
        if storage is not None:
            st = cluster.storages.get(storage)
            if st is None or not st.shared:
                raise PveError(f"can't clone to non-shared storage '{storage}'")
    if storage is not None and storage not in cluster.storages:
        raise PveError(f"storage '{storage}' does not exist")
    if pool is not None and pool not in cluster.pools:
        raise perm_error(f"pool '{pool}' does not exist")  # check_pool_exist
    for value in disks.values():  # check_storage_access_clone
        sid = storage or volume_storage(value)
        call.perms.check(f"/storage/{sid}", ["Datastore.AllocateSpace"])
    hostpci = {k: v for k, v in src.config.items() if HOSTPCI_RE.match(k)}
    check_hostpci_perm(call, hostpci, src.vmid, hwtype=False)  # check_mapping_access
    name = call.get_str("name")
    description = call.get_str("description")
    duration = _clone_duration(full, src.disk_bytes())
    dest = target or src.node

    async def body(ctx: TaskContext) -> None:
        first = min(0.2, duration * 0.05)  # the placeholder appears early, as on PVE
        await ctx.progress_to(0.05, first)
        # the worker takes its locks and writes the placeholder (SEMANTICS addendum)
        if newid in cluster.vms:
            raise TaskError(
                f"clone failed: unable to create VM {newid}: config file already exists"
            )
        placeholder = VmState(vmid=newid, node=src.node, config={"lock": "clone"}, pool=pool)
        cluster.vms[newid] = placeholder
        cfg: dict[str, Value] = {
            k: v
            for k, v in src.config.items()
            if k not in ("template", "lock") and not k.startswith("unused")
        }
        if src.pending:
            ctx.warn("pending changes are not cloned")
        for index, (slot, value) in enumerate(sorted(disks.items())):
            props = split_propstring(value, "file")
            old_sid = volume_storage(value)
            sid = storage or old_sid
            volid = props["file"]
            kind = "full" if full else "linked"
            ctx.log(f"create {kind} clone of drive {slot} ({volid})")
            st = cluster.storages.get(sid)
            qcow = st is not None and st.type in (StorageType.NFS, StorageType.DIR)
            base = volid.split(":", 1)[1]
            if qcow:
                new = f"{sid}:{newid}/vm-{newid}-disk-{index}.qcow2"
                if not full:
                    parent = base.split("/")[-1]
                    new = f"{sid}:{src.vmid}/{parent}/{newid}/vm-{newid}-disk-{index}.qcow2"
            else:
                new = f"{sid}:vm-{newid}-disk-{index}"
                if not full:
                    new = f"{sid}:{base}/vm-{newid}-disk-{index}"
            rest = ",".join(f"{k}={v}" for k, v in props.items() if k != "file")
            cfg[slot] = f"{new},{rest}" if rest else new
        for key, nic in list(cfg.items()):
            if NET_RE.match(key):
                props = split_propstring(str(nic), None)
                model = next(iter(props))
                props[model] = cluster.new_mac()
                cfg[key] = ",".join(f"{k}={v}" for k, v in props.items())
        cfg["smbios1"] = f"uuid={uuid.uuid4()}"
        if "vmgenid" in cfg:
            cfg["vmgenid"] = str(uuid.uuid4())
        cfg["name"] = name or f"Copy-of-VM-{src.name}"
        if description is not None:
            cfg["description"] = description
        await ctx.progress_to(0.95, duration * 0.95 - first)  # the whole task takes `duration`
        await ctx.progress_to(1.0, duration * 0.05)
        placeholder.config = cfg
        placeholder.node = dest  # the config moves to the target at the end

    task = cluster.tasks.start(src.node, "qmclone", str(src.vmid), call.user, body)
    return task.upid


# -- template, destroy, resize ---------------------------------------------------------------


async def template(call: Call) -> object:
    vm = call.vm()
    check_lock(vm)
    if vm.is_template:
        raise PveError("you can't convert a template to a template")
    if vm.running:
        raise PveError("you can't convert a VM to template if VM is running")

    async def body(ctx: TaskContext) -> None:
        await ctx.progress_to(1.0, DURATIONS["qmtemplate"])
        for slot, value in vm.disks().items():
            vm.config[slot] = value.replace(f"vm-{vm.vmid}-disk-", f"base-{vm.vmid}-disk-")
        vm.config["template"] = 1

    return call.cluster.tasks.start(vm.node, "qmtemplate", str(vm.vmid), call.user, body).upid


async def destroy(call: Call) -> object:
    refuse_skiplock(call)
    vm = call.vm()
    cluster = call.cluster
    if vm.running:
        raise PveError(f"VM {vm.vmid} is running - destroy failed")
    if vm.config.get("protection") == 1:
        raise PveError(f"can't remove VM {vm.vmid} - protection mode enabled")
    if vm.hastate is not None and not call.flag("purge"):
        raise PveError(
            f"unable to remove VM {vm.vmid} - used in HA resources and purge parameter not set."
        )

    async def body(ctx: TaskContext) -> None:
        task_lock(vm)
        if vm.is_template:
            for value in vm.disks().values():
                volid = value.split(",")[0]
                base = volid.split(":", 1)[1].split("/")[-1].removesuffix(".qcow2")
                users = [
                    o
                    for o in cluster.vms.values()
                    if o is not vm and any(base in d for d in o.disks().values())
                ]
                if users:
                    raise TaskError(f"base volume '{volid}' is still in use by linked cloned")
        await ctx.progress_to(1.0, DURATIONS["qmdestroy"])
        cluster.vms.pop(vm.vmid, None)

    return cluster.tasks.start(vm.node, "qmdestroy", str(vm.vmid), call.user, body).upid


async def resize(call: Call) -> object:
    refuse_skiplock(call)
    vm = call.vm()
    disk = str(call.params["disk"])
    size = str(call.params["size"])

    async def body(ctx: TaskContext) -> None:
        task_lock(vm)
        value = vm.config.get(disk)
        if value is None:
            raise TaskError(f"disk '{disk}' does not exist")
        props = split_propstring(str(value), "file")
        if props.get("media") == "cdrom":
            raise TaskError("you can't resize a cdrom")
        old = parse_disk_size(props.get("size", "0"))
        new = old + parse_disk_size(size[1:]) if size.startswith("+") else parse_disk_size(size)
        if new < old:
            raise TaskError("shrinking disks is not supported")
        await ctx.progress_to(1.0, DURATIONS["resize"])
        props["size"] = format_size(new)
        volume = props.pop("file")
        vm.config[disk] = ",".join([volume, *(f"{k}={v}" for k, v in props.items())])
        ctx.log(f"Resized {disk} to {format_size(new)}")

    return call.cluster.tasks.start(vm.node, "resize", str(vm.vmid), call.user, body).upid
