"""QEMU VM endpoints that read or write a VM's configuration: list, status, config, pending
and create. Which checks are early (HTTP error, no task) and which run inside the task follows
SEMANTICS §4-6; the markers [sync] and [task] below say which is which. Power lives in
``power.py``; clone, template, destroy and resize in ``volumes.py``.
"""

from __future__ import annotations

import asyncio
import time
import uuid

from provisiond.core.topology import StorageType
from provisiond.sim.pve import devices, load, pending
from provisiond.sim.pve.errors import ParamError, PveError
from provisiond.sim.pve.formats import split_list, split_propstring
from provisiond.sim.pve.handlers import Call
from provisiond.sim.pve.handlers.guards import check_lock, refuse_skiplock
from provisiond.sim.pve.handlers.power import start_vm
from provisiond.sim.pve.handlers.privileges import (
    check_config_perms,
    check_hostpci_perm,
    check_hostpci_update,
)
from provisiond.sim.pve.permissions import perm_error
from provisiond.sim.pve.state import (
    DISK_RE,
    NET_RE,
    Cluster,
    GiB,
    Value,
    VmState,
    format_size,
    normalise_tags,
)
from provisiond.sim.pve.tasks import DURATIONS, TaskContext

# parameters of config writes that are not config keys
CONTROL = frozenset(
    {"node", "vmid", "digest", "skiplock", "background_delay", "delete", "revert", "force"}
)


# -- list, status ----------------------------------------------------------------------------


def _vm_stats(vm: VmState, now: float) -> dict[str, object]:
    """What the VM list and ``status/current`` both report of a VM (PVE's ``vmstatus``)."""
    out: dict[str, object] = {
        "vmid": vm.vmid,
        "name": vm.name,
        "status": vm.status,
        "cpus": vm.cpus(),
        "maxmem": vm.memory_bytes(),
        "maxdisk": vm.disk_bytes(),
        "uptime": int(now - vm.started_at) if vm.running and vm.started_at else 0,
        "cpu": load.vm_cpu(vm, now),
        "mem": load.vm_mem(vm, now),
        "disk": 0,
        "netin": 0,
        "netout": 0,
        "diskread": 0,
        "diskwrite": 0,
    }
    if vm.running:
        out["pid"] = 10000 + vm.vmid
    if vm.is_template:
        out["template"] = 1
    if vm.lock is not None:
        out["lock"] = vm.lock
    if "tags" in vm.config:
        out["tags"] = vm.config["tags"]
    return out


async def list_vms(call: Call) -> object:
    cluster = call.cluster
    node = cluster.node(str(call.params["node"]))
    out = []
    now = time.time()
    for vm in sorted(cluster.vms.values(), key=lambda v: v.vmid):
        if vm.node != node.name or not call.perms.has(f"/vms/{vm.vmid}", ["VM.Audit"]):
            continue
        item = _vm_stats(vm, now)
        if call.flag("full"):
            item["qmpstatus"] = "paused" if vm.paused else vm.status
        out.append(item)
    return out


async def status_current(call: Call) -> object:
    vm = call.vm()
    out = _vm_stats(vm, time.time())
    out["qmpstatus"] = "paused" if vm.paused else vm.status
    out["ha"] = {"managed": 1 if vm.hastate else 0}
    if vm.running:
        out["running-machine"] = (
            "pc-q35-9.2+pve1" if vm.config.get("machine") == "q35" else ("pc-i440fx-9.2+pve1")
        )
        out["running-qemu"] = "9.2.0"
    return out


# -- config ----------------------------------------------------------------------------------


async def get_config(call: Call) -> object:
    vm = call.vm()
    snapshot = call.get_str("snapshot")
    if snapshot is not None:
        snap = vm.snapshots.get(snapshot)
        if snap is None:
            raise PveError(f"snapshot '{snapshot}' does not exist")
        cfg = dict(snap.config)
    else:
        cfg = dict(vm.config) if call.flag("current") else vm.merged()
    if "cipassword" in cfg:
        cfg["cipassword"] = "**********"
    cfg["digest"] = vm.digest()
    return cfg


async def get_pending(call: Call) -> object:
    vm = call.vm()
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


def _resolve_cdrom_alias(changes: dict[str, Value]) -> None:
    """qemu-server ``resolve_cdrom_alias``: ``cdrom`` is ``ide2`` with ``media=cdrom``."""
    value = changes.pop("cdrom", None)
    if value is not None:
        text = str(value)
        changes["ide2"] = text if "media=" in text else f"{text},media=cdrom"


def _conflict(param: str, first: str, second: str) -> ParamError:
    """qemu-server's text (its closing quote unmatched, sic)."""
    return ParamError({param: f"you can't use '{first}' and {second}' at the same time"})


def _changes(call: Call) -> tuple[dict[str, Value], list[str], list[str]]:
    changes = {k: v for k, v in call.params.items() if k not in CONTROL}
    _resolve_cdrom_alias(changes)
    delete = ["ide2" if k == "cdrom" else k for k in split_list(call.get_str("delete") or "")]
    revert = split_list(call.get_str("revert") or "")
    if not changes and not delete and not revert:
        raise PveError("no options specified")
    # qemu-server raises the first conflict it finds (keyed "delete" for a revert, sic)
    for key in revert:
        if key in changes:
            raise _conflict("delete", f"-{key}", f"-revert {key}")
    for key in delete:
        if key in changes:
            raise _conflict("delete", f"-{key}", f"-delete {key}")
        if key in revert:
            raise _conflict("revert", f"-delete {key}", f"-revert {key}")
    if "tags" in changes:
        changes["tags"] = normalise_tags(str(changes["tags"]))
    return changes, delete, revert


def _apply(
    cluster: Cluster, vm: VmState, changes: dict[str, Value], delete: list[str], revert: list[str]
) -> None:
    def allocate(key: str, value: Value) -> Value:
        if NET_RE.match(key):
            return devices.with_mac(str(value), cluster.new_mac)
        return _allocate_disk(cluster, vm, str(value)) if DISK_RE.match(key) else value

    pending.update(vm, changes, delete, revert, allocate=allocate)


def _prepare_update(call: Call) -> tuple[VmState, dict[str, Value], list[str], list[str]]:
    changes, delete, revert = _changes(call)
    refuse_skiplock(call)
    vmid = int(call.params["vmid"])
    check_config_perms(call, vmid, None, changes, [*delete, *revert])
    vm = call.vm()
    check_lock(vm)
    digest = call.get_str("digest")
    if digest is not None and digest != vm.digest():
        raise PveError("checksum mismatch (file change by other user?)")
    check_hostpci_update(call, vm, changes, delete)
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
        if k not in {"node", "vmid", "pool", "start", "storage", "force"}
    }
    _resolve_cdrom_alias(changes)
    check_hostpci_perm(call, changes, vmid, pool)
    check_config_perms(call, vmid, pool, changes, [])
    if "tags" in changes:
        changes["tags"] = normalise_tags(str(changes["tags"]))
    vm = VmState(vmid=vmid, node=node, config={"lock": "create"}, pool=pool)
    cluster.vms[vmid] = vm  # [sync] create_and_lock_config: the VMID is taken at once
    start = call.flag("start")

    async def body(ctx: TaskContext) -> None:
        await ctx.progress_to(1.0, DURATIONS["qmcreate"])
        cfg: dict[str, Value] = {"smbios1": f"uuid={uuid.uuid4()}", "vmgenid": str(uuid.uuid4())}
        template = changes.pop("template", 0)
        cfg["meta"] = devices.meta_info()
        for key, value in changes.items():
            cfg[key] = devices.with_mac(str(value), cluster.new_mac) if NET_RE.match(key) else value
        if str(cfg.get("vmgenid")) == "1":
            cfg["vmgenid"] = str(uuid.uuid4())
        vm.config = cfg
        for key, value in list(cfg.items()):
            if DISK_RE.match(key):
                cfg[key] = _allocate_disk(cluster, vm, str(value))
        if "boot" not in cfg and (boot := devices.default_boot(cfg)) is not None:
            cfg["boot"] = boot
        if template:
            cfg["template"] = 1
        if start:
            await start_vm(cluster, vm, ctx)

    task = cluster.tasks.start(node, "qmcreate", str(vmid), call.user, body)
    return task.upid
