"""Read-only cluster and node endpoints: version, resources, nextid, status, tasks, mappings,
pools, nodes, node status, PCI hardware, storage."""

from __future__ import annotations

import re
import time

from provisiond.sim.pve import load
from provisiond.sim.pve.errors import ParamError, PveError
from provisiond.sim.pve.formats import split_propstring
from provisiond.sim.pve.handlers import Call, Listing
from provisiond.sim.pve.state import (
    Cluster,
    GiB,
    Node,
    VmState,
    parse_disk_size,
    volume_storage,
)
from provisiond.sim.pve.tasks import Task

PVE_VERSION = {"version": "8.4.1", "release": "8.4", "repoid": "2a5fa54a8503f96d"}
UPID_RE = re.compile(
    r"^UPID:([a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?):([0-9A-Fa-f]{8}):([0-9A-Fa-f]{8,9}):"
    r"([0-9A-Fa-f]{8}):([^:\s/]+):([^:\s/]*):([^:\s/]+):$"
)


async def version(call: Call) -> object:  # noqa: ARG001 - every handler takes the call
    return dict(PVE_VERSION)


def vm_resource(cluster: Cluster, vm: VmState) -> dict[str, object]:
    status = cluster.vm_status(vm)
    item: dict[str, object] = {
        "id": f"qemu/{vm.vmid}",
        "type": "qemu",
        "vmid": vm.vmid,
        "name": vm.name,
        "node": vm.node,
        "status": status,
        "template": 1 if vm.is_template else 0,
        "maxcpu": vm.cpus(),
        "maxmem": vm.memory_bytes(),
        "maxdisk": vm.disk_bytes(),
        "disk": 0,
    }
    if status != "unknown":
        running = vm.running
        now = time.time()
        item.update(
            uptime=int(now - vm.started_at) if running and vm.started_at else 0,
            cpu=load.vm_cpu(vm, now),
            mem=load.vm_mem(vm, now),
            netin=0,
            netout=0,
            diskread=0,
            diskwrite=0,
        )
    optional = {
        "tags": vm.config.get("tags"),
        "lock": vm.lock,
        "pool": vm.pool,
        "hastate": vm.hastate,
    }
    item.update({k: v for k, v in optional.items() if v is not None})
    return item


def node_item(cluster: Cluster, node: Node) -> dict[str, object]:
    item: dict[str, object] = {
        "id": f"node/{node.name}",
        "type": "node",
        "node": node.name,
        "status": "online" if node.online else "offline",
    }
    if node.online:
        item.update(
            maxcpu=node.cpus,
            maxmem=node.memory,
            mem=load.node_mem_used(cluster, node, time.time()),
            cpu=load.node_cpu(cluster, node, time.time()),
            maxdisk=100 * GiB,
            disk=10 * GiB,
            uptime=int(time.time() - node.boot_time),
            level="",
        )
    return item


async def resources(call: Call) -> object:
    """Filtered by the caller's privileges as mgr ``API2/Cluster.pm`` does: VMs need VM.Audit
    on ``/vms/<vmid>``, storages Datastore.Audit on ``/storage/<id>``, pools Pool.Audit on
    ``/pool/<pool>``; nodes are always listed, their usage only with Sys.Audit on
    ``/nodes/<node>``."""
    cluster = call.cluster
    perms = call.perms
    want = call.get_str("type")
    out: list[dict[str, object]] = []
    if want in (None, "vm"):
        out += [
            vm_resource(cluster, vm)
            for vm in sorted(cluster.vms.values(), key=_vmid)
            if perms.has(f"/vms/{vm.vmid}", ["VM.Audit"])
        ]
    if want in (None, "node"):
        for node in cluster.nodes.values():
            item = node_item(cluster, node)
            item["cgroup-mode"] = 2
            if not perms.has(f"/nodes/{node.name}", ["Sys.Audit"]):
                item = {k: v for k, v in item.items() if k in ("id", "type", "node", "status")}
            out.append(item)
    if want in (None, "storage"):
        usage = _storage_usage(cluster)
        for node in cluster.nodes.values():
            for st in cluster.storages_on(node.name):
                if not perms.has(f"/storage/{st.name}", ["Datastore.Audit"]):
                    continue
                out.append(
                    {
                        "id": f"storage/{node.name}/{st.name}",
                        "type": "storage",
                        "storage": st.name,
                        "node": node.name,
                        "status": "available" if node.online else "unknown",
                        "plugintype": st.type.value,
                        "shared": int(st.shared),
                        "content": ",".join(st.content),
                        "disk": usage.get((st.name, None if st.shared else node.name), 0),
                        "maxdisk": st.size_on(node.name),
                    }
                )
    if want is None:
        out += [
            {"id": f"/pool/{name}", "type": "pool", "pool": name}
            for name in cluster.pools
            if perms.has(f"/pool/{name}", ["Pool.Audit"])
        ]
    return out


def _storage_usage(cluster: Cluster) -> dict[tuple[str, str | None], int]:
    """Bytes used per (storage, node) — node None for shared storage — in one pass over the
    VMs (``Cluster.storage_used`` per item is quadratic at 10,000 VMs)."""
    usage: dict[tuple[str, str | None], int] = {}
    for vm in cluster.vms.values():
        for value in vm.disks().values():
            sid = volume_storage(value)
            st = cluster.storages.get(sid)
            key = (sid, None if st is not None and st.shared else vm.node)
            size = parse_disk_size(split_propstring(value, "file").get("size", "0"))
            usage[key] = usage.get(key, 0) + size
    return usage


def _vmid(vm: VmState) -> int:
    return vm.vmid


async def nextid(call: Call) -> object:
    vmid = call.get_int("vmid")
    if vmid is not None:
        if vmid in call.cluster.vms:
            raise ParamError({"vmid": f"VM {vmid} already exists"})
        return str(vmid)
    return str(call.cluster.next_vmid())


async def cluster_status(call: Call) -> object:
    cluster = call.cluster
    nodes = list(cluster.nodes.values())
    online = sum(n.online for n in nodes)
    out: list[dict[str, object]] = [
        {
            "type": "cluster",
            "id": "cluster",
            "name": cluster.name,
            "nodes": len(nodes),
            "quorate": int(online * 2 > len(nodes)),
            "version": len(nodes) + 1,
        }
    ]
    for i, n in enumerate(nodes):
        out.append(
            {
                "type": "node",
                "id": f"node/{n.name}",
                "name": n.name,
                "nodeid": n.nodeid,
                "ip": n.ip,
                "online": int(n.online),
                "local": int(i == 0),
                "level": "",
            }
        )
    return out


async def cluster_tasks(call: Call) -> object:
    """All tasks with Sys.Audit on ``/``, else only the caller's own."""
    tasks = sorted(call.cluster.tasks.all, key=lambda t: t.starttime, reverse=True)
    every = call.perms.has("/", ["Sys.Audit"])
    return [t.list_item() for t in tasks if every or t.user == call.user]


async def mappings(call: Call) -> object:
    check = call.get_str("check-node")
    out = []
    seen = ["Mapping.Modify", "Mapping.Use", "Mapping.Audit"]
    for m in call.cluster.mappings.values():
        if not call.perms.has(f"/mapping/pci/{m.id}", seen, any_=True):
            continue
        item = m.item()
        if check is not None:
            has = any(e.node == check for e in m.entries)
            item["checks"] = (
                [] if has else [{"severity": "warning", "message": f"No mapping for node {check}."}]
            )
        out.append(item)
    return out


async def mapping(call: Call) -> object:
    mapping_id = str(call.params["id"])
    m = call.cluster.mappings.get(mapping_id)
    if m is None:
        raise PveError(f"mapping '{mapping_id}' not found")
    item = m.item()
    item.pop("id")
    item.pop("type")
    return item


async def pools(call: Call) -> object:
    cluster = call.cluster
    wanted = call.get_str("poolid")
    out = []
    for name, comment in cluster.pools.items():
        if wanted is not None and name != wanted:
            continue
        if not call.perms.has(f"/pool/{name}", ["Pool.Audit"]):
            continue
        item: dict[str, object] = {"poolid": name}
        if comment is not None:
            item["comment"] = comment
        if wanted is not None:
            item["members"] = [
                vm_resource(cluster, vm) for vm in cluster.vms.values() if vm.pool == name
            ]
        out.append(item)
    if wanted is not None and not out:
        raise PveError(f"pool '{wanted}' does not exist")
    return out


async def nodes(call: Call) -> object:
    cluster = call.cluster
    out = []
    for node in cluster.nodes.values():
        item = node_item(cluster, node)
        item["ssl_fingerprint"] = cluster.ssl_fingerprint
        out.append(item)
    return out


async def node_status(call: Call) -> object:
    cluster = call.cluster
    node = cluster.node(str(call.params["node"]))
    now = time.time()
    used = load.node_mem_used(cluster, node, now)
    return {
        "cpu": load.node_cpu(cluster, node, now),
        "cpuinfo": {
            "cpus": node.cpus,
            "sockets": node.sockets,
            "cores": max(1, node.cpus // node.sockets // 2),
            "model": node.cpu_model,
            "mhz": "3000.000",
            "hvm": "1",
            "flags": "",
            "user_hz": 100,
        },
        "memory": {"total": node.memory, "used": used, "free": node.memory - used},
        "swap": {"total": 0, "used": 0, "free": 0},
        "rootfs": {"total": 100 * GiB, "used": 10 * GiB, "avail": 90 * GiB, "free": 90 * GiB},
        "loadavg": ["0.10", "0.20", "0.30"],
        "uptime": int(time.time() - node.boot_time),
        "kversion": "Linux 6.8.12-9-pve #1 SMP PREEMPT_DYNAMIC PMX 6.8.12-9",
        "current-kernel": {
            "sysname": "Linux",
            "release": "6.8.12-9-pve",
            "version": "#1 SMP PREEMPT_DYNAMIC PMX 6.8.12-9",
            "machine": "x86_64",
        },
        "boot-info": {"mode": "efi", "secureboot": 0},
        "pveversion": f"pve-manager/{PVE_VERSION['version']}/{PVE_VERSION['repoid']}",
    }


async def hardware_pci(call: Call) -> object:
    node = call.cluster.node(str(call.params["node"]))
    out = []
    for d in node.devices:
        item: dict[str, object] = {
            "id": d.address,
            "class": d.class_id,
            "vendor": f"0x{d.vendor}",
            "device": f"0x{d.device}",
            "device_name": d.name,
            "iommugroup": d.iommu_group if d.iommu_group is not None else -1,
            "mdev": 0,
        }
        if d.vendor_name:
            item["vendor_name"] = d.vendor_name
        if d.subsystem_id:
            sv, sd = d.subsystem_id.split(":")
            item["subsystem_vendor"], item["subsystem_device"] = f"0x{sv}", f"0x{sd}"
        out.append(item)
    return out


async def node_storage(call: Call) -> object:
    cluster = call.cluster
    node = cluster.node(str(call.params["node"]))
    only = call.get_str("storage")
    content = call.get_str("content")
    out = []
    for st in cluster.storages_on(node.name):
        if only is not None and st.name != only:
            continue
        seen = ["Datastore.Audit", "Datastore.AllocateSpace"]
        if not call.perms.has(f"/storage/{st.name}", seen, any_=True):
            continue
        if content is not None and not set(content.split(",")) & set(st.content):
            continue
        total = st.size_on(node.name)
        used = cluster.storage_used(st, node.name)
        out.append(
            {
                "storage": st.name,
                "type": st.type.value,
                "content": ",".join(st.content),
                "shared": int(st.shared),
                "active": 1,
                "enabled": 1,
                "total": total,
                "used": used,
                "avail": max(0, total - used),
                "used_fraction": used / total if total else 0,
            }
        )
    return out


def _task_matches(call: Call, t: Task) -> bool:
    source = call.get_str("source", "archive")
    if source == "archive" and t.status == "running":
        return False
    if source == "active" and t.status != "running":
        return False
    vmid = call.get_int("vmid")
    if vmid is not None and t.id != str(vmid):
        return False
    if t.user != call.user and not call.perms.has(f"/nodes/{t.node}", ["Sys.Audit"]):
        return False  # only own tasks without Sys.Audit on the node
    typefilter = call.get_str("typefilter")
    if typefilter is not None and t.type != typefilter:
        return False
    userfilter = call.get_str("userfilter")
    if userfilter is not None and userfilter not in t.user:
        return False
    if call.flag("errors") and t.exitstatus in (None, "OK"):
        return False
    since, until = call.get_int("since"), call.get_int("until")
    if since is not None and t.starttime < since:
        return False
    return not (until is not None and t.starttime > until)


async def node_tasks(call: Call) -> object:
    node = call.cluster.node(str(call.params["node"]))
    found = [t for t in call.cluster.tasks.all if t.node == node.name and _task_matches(call, t)]
    found.sort(key=lambda t: (t.status != "running", -(t.endtime or t.starttime)))
    start, limit = call.get_int("start", 0) or 0, call.get_int("limit", 50)
    assert limit is not None
    page = found[start : start + limit]
    return Listing([t.list_item() for t in page], len(found))


def find_task(call: Call) -> Task:
    upid = str(call.params["upid"])
    if not UPID_RE.match(upid):
        raise PveError(f"unable to parse worker upid '{upid}'")
    task = call.cluster.tasks.by_upid.get(upid)
    if task is None or task.node != call.params["node"]:
        raise ParamError({"upid": "no such task"})
    if task.user != call.user:  # someone else's task needs Sys.Audit on its node
        call.perms.check(f"/nodes/{task.node}", ["Sys.Audit"])
    return task


async def task_status(call: Call) -> object:
    call.cluster.node(str(call.params["node"]))
    return find_task(call).status_dict()


async def task_log(call: Call) -> object:
    call.cluster.node(str(call.params["node"]))
    task = find_task(call)
    lines = task.log or ["no content"]
    start, limit = call.get_int("start", 0) or 0, call.get_int("limit", 50)
    assert limit is not None
    items = [{"n": i + 1, "t": t} for i, t in enumerate(lines)][start : start + limit]
    return Listing(list(items), len(lines))
