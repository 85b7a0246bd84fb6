"""The parts of a topology document: hosts, storage, PCI devices and mappings, pools, templates,
VMs, users, tokens, roles and ACLs. Each part checks only its own fields; references between
parts are checked by ``checks`` once the whole document is read.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal, Self

from pydantic import Field, model_validator

from provisiond.core.pve_privileges import ROLE_ID_RE
from provisiond.core.topology.fields import (
    DISK_SLOT_RE,
    MAC_RE,
    NODE_PRIORITY_RE,
    POOL_ID_RE,
    TOKEN_ID_RE,
    USERID_RE,
    ConfigId,
    HostName,
    Model,
    PciAddress,
    PciId,
    Size,
    Tag,
    Vmid,
    matches,
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


class Metadata(Model):
    name: str = Field(min_length=1)
    description: str | None = None


class PciDevice(Model):
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


class Host(Model):
    """A Proxmox VE node. ``cpus`` counts logical CPUs (threads)."""

    name: HostName
    cpus: int = Field(ge=1)
    memory: Size
    online: bool = True
    cpu_model: str | None = None
    sockets: int = Field(default=1, ge=1)
    ip: str | None = None  # shown by /cluster/status; a 10.0.0.x address is made up when absent
    pci_devices: tuple[PciDevice, ...] = ()
    # In Proxmox HA maintenance (``ha-manager crm-command node-maintenance enable <node>``)
    ha_maintenance: bool = False

    def device(self, address: str) -> PciDevice | None:
        return next((d for d in self.pci_devices if d.address == address), None)


class Storage(Model):
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


class MappingEntry(Model):
    """One ``map`` entry: ``node=<host>,path=<address>,id=<vendor:device>``.

    ``id`` defaults to the id of the device at ``path`` on ``host``.
    """

    host: str
    path: PciAddress
    id: PciId | None = None
    iommu_group: int | None = Field(default=None, ge=0)
    subsystem_id: PciId | None = None
    description: str | None = None


class PciMapping(Model):
    """A cluster-wide PCI resource mapping (``/cluster/mapping/pci``)."""

    id: ConfigId
    description: str | None = None
    live_migration_capable: bool = False
    mdev: bool = False
    map: tuple[MappingEntry, ...] = ()

    def entries_on(self, host: str) -> tuple[MappingEntry, ...]:
        return tuple(e for e in self.map if e.host == host)


class Pool(Model):
    name: Annotated[str, matches(POOL_ID_RE, "pool id")]
    comment: str | None = None


class Disk(Model):
    slot: str = Field(pattern=DISK_SLOT_RE.pattern)
    storage: str | None = None  # None: the VM's or template's ``storage``
    size: Size
    format: Literal["raw", "qcow2", "vmdk"] | None = None


class Nic(Model):
    slot: str = Field(pattern=r"^net\d+$")
    model: Literal["virtio", "e1000", "e1000e", "rtl8139", "vmxnet3"] = "virtio"
    mac: Annotated[str, matches(MAC_RE, "MAC address")] | None = None
    bridge: str = "vmbr0"
    vlan: int | None = Field(default=None, ge=1, le=4094)
    firewall: bool | None = None


class HostPci(Model):
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


class Guest(Model):
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


class Token(Model):
    """An API token ``<userid>!<id>``; a missing ``secret`` is generated by the simulator.

    ``privsep`` (privilege separation): the token holds only what its own ACLs grant, and never
    more than its user; without it, the token has exactly its user's privileges.
    """

    id: Annotated[str, matches(TOKEN_ID_RE, "token id")]
    secret: str | None = None
    privsep: bool = False
    comment: str | None = None


class User(Model):
    """An API user; ``password`` enables ticket login (``POST /access/ticket``)."""

    id: Annotated[str, matches(USERID_RE, "user id (expected user@realm)")]
    password: str | None = None
    tokens: tuple[Token, ...] = ()


class Role(Model):
    """A custom role: a name and PVE privilege names (``VM.Allocate``, ``Datastore.Audit`` …).

    The built-in roles (``Administrator``, ``PVEVMAdmin``, …; ``core.pve_privileges``) exist
    without being declared and cannot be redefined.
    """

    id: Annotated[str, matches(ROLE_ID_RE, "role id")]
    privileges: tuple[str, ...] = ()


class Acl(Model):
    """An ACL entry as ``user.cfg`` keeps it: on ``path``, ``roles`` for ``users`` and
    ``tokens`` (full ids ``user@realm!id``); ``propagate`` passes it down the path tree."""

    path: str
    roles: tuple[str, ...] = Field(min_length=1)
    users: tuple[str, ...] = ()
    tokens: tuple[str, ...] = ()
    propagate: bool = True


class HaRuleType(StrEnum):
    NODE_AFFINITY = "node-affinity"
    RESOURCE_AFFINITY = "resource-affinity"


class HaRule(Model):
    """A PVE 9.x HA rule (``/etc/pve/ha/rules.cfg``): ``node-affinity`` keeps its resources on
    ``nodes`` (``<node>[:<priority>]``; ``strict`` restricts them there), ``resource-affinity``
    keeps them together (``positive``) or apart (``negative``). Resources are VMIDs of HA-managed
    VMs (``vm:<vmid>`` on the wire)."""

    id: ConfigId
    type: HaRuleType
    resources: tuple[Vmid, ...] = Field(min_length=1)
    nodes: tuple[Annotated[str, matches(NODE_PRIORITY_RE, "<node>[:<priority>]")], ...] = ()
    strict: bool = False
    affinity: Literal["positive", "negative"] | None = None
    disable: bool = False
    comment: str | None = None

    @model_validator(mode="after")
    def _fields_of_its_type(self) -> Self:
        if self.type is HaRuleType.NODE_AFFINITY and (not self.nodes or self.affinity):
            raise ValueError("a node-affinity rule needs 'nodes' and takes no 'affinity'")
        if self.type is HaRuleType.RESOURCE_AFFINITY and (
            self.affinity is None or self.nodes or self.strict
        ):
            raise ValueError("a resource-affinity rule needs 'affinity', no 'nodes'/'strict'")
        return self

    def node_priorities(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for entry in self.nodes:
            node, _, pri = entry.partition(":")
            out[node] = int(pri or 0)
        return out


class Crs(Model):
    """The datacenter's ``crs`` option (``/cluster/options``); 9.x adds the auto-rebalance keys.
    Defaults are PVE's (``PVE::HA::Manager::update_crs_scheduler_mode``)."""

    ha: Literal["basic", "static", "dynamic"] = "basic"
    ha_rebalance_on_start: bool = False
    ha_auto_rebalance: bool = False
    ha_auto_rebalance_threshold: float = Field(default=0.3, ge=0)
    ha_auto_rebalance_hold_duration: float = Field(default=3, ge=0)  # HA rounds
    ha_auto_rebalance_margin: float = Field(default=0.1, ge=0)
    ha_auto_rebalance_method: Literal["bruteforce", "topsis"] = "bruteforce"


class TopologySpec(Model):
    # the API surface: "8.4" (the seeds' clusters) or "9.1" (HA rules, CRS auto-rebalance)
    pve_version: Literal["8.4", "9.1"] = "8.4"
    ha_rules: tuple[HaRule, ...] = ()
    crs: Crs = Crs()
    hosts: tuple[Host, ...] = Field(min_length=1)
    storages: tuple[Storage, ...] = ()
    pci_mappings: tuple[PciMapping, ...] = ()
    pools: tuple[Pool, ...] = ()
    templates: tuple[Template, ...] = ()
    vms: tuple[VM, ...] = ()
    users: tuple[User, ...] = ()
    roles: tuple[Role, ...] = ()
    acls: tuple[Acl, ...] = ()
