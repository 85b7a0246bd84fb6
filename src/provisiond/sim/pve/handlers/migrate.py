"""Migration: ``GET …/migrate`` (preconditions) and ``POST …/migrate`` (the ``qmigrate`` task).

SEMANTICS §6 and its addendum. The API handler checks [sync]: ``target is local node.`` (400),
root-only options (400), the target exists, the config lock, a running VM needs ``online``, and
every disk's storage (after ``targetstorage``) is available on the target. Everything about
devices and local disks is checked inside the task (qemu-server's ``QemuMigrate`` prepare and
phase 1): the POST returns a UPID and the task fails with the log line
``ERROR: migration aborted (duration hh:mm:ss): <err>`` and exitstatus ``migration aborted``.

A successful task holds ``lock: migrate`` while it runs and moves the VM to the target at the
end: its config then lives on the target node, and the old node's path answers
``Configuration file 'nodes/<old>/qemu-server/<vmid>.conf' does not exist``. Local disks are
copied (offline, or live with ``with-local-disks``), so the task takes longer with their size;
a live migration also copies the guest's memory.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from provisiond.sim.pve.errors import ParamError, PveError, TaskError
from provisiond.sim.pve.formats import split_propstring
from provisiond.sim.pve.handlers import Call, ha
from provisiond.sim.pve.handlers.guards import check_lock
from provisiond.sim.pve.state import HOSTPCI_RE, Cluster, GiB, VmState, parse_disk_size
from provisiond.sim.pve.tasks import DURATIONS, Body, TaskContext

MIGRATE_SECONDS_PER_GIB_DISK = 1.0  # local disks, ~1 GiB/s over a 10 GbE migration network
MIGRATE_SECONDS_PER_GIB_MEMORY = 1.0  # guest memory of a live migration
ROOT_ONLY = ("force", "migration_type", "migration_network")


class _AbortError(Exception):
    """A prepare/phase-1 error: logged as ``migration aborted (…): <text>``."""


def _storage_map(value: str | None) -> dict[str, str] | str | None:
    """``targetstorage``: ``src:dst,…`` pairs, one storage for all, or ``1`` (each to itself)."""
    if value is None or value == "1":
        return None
    pairs = [p for p in value.replace(";", ",").split(",") if p]
    if len(pairs) == 1 and ":" not in pairs[0]:
        return pairs[0]
    return dict(p.split(":", 1) for p in pairs if ":" in p)


def _mapped(sid: str, storage_map: dict[str, str] | str | None) -> str:
    if isinstance(storage_map, str):
        return storage_map
    if storage_map is None:
        return sid
    return storage_map.get(sid, sid)


def _disks(vm: VmState) -> dict[str, tuple[str, str, int]]:
    """slot -> (volid, storage id, size in bytes) of every non-cdrom disk."""
    out = {}
    for slot, value in vm.disks().items():
        props = split_propstring(value, "file")
        volid = props.get("file", "")
        out[slot] = (volid, volid.split(":", 1)[0], parse_disk_size(props.get("size", "0")))
    return out


def _is_local(cluster: Cluster, sid: str) -> bool:
    st = cluster.storages.get(sid)
    return st is None or not st.shared


def _available(cluster: Cluster, sid: str, node: str) -> bool:
    st = cluster.storages.get(sid)
    return st is not None and (not st.hosts or node in st.hosts)


def _hostpci(vm: VmState) -> dict[str, dict[str, str]]:
    return {
        k: split_propstring(str(v), "host")
        for k, v in sorted(vm.config.items())
        if HOSTPCI_RE.match(k)
    }


def _missing_mappings(cluster: Cluster, vm: VmState, node: str) -> list[str]:
    missing = []
    for slot, props in _hostpci(vm).items():
        mapping = cluster.mappings.get(props.get("mapping", ""))
        if "mapping" in props and (
            mapping is None or not any(e.node == node for e in mapping.entries)
        ):
            missing.append(slot)
    return missing


def _live_capable(cluster: Cluster, mapping_id: str) -> bool:
    mapping = cluster.mappings.get(mapping_id)
    return mapping is not None and mapping.live_migration_capable


# -- GET …/migrate ---------------------------------------------------------------------------


async def precondition(call: Call) -> object:
    cluster = call.cluster
    vm = call.vm()
    check_lock(vm)
    target = call.get_str("target")
    if target is not None and target not in cluster.nodes:
        raise PveError(f"no such cluster node '{target}'")
    disks = _disks(vm)
    local_disks = [
        {"volid": volid, "size": size, "cdrom": 0, "is_unused": 0, "drivename": slot}
        for slot, (volid, sid, size) in sorted(disks.items())
        if _is_local(cluster, sid)
    ]
    local_resources: list[str] = []
    mapped: list[str] = []
    info: dict[str, dict[str, object]] = {}
    for slot, props in _hostpci(vm).items():
        mapping_id = props.get("mapping")
        if mapping_id is None:
            local_resources.append(slot)
            continue
        mapped.append(slot)
        live = _live_capable(cluster, mapping_id)
        info[slot] = {"name": mapping_id, **({"live-migration": 1} if live else {})}
        if vm.running and not live:
            local_resources.append(slot)
    allowed: list[str] = []
    not_allowed: dict[str, dict[str, list[str]]] = {}
    for node in [target] if target is not None else list(cluster.nodes):
        if node == vm.node:
            continue
        why: dict[str, list[str]] = {}
        storages = sorted(
            {sid for _, sid, _ in disks.values() if not _available(cluster, sid, node)}
        )
        if storages:
            why["unavailable_storages"] = storages
        missing = _missing_mappings(cluster, vm, node)
        if missing:
            why["unavailable-resources"] = missing
        if why:
            not_allowed[node] = why
        else:
            allowed.append(node)
    return {
        "running": int(vm.running),
        "allowed_nodes": allowed,
        "not_allowed_nodes": not_allowed,
        "local_disks": local_disks,
        "local_resources": local_resources,
        "mapped-resources": mapped,
        "mapped-resource-info": info,
    }


# -- POST …/migrate --------------------------------------------------------------------------


async def migrate(call: Call) -> object:
    cluster = call.cluster
    node = cluster.node(str(call.params["node"])).name
    target = str(call.params["target"])
    if target == node:
        raise ParamError({"target": "target is local node."})
    if target not in cluster.nodes:
        raise PveError(f"no such cluster node '{target}'")
    for option in ROOT_ONLY:
        if option in call.params and not call.is_root:
            raise ParamError({option: "Only root may use this option."})
    vm = call.vm()
    check_lock(vm)
    online = call.flag("online")
    if vm.running and not online:
        raise PveError("can't migrate running VM without --online")
    online = online and vm.running  # a stopped VM migrates offline (PVE only warns)
    storage_map = _storage_map(call.get_str("targetstorage"))
    for _, sid, _ in _disks(vm).values():
        dest = _mapped(sid, storage_map)
        if not _available(cluster, dest, target):
            raise PveError(f"storage '{dest}' is not available on node '{target}'")
    body = migration_body(
        cluster,
        vm,
        target,
        online=online,
        with_local_disks=call.flag("with-local-disks"),
        storage_map=storage_map,
        force=call.flag("force"),
    )
    if vm.hastate is not None:
        line = f"Requesting HA migration for VM {vm.vmid} to node {target}"
        return ha.request(
            cluster,
            vm,
            call.user,
            ha_type="hamigrate",
            real_type="qmigrate",
            body=body,
            log_line=line,
            admit=_admit(cluster, vm, target),
        )
    return cluster.tasks.start(node, "qmigrate", str(vm.vmid), call.user, body).upid


def _admit(cluster: Cluster, vm: VmState, target: str) -> Callable[[], bool] | None:
    """The 9.x CRM's check of the queued ``migrate`` command (``hamanager.py``)."""
    check = cluster.ha_admit
    if check is None:
        return None
    return lambda: check(vm, target)


def _stamp(line: str) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S ") + line


def _duration(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}"


def _prepare(cluster: Cluster, vm: VmState, target: str, *, online: bool, force: bool) -> None:
    """qemu-server ``QemuMigrate::prepare``: lock, devices, the target reachable."""
    if vm.lock is not None:
        raise _AbortError(f"VM is locked ({vm.lock})")
    pci = _hostpci(vm)
    raw = [slot for slot, props in pci.items() if "mapping" not in props]
    if raw and (online or not force):
        raise _AbortError(f"can't migrate VM which uses local devices: {', '.join(raw)}")
    mapped = {slot: props["mapping"] for slot, props in pci.items() if "mapping" in props}
    not_live = [f"{s}:{m}" for s, m in mapped.items() if not _live_capable(cluster, m)]
    if online and not_live:
        raise _AbortError(
            "can't live migrate running VM which uses following mapped devices: "
            + ", ".join(not_live)
        )
    missing = _missing_mappings(cluster, vm, target)
    if missing:
        raise _AbortError(
            f"can't migrate to '{target}': missing mapped devices {', '.join(missing)}"
        )
    if not cluster.nodes[target].online:
        raise _AbortError("Can't connect to destination address using public key")


def migration_body(
    cluster: Cluster,
    vm: VmState,
    target: str,
    *,
    online: bool,
    with_local_disks: bool,
    storage_map: dict[str, str] | str | None,
    force: bool,
) -> Body:
    """The ``qmigrate`` worker (also what the HA stack runs after ``hamigrate``)."""

    async def body(ctx: TaskContext) -> None:
        began = time.monotonic()
        ip = cluster.nodes[target].ip
        ctx.log(_stamp(f"starting migration of VM {vm.vmid} to node '{target}' ({ip})"))

        def abort(err: str) -> TaskError:
            elapsed = _duration(time.monotonic() - began)
            ctx.log(_stamp(f"ERROR: migration aborted (duration {elapsed}): {err}"))
            return TaskError("migration aborted")

        live = online and vm.running
        try:
            _prepare(cluster, vm, target, online=live, force=force)
        except _AbortError as exc:
            raise abort(str(exc)) from None
        await ctx.progress_to(0.05, DURATIONS["qmigrate"] * 0.4)
        vm.config["lock"] = "migrate"  # phase 1
        local = {s: d for s, d in _disks(vm).items() if _is_local(cluster, d[1])}
        if local and live and not with_local_disks:
            vm.config.pop("lock", None)
            raise abort("can't live migrate attached local disks without with-local-disks option")
        copy_seconds = 0.0
        for volid, _sid, size in (local[s] for s in sorted(local)):
            ctx.log(_stamp(f"found local disk '{volid}' (attached)"))
            copy_seconds += MIGRATE_SECONDS_PER_GIB_DISK * size / GiB
        if local:
            ctx.log(_stamp("copying local disk images"))
        await ctx.progress_to(0.5, copy_seconds)
        if live:
            ctx.log(_stamp("starting online/live migration"))
            await ctx.progress_to(0.9, MIGRATE_SECONDS_PER_GIB_MEMORY * vm.memory_bytes() / GiB)
        await ctx.progress_to(1.0, DURATIONS["qmigrate"] * 0.6)
        _move(cluster, vm, target, storage_map)
        elapsed = _duration(time.monotonic() - began)
        ctx.log(_stamp(f"migration finished successfully (duration {elapsed})"))

    return body


def _move(
    cluster: Cluster, vm: VmState, target: str, storage_map: dict[str, str] | str | None
) -> None:
    """The end of a migration: volumes renamed to their target storage, config on the target,
    devices of a live-migrated VM bound there."""
    for slot, value in vm.disks().items():
        sid = value.split(":", 1)[0]
        dest = _mapped(sid, storage_map)
        if dest != sid and _is_local(cluster, sid):
            vm.config[slot] = dest + value[len(sid) :]
    vm.config.pop("lock", None)
    cluster.migrations.append((vm.vmid, vm.node, target, "qmigrate"))
    vm.node = target
    if vm.running:
        vm.bound.clear()
        for slot in _hostpci(vm):
            try:
                cluster.bind_device(vm, slot, str(vm.config[slot]))
            except PveError:
                vm.bound.pop(slot, None)  # no free device: the guest runs without it
