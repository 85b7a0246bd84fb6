"""Topology documents: the starting state of a simulated Proxmox VE cluster.

A ``kind: Topology`` document (``apiVersion: provisiond.dev/v1alpha1``) declares the hosts, their
storage, their PCI devices, the cluster's PCI resource mappings, Proxmox pools, templates and the
VMs that already exist, plus the API users and tokens the simulator accepts, custom roles and the
ACLs that grant them. The simulator starts
from it; ``provisiond validate`` checks it; the daemon's loader ignores it.

Invariants, guaranteed once ``Topology.model_validate`` returns:
- every model is frozen and rejects unknown fields; keys are camelCase in YAML;
- sizes are bytes (``"64GiB"``, ``"100G"`` and ``"2TB"`` are parsed; see ``parse_size``);
- host, storage, mapping, pool, template and token names are unique; VMIDs are unique across
  templates and VMs and lie in Proxmox's range;
- every host, storage, pool, PCI device and mapping a document references exists, and a disk's
  storage is reachable from the host of its VM;
- roles name only PVE privileges and never redefine a built-in role; ACLs are on paths PVE
  accepts and name existing roles, users and tokens;
- running VMs never need more devices of a mapping on a host than the mapping has there.

Pure: no I/O. Loading YAML is the caller's business (adapters/specfile, the simulator).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from enum import StrEnum
from typing import Annotated, Literal, Self, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

from provisiond.core.pve_privileges import ACL_PATH_RE, BUILTIN_ROLES, PRIVILEGES, ROLE_ID_RE

_T = TypeVar("_T")

API_VERSION = "provisiond.dev/v1alpha1"
KIND = "Topology"
VMID_MIN = 100
VMID_MAX = 999_999_999

_BINARY = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}
_DECIMAL = {"kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12, "pb": 10**15}
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgtp]?(?:i?b)?)\s*$", re.IGNORECASE)

PCI_ADDRESS_RE = re.compile(r"^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$")
PCI_ID_RE = re.compile(r"^[0-9a-f]{4}:[0-9a-f]{4}$")
MAC_RE = re.compile(r"^[0-9A-Fa-f]{2}(?::[0-9A-Fa-f]{2}){5}$")
TAG_RE = re.compile(r"^[a-z0-9_][a-z0-9_\-+.]*$", re.IGNORECASE)  # PVE_TAG_RE
NAME_RE = re.compile(r"^[a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?$")  # node names, DNS labels
CONFIG_ID_RE = re.compile(r"^[a-z][a-z0-9_\-]{1,39}$", re.IGNORECASE)  # pve-configid
POOL_ID_RE = re.compile(r"^[A-Za-z0-9_\-]+$")  # pve-poolid
USERID_RE = re.compile(r"^[^\s:/@]+@[A-Za-z][A-Za-z0-9.\-_]+$")
TOKEN_ID_RE = re.compile(r"^[A-Za-z][A-Za-z0-9.\-_]+$")
DISK_SLOT_RE = re.compile(r"^(?:scsi\d+|virtio\d+|sata\d+|ide\d+|efidisk0|tpmstate0)$")


def parse_size(value: object) -> int:
    """A size in bytes: an int, or ``<number><unit>``.

    Units: ``K M G T P`` and ``KiB … PiB`` are binary (Proxmox writes ``100G`` for 100 GiB);
    ``KB … PB`` are decimal. A bare number is bytes. Raises ``ValueError`` otherwise.
    """
    if isinstance(value, bool):
        raise ValueError("a size must be a number of bytes or a string like '64GiB'")
    if isinstance(value, int):
        if value < 0:
            raise ValueError("a size cannot be negative")
        return value
    if not isinstance(value, str):
        raise ValueError("a size must be a number of bytes or a string like '64GiB'")
    m = _SIZE_RE.match(value)
    if m is None:
        raise ValueError(f"invalid size {value!r} (expected e.g. '64GiB', '100G', '2TB')")
    number, unit = m.group(1), m.group(2).lower()
    if unit in _DECIMAL:
        factor = _DECIMAL[unit]
    else:
        factor = _BINARY[unit.removesuffix("ib").removesuffix("b")]
    return int(float(number) * factor)


Size = Annotated[int, BeforeValidator(parse_size)]


def _pattern(regex: re.Pattern[str], what: str) -> BeforeValidator:
    def check(value: object) -> object:
        if isinstance(value, str) and not regex.match(value):
            raise ValueError(f"invalid {what} {value!r}")
        return value

    return BeforeValidator(check)


PciAddress = Annotated[str, _pattern(PCI_ADDRESS_RE, "PCI address (expected 0000:01:00.0)")]
PciId = Annotated[str, _pattern(PCI_ID_RE, "PCI id (expected vendor:device, e.g. 10de:20f1)")]
HostName = Annotated[str, _pattern(NAME_RE, "host name")]
ConfigId = Annotated[str, _pattern(CONFIG_ID_RE, "id (letters, digits, '-', '_')")]
Vmid = Annotated[int, Field(ge=VMID_MIN, le=VMID_MAX)]
Tag = Annotated[str, _pattern(TAG_RE, "tag (allowed: a-z 0-9 _ . + -)")]


class _Model(BaseModel):
    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
    )


class StorageType(StrEnum):
    DIR = "dir"
    LVM = "lvm"
    LVMTHIN = "lvmthin"
    ZFSPOOL = "zfspool"
    NFS = "nfs"
    CIFS = "cifs"
    CEPHFS = "cephfs"
    RBD = "rbd"
    ISCSI = "iscsi"
    GLUSTERFS = "glusterfs"
    PBS = "pbs"


class VMStatus(StrEnum):
    RUNNING = "running"
    STOPPED = "stopped"
    PAUSED = "paused"  # status running, qmpstatus paused


class Lock(StrEnum):
    """Config lock values (PVE schema enum)."""

    BACKUP = "backup"
    CLONE = "clone"
    CREATE = "create"
    MIGRATE = "migrate"
    ROLLBACK = "rollback"
    SNAPSHOT = "snapshot"
    SNAPSHOT_DELETE = "snapshot-delete"
    SUSPENDING = "suspending"
    SUSPENDED = "suspended"


class Metadata(_Model):
    name: str = Field(min_length=1)
    description: str | None = None


class PciDevice(_Model):
    """A PCI function of a host, as ``/nodes/{node}/hardware/pci`` lists it."""

    address: PciAddress
    id: PciId  # vendor:device
    name: str  # device name (pci.ids lacks recent GPUs, so the topology carries it)
    vendor_name: str | None = None
    iommu_group: int | None = Field(default=None, ge=0)
    subsystem_id: PciId | None = None
    class_id: str = "0x030000"  # display controller

    @property
    def vendor(self) -> str:
        return self.id.split(":")[0]

    @property
    def device(self) -> str:
        return self.id.split(":")[1]


class Host(_Model):
    """A Proxmox VE node. ``cpus`` counts logical CPUs (threads)."""

    name: HostName
    cpus: int = Field(ge=1)
    memory: Size
    online: bool = True
    cpu_model: str | None = None
    sockets: int = Field(default=1, ge=1)
    ip: str | None = None  # shown by /cluster/status; a 10.0.0.x address is made up when absent
    pci_devices: tuple[PciDevice, ...] = ()

    def device(self, address: str) -> PciDevice | None:
        return next((d for d in self.pci_devices if d.address == address), None)


class Storage(_Model):
    """A storage definition. ``hosts`` empty means every host (storage.cfg without ``nodes``).

    A non-shared storage on several hosts is one independent instance per host (like
    ``local-lvm``), each of ``size`` unless ``sizePerHost`` says otherwise.
    """

    name: ConfigId
    type: StorageType
    shared: bool = False
    size: Size
    size_per_host: dict[str, Size] = Field(default_factory=dict)
    hosts: tuple[str, ...] = ()
    content: tuple[str, ...] = ("images", "rootdir")

    def size_on(self, host: str) -> int:
        return self.size_per_host.get(host, self.size)


class MappingEntry(_Model):
    """One ``map`` entry: ``node=<host>,path=<address>,id=<vendor:device>``.

    ``id`` defaults to the id of the device at ``path`` on ``host``.
    """

    host: str
    path: PciAddress
    id: PciId | None = None
    iommu_group: int | None = Field(default=None, ge=0)
    subsystem_id: PciId | None = None
    description: str | None = None


class PciMapping(_Model):
    """A cluster-wide PCI resource mapping (``/cluster/mapping/pci``)."""

    id: ConfigId
    description: str | None = None
    live_migration_capable: bool = False
    mdev: bool = False
    map: tuple[MappingEntry, ...] = ()

    def entries_on(self, host: str) -> tuple[MappingEntry, ...]:
        return tuple(e for e in self.map if e.host == host)


class Pool(_Model):
    name: Annotated[str, _pattern(POOL_ID_RE, "pool id")]
    comment: str | None = None


class Disk(_Model):
    slot: str = Field(pattern=DISK_SLOT_RE.pattern)
    storage: str | None = None  # None: the VM's or template's ``storage``
    size: Size
    format: Literal["raw", "qcow2", "vmdk"] | None = None


class Nic(_Model):
    slot: str = Field(pattern=r"^net\d+$")
    model: Literal["virtio", "e1000", "e1000e", "rtl8139", "vmxnet3"] = "virtio"
    mac: Annotated[str, _pattern(MAC_RE, "MAC address")] | None = None
    bridge: str = "vmbr0"
    vlan: int | None = Field(default=None, ge=1, le=4094)
    firewall: bool | None = None


class HostPci(_Model):
    """A ``hostpciN`` entry: either a mapping (``mapping=<id>``) or a raw host address."""

    slot: str = Field(pattern=r"^hostpci(?:[0-9]|1[0-5])$")
    mapping: str | None = None
    host: PciAddress | None = None
    pcie: bool = False
    x_vga: bool = False

    @model_validator(mode="after")
    def _one_source(self) -> Self:
        if (self.mapping is None) == (self.host is None):
            raise ValueError("exactly one of 'mapping' and 'host' must be set")
        return self


class Guest(_Model):
    """What templates and VMs share."""

    vmid: Vmid
    name: HostName
    host: str
    storage: str | None = None  # default storage of the disks
    cores: int = Field(default=1, ge=1)
    sockets: int = Field(default=1, ge=1)
    memory: Size = 2 << 30
    disks: tuple[Disk, ...] = ()
    nets: tuple[Nic, ...] = ()
    tags: tuple[Tag, ...] = ()
    description: str | None = None
    pool: str | None = None
    machine: str | None = None
    ostype: str | None = None
    config: dict[str, str | int] = Field(default_factory=dict)  # further raw config keys

    def disk_storage(self, disk: Disk) -> str | None:
        return disk.storage or self.storage


class Template(Guest):
    """A VM template (``template: 1``). ``bridge`` gives it ``net0`` when ``nets`` is empty."""

    bridge: str | None = None


class VM(Guest):
    status: VMStatus = VMStatus.STOPPED
    hostpci: tuple[HostPci, ...] = ()
    lock: Lock | None = None
    hastate: str | None = None  # HA manager state (started, stopped, ignored, error, …)
    protection: bool = False


class Token(_Model):
    """An API token ``<userid>!<id>``; a missing ``secret`` is generated by the simulator.

    ``privsep`` (privilege separation): the token holds only what its own ACLs grant, and never
    more than its user; without it, the token has exactly its user's privileges.
    """

    id: Annotated[str, _pattern(TOKEN_ID_RE, "token id")]
    secret: str | None = None
    privsep: bool = False
    comment: str | None = None


class User(_Model):
    """An API user; ``password`` enables ticket login (``POST /access/ticket``)."""

    id: Annotated[str, _pattern(USERID_RE, "user id (expected user@realm)")]
    password: str | None = None
    tokens: tuple[Token, ...] = ()


class Role(_Model):
    """A custom role: a name and PVE privilege names (``VM.Allocate``, ``Datastore.Audit`` …).

    The built-in roles (``Administrator``, ``PVEVMAdmin``, …; ``core.pve_privileges``) exist
    without being declared and cannot be redefined.
    """

    id: Annotated[str, _pattern(ROLE_ID_RE, "role id")]
    privileges: tuple[str, ...] = ()


class Acl(_Model):
    """An ACL entry as ``user.cfg`` keeps it: on ``path``, ``roles`` for ``users`` and
    ``tokens`` (full ids ``user@realm!id``); ``propagate`` passes it down the path tree."""

    path: str
    roles: tuple[str, ...] = Field(min_length=1)
    users: tuple[str, ...] = ()
    tokens: tuple[str, ...] = ()
    propagate: bool = True


class TopologySpec(_Model):
    hosts: tuple[Host, ...] = Field(min_length=1)
    storages: tuple[Storage, ...] = ()
    pci_mappings: tuple[PciMapping, ...] = ()
    pools: tuple[Pool, ...] = ()
    templates: tuple[Template, ...] = ()
    vms: tuple[VM, ...] = ()
    users: tuple[User, ...] = ()
    roles: tuple[Role, ...] = ()
    acls: tuple[Acl, ...] = ()


def _duplicates(values: Iterable[_T]) -> list[_T]:
    return [v for v, n in Counter(values).items() if n > 1]


class Topology(_Model):
    """A ``kind: Topology`` document. Validate with ``Topology.model_validate(data)``."""

    api_version: Literal["provisiond.dev/v1alpha1"]
    kind: Literal["Topology"]
    metadata: Metadata
    spec: TopologySpec

    # -- lookups ---------------------------------------------------------------------------
    def host(self, name: str) -> Host | None:
        return next((h for h in self.spec.hosts if h.name == name), None)

    def storage(self, name: str) -> Storage | None:
        return next((s for s in self.spec.storages if s.name == name), None)

    def mapping(self, mapping_id: str) -> PciMapping | None:
        return next((m for m in self.spec.pci_mappings if m.id == mapping_id), None)

    def storages_of(self, host: str) -> tuple[Storage, ...]:
        """The storages reachable from ``host``."""
        return tuple(s for s in self.spec.storages if not s.hosts or host in s.hosts)

    def guests(self) -> tuple[Guest, ...]:
        return (*self.spec.templates, *self.spec.vms)

    def vms_on(self, host: str) -> tuple[VM, ...]:
        return tuple(vm for vm in self.spec.vms if vm.host == host)

    # -- validation ------------------------------------------------------------------------
    @model_validator(mode="after")
    def _references(self) -> Self:
        errors: list[str] = []
        spec = self.spec
        for what, names in (
            ("host", [h.name for h in spec.hosts]),
            ("storage", [s.name for s in spec.storages]),
            ("PCI mapping", [m.id for m in spec.pci_mappings]),
            ("pool", [p.name for p in spec.pools]),
            ("VMID", [g.vmid for g in self.guests()]),
            ("guest name", [g.name for g in self.guests()]),
            ("user", [u.id for u in spec.users]),
        ):
            errors += [f"duplicate {what} {d!r}" for d in _duplicates(names)]
        for user in spec.users:
            errors += [
                f"user {user.id!r}: duplicate token {d!r}"
                for d in _duplicates(t.id for t in user.tokens)
            ]
        host_names = {h.name for h in spec.hosts}
        for host in spec.hosts:
            errors += [
                f"host {host.name!r}: duplicate PCI address {d!r}"
                for d in _duplicates(d.address for d in host.pci_devices)
            ]
        for st in spec.storages:
            for h in (*st.hosts, *st.size_per_host):
                if h not in host_names:
                    errors.append(f"storage {st.name!r}: unknown host {h!r}")
        errors += self._mapping_errors()
        errors += self._guest_errors(host_names)
        errors += self._access_errors()
        if errors:
            raise ValueError("; ".join(errors))
        return self

    def _access_errors(self) -> list[str]:
        spec = self.spec
        errors = [f"duplicate role {d!r}" for d in _duplicates(r.id for r in spec.roles)]
        for role in spec.roles:
            if role.id in BUILTIN_ROLES:
                errors.append(f"role {role.id!r}: a built-in role cannot be redefined")
            errors += [
                f"role {role.id!r}: unknown privilege {p!r}"
                for p in role.privileges
                if p not in PRIVILEGES
            ]
        roles = {*BUILTIN_ROLES, *(r.id for r in spec.roles)}
        users = {u.id for u in spec.users} | {"root@pam"}
        tokens = {f"{u.id}!{t.id}" for u in spec.users for t in u.tokens}
        for acl in spec.acls:
            where = f"ACL {acl.path!r}"
            if not ACL_PATH_RE.match(acl.path):
                errors.append(f"{where}: invalid ACL path")
            if not acl.users and not acl.tokens:
                errors.append(f"{where}: names no user or token")
            errors += [f"{where}: unknown role {r!r}" for r in acl.roles if r not in roles]
            errors += [f"{where}: unknown user {u!r}" for u in acl.users if u not in users]
            errors += [f"{where}: unknown token {t!r}" for t in acl.tokens if t not in tokens]
        return errors

    def _mapping_errors(self) -> list[str]:
        errors: list[str] = []
        for m in self.spec.pci_mappings:
            errors += [
                f"PCI mapping {m.id!r}: device {h}/{p} listed twice"
                for h, p in _duplicates((e.host, e.path) for e in m.map)
            ]
            for e in m.map:
                host = self.host(e.host)
                if host is None:
                    errors.append(f"PCI mapping {m.id!r}: unknown host {e.host!r}")
                    continue
                dev = host.device(e.path)
                if dev is None:
                    errors.append(f"PCI mapping {m.id!r}: host {e.host!r} has no device {e.path}")
                elif e.id is not None and e.id != dev.id:
                    errors.append(
                        f"PCI mapping {m.id!r}: {e.host}/{e.path} is {dev.id}, not {e.id}"
                    )
        return errors

    def _guest_errors(self, host_names: set[str]) -> list[str]:
        errors: list[str] = []
        pools = {p.name for p in self.spec.pools}
        for g in self.guests():
            where = f"VM {g.vmid} ({g.name})"
            if g.host not in host_names:
                errors.append(f"{where}: unknown host {g.host!r}")
                continue
            if g.pool is not None and g.pool not in pools:
                errors.append(f"{where}: unknown pool {g.pool!r}")
            reachable = {s.name for s in self.storages_of(g.host)}
            if g.storage is not None and g.storage not in reachable:
                errors.append(f"{where}: storage {g.storage!r} is not available on {g.host}")
            errors += [
                f"{where}: duplicate disk {d!r}" for d in _duplicates(d.slot for d in g.disks)
            ]
            errors += [f"{where}: duplicate NIC {d!r}" for d in _duplicates(n.slot for n in g.nets)]
            for disk in g.disks:
                sid = g.disk_storage(disk)
                if sid is None:
                    errors.append(f"{where}: disk {disk.slot} names no storage")
                elif sid not in reachable:
                    errors.append(f"{where}: disk {disk.slot}: storage {sid!r} not on {g.host}")
            if isinstance(g, VM):
                errors += self._hostpci_errors(g, where)
        errors += self._device_demand_errors()
        return errors

    def _hostpci_errors(self, vm: VM, where: str) -> list[str]:
        errors = [f"{where}: duplicate {d!r}" for d in _duplicates(p.slot for p in vm.hostpci)]
        host = self.host(vm.host)
        assert host is not None  # checked by the caller
        for pci in vm.hostpci:
            if pci.mapping is not None and self.mapping(pci.mapping) is None:
                errors.append(f"{where}: {pci.slot}: unknown PCI mapping {pci.mapping!r}")
            if pci.host is not None and host.device(pci.host) is None:
                errors.append(f"{where}: {pci.slot}: host {vm.host!r} has no device {pci.host}")
        return errors

    def _device_demand_errors(self) -> list[str]:
        demand: Counter[tuple[str, str]] = Counter(
            (vm.host, pci.mapping)
            for vm in self.spec.vms
            if vm.status is not VMStatus.STOPPED
            for pci in vm.hostpci
            if pci.mapping is not None
        )
        errors = []
        for (host, mapping_id), wanted in sorted(demand.items()):
            mapping = self.mapping(mapping_id)
            have = len(mapping.entries_on(host)) if mapping is not None else 0
            if mapping is not None and wanted > have:
                errors.append(
                    f"running VMs on {host} use {wanted} devices of mapping {mapping_id!r}, "
                    f"which has {have} there"
                )
        return errors
