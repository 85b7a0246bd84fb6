"""Snapshots: a running cluster (the simulator, or a real PVE through its API) as a Topology.

``snapshot(fetch)`` reads only the API — ``/cluster/status``, ``/nodes``, node status and PCI
hardware, ``/cluster/resources``, ``/cluster/mapping/pci``, ``/pools``, each node's VM list and
every VM's current config — so the same code serves ``provisiond sim snapshot`` (proxmoxer) and
``SimHandle.snapshot()`` (the handlers called in-process, no faults, no network).

Every VM becomes a structured guest (name, cores, memory, disks, NICs, hostpci, tags, …) plus
``config``: exactly the keys whose value differs from what the simulator would build from the
structured part (random uuids, renamed volumes, extra options), and ``""`` for keys the
simulator would add but the VM lacks. Serving a snapshot therefore recreates every config
byte for byte, and a snapshot of that is the same snapshot (the round trip is tested).

Not captured: pending changes, which PCI device a running VM holds, tasks, users and tokens
(a served snapshot gets a generated ``root@pam!provisiond`` token), and — through the API —
the configs of VMs on an offline host (they keep only what ``/cluster/resources`` shows).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from io import StringIO
from typing import TYPE_CHECKING, Any, TypeVar

from ruamel.yaml import YAML

from provisiond.core import topology as topo
from provisiond.sim.pve.errors import PveError
from provisiond.sim.pve.formats import split_propstring
from provisiond.sim.pve.handlers import Call, Listing
from provisiond.sim.pve.routes import match
from provisiond.sim.pve.state import DISK_RE, HOSTPCI_RE, NET_RE, Cluster, MiB, parse_disk_size
from provisiond.sim.pve.validation import validate

if TYPE_CHECKING:
    from provisiond.sim.pve.server import SimServer

G = TypeVar("G", bound=topo.Guest)
Fetch = Callable[..., Any]  # fetch(path, **params) -> the response's data; raises FetchError


class FetchError(Exception):
    """A read that failed (e.g. a 595 from an offline host)."""


# -- fetchers --------------------------------------------------------------------------------


def server_fetch(server: SimServer, user: str = "root@pam") -> Fetch:
    """Call the simulator's GET handlers in-process, on its loop (thread-safe)."""

    async def run(path: str, params: dict[str, str]) -> Any:
        found = match("GET", path)
        assert found is not None
        assert found.handler is not None
        assert found.endpoint is not None
        checked = validate(found.endpoint, {**params, **found.path_vars})
        data = await found.handler(Call(server.cluster, checked, user))
        return data.data if isinstance(data, Listing) else data

    def fetch(path: str, **params: object) -> Any:
        args = {k: str(v) for k, v in params.items()}
        future = asyncio.run_coroutine_threadsafe(run(path, args), server.loop)
        try:
            return future.result(30)
        except PveError as exc:
            raise FetchError(exc.message.strip()) from exc

    return fetch


def snapshot_server(server: SimServer) -> topo.Topology:
    return snapshot(server_fetch(server))


def to_yaml(topology: topo.Topology) -> str:
    data = topology.model_dump(mode="json", by_alias=True, exclude_defaults=True)
    data = {"apiVersion": data.pop("apiVersion"), "kind": data.pop("kind"), **data}
    out = StringIO()
    yaml = YAML(typ="safe", pure=True)
    yaml.default_flow_style = False
    yaml.sort_base_mapping_type_on_output = False  # type: ignore[assignment]
    yaml.dump(data, out)
    return out.getvalue()


# -- the snapshot ----------------------------------------------------------------------------


def snapshot(fetch: Fetch) -> topo.Topology:
    status = fetch("/cluster/status")
    name = next((str(i["name"]) for i in status if i.get("type") == "cluster"), "cluster")
    ips = {str(i["name"]): i.get("ip") for i in status if i.get("type") == "node"}
    hosts = [_host(fetch, item, ips.get(str(item["node"]))) for item in fetch("/nodes")]
    node_names = [h.name for h in hosts]
    storages = _storages(fetch("/cluster/resources", type="storage"), node_names)
    mappings = tuple(_mapping(m) for m in fetch("/cluster/mapping/pci"))
    pools = tuple(
        topo.Pool(name=str(p["poolid"]), comment=p.get("comment")) for p in fetch("/pools")
    )
    spec = topo.TopologySpec(
        hosts=tuple(hosts), storages=storages, pci_mappings=mappings, pools=pools
    )
    guests, configs = _guests(fetch, spec)
    templates = tuple(g for g in guests if isinstance(g, topo.Template))
    vms = tuple(g for g in guests if isinstance(g, topo.VM))
    structured = topo.Topology(
        api_version=topo.API_VERSION,
        kind=topo.KIND,
        metadata=topo.Metadata(name=name),
        spec=spec.model_copy(update={"templates": templates, "vms": vms}),
    )
    built = Cluster(structured)  # what the simulator would make of the structured part

    def exact(g: G) -> G:
        actual = configs.get(g.vmid)
        return g if actual is None else _with_config(g, built.vms[g.vmid].config, actual)

    spec = structured.spec.model_copy(
        update={"templates": tuple(map(exact, templates)), "vms": tuple(map(exact, vms))}
    )
    return structured.model_copy(update={"spec": spec})


def _try(fetch: Fetch, path: str, **params: object) -> Any:
    try:
        return fetch(path, **params)
    except FetchError:
        return None


def _host(fetch: Fetch, item: dict[str, Any], ip: object) -> topo.Host:
    node = str(item["node"])
    online = item.get("status") == "online"
    status = _try(fetch, f"/nodes/{node}/status")
    pci = _try(fetch, f"/nodes/{node}/hardware/pci")
    cpuinfo = status["cpuinfo"] if status else {}
    return topo.Host(
        name=node,
        cpus=int(cpuinfo.get("cpus", item.get("maxcpu", 1))),
        memory=int(status["memory"]["total"] if status else item.get("maxmem", 0)),
        online=online,
        cpu_model=cpuinfo.get("model"),
        sockets=int(cpuinfo.get("sockets", 1)),
        ip=str(ip) if ip else None,
        pci_devices=tuple(_device(d) for d in pci or ()),
    )


def _device(d: dict[str, Any]) -> topo.PciDevice:
    sub = None
    if d.get("subsystem_vendor") and d.get("subsystem_device"):
        sub = f"{str(d['subsystem_vendor'])[2:]}:{str(d['subsystem_device'])[2:]}"
    group = d.get("iommugroup", -1)
    return topo.PciDevice(
        address=str(d["id"]),
        id=f"{str(d['vendor'])[2:]}:{str(d['device'])[2:]}",
        name=str(d.get("device_name", "")),
        vendor_name=d.get("vendor_name"),
        iommu_group=None if group is None or int(group) < 0 else int(group),
        subsystem_id=sub,
        class_id=str(d.get("class", "0x030000")),
    )


def _storages(items: list[dict[str, Any]], nodes: list[str]) -> tuple[topo.Storage, ...]:
    by_id: dict[str, list[dict[str, Any]]] = {}
    for item in items:
        by_id.setdefault(str(item["storage"]), []).append(item)
    out = []
    for sid, entries in by_id.items():
        on = {str(e["node"]): int(e.get("maxdisk", 0)) for e in entries}
        size = Counter(on.values()).most_common(1)[0][0]
        first = entries[0]
        content = str(first.get("content", ""))
        out.append(
            topo.Storage(
                name=sid,
                type=topo.StorageType(str(first["plugintype"])),
                shared=bool(first.get("shared")),
                size=size,
                size_per_host={n: s for n, s in on.items() if s != size},
                hosts=() if set(on) >= set(nodes) else tuple(n for n in nodes if n in on),
                content=tuple(c for c in content.split(",") if c),
            )
        )
    return tuple(out)


def _mapping(m: dict[str, Any]) -> topo.PciMapping:
    entries = []
    for text in m.get("map", ()):
        p = split_propstring(str(text), None)
        entries.append(
            topo.MappingEntry(
                host=p["node"],
                path=p["path"],
                id=p.get("id"),
                iommu_group=int(p["iommugroup"]) if "iommugroup" in p else None,
                subsystem_id=p.get("subsystem-id"),
                description=p.get("description"),
            )
        )
    return topo.PciMapping(
        id=str(m["id"]),
        description=m.get("description") or None,
        live_migration_capable=bool(m.get("live-migration-capable")),
        mdev=bool(m.get("mdev")),
        map=tuple(entries),
    )


def _guests(
    fetch: Fetch, spec: topo.TopologySpec
) -> tuple[list[topo.Guest], dict[int, dict[str, Any]]]:
    listed: dict[int, str] = {}  # vmid -> running/stopped/paused, from each node's VM list
    for host in spec.hosts:
        for item in _try(fetch, f"/nodes/{host.name}/qemu", full=1) or ():
            paused = item.get("qmpstatus") == "paused"
            listed[int(item["vmid"])] = "paused" if paused else str(item.get("status"))
    resources = [r for r in fetch("/cluster/resources", type="vm") if r.get("type") == "qemu"]
    names: set[str] = set()
    guests: list[topo.Guest] = []
    configs: dict[int, dict[str, Any]] = {}
    reachable = {
        h.name: {s.name for s in spec.storages if not s.hosts or h.name in s.hosts}
        for h in spec.hosts
    }
    devices = {h.name: {d.address for d in h.pci_devices} for h in spec.hosts}
    mappings = {m.id for m in spec.pci_mappings}
    for r in sorted(resources, key=lambda r: int(r["vmid"])):
        vmid, node = int(r["vmid"]), str(r["node"])
        cfg = _try(fetch, f"/nodes/{node}/qemu/{vmid}/config", current=1)
        if cfg is not None:
            cfg = {k: v for k, v in cfg.items() if k != "digest"}
            configs[vmid] = cfg
        else:
            cfg = {
                "name": r.get("name"),
                "cores": r.get("maxcpu", 1),
                "memory": str(int(r.get("maxmem", 0)) // MiB),
            }
        name = str(cfg.get("name") or "")
        if not topo.NAME_RE.match(name) or name in names:
            name = f"vmid-{vmid}"
        names.add(name)
        common: dict[str, Any] = {
            "vmid": vmid,
            "name": name,
            "host": node,
            "cores": _int(cfg.get("cores"), 1),
            "sockets": _int(cfg.get("sockets"), 1),
            "memory": _int(
                split_propstring(str(cfg.get("memory", "")), "current").get("current"), 2048
            )
            * MiB,
            "disks": _disks(cfg, reachable.get(node, set())),
            "nets": _nets(cfg),
            "tags": tuple(
                t for t in str(cfg.get("tags", "")).split(";") if t and topo.TAG_RE.match(t)
            ),
            "description": cfg.get("description"),
            "pool": r.get("pool"),
            "machine": cfg.get("machine"),
            "ostype": cfg.get("ostype"),
        }
        if r.get("template"):
            guests.append(topo.Template(**common))
            continue
        lock = cfg.get("lock")
        status = listed.get(vmid, str(r.get("status")))
        if status not in ("running", "paused"):
            status = "stopped"  # also "unknown": a VM on an offline host read through the API
        guests.append(
            topo.VM(
                **common,
                status=topo.VMStatus(status),
                hostpci=_hostpci(cfg, devices.get(node, set()), mappings),
                lock=topo.Lock(lock) if lock in {v.value for v in topo.Lock} else None,
                hastate=r.get("hastate"),
                protection=cfg.get("protection") == 1,
            )
        )
    return guests, configs


def _int(value: object, default: int) -> int:
    try:
        return int(str(value))
    except ValueError:
        return default


def _disks(cfg: dict[str, Any], reachable: set[str]) -> tuple[topo.Disk, ...]:
    out = []
    for slot, value in cfg.items():
        if not DISK_RE.match(slot) or "media=cdrom" in str(value):
            continue
        props = split_propstring(str(value), "file")
        sid = props.get("file", "").split(":", 1)[0]
        if sid in reachable:
            out.append(
                topo.Disk(slot=slot, storage=sid, size=parse_disk_size(props.get("size", "0")))
            )
    return tuple(out)


_MODELS = {"virtio", "e1000", "e1000e", "rtl8139", "vmxnet3"}


def _nets(cfg: dict[str, Any]) -> tuple[topo.Nic, ...]:
    out = []
    for slot, value in cfg.items():
        if not NET_RE.match(slot):
            continue
        props = split_propstring(str(value), None)
        model = next(iter(props), "")
        mac = props.get(model, "")
        if model not in _MODELS or not topo.MAC_RE.match(mac):
            continue
        tag = props.get("tag")
        firewall = props.get("firewall")
        out.append(
            topo.Nic(
                slot=slot,
                model=model,
                mac=mac,
                bridge=props.get("bridge", "vmbr0"),
                vlan=int(tag) if tag and tag.isdigit() else None,
                firewall=None if firewall is None else firewall == "1",
            )
        )
    return tuple(out)


def _hostpci(
    cfg: dict[str, Any], devices: set[str], mappings: set[str]
) -> tuple[topo.HostPci, ...]:
    out = []
    for slot, value in cfg.items():
        if not HOSTPCI_RE.match(slot):
            continue
        props = split_propstring(str(value), "host")
        mapping, host = props.get("mapping"), props.get("host")
        if (mapping is None) == (host is None):
            continue
        if mapping is not None and mapping not in mappings:
            continue
        if host is not None and host not in devices:
            continue
        out.append(
            topo.HostPci(
                slot=slot,
                mapping=mapping,
                host=host,
                pcie=props.get("pcie") == "1",
                x_vga=props.get("x-vga") == "1",
            )
        )
    return tuple(out)


def _with_config(guest: G, built: dict[str, Any], actual: dict[str, Any]) -> G:
    extra: dict[str, str | int] = {k: v for k, v in actual.items() if built.get(k) != v}
    extra.update({k: "" for k in built if k not in actual})
    return guest.model_copy(update={"config": extra})
