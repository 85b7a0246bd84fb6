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

Modules: ``fields`` (names, ids, sizes, the base model), ``models`` (the parts), ``checks`` (the
references between parts), ``document`` (``Topology``). Every public name is importable from
``provisiond.core.topology``.

Pure: no I/O. Loading YAML is the caller's business (adapters/specfile, the simulator).
"""

from provisiond.core.topology.document import Topology
from provisiond.core.topology.fields import (
    API_VERSION,
    CONFIG_ID_RE,
    DISK_SLOT_RE,
    KIND,
    MAC_RE,
    NAME_RE,
    PCI_ADDRESS_RE,
    PCI_ID_RE,
    POOL_ID_RE,
    TAG_RE,
    TOKEN_ID_RE,
    USERID_RE,
    VMID_MAX,
    VMID_MIN,
    ConfigId,
    HostName,
    PciAddress,
    PciId,
    Size,
    Tag,
    Vmid,
    parse_size,
)
from provisiond.core.topology.models import (
    VM,
    Acl,
    Crs,
    Disk,
    Guest,
    HaRule,
    HaRuleType,
    Host,
    HostPci,
    Lock,
    MappingEntry,
    Metadata,
    Nic,
    PciDevice,
    PciMapping,
    Pool,
    Role,
    Storage,
    StorageType,
    Template,
    Token,
    TopologySpec,
    User,
    VMStatus,
)

__all__ = [
    "API_VERSION",
    "CONFIG_ID_RE",
    "DISK_SLOT_RE",
    "KIND",
    "MAC_RE",
    "NAME_RE",
    "PCI_ADDRESS_RE",
    "PCI_ID_RE",
    "POOL_ID_RE",
    "TAG_RE",
    "TOKEN_ID_RE",
    "USERID_RE",
    "VM",
    "VMID_MAX",
    "VMID_MIN",
    "Acl",
    "ConfigId",
    "Crs",
    "Disk",
    "Guest",
    "HaRule",
    "HaRuleType",
    "Host",
    "HostName",
    "HostPci",
    "Lock",
    "MappingEntry",
    "Metadata",
    "Nic",
    "PciAddress",
    "PciDevice",
    "PciId",
    "PciMapping",
    "Pool",
    "Role",
    "Size",
    "Storage",
    "StorageType",
    "Tag",
    "Template",
    "Token",
    "Topology",
    "TopologySpec",
    "User",
    "VMStatus",
    "Vmid",
    "parse_size",
]
