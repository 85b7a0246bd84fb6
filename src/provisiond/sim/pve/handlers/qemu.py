"""QEMU VM endpoints: list, create, config, pending, status, power, clone, template, destroy,
resize. Which checks are early (HTTP error, no task) and which run inside the task follows
SEMANTICS §4-6; the markers [sync] and [task] below say which is which.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid

from provisiond.core.topology import StorageType
from provisiond.sim.pve.errors import ParamError, PveError, TaskError
from provisiond.sim.pve.handlers import Call, ha
from provisiond.sim.pve.permissions import perm_error
from provisiond.sim.pve.state import (
    DISK_RE,
    FAST_PLUG,
    HOSTPCI_RE,
    NET_RE,
    Cluster,
    GiB,
    Value,
    VmState,
    format_size,
    normalise_tags,
    parse_disk_size,
    volume_storage,
)
from provisiond.sim.pve.tasks import (
    CLONE_FULL_MAX,
    CLONE_SECONDS_PER_GIB,
    DURATIONS,
    Body,
    TaskContext,
)
from provisiond.sim.pve.validation import split_list, split_propstring

# parameters of config writes that are not config keys
CONTROL = frozenset({"node", "vmid", "digest", "skiplock", "background_delay", "delete", "revert"})


def _vm(call: Call) -> VmState:
    return call.cluster.vm(str(call.params["node"]), int(call.params["vmid"]))


def _check_lock(vm: VmState) -> None:
    if vm.lock is not None:
        raise PveError(f"VM is locked ({vm.lock})")


def _task_lock(vm: VmState) -> None:
    if vm.lock is not None:
        raise TaskError(f"VM is locked ({vm.lock})")


def _no_skiplock(call: Call) -> None:
    if call.flag("skiplock") and not call.is_root:
        raise ParamError({"skiplock": "Only root may use this option."})


def _check_hostpci_perm(
    call: Call,
    changes: dict[str, Value],
    vmid: int,
    pool: str | None = None,
    *,
    hwtype: bool = True,
) -> None:
    """qs ``check_hostpci_perm``: anyone but root@pam (tokens included) needs ``mapping=``, then
    Mapping.Use on ``/mapping/pci/<id>`` and VM.Config.HWType on the VM (a clone's
    ``check_mapping_access`` asks only for Mapping.Use: ``hwtype=False``)."""
    for key, value in sorted(changes.items()):
        if HOSTPCI_RE.match(key) and not call.is_root:
            props = split_propstring(str(value), "host")
            if "mapping" not in props:
                if "host" in props:
                    raise PveError(f"only root can set '{key}' config for non-mapped devices")
                raise PveError("either 'host' or 'mapping' must be set.")
            call.perms.check(f"/mapping/pci/{props['mapping']}", ["Mapping.Use"])
            if hwtype:
                call.perms.check_vm(vmid, pool, ["VM.Config.HWType"])


# qs API2/Qemu.pm option groups of ``check_vm_modify_config_perm``
CPU_OPTIONS = frozenset(
    {"cores", "cpu", "cpulimit", "cpuunits", "numa", "smp", "sockets", "vcpus", "affinity"}
)
MEMORY_OPTIONS = frozenset({"memory", "balloon", "shares"})
HWTYPE_OPTIONS = frozenset(
    {"acpi", "hotplug", "kvm", "machine", "scsihw", "smbios1", "tablet", "vga", "watchdog"}
)
GENERAL_OPTIONS = frozenset(
    {
        "agent",
        "autostart",
        "bios",
        "description",
        "keyboard",
        "localtime",
        "migrate_downtime",
        "migrate_speed",
        "name",
        "onboot",
        "ostype",
        "protection",
        "reboot",
        "startdate",
        "startup",
        "tdf",
        "template",
        "tags",  # assert_tag_permissions: VM.Config.Options (privileged tags not simulated)
    }
)
DISK_OPTIONS = frozenset({"boot", "bootdisk", "vmstatestorage"})
CLOUDINIT_OPTIONS = frozenset(
    {"cicustom", "cipassword", "citype", "ciuser", "ciupgrade", "nameserver", "searchdomain"}
    | {"sshkeys"}
)


def _config_privilege(key: str, value: Value | None) -> tuple[tuple[str, ...], bool]:
    """The privileges (and any-of flag) a config key needs; PveError for root-only keys."""
    if DISK_RE.match(key) or key.startswith("unused"):
        cdrom = value is not None and "media=cdrom" in str(value)
        return ("VM.Config.CDROM" if cdrom else "VM.Config.Disk",), False
    if key.startswith("serial"):
        if value is not None and str(value) != "socket":
            raise PveError(f"only root can modify '{key}' config for real devices")
        return ("VM.Config.HWType",), False
    groups = (
        (CPU_OPTIONS, "VM.Config.CPU"),
        (MEMORY_OPTIONS, "VM.Config.Memory"),
        (HWTYPE_OPTIONS, "VM.Config.HWType"),
        (GENERAL_OPTIONS, "VM.Config.Options"),
        (DISK_OPTIONS, "VM.Config.Disk"),
    )
    for options, priv in groups:
        if key in options:
            return (priv,), False
    if NET_RE.match(key):
        return ("VM.Config.Network",), False
    if key in CLOUDINIT_OPTIONS or key.startswith("ipconfig"):
        return ("VM.Config.Cloudinit", "VM.Config.Network"), True
    raise PveError(f"only root can set '{key}' config")


def _check_config_perms(
    call: Call, vmid: int, pool: str | None, changes: dict[str, Value], removed: list[str]
) -> None:
    """qs ``check_vm_modify_config_perm`` (removed keys first, then the set ones) and
    ``check_storage_access``: a new volume ``<storage>:<GiB>`` needs Datastore.AllocateSpace
    on ``/storage/<storage>``. hostpci keys are ``_check_hostpci_perm``'s."""
    if call.is_root:
        return
    items: list[tuple[str, Value | None]] = [(k, None) for k in sorted(removed)]
    items += sorted(changes.items())
    for key, value in items:
        if HOSTPCI_RE.match(key):
            continue
        privs, any_ = _config_privilege(key, value)
        call.perms.check_vm(vmid, pool, privs, any_=any_)
    for key, value in sorted(changes.items()):
        if DISK_RE.match(key):
            file = split_propstring(str(value), "file").get("file", "")
            storage, _, size = file.partition(":")
            if re.fullmatch(r"\d+(\.\d+)?", size):
                call.perms.check(f"/storage/{storage}", ["Datastore.AllocateSpace"])


# -- list, status ----------------------------------------------------------------------------


async def list_vms(call: Call) -> object:
    cluster = call.cluster
    node = cluster.node(str(call.params["node"]))
    out = []
    for vm in sorted(cluster.vms.values(), key=lambda v: v.vmid):
        if vm.node != node.name or not call.perms.has(f"/vms/{vm.vmid}", ["VM.Audit"]):
            continue
        item: dict[str, object] = {
            "vmid": vm.vmid,
            "name": vm.name,
            "status": vm.status,
            "cpus": vm.cpus(),
            "maxmem": vm.memory_bytes(),
            "maxdisk": vm.disk_bytes(),
            "uptime": int(time.time() - vm.started_at) if vm.running and vm.started_at else 0,
            "cpu": 0,
            "mem": 0,
            "disk": 0,
            "netin": 0,
            "netout": 0,
            "diskread": 0,
            "diskwrite": 0,
        }
        if vm.running:
            item["pid"] = 10000 + vm.vmid
        if call.flag("full"):
            item["qmpstatus"] = "paused" if vm.paused else vm.status
        if vm.is_template:
            item["template"] = 1
        if vm.lock is not None:
            item["lock"] = vm.lock
        if "tags" in vm.config:
            item["tags"] = vm.config["tags"]
        out.append(item)
    return out


async def status_current(call: Call) -> object:
    vm = _vm(call)
    out: dict[str, object] = {
        "vmid": vm.vmid,
        "name": vm.name,
        "status": vm.status,
        "qmpstatus": "paused" if vm.paused else vm.status,
        "cpus": vm.cpus(),
        "maxmem": vm.memory_bytes(),
        "maxdisk": vm.disk_bytes(),
        "uptime": int(time.time() - vm.started_at) if vm.running and vm.started_at else 0,
        "cpu": 0.01 if vm.running else 0,
        "mem": vm.memory_bytes() // 2 if vm.running else 0,
        "disk": 0,
        "netin": 0,
        "netout": 0,
        "diskread": 0,
        "diskwrite": 0,
        "ha": {"managed": 1 if vm.hastate else 0},
    }
    if vm.running:
        out["pid"] = 10000 + vm.vmid
        out["running-machine"] = (
            "pc-q35-9.2+pve1" if vm.config.get("machine") == "q35" else ("pc-i440fx-9.2+pve1")
        )
        out["running-qemu"] = "9.2.0"
    if vm.lock is not None:
        out["lock"] = vm.lock
    if "tags" in vm.config:
        out["tags"] = vm.config["tags"]
    if vm.is_template:
        out["template"] = 1
    return out


# -- config ----------------------------------------------------------------------------------


async def get_config(call: Call) -> object:
    vm = _vm(call)
    snapshot = call.get_str("snapshot")
    if snapshot is not None:
        raise PveError(f"snapshot '{snapshot}' does not exist")
    cfg = dict(vm.config) if call.flag("current") else vm.merged()
    if "cipassword" in cfg:
        cfg["cipassword"] = "**********"
    cfg["digest"] = vm.digest()
    return cfg


async def get_pending(call: Call) -> object:
    vm = _vm(call)
    out = []
    for key in sorted(set(vm.config) | set(vm.pending) | vm.pending_delete):
        item: dict[str, object] = {"key": key}
        if key in vm.config:
            item["value"] = vm.config[key]
        if key in vm.pending:
            item["pending"] = vm.pending[key]
        if key in vm.pending_delete:
            item["delete"] = 1
        out.append(item)
    return out


def _allocate_disk(cluster: Cluster, vm: VmState, value: str) -> str:
    """``<storage>:<GiB>`` allocates a new volume, as PVE does for a new drive."""
    props = split_propstring(value, "file")
    storage, _, size = props.get("file", "").partition(":")
    if not size.isdigit() or storage not in cluster.storages:
        return value
    used = {str(v).split(",")[0] for v in vm.config.values()}
    index = 0
    while any(f"vm-{vm.vmid}-disk-{index}" in u for u in used):
        index += 1
    st = cluster.storages[storage]
    vol = (
        f"{storage}:{vm.vmid}/vm-{vm.vmid}-disk-{index}.qcow2"
        if st.type in (StorageType.NFS, StorageType.DIR)
        else f"{storage}:vm-{vm.vmid}-disk-{index}"
    )
    rest = [f"{k}={v}" for k, v in props.items() if k not in ("file", "size")]
    return ",".join([vol, *rest, f"size={format_size(int(size) * GiB)}"])


def _changes(call: Call) -> tuple[dict[str, Value], list[str], list[str]]:
    changes = {k: v for k, v in call.params.items() if k not in CONTROL}
    delete = split_list(call.get_str("delete") or "")
    revert = split_list(call.get_str("revert") or "")
    if not changes and not delete and not revert:
        raise PveError("no options specified")
    if "tags" in changes:
        changes["tags"] = normalise_tags(str(changes["tags"]))
    return changes, delete, revert


def _hotpluggable(key: str) -> bool:
    return key in FAST_PLUG or key.startswith(("net", "scsi", "virtio", "sata", "ide", "usb"))


def _apply(
    cluster: Cluster, vm: VmState, changes: dict[str, Value], delete: list[str], revert: list[str]
) -> None:
    for key in revert:
        vm.pending.pop(key, None)
        vm.pending_delete.discard(key)
    for key, given in changes.items():
        value = _allocate_disk(cluster, vm, str(given)) if DISK_RE.match(key) else given
        if vm.running and not _hotpluggable(key):
            vm.pending[key] = value
        else:
            vm.config[key] = value
            vm.pending.pop(key, None)
    for key in delete:
        if vm.running and not _hotpluggable(key):
            vm.pending_delete.add(key)
        else:
            vm.config.pop(key, None)
            vm.pending.pop(key, None)


def _prepare_update(call: Call) -> tuple[VmState, dict[str, Value], list[str], list[str]]:
    changes, delete, revert = _changes(call)
    _no_skiplock(call)
    vmid = int(call.params["vmid"])
    _check_config_perms(call, vmid, None, changes, [*delete, *revert])
    _check_hostpci_perm(call, changes, vmid)
    vm = _vm(call)
    _check_lock(vm)
    digest = call.get_str("digest")
    if digest is not None and digest != vm.digest():
        raise PveError("checksum mismatch (file change by other user?)")
    return vm, changes, delete, revert


async def put_config(call: Call) -> object:
    vm, changes, delete, revert = _prepare_update(call)
    _apply(call.cluster, vm, changes, delete, revert)
    return None


async def post_config(call: Call) -> object:
    vm, changes, delete, revert = _prepare_update(call)
    cluster = call.cluster

    async def body(ctx: TaskContext) -> None:
        await ctx.progress_to(1.0, DURATIONS["qmconfig"])
        ctx.log(f"update VM {vm.vmid}: " + " ".join(f"-{k} {v}" for k, v in changes.items()))
        _apply(cluster, vm, changes, delete, revert)

    task = cluster.tasks.start(vm.node, "qmconfig", str(vm.vmid), call.user, body)
    delay = call.get_int("background_delay")
    if delay is not None:
        try:
            await asyncio.wait_for(task.done.wait(), timeout=delay)
        except TimeoutError:
            return task.upid
        if task.exitstatus != "OK":
            raise PveError(f"failed to update VM {vm.vmid}: {task.exitstatus}")
        return None
    return task.upid


# -- create ----------------------------------------------------------------------------------


async def create_vm(call: Call) -> object:
    cluster = call.cluster
    node = cluster.node(str(call.params["node"])).name
    vmid = int(call.params["vmid"])
    if vmid in cluster.vms:
        other = cluster.vms[vmid].node
        raise PveError(f"unable to create VM {vmid} - VM {vmid} already exists on node '{other}'")
    pool = call.get_str("pool")
    if pool is not None and pool not in cluster.pools:
        raise perm_error(f"pool '{pool}' does not exist")  # check_pool_exist
    if not call.is_root:
        call.perms.check_vm(vmid, pool, ["VM.Allocate"])
    changes = {
        k: v
        for k, v in call.params.items()
        if k not in {"node", "vmid", "pool", "start", "storage"}
    }
    _check_hostpci_perm(call, changes, vmid, pool)
    _check_config_perms(call, vmid, pool, changes, [])
    if "tags" in changes:
        changes["tags"] = normalise_tags(str(changes["tags"]))
    vm = VmState(vmid=vmid, node=node, config={"lock": "create"}, pool=pool)
    cluster.vms[vmid] = vm  # [sync] create_and_lock_config: the VMID is taken at once
    start = call.flag("start")

    async def body(ctx: TaskContext) -> None:
        await ctx.progress_to(1.0, DURATIONS["qmcreate"])
        cfg: dict[str, Value] = {"smbios1": f"uuid={uuid.uuid4()}", "vmgenid": str(uuid.uuid4())}
        template = changes.pop("template", 0)
        for key, value in changes.items():
            model, comma, rest = str(value).partition(",")
            if NET_RE.match(key) and "=" not in model:  # "virtio,bridge=…": PVE adds a MAC
                value = f"{model}={cluster.new_mac()}{comma}{rest}"  # noqa: PLW2901 - rewritten
            cfg[key] = value
        vm.config = cfg
        for key, value in list(cfg.items()):
            if DISK_RE.match(key):
                cfg[key] = _allocate_disk(cluster, vm, str(value))
        if template:
            cfg["template"] = 1
        if start:
            await _start(cluster, vm, ctx)

    task = cluster.tasks.start(node, "qmcreate", str(vmid), call.user, body)
    return task.upid


# -- power -----------------------------------------------------------------------------------


async def _start(cluster: Cluster, vm: VmState, ctx: TaskContext) -> None:
    _task_lock(vm)
    if vm.is_template:
        raise TaskError("you can't start a vm if it's a template")
    if vm.running:
        raise TaskError(f"VM {vm.vmid} already running")
    vm.apply_pending()
    vm.bound.clear()
    try:
        for slot, value in sorted(vm.config.items()):
            if HOSTPCI_RE.match(slot):
                try:
                    cluster.bind_device(vm, slot, str(value))
                except PveError as exc:
                    raise TaskError(exc.message) from None
    except TaskError:
        vm.bound.clear()
        raise
    vm.status = "running"  # devices are claimed from here on
    vm.paused = False
    await ctx.progress_to(1.0, DURATIONS["qmstart"])
    vm.started_at = time.time()


def _power_off(vm: VmState) -> None:
    vm.status = "stopped"
    vm.paused = False
    vm.started_at = None
    vm.bound.clear()


def start_body(cluster: Cluster, vm: VmState) -> Body:
    async def body(ctx: TaskContext) -> None:
        if vm.lock == "suspended":
            vm.config.pop("lock")
            vm.status = "running"
            ctx.log("Resuming suspended VM")
            return
        await _start(cluster, vm, ctx)

    return body


async def start(call: Call) -> object:
    _no_skiplock(call)
    vm = _vm(call)
    cluster = call.cluster
    body = start_body(cluster, vm)
    if vm.hastate is not None:  # HA-managed: a request to the HA stack (handlers/ha.py)
        line = f"Requesting HA start for VM {vm.vmid}"
        return ha.request(
            cluster, vm, call.user, ha_type="hastart", real_type="qmstart", body=body, log_line=line
        )
    return cluster.tasks.start(vm.node, "qmstart", str(vm.vmid), call.user, body).upid


def stop_body(vm: VmState) -> Body:
    async def body(ctx: TaskContext) -> None:
        if not vm.running:
            return
        _task_lock(vm)
        await ctx.progress_to(1.0, DURATIONS["qmstop"])
        _power_off(vm)

    return body


async def stop(call: Call) -> object:
    _no_skiplock(call)
    vm = _vm(call)
    body = stop_body(vm)
    if vm.hastate is not None:
        line = f"Requesting HA stop for VM {vm.vmid}"
        return ha.request(
            call.cluster,
            vm,
            call.user,
            ha_type="hastop",
            real_type="qmstop",
            body=body,
            log_line=line,
        )
    return call.cluster.tasks.start(vm.node, "qmstop", str(vm.vmid), call.user, body).upid


async def _shutdown(vm: VmState, ctx: TaskContext, wait: float, force: bool) -> None:
    if not vm.running:
        return
    _task_lock(vm)
    if vm.acpi_responds:
        await ctx.progress_to(0.9, min(DURATIONS["qmshutdown"], wait))
    else:
        await ctx.progress_to(0.9, wait)
        if not force:
            raise TaskError("VM quit/powerdown failed - got timeout")
        ctx.log("VM still running - terminating now with SIGTERM")
    _power_off(vm)


async def shutdown(call: Call) -> object:
    _no_skiplock(call)
    vm = _vm(call)
    force = call.flag("forceStop")
    if vm.running and vm.paused and not force:
        raise PveError("VM is paused - cannot shutdown")
    timeout = float(call.get_int("timeout", 60) or 0)

    async def body(ctx: TaskContext) -> None:
        await _shutdown(vm, ctx, timeout, force)

    if vm.hastate is not None:
        line = f"Requesting HA stop for VM {vm.vmid}"
        return ha.request(
            call.cluster,
            vm,
            call.user,
            ha_type="hastop",
            real_type="qmshutdown",
            body=body,
            log_line=line,
        )
    return call.cluster.tasks.start(vm.node, "qmshutdown", str(vm.vmid), call.user, body).upid


async def reboot(call: Call) -> object:
    vm = _vm(call)
    if not vm.running:
        raise PveError(f"VM {vm.vmid} not running")
    if vm.paused:
        raise PveError("VM is paused - cannot shutdown")
    timeout = float(call.get_int("timeout", 60) or 0)
    cluster = call.cluster

    async def body(ctx: TaskContext) -> None:
        await _shutdown(vm, ctx, timeout, False)
        await _start(cluster, vm, ctx)

    return cluster.tasks.start(vm.node, "qmreboot", str(vm.vmid), call.user, body).upid


# -- clone -----------------------------------------------------------------------------------


def _clone_duration(full: bool, disk_bytes: int) -> float:
    if not full:
        return DURATIONS["qmclone-linked"]
    seconds = DURATIONS["qmclone-full-base"] + CLONE_SECONDS_PER_GIB * disk_bytes / GiB
    return min(seconds, CLONE_FULL_MAX)


async def clone(call: Call) -> object:
    cluster = call.cluster
    src = _vm(call)
    newid = int(call.params["newid"])
    target = call.get_str("target")
    storage = call.get_str("storage")
    pool = call.get_str("pool")
    # [sync] early checks (clone_vm's $load_and_check before the fork)
    _check_lock(src)
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
    _check_hostpci_perm(call, hostpci, src.vmid, hwtype=False)  # check_mapping_access
    name = call.get_str("name")
    description = call.get_str("description")
    duration = _clone_duration(full, src.disk_bytes())
    dest = target or src.node

    async def body(ctx: TaskContext) -> None:
        await ctx.progress_to(0.05, min(0.2, duration * 0.05))
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
        await ctx.progress_to(0.95, duration * 0.9)
        await ctx.progress_to(1.0, duration * 0.05)
        placeholder.config = cfg
        placeholder.node = dest  # the config moves to the target at the end

    task = cluster.tasks.start(src.node, "qmclone", str(src.vmid), call.user, body)
    return task.upid


# -- template, destroy, resize ---------------------------------------------------------------


async def template(call: Call) -> object:
    vm = _vm(call)
    _check_lock(vm)
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
    _no_skiplock(call)
    vm = _vm(call)
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
        _task_lock(vm)
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
    _no_skiplock(call)
    vm = _vm(call)
    disk = str(call.params["disk"])
    size = str(call.params["size"])

    async def body(ctx: TaskContext) -> None:
        _task_lock(vm)
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
