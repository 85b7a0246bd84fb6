"""Test worlds for the planner: builders, a topology -> ObservedState converter, and a small pure
effect model (``apply``) that does to an ObservedState what the executor would do to Proxmox and
Kubernetes, so "replan after applying the plan is empty" can be checked."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

from provisiond.core.actions import (
    Action,
    Clone,
    Configure,
    Cordon,
    Destroy,
    Drain,
    GpuMove,
    GrowDisk,
    Label,
    Migrate,
    Reboot,
    Shutdown,
    Start,
    TaintNode,
    Uncordon,
)
from provisiond.core.desired import (
    DesiredFleet,
    DesiredState,
    DesiredVM,
    DiskSpec,
    NicSpec,
    Policy,
    TemplateRef,
    ownership_marker,
)
from provisiond.core.drift import desired_tags
from provisiond.core.nodes import render_record, taint_id
from provisiond.core.observed import (
    CORDONED_ANNOTATION,
    MANAGED_ANNOTATION,
    Disk,
    Host,
    HostPci,
    KubeNode,
    MappingEntry,
    Nic,
    ObservedState,
    ObservedVM,
    PciMapping,
    Storage,
    VMConfig,
    VMStatus,
)
from provisiond.core.plan import Plan
from provisiond.core.pveconfig import (
    GIB,
    parse_hostpci,
    parse_ipconfig,
    parse_nic,
    parse_tags,
)

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "config" / "examples"
MIB = 1 << 20


# -- builders -------------------------------------------------------------------------------------


def host(
    name: str,
    cpus: int = 16,
    mem_gib: int = 64,
    *,
    online: bool = True,
    storages: tuple[Storage, ...] = (Storage("local"), Storage("nfs", shared=True)),
) -> Host:
    return Host(name, online, cpus, mem_gib * 1024, storages)


def template(
    vmid: int = 9000, name: str = "tmpl", on: str = "pve1", storage: str = "nfs"
) -> ObservedVM:
    cfg = VMConfig(
        cores=2,
        memory_mib=2048,
        disks={"scsi0": Disk("scsi0", storage, 10 * GIB)},
        nets={0: Nic(0, "virtio", "BC:24:11:00:00:01", "vmbr0")},
    )
    return ObservedVM(vmid, name, on, VMStatus.STOPPED, 2, 2048, template=True, config=cfg)


def dvm(name: str, vmid: int, **kw: Any) -> DesiredVM:
    base: dict[str, Any] = {
        "fleet": "f",
        "pool": "p",
        "name": name,
        "vmid": vmid,
        "template": TemplateRef(name="tmpl"),
        "cores": 2,
        "memory_mib": 2048,
        "disks": (DiskSpec("scsi0", 10 * GIB),),
        "nics": (NicSpec(0, "vmbr0"),),
    }
    base.update(kw)
    return DesiredVM(**base)


def state(*vms: DesiredVM, **policy: Any) -> DesiredState:
    fleets: dict[str, list[DesiredVM]] = {}
    for v in vms:
        fleets.setdefault(v.fleet, []).append(v)
    if not fleets:
        fleets["f"] = []
    return DesiredState(
        tuple(DesiredFleet(n, Policy(**policy), tuple(vs)) for n, vs in sorted(fleets.items()))
    )


def converged(d: DesiredVM, on: str = "pve1", **kw: Any) -> ObservedVM:
    """The observed VM that exactly satisfies ``d`` (tags, config, power)."""
    storage = d.storage or "nfs"
    cfg = VMConfig(
        cores=d.cores,
        memory_mib=d.memory_mib,
        disks={x.slot: Disk(x.slot, x.storage or storage, x.size_bytes) for x in d.disks},
        nets={
            n.index: Nic(n.index, n.model, n.mac or _mac(d.vmid, n.index), n.bridge, n.vlan)
            for n in d.nics
        },
        hostpci={i: HostPci(i, mapping=d.gpus.mapping) for i in range(d.gpus.count)}
        if d.gpus
        else {},
        tags=desired_tags(d),
        description=ownership_marker(d.fleet, d.name),
    )
    base: dict[str, Any] = {
        "vmid": d.vmid,
        "name": d.name,
        "host": on,
        "status": VMStatus(d.power.value),
        "cores": d.cores,
        "memory_mib": d.memory_mib,
        "tags": cfg.tags,
        "config": cfg,
    }
    base.update(kw)
    return ObservedVM(**base)


def mapping(mid: str, per_host: dict[str, int], *, live: bool = False) -> PciMapping:
    return PciMapping(
        mid,
        tuple(
            MappingEntry(h, tuple(f"0000:{i:02x}:00.0" for i in range(n)))
            for h, n in sorted(per_host.items())
        ),
        live,
    )


def world(*vms: ObservedVM, hosts: Iterable[Host] = (), **kw: Any) -> ObservedState:
    hs = tuple(hosts) or (host("pve1"), host("pve2"))
    return ObservedState(hosts=hs, vms=(template(), *vms), **kw)


def kinds(p: Plan) -> list[str]:
    return [a.kind for a in p.actions]


def _mac(vmid: int, index: int) -> str:
    return f"BC:24:{vmid >> 16 & 255:02X}:{vmid >> 8 & 255:02X}:{vmid & 255:02X}:{index:02X}"


# -- topology -> observed -------------------------------------------------------------------------


def load_topology(name: str) -> Any:
    from provisiond.adapters.specfile import load_documents

    docs = load_documents([EXAMPLES / name / "topology.yaml"])
    assert docs.ok, docs.issues
    return docs.topologies[0].topology


def load_fleet(name: str) -> DesiredState:
    from provisiond.adapters.specfile import load_desired

    return load_desired([EXAMPLES / name / "fleet.yaml"])


def observed_from_topology(topo: Any, **kw: Any) -> ObservedState:
    spec = topo.spec
    hosts = tuple(
        Host(
            h.name,
            h.online,
            h.cpus,
            h.memory // MIB,
            tuple(
                Storage(s.name, s.shared) for s in spec.storages if not s.hosts or h.name in s.hosts
            ),
        )
        for h in spec.hosts
    )
    mappings = tuple(
        PciMapping(
            m.id,
            tuple(
                MappingEntry(h, tuple(e.path for e in m.map if e.host == h))
                for h in sorted({e.host for e in m.map})
            ),
            m.live_migration_capable,
        )
        for m in spec.pci_mappings
    )
    vms: list[ObservedVM] = []
    for g in (*spec.templates, *spec.vms):
        is_tmpl = g in spec.templates
        nets = {
            int(n.slot[3:]): Nic(
                int(n.slot[3:]), n.model, n.mac or _mac(g.vmid, 0), n.bridge, n.vlan
            )
            for n in g.nets
        }
        if not nets and getattr(g, "bridge", None):
            nets = {0: Nic(0, "virtio", _mac(g.vmid, 0), g.bridge)}
        cfg = VMConfig(
            cores=g.cores * g.sockets,
            memory_mib=g.memory // MIB,
            disks={d.slot: Disk(d.slot, g.disk_storage(d) or "local", d.size) for d in g.disks},
            nets=nets,
            hostpci={}
            if is_tmpl
            else {int(p.slot[7:]): HostPci(int(p.slot[7:]), p.mapping, p.host) for p in g.hostpci},
            tags=tuple(sorted(g.tags)),
            description=g.description or "",
        )
        vms.append(
            ObservedVM(
                g.vmid,
                g.name,
                g.host,
                VMStatus.STOPPED if is_tmpl else VMStatus(g.status.value),
                cfg.cores,
                cfg.memory_mib,
                template=is_tmpl,
                lock=None if is_tmpl or g.lock is None else g.lock.value,
                tags=cfg.tags,
                config=cfg,
            )
        )
    return ObservedState(hosts=hosts, mappings=mappings, vms=tuple(vms), **kw)


# -- the effect model -----------------------------------------------------------------------------

_DEFERRED = ("hostpci",)  # keys that cannot be hot-plugged: pending while the VM runs


def _set(cfg: VMConfig, vmid: int, key: str, value: str) -> VMConfig:
    if key == "cores":
        return replace(cfg, cores=int(value))
    if key == "memory":
        return replace(cfg, memory_mib=int(value))
    if key.startswith("hostpci"):
        i = int(key[7:])
        return replace(cfg, hostpci={**cfg.hostpci, i: parse_hostpci(i, value)})
    if key.startswith("net"):
        i = int(key[3:])
        nic = parse_nic(i, value)
        if nic.mac is None:
            nic = replace(nic, mac=_mac(vmid, i))
        return replace(cfg, nets={**cfg.nets, i: nic})
    if key.startswith("ipconfig"):
        i = int(key[8:])
        return replace(cfg, ipconfigs={**cfg.ipconfigs, i: parse_ipconfig(i, value)})
    if key == "tags":
        return replace(cfg, tags=parse_tags(value))
    if key in ("nameserver", "searchdomain", "ciuser", "sshkeys"):
        return replace(cfg, **{key: value})
    storage, _, gib = value.partition(":")  # a new disk
    return replace(cfg, disks={**cfg.disks, key: Disk(key, storage, int(gib) * GIB)})


def _delete(cfg: VMConfig, key: str) -> VMConfig:
    i = int(key[7:])
    return replace(cfg, hostpci={k: v for k, v in cfg.hostpci.items() if k != i})


def _configure(vm: ObservedVM, a: Configure) -> ObservedVM:
    assert vm.config is not None
    cur = vm.config
    pend = vm.pending or cur
    running = vm.status is VMStatus.RUNNING
    for k, v in a.values.items():
        if running and k.startswith(_DEFERRED):
            pend = _set(pend, vm.vmid, k, v)
        else:
            cur = _set(cur, vm.vmid, k, v)
            pend = _set(pend, vm.vmid, k, v)
    for k in a.delete:
        pend = _delete(pend, k)
        if not running:
            cur = _delete(cur, k)
    return replace(
        vm,
        config=cur,
        pending=None if pend == cur else pend,
        tags=cur.tags,
        cores=cur.cores,
        memory_mib=cur.memory_mib,
    )


def _boot(vm: ObservedVM) -> ObservedVM:
    cfg = vm.pending or vm.config
    return replace(vm, status=VMStatus.RUNNING, config=cfg, pending=None)


def _node(o: ObservedState, name: str, **changes: Any) -> ObservedState:
    assert o.kube is not None
    return replace(o, kube=tuple(replace(n, **changes) if n.name == name else n for n in o.kube))


def _kube(o: ObservedState, name: str) -> KubeNode:
    assert o.kube is not None
    return next(n for n in o.kube if n.name == name)


def apply(o: ObservedState, plan: Plan) -> ObservedState:
    vms = {v.vmid: v for v in o.vms}
    for a in plan.actions:
        o = _apply_one(o, vms, a)
    return replace(o, vms=tuple(sorted(vms.values(), key=lambda v: v.vmid)))


def _apply_one(o: ObservedState, vms: dict[int, ObservedVM], a: Action) -> ObservedState:
    match a:
        case Clone():
            t = vms[a.template_vmid]
            assert t.config is not None
            cfg = replace(
                t.config,
                description=a.description,
                nets={i: replace(n, mac=_mac(a.vmid, i)) for i, n in t.config.nets.items()},
            )
            vms[a.vmid] = replace(
                t,
                vmid=a.vmid,
                name=a.name,
                host=a.target or a.template_host,
                template=False,
                config=cfg,
            )
        case Migrate():
            assert vms[a.vmid].host == a.source
            vms[a.vmid] = replace(vms[a.vmid], host=a.target)
        case GpuMove():
            vms[a.vmid] = _boot(replace(vms[a.vmid], host=a.target))
            if a.node is not None:
                o = _uncordon(o, a.node)
        case Configure():
            vms[a.vmid] = _configure(vms[a.vmid], a)
        case GrowDisk():
            vm = vms[a.vmid]
            assert vm.config is not None
            disk = replace(vm.config.disks[a.disk], size_bytes=a.size_bytes)
            cfg = replace(vm.config, disks={**vm.config.disks, a.disk: disk})
            vms[a.vmid] = replace(vm, config=cfg)
        case Start() | Reboot():
            vms[a.vmid] = _boot(vms[a.vmid])
        case Shutdown():
            vms[a.vmid] = replace(vms[a.vmid], status=VMStatus.STOPPED)
        case Cordon():
            n = _kube(o, a.node)
            ann = {**n.annotations, CORDONED_ANNOTATION: "true"}
            o = _node(o, a.node, unschedulable=True, annotations=ann)
        case Drain():
            pass
        case Uncordon():
            o = _uncordon(o, a.node)
        case Label():
            n = _kube(o, a.node)
            labels = {k: v for k, v in n.labels.items() if k not in a.remove} | dict(a.labels)
            ann = {**n.annotations, MANAGED_ANNOTATION: a.managed}
            o = _node(o, a.node, labels=labels, annotations=ann)
        case TaintNode():
            n = _kube(o, a.node)
            gone = {taint_id(t) for t in a.remove}
            taints = tuple(t for t in n.taints if taint_id(t) not in gone) + a.add
            ann = {**n.annotations, MANAGED_ANNOTATION: a.managed}
            o = _node(o, a.node, taints=taints, annotations=ann)
        case Destroy():
            del vms[a.vmid]
    return o


def _uncordon(o: ObservedState, name: str) -> ObservedState:
    n = _kube(o, name)
    ann = {k: v for k, v in n.annotations.items() if k != CORDONED_ANNOTATION}
    return _node(o, name, unschedulable=False, annotations=ann)


def empty_record() -> str:
    return render_record(frozenset(), frozenset())
