"""The simulator's own table of the endpoints it serves and their parameters.

Every request is checked against this table before a handler runs, as pveproxy checks it against
the method's JSON schema: a parameter the table lacks is refused with PVE's
``property is not defined in schema …`` text, even where real PVE would accept it (the simulator
serves a subset of each method's parameters; docs/simulator.md lists what that means).
The table's facts come from the PVE 8.4 API schema; ``tests/sim/test_pve_contract.py`` checks it
against ``../shared/proxmox/pve-api-schema.json`` parameter by parameter.

Numbered parameters are written as PVE's schema writes them (``net[n]``) with the highest index
in ``NUMBERED``. ``propstring=True`` marks a property-string format (a dict in the schema); the
simulator parses those values itself (``config.py``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

Type = Literal["string", "integer", "boolean", "number", "array"]


@dataclass(frozen=True, slots=True)
class P:
    """One parameter's schema: type, optionality, format, enum and limits."""

    type: Type
    optional: bool = True
    fmt: str | None = None
    propstring: bool = False
    enum: tuple[str, ...] | None = None
    minimum: int | None = None
    maximum: int | None = None
    max_length: int | None = None
    pattern: str | None = None


@dataclass(frozen=True, slots=True)
class Endpoint:
    method: str
    path: str  # template, e.g. /nodes/{node}/qemu/{vmid}/config
    params: Mapping[str, P] = field(default_factory=dict)
    returns: tuple[str, ...] = ()  # fields the schema promises (not optional) in each item

    @property
    def path_vars(self) -> tuple[str, ...]:
        return tuple(re.findall(r"{(\w+)}", self.path))


# highest index + 1 of each numbered parameter (qemu-server's MAX_* constants)
NUMBERED = {
    "hostpci": 16,
    "net": 32,
    "scsi": 31,
    "virtio": 16,
    "sata": 6,
    "ide": 4,
    "ipconfig": 32,
    "serial": 4,
    "unused": 256,
}
DISKS = (
    *(f"ide{i}" for i in range(4)),
    *(f"scsi{i}" for i in range(31)),
    *(f"virtio{i}" for i in range(16)),
    *(f"sata{i}" for i in range(6)),
    "efidisk0",
    "tpmstate0",
)

# PUT (sync) and POST (async) /nodes/{node}/qemu/{vmid}/config take the same options;
# POST adds background_delay.
_VM_CONFIG_PARAMS: dict[str, P] = {
    "vmid": P("integer", optional=False, fmt="pve-vmid", minimum=100, maximum=999999999),
    "node": P("string", optional=False, fmt="pve-node"),
    "acpi": P("boolean"),
    "agent": P("string", propstring=True),
    "balloon": P("integer", minimum=0),
    "bios": P("string", enum=("seabios", "ovmf")),
    "boot": P("string", fmt="pve-qm-boot"),
    "cipassword": P("string"),
    "citype": P("string", enum=("configdrive2", "nocloud", "opennebula")),
    "ciuser": P("string"),
    "cores": P("integer", minimum=1),
    "cpu": P("string", fmt="pve-vm-cpu-conf"),
    "delete": P("string", fmt="pve-configid-list"),
    "description": P("string", max_length=8192),
    "digest": P("string", max_length=40),
    "hostpci[n]": P("string", fmt="pve-qm-hostpci"),
    "ide[n]": P("string", propstring=True),
    "ipconfig[n]": P("string", fmt="pve-qm-ipconfig"),
    "machine": P("string", propstring=True),
    "memory": P("string", propstring=True),
    "name": P("string", fmt="dns-name"),
    "nameserver": P("string", fmt="address-list"),
    "net[n]": P("string", propstring=True),
    "numa": P("boolean"),
    "onboot": P("boolean"),
    "ostype": P(
        "string",
        enum=(
            "other",
            "wxp",
            "w2k",
            "w2k3",
            "w2k8",
            "wvista",
            "win7",
            "win8",
            "win10",
            "win11",
            "l24",
            "l26",
            "solaris",
        ),
    ),
    "protection": P("boolean"),
    "revert": P("string", fmt="pve-configid-list"),
    "sata[n]": P("string", propstring=True),
    "scsi[n]": P("string", propstring=True),
    "scsihw": P(
        "string",
        enum=(
            "lsi",
            "lsi53c810",
            "virtio-scsi-pci",
            "virtio-scsi-single",
            "megasas",
            "pvscsi",
        ),
    ),
    "searchdomain": P("string"),
    "skiplock": P("boolean"),
    "sockets": P("integer", minimum=1),
    "sshkeys": P("string", fmt="urlencoded"),
    "tags": P("string", fmt="pve-tag-list"),
    "virtio[n]": P("string", propstring=True),
    "vga": P("string", propstring=True),
    "serial[n]": P("string", pattern="(/dev/.+|socket)"),
    "smbios1": P("string", fmt="pve-qm-smbios1", max_length=512),
}


ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint(
        "GET",
        "/version",
        {},
        returns=("release", "repoid", "version"),
    ),
    Endpoint(
        "GET",
        "/cluster/resources",
        {
            "type": P("string", enum=("vm", "storage", "node", "sdn")),
        },
        returns=("id", "type"),
    ),
    Endpoint(
        "GET",
        "/cluster/nextid",
        {
            "vmid": P("integer", fmt="pve-vmid", minimum=100, maximum=999999999),
        },
        returns=(),
    ),
    Endpoint(
        "GET",
        "/cluster/status",
        {},
        returns=("id", "name", "type"),
    ),
    Endpoint(
        "GET",
        "/cluster/tasks",
        {},
        returns=("upid",),
    ),
    Endpoint(
        "GET",
        "/cluster/mapping/pci",
        {
            "check-node": P("string", fmt="pve-node"),
        },
        returns=("description", "id", "map"),
    ),
    Endpoint(
        "GET",
        "/cluster/mapping/pci/{id}",
        {
            "id": P("string", optional=False, fmt="pve-configid"),
        },
        returns=(),
    ),
    Endpoint(
        "GET",
        "/pools",
        {
            "poolid": P("string", fmt="pve-poolid"),
            "type": P("string", enum=("qemu", "lxc", "storage")),
        },
        returns=("poolid",),
    ),
    Endpoint(
        "GET",
        "/nodes",
        {},
        returns=("node", "status"),
    ),
    Endpoint(
        "GET",
        "/nodes/{node}/status",
        {
            "node": P("string", optional=False, fmt="pve-node"),
        },
        returns=(
            "boot-info",
            "cpu",
            "cpuinfo",
            "current-kernel",
            "loadavg",
            "memory",
            "pveversion",
            "rootfs",
        ),
    ),
    Endpoint(
        "GET",
        "/nodes/{node}/hardware/pci",
        {
            "node": P("string", optional=False, fmt="pve-node"),
            "pci-class-blacklist": P("string", fmt="string-list"),
            "verbose": P("boolean"),
        },
        returns=("class", "device", "id", "iommugroup", "vendor"),
    ),
    Endpoint(
        "GET",
        "/nodes/{node}/storage",
        {
            "content": P("string", fmt="pve-storage-content-list"),
            "enabled": P("boolean"),
            "format": P("boolean"),
            "node": P("string", optional=False, fmt="pve-node"),
            "storage": P("string", fmt="pve-storage-id"),
            "target": P("string", fmt="pve-node"),
        },
        returns=("content", "storage", "type"),
    ),
    Endpoint(
        "GET",
        "/nodes/{node}/tasks",
        {
            "errors": P("boolean"),
            "limit": P("integer", minimum=0),
            "node": P("string", optional=False, fmt="pve-node"),
            "since": P("integer"),
            "source": P("string", enum=("archive", "active", "all")),
            "start": P("integer", minimum=0),
            "statusfilter": P("string", fmt="pve-task-status-type-list"),
            "typefilter": P("string"),
            "until": P("integer"),
            "userfilter": P("string"),
            "vmid": P("integer", fmt="pve-vmid", minimum=100, maximum=999999999),
        },
        returns=("id", "node", "pid", "pstart", "starttime", "type", "upid", "user"),
    ),
    Endpoint(
        "GET",
        "/nodes/{node}/tasks/{upid}/status",
        {
            "node": P("string", optional=False, fmt="pve-node"),
            "upid": P("string", optional=False),
        },
        returns=("id", "node", "pid", "pstart", "starttime", "status", "type", "upid", "user"),
    ),
    Endpoint(
        "GET",
        "/nodes/{node}/tasks/{upid}/log",
        {
            "download": P("boolean"),
            "limit": P("integer", minimum=0),
            "node": P("string", optional=False, fmt="pve-node"),
            "start": P("integer", minimum=0),
            "upid": P("string", optional=False),
        },
        returns=("n", "t"),
    ),
    Endpoint(
        "GET",
        "/nodes/{node}/qemu",
        {
            "full": P("boolean"),
            "node": P("string", optional=False, fmt="pve-node"),
        },
        returns=("status", "vmid"),
    ),
    Endpoint(
        "POST",
        "/nodes/{node}/qemu",
        {
            "vmid": P("integer", optional=False, fmt="pve-vmid", minimum=100, maximum=999999999),
            "node": P("string", optional=False, fmt="pve-node"),
            "pool": P("string", fmt="pve-poolid"),
            "start": P("boolean"),
            "storage": P("string", fmt="pve-storage-id"),
            "template": P("boolean"),
            "acpi": P("boolean"),
            "agent": P("string", propstring=True),
            "balloon": P("integer", minimum=0),
            "bios": P("string", enum=("seabios", "ovmf")),
            "boot": P("string", fmt="pve-qm-boot"),
            "cipassword": P("string"),
            "citype": P("string", enum=("configdrive2", "nocloud", "opennebula")),
            "ciuser": P("string"),
            "cores": P("integer", minimum=1),
            "cpu": P("string", fmt="pve-vm-cpu-conf"),
            "description": P("string", max_length=8192),
            "hostpci[n]": P("string", fmt="pve-qm-hostpci"),
            "ide[n]": P("string", propstring=True),
            "ipconfig[n]": P("string", fmt="pve-qm-ipconfig"),
            "machine": P("string", propstring=True),
            "memory": P("string", propstring=True),
            "name": P("string", fmt="dns-name"),
            "nameserver": P("string", fmt="address-list"),
            "net[n]": P("string", propstring=True),
            "numa": P("boolean"),
            "onboot": P("boolean"),
            "ostype": P(
                "string",
                enum=(
                    "other",
                    "wxp",
                    "w2k",
                    "w2k3",
                    "w2k8",
                    "wvista",
                    "win7",
                    "win8",
                    "win10",
                    "win11",
                    "l24",
                    "l26",
                    "solaris",
                ),
            ),
            "protection": P("boolean"),
            "sata[n]": P("string", propstring=True),
            "scsi[n]": P("string", propstring=True),
            "scsihw": P(
                "string",
                enum=(
                    "lsi",
                    "lsi53c810",
                    "virtio-scsi-pci",
                    "virtio-scsi-single",
                    "megasas",
                    "pvscsi",
                ),
            ),
            "searchdomain": P("string"),
            "sockets": P("integer", minimum=1),
            "sshkeys": P("string", fmt="urlencoded"),
            "tags": P("string", fmt="pve-tag-list"),
            "virtio[n]": P("string", propstring=True),
            "vga": P("string", propstring=True),
            "serial[n]": P("string", pattern="(/dev/.+|socket)"),
            "smbios1": P("string", fmt="pve-qm-smbios1", max_length=512),
        },
        returns=(),
    ),
    Endpoint(
        "GET",
        "/nodes/{node}/qemu/{vmid}/config",
        {
            "current": P("boolean"),
            "node": P("string", optional=False, fmt="pve-node"),
            "snapshot": P("string", fmt="pve-configid", max_length=40),
            "vmid": P("integer", optional=False, fmt="pve-vmid", minimum=100, maximum=999999999),
        },
        returns=("digest",),
    ),
    Endpoint(
        "PUT",
        "/nodes/{node}/qemu/{vmid}/config",
        {
            **_VM_CONFIG_PARAMS,
        },
        returns=(),
    ),
    Endpoint(
        "POST",
        "/nodes/{node}/qemu/{vmid}/config",
        {
            **_VM_CONFIG_PARAMS,
            "background_delay": P("integer", minimum=1, maximum=30),
        },
        returns=(),
    ),
    Endpoint(
        "GET",
        "/nodes/{node}/qemu/{vmid}/pending",
        {
            "node": P("string", optional=False, fmt="pve-node"),
            "vmid": P("integer", optional=False, fmt="pve-vmid", minimum=100, maximum=999999999),
        },
        returns=("key",),
    ),
    Endpoint(
        "GET",
        "/nodes/{node}/qemu/{vmid}/status/current",
        {
            "node": P("string", optional=False, fmt="pve-node"),
            "vmid": P("integer", optional=False, fmt="pve-vmid", minimum=100, maximum=999999999),
        },
        returns=("ha", "status", "vmid"),
    ),
    Endpoint(
        "POST",
        "/nodes/{node}/qemu/{vmid}/status/start",
        {
            "vmid": P("integer", optional=False, fmt="pve-vmid", minimum=100, maximum=999999999),
            "node": P("string", optional=False, fmt="pve-node"),
            "skiplock": P("boolean"),
            "timeout": P("integer", minimum=0),
            "machine": P("string", propstring=True),
            "force-cpu": P("string"),
        },
        returns=(),
    ),
    Endpoint(
        "POST",
        "/nodes/{node}/qemu/{vmid}/status/stop",
        {
            "keepActive": P("boolean"),
            "migratedfrom": P("string", fmt="pve-node"),
            "node": P("string", optional=False, fmt="pve-node"),
            "overrule-shutdown": P("boolean"),
            "skiplock": P("boolean"),
            "timeout": P("integer", minimum=0),
            "vmid": P("integer", optional=False, fmt="pve-vmid", minimum=100, maximum=999999999),
        },
        returns=(),
    ),
    Endpoint(
        "POST",
        "/nodes/{node}/qemu/{vmid}/status/shutdown",
        {
            "forceStop": P("boolean"),
            "keepActive": P("boolean"),
            "node": P("string", optional=False, fmt="pve-node"),
            "skiplock": P("boolean"),
            "timeout": P("integer", minimum=0),
            "vmid": P("integer", optional=False, fmt="pve-vmid", minimum=100, maximum=999999999),
        },
        returns=(),
    ),
    Endpoint(
        "POST",
        "/nodes/{node}/qemu/{vmid}/status/reboot",
        {
            "node": P("string", optional=False, fmt="pve-node"),
            "timeout": P("integer", minimum=0),
            "vmid": P("integer", optional=False, fmt="pve-vmid", minimum=100, maximum=999999999),
        },
        returns=(),
    ),
    Endpoint(
        "POST",
        "/nodes/{node}/qemu/{vmid}/clone",
        {
            "bwlimit": P("integer", minimum=0),
            "description": P("string"),
            "format": P("string", enum=("raw", "qcow2", "vmdk")),
            "full": P("boolean"),
            "name": P("string", fmt="dns-name"),
            "newid": P("integer", optional=False, fmt="pve-vmid", minimum=100, maximum=999999999),
            "node": P("string", optional=False, fmt="pve-node"),
            "pool": P("string", fmt="pve-poolid"),
            "snapname": P("string", fmt="pve-configid", max_length=40),
            "storage": P("string", fmt="pve-storage-id"),
            "target": P("string", fmt="pve-node"),
            "vmid": P("integer", optional=False, fmt="pve-vmid", minimum=100, maximum=999999999),
        },
        returns=(),
    ),
    Endpoint(
        "POST",
        "/nodes/{node}/qemu/{vmid}/template",
        {
            "disk": P("string", enum=DISKS),
            "node": P("string", optional=False, fmt="pve-node"),
            "vmid": P("integer", optional=False, fmt="pve-vmid", minimum=100, maximum=999999999),
        },
        returns=(),
    ),
    Endpoint(
        "DELETE",
        "/nodes/{node}/qemu/{vmid}",
        {
            "destroy-unreferenced-disks": P("boolean"),
            "node": P("string", optional=False, fmt="pve-node"),
            "purge": P("boolean"),
            "skiplock": P("boolean"),
            "vmid": P("integer", optional=False, fmt="pve-vmid", minimum=100, maximum=999999999),
        },
        returns=(),
    ),
    Endpoint(
        "PUT",
        "/nodes/{node}/qemu/{vmid}/resize",
        {
            "digest": P("string", max_length=40),
            "disk": P("string", optional=False, enum=DISKS),
            "node": P("string", optional=False, fmt="pve-node"),
            "size": P("string", optional=False, pattern="\\+?\\d+(\\.\\d+)?[KMGT]?"),
            "skiplock": P("boolean"),
            "vmid": P("integer", optional=False, fmt="pve-vmid", minimum=100, maximum=999999999),
        },
        returns=(),
    ),
)


# -- migration (handlers/migrate.py) ---------------------------------------------------------
ENDPOINTS += (
    Endpoint(
        "GET",
        "/nodes/{node}/qemu/{vmid}/migrate",
        {
            "node": P("string", optional=False, fmt="pve-node"),
            "target": P("string", fmt="pve-node"),
            "vmid": P("integer", optional=False, fmt="pve-vmid", minimum=100, maximum=999999999),
        },
        returns=(
            "local_disks",
            "local_resources",
            "mapped-resource-info",
            "mapped-resources",
            "running",
        ),
    ),
    Endpoint(
        "POST",
        "/nodes/{node}/qemu/{vmid}/migrate",
        {
            "bwlimit": P("integer", minimum=0),
            "force": P("boolean"),
            "migration_network": P("string", fmt="CIDR"),
            "migration_type": P("string", enum=("secure", "insecure")),
            "node": P("string", optional=False, fmt="pve-node"),
            "online": P("boolean"),
            "target": P("string", optional=False, fmt="pve-node"),
            "targetstorage": P("string", fmt="storage-pair-list"),
            "vmid": P("integer", optional=False, fmt="pve-vmid", minimum=100, maximum=999999999),
            "with-local-disks": P("boolean"),
        },
        returns=(),
    ),
)
# -- access and mapping create (handlers/access.py) ------------------------------------------
# ``array`` values arrive as repeated form keys, joined by NUL (server._params); the handler
# checks each item. The userid pattern is the schema's, Perl's ``(?^:`` included.
_REALM = "(?^:[A-Za-z][A-Za-z0-9\\.\\-_]+)"
USERID_OR_TOKEN = f"(?^:^(?^:[^\\s:/]+)\\@{_REALM}(?:!{_REALM})?$)"
ENDPOINTS += (
    Endpoint(
        "POST",
        "/access/ticket",
        {
            "new-format": P("boolean"),
            "otp": P("string"),
            "password": P("string", optional=False),
            "path": P("string", max_length=64),
            "privs": P("string", fmt="pve-priv-list", max_length=64),
            "realm": P("string", fmt="pve-realm", max_length=32),
            "tfa-challenge": P("string"),
            "username": P("string", optional=False, max_length=64),
        },
        returns=("username",),
    ),
    Endpoint(
        "GET",
        "/access/permissions",
        {
            "path": P("string"),
            "userid": P("string", pattern=USERID_OR_TOKEN),
        },
        returns=(),
    ),
    Endpoint(
        "POST",
        "/cluster/mapping/pci",
        {
            "description": P("string", max_length=4096),
            "id": P("string", optional=False, fmt="pve-configid"),
            "live-migration-capable": P("boolean"),
            "map": P("array", optional=False),
            "mdev": P("boolean"),
        },
        returns=(),
    ),
)

BY_ROUTE: dict[tuple[str, str], Endpoint] = {(e.method, e.path): e for e in ENDPOINTS}
