"""The simulated cluster: nodes, storage, PCI devices and mappings, pools, VMs, tokens, tasks.

Built from a ``kind: Topology`` document. Only the simulator's loop thread mutates it (handlers
and task bodies); the test handle reaches it through ``SimHandle.call``, which runs on the loop.

VM configs are kept the way PVE keeps them: a dict of config keys (integers for integer and
boolean keys, strings otherwise — ``memory`` is a string in 8.x), plus ``pending`` values and
pending deletions. A VM whose config holds only ``lock`` is a placeholder (create/clone).
"""

from __future__ import annotations

import hashlib
import itertools
import re
import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from provisiond.core import topology as topo
from provisiond.sim.pve.access import Access
from provisiond.sim.pve.errors import PveError
from provisiond.sim.pve.formats import split_list, split_propstring
from provisiond.sim.pve.tasks import Tasks
from provisiond.sim.pve.validation import TAG_RE

Value = str | int
MiB = 1 << 20
GiB = 1 << 30

# Options applied at once to a running VM (qemu-server's fast-plug options and the default
# hotplug set "network,disk,usb"); every other change to a running VM waits in ``pending``.
FAST_PLUG = frozenset(
    {"lock", "name", "onboot", "shares", "startup", "description", "protection", "tags"}
)
HOTPLUG_PREFIXES = ("net", "scsi", "virtio", "sata", "ide", "usb")
DISK_RE = re.compile(r"^(ide|scsi|virtio|sata)\d+$|^efidisk0$|^tpmstate0$")
NET_RE = re.compile(r"^net\d+$")
HOSTPCI_RE = re.compile(r"^hostpci\d+$")


def format_size(size: int) -> str:
    for unit, factor in (("T", 1 << 40), ("G", GiB), ("M", MiB), ("K", 1 << 10)):
        if size % factor == 0:
            return f"{size // factor}{unit}"
    return str(size)


def parse_disk_size(text: str) -> int:
    m = re.fullmatch(r"(\d+(?:\.\d+)?)([KMGT]?)", text)
    if m is None:
        return 0
    factor = {"": 1, "K": 1 << 10, "M": MiB, "G": GiB, "T": 1 << 40}[m.group(2)]
    return int(float(m.group(1)) * factor)


def normalise_tags(value: str) -> str:
    """qemu-server ``get_unique_tags``: lower-cased, de-duplicated, sorted, joined by ``;``."""
    tags = sorted({t.lower() for t in split_list(value)})
    for t in tags:
        if not TAG_RE.match(t):
            raise PveError("invalid characters in tag")
    return ";".join(tags)


@dataclass
class Node:
    name: str
    nodeid: int
    cpus: int
    memory: int
    online: bool
    cpu_model: str
    sockets: int
    ip: str
    devices: tuple[topo.PciDevice, ...]
    boot_time: float = field(default_factory=time.time)
    ha_maintenance: bool = False  # HA node maintenance requested and entered (hamanager.py)


@dataclass
class MapEntry:
    node: str
    path: str
    id: str
    iommugroup: int | None = None
    subsystem_id: str | None = None
    description: str | None = None

    def property_string(self) -> str:
        parts = [f"id={self.id}"]
        if self.iommugroup is not None:
            parts.append(f"iommugroup={self.iommugroup}")
        parts += [f"node={self.node}", f"path={self.path}"]
        if self.subsystem_id is not None:
            parts.append(f"subsystem-id={self.subsystem_id}")
        if self.description is not None:
            parts.append(f"description={self.description}")
        return ",".join(parts)


@dataclass
class PciMap:
    id: str
    description: str
    live_migration_capable: bool
    mdev: bool
    entries: list[MapEntry]

    def item(self) -> dict[str, object]:
        out: dict[str, object] = {
            "id": self.id,
            "type": "pci",
            "description": self.description,
            "map": [e.property_string() for e in self.entries],
        }
        if self.mdev:
            out["mdev"] = 1
        if self.live_migration_capable:
            out["live-migration-capable"] = 1
        out["digest"] = hashlib.sha1(repr(out).encode(), usedforsecurity=False).hexdigest()
        return out


@dataclass
class Snapshot:
    """A VM snapshot as PVE's config file keeps it: a copy of the config at that moment."""

    name: str
    config: dict[str, Value]
    snaptime: int
    description: str = ""
    parent: str | None = None
    vmstate: bool = False  # RAM saved: a rollback resumes the VM running


@dataclass
class VmState:
    vmid: int
    node: str
    config: dict[str, Value]
    pending: dict[str, Value] = field(default_factory=dict)
    pending_delete: set[str] = field(default_factory=set)
    status: Literal["running", "stopped"] = "stopped"
    paused: bool = False
    started_at: float | None = None
    bound: dict[str, str] = field(default_factory=dict)  # hostpciN -> device address
    hastate: str | None = None
    maintenance_node: str | None = None  # the HA manager moved it off this node (maintenance)
    pool: str | None = None
    acpi_responds: bool = True  # False: a shutdown times out (``got timeout``)
    snapshots: dict[str, Snapshot] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return str(self.config.get("name", f"VM {self.vmid}"))

    @property
    def lock(self) -> str | None:
        lock = self.config.get("lock")
        return str(lock) if lock is not None else None

    @property
    def is_template(self) -> bool:
        return self.config.get("template") == 1

    @property
    def running(self) -> bool:
        return self.status == "running"

    def merged(self) -> dict[str, Value]:
        out = {k: v for k, v in self.config.items() if k not in self.pending_delete}
        out.update(self.pending)
        return out

    def cpus(self) -> int:
        c = self.config
        return int(c.get("cores", 1)) * int(c.get("sockets", 1))

    def memory_bytes(self) -> int:
        text = str(self.config.get("memory", "512"))
        return int(split_propstring(text, "current").get("current", "512")) * MiB

    def disks(self) -> dict[str, str]:
        return {
            k: str(v)
            for k, v in self.config.items()
            if DISK_RE.match(k) and "media=cdrom" not in str(v)
        }

    def disk_bytes(self) -> int:
        total = 0
        for value in self.disks().values():
            total += parse_disk_size(split_propstring(value, "file").get("size", "0"))
        return total

    def digest(self) -> str:
        text = "\n".join(f"{k}: {v}" for k, v in sorted(self.config.items()))
        text += "".join(f"\n[pending] {k}: {v}" for k, v in sorted(self.pending.items()))
        if self.pending_delete:
            text += "\n[pending] delete: " + ",".join(sorted(self.pending_delete))
        return hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()

    def apply_pending(self) -> None:
        for key in self.pending_delete:
            self.config.pop(key, None)
        self.config.update(self.pending)
        self.pending.clear()
        self.pending_delete.clear()


def volume_storage(value: str) -> str:
    """The storage id of a drive value ``<storage>:<volume>,size=…``."""
    return split_propstring(value, "file").get("file", "").split(":", 1)[0]


def _wire_rule(rule: topo.HaRule) -> dict[str, Value]:
    out: dict[str, Value] = {
        "type": rule.type.value,
        "resources": ",".join(f"vm:{v}" for v in sorted(rule.resources)),
    }
    if rule.nodes:
        out["nodes"] = ",".join(sorted(rule.nodes))
    if rule.strict:
        out["strict"] = 1
    if rule.affinity:
        out["affinity"] = rule.affinity
    if rule.disable:
        out["disable"] = 1
    if rule.comment:
        out["comment"] = rule.comment
    return out


class Cluster:
    """The whole simulated cluster."""

    def __init__(self, topology: topo.Topology, *, time_scale: float = 1.0) -> None:
        spec = topology.spec
        self.name = topology.metadata.name
        self.time_scale = time_scale
        self.tasks = Tasks(time_scale)
        self.ssl_fingerprint = ""  # set by the server once its certificate exists
        self.nodes: dict[str, Node] = {}
        for i, h in enumerate(spec.hosts, start=1):
            self.nodes[h.name] = Node(
                name=h.name,
                nodeid=i,
                cpus=h.cpus,
                memory=h.memory,
                online=h.online,
                cpu_model=h.cpu_model or "QEMU Virtual CPU",
                sockets=h.sockets,
                ip=h.ip or f"10.0.0.{i}",
                devices=h.pci_devices,
                ha_maintenance=h.ha_maintenance,
            )
        self.storages: dict[str, topo.Storage] = {s.name: s for s in spec.storages}
        self.mappings: dict[str, PciMap] = {}
        for m in spec.pci_mappings:
            entries = []
            for e in m.map:
                host = topology.host(e.host)
                dev = host.device(e.path) if host is not None else None
                entries.append(
                    MapEntry(
                        node=e.host,
                        path=e.path,
                        id=e.id or (dev.id if dev is not None else "0000:0000"),
                        iommugroup=e.iommu_group
                        if e.iommu_group is not None
                        else (dev.iommu_group if dev is not None else None),
                        subsystem_id=e.subsystem_id,
                        description=e.description,
                    )
                )
            self.mappings[m.id] = PciMap(
                m.id, m.description or "", m.live_migration_capable, m.mdev, entries
            )
        self.pools: dict[str, str | None] = {p.name: p.comment for p in spec.pools}
        # PVE 9.x: HA rules (wire form, as rules.cfg keeps them), the crs option, the CRM's log
        self.pve_version = spec.pve_version
        self.crs = spec.crs
        self.ha_rules: dict[str, dict[str, Value]] = {r.id: _wire_rule(r) for r in spec.ha_rules}
        self.ha_log: list[str] = []
        self.migrations: list[tuple[int, str, str, str]] = []  # vmid, source, target, by what
        # set by the HA manager (9.x): whether a ``migrate`` crm command is queued (hamanager.py)
        self.ha_admit: Callable[[VmState, str], bool] | None = None
        # users, tokens, roles, ACLs, tickets (access.py); a root@pam admin token always exists
        self.access = Access(spec, self.pool_members)
        self.tokens: dict[str, str] = self.access.secrets  # "user@realm!id" -> secret
        self._macs = itertools.count(0x100000)
        self.vms: dict[int, VmState] = {}
        for t in spec.templates:
            self.vms[t.vmid] = self._from_guest(t, template=True)
        for vm in spec.vms:
            state = self._from_guest(vm, template=False)
            state.status = "stopped" if vm.status is topo.VMStatus.STOPPED else "running"
            state.paused = vm.status is topo.VMStatus.PAUSED
            state.hastate = vm.hastate
            if state.running:
                state.started_at = time.time()
                for slot, value in sorted(state.config.items()):
                    if HOSTPCI_RE.match(slot):
                        self.bind_device(state, slot, str(value))
            self.vms[vm.vmid] = state

    # -- building --------------------------------------------------------------------------
    def new_mac(self) -> str:
        n = next(self._macs) ^ secrets.randbits(20)
        return "BC:24:11:" + ":".join(f"{(n >> s) & 0xFF:02X}" for s in (16, 8, 0))

    def _volume(self, storage: str, vmid: int, index: int, *, base: bool) -> str:
        st = self.storages.get(storage)
        prefix = "base" if base else "vm"
        if st is not None and st.type in (topo.StorageType.NFS, topo.StorageType.DIR):
            return f"{storage}:{vmid}/{prefix}-{vmid}-disk-{index}.qcow2"
        return f"{storage}:{prefix}-{vmid}-disk-{index}"

    def _from_guest(self, g: topo.Guest, *, template: bool) -> VmState:
        cfg: dict[str, Value] = {
            "name": g.name,
            "cores": g.cores,
            "sockets": g.sockets,
            "memory": str(g.memory // MiB),
            "scsihw": "virtio-scsi-single",
            "smbios1": f"uuid={uuid.uuid4()}",
            "vmgenid": str(uuid.uuid4()),
        }
        if g.ostype:
            cfg["ostype"] = g.ostype
        if g.machine:
            cfg["machine"] = g.machine
        for i, disk in enumerate(g.disks):
            storage = g.disk_storage(disk) or ""
            vol = self._volume(storage, g.vmid, i, base=template)
            cfg[disk.slot] = f"{vol},size={format_size(disk.size)}"
        nets = list(g.nets)
        if not nets and isinstance(g, topo.Template) and g.bridge:
            nets = [topo.Nic(slot="net0", bridge=g.bridge)]
        for nic in nets:
            value = f"{nic.model}={(nic.mac or self.new_mac()).upper()},bridge={nic.bridge}"
            if nic.firewall is not None:
                value += f",firewall={int(nic.firewall)}"
            if nic.vlan is not None:
                value += f",tag={nic.vlan}"
            cfg[nic.slot] = value
        boot = [d.slot for d in g.disks[:1]] + [n.slot for n in nets[:1]]
        if boot:
            cfg["boot"] = "order=" + ";".join(boot)
        if g.tags:
            cfg["tags"] = normalise_tags(",".join(g.tags))
        if g.description:
            cfg["description"] = g.description
        if template:
            cfg["template"] = 1
        if isinstance(g, topo.VM):
            for pci in g.hostpci:
                value = f"mapping={pci.mapping}" if pci.mapping else str(pci.host)
                if pci.pcie:
                    value += ",pcie=1"
                if pci.x_vga:
                    value += ",x-vga=1"
                cfg[pci.slot] = value
            if g.lock is not None:
                cfg["lock"] = g.lock.value
            if g.protection:
                cfg["protection"] = 1
        for key, raw in g.config.items():  # "" removes a key built above (snapshots use it)
            if raw == "":
                cfg.pop(key, None)
            else:
                cfg[key] = raw
        return VmState(vmid=g.vmid, node=g.host, config=cfg, pool=g.pool)

    # -- lookups ---------------------------------------------------------------------------
    def pool_members(self) -> dict[str, list[int]]:
        """Pool -> member VMIDs (what ``/pool/<pool>`` ACLs reach on ``/vms/<vmid>``)."""
        out: dict[str, list[int]] = {name: [] for name in self.pools}
        for vm in self.vms.values():
            if vm.pool is not None:
                out.setdefault(vm.pool, []).append(vm.vmid)
        return out

    def node(self, name: str) -> Node:
        node = self.nodes.get(name)
        if node is None:
            raise PveError(
                f"hostname lookup '{name}' failed - failed to get address info for: {name}: "
                "Name or service not known"
            )
        return node

    def vm(self, node: str, vmid: int) -> VmState:
        """The VM ``vmid`` on ``node``, as ``load_config`` finds it (its node's directory)."""
        self.node(node)
        vm = self.vms.get(vmid)
        if vm is None or vm.node != node:
            raise PveError(
                f"Configuration file 'nodes/{node}/qemu-server/{vmid}.conf' does not exist"
            )
        return vm

    def storages_on(self, node: str) -> list[topo.Storage]:
        return [s for s in self.storages.values() if not s.hosts or node in s.hosts]

    def storage_used(self, storage: topo.Storage, node: str) -> int:
        used = 0
        for vm in self.vms.values():
            if not storage.shared and vm.node != node:
                continue
            for value in vm.disks().values():
                if volume_storage(value) == storage.name:
                    size = split_propstring(value, "file").get("size", "0")
                    used += parse_disk_size(size)
        return used

    def next_vmid(self, lower: int = 100, upper: int = 1_000_000) -> int:
        for vmid in range(lower, upper):
            if vmid not in self.vms:
                return vmid
        raise PveError(f"unable to get any free VMID in range [{lower}, {upper}]")

    def vm_status(self, vm: VmState) -> str:
        if not self.nodes[vm.node].online:
            return "unknown"
        return vm.status

    # -- PCI devices -----------------------------------------------------------------------
    def devices_in_use(self, node: str) -> set[str]:
        return {
            path
            for vm in self.vms.values()
            if vm.node == node and vm.running
            for path in vm.bound.values()
        }

    def bind_device(self, vm: VmState, slot: str, value: str) -> None:
        """Choose the device behind ``hostpciN`` at start (PCI.pm's mapping branch)."""
        props = split_propstring(value, "host")
        if "host" in props and "mapping" in props:
            raise PveError("Cannot set both 'host' and 'mapping'.")
        mapping_id = props.get("mapping")
        if mapping_id is not None:
            mapping = self.mappings.get(mapping_id)
            entries = [e for e in mapping.entries if e.node == vm.node] if mapping else []
            if not entries:
                raise PveError(f"PCI device mapping not found for '{mapping_id}'")
            used = self.devices_in_use(vm.node) | set(vm.bound.values())
            free = [e.path for e in entries if e.path not in used]
            if not free:
                raise PveError(f"could not find a free device for '{slot}'")
            vm.bound[slot] = free[0]
            return
        host = props.get("host")
        if host is None:
            raise PveError("Either 'host' or 'mapping' must be set.")
        known = {d.address for d in self.nodes[vm.node].devices}
        addresses = []
        for pci_id in host.split(";"):  # the text names the one id lspci finds nothing for
            address = pci_id if pci_id.count(":") == 2 else f"0000:{pci_id}"
            if not any(k.startswith(address) for k in known):
                raise PveError(f"no PCI device found for '{pci_id}'")
            addresses.append(address)
        vm.bound[slot] = addresses[0]
