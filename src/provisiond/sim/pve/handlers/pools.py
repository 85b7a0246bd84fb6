"""One resource pool: ``GET /pools/{poolid}`` (its members) and ``PUT /pools/{poolid}`` (comment,
VMs added or removed) as pve-access-control's pool API does. Pool membership of storages is
not simulated (a ``storage`` parameter is refused with a 501 that says so)."""

from __future__ import annotations

from provisiond.sim.pve.errors import PveError
from provisiond.sim.pve.formats import split_list
from provisiond.sim.pve.handlers import Call
from provisiond.sim.pve.handlers.cluster import vm_resource


def _pool(call: Call) -> str:
    name = str(call.params["poolid"])
    if name not in call.cluster.pools:
        raise PveError(f"pool '{name}' does not exist")
    return name


async def get_pool(call: Call) -> object:
    name = _pool(call)
    cluster = call.cluster
    wanted = call.get_str("type")
    members: list[dict[str, object]] = []
    if wanted in (None, "qemu"):
        members = [
            vm_resource(cluster, vm)
            for vm in sorted(cluster.vms.values(), key=lambda v: v.vmid)
            if vm.pool == name and call.perms.has(f"/vms/{vm.vmid}", ["VM.Audit"])
        ]
    out: dict[str, object] = {"members": members}
    comment = cluster.pools[name]
    if comment is not None:
        out["comment"] = comment
    return out


async def update_pool(call: Call) -> object:
    name = _pool(call)
    cluster = call.cluster
    if call.get_str("storage") is not None:
        raise PveError("Storage members of pools are not simulated", status=501)
    comment = call.get_str("comment")
    if comment is not None:
        cluster.pools[name] = comment
    delete = call.flag("delete")
    allow_move = call.flag("allow-move")
    for item in split_list(call.get_str("vms") or ""):
        vmid = int(item)
        vm = cluster.vms.get(vmid)
        if delete:
            if vm is None or vm.pool != name:
                raise PveError(f"VM {vmid} is not a pool member")
            vm.pool = None
            continue
        if vm is None:
            raise PveError(f"VM {vmid} does not exist")
        if vm.pool == name:
            raise PveError(f"VM {vmid} is already a pool member")
        if vm.pool is not None and not allow_move:
            raise PveError(
                f"VM {vmid} belongs already to pool '{vm.pool}' and 'allow-move' is not set"
            )
        vm.pool = name
    return None
