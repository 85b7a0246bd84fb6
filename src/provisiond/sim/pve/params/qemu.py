"""Parameters of the QEMU VM endpoints under ``/nodes/{node}/qemu``: list, create, config,
pending, status and power, clone, template, destroy, resize and migration.

Numbered parameters are written as PVE's schema writes them (``net[n]``) with the highest index
in ``NUMBERED``. Create (``POST …/qemu``) and the config writes (``PUT``/``POST …/config``)
share the VM options (``VM_OPTIONS``); each adds its own control parameters.
"""

from __future__ import annotations

from provisiond.sim.pve.params.schema import NODE, VMID, Endpoint, P
from provisiond.sim.pve.params.vmoptions import VM_OPTIONS

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
    "numa": 8,
    "parallel": 3,
    "usb": 14,
    "virtiofs": 10,
}
DISKS = (
    *(f"ide{i}" for i in range(4)),
    *(f"scsi{i}" for i in range(31)),
    *(f"virtio{i}" for i in range(16)),
    *(f"sata{i}" for i in range(6)),
    "efidisk0",
    "tpmstate0",
)

# PUT (sync) and POST (async) …/config; POST adds background_delay
_CONFIG_WRITE: dict[str, P] = {
    **VM_OPTIONS,
    "delete": P("string", fmt="pve-configid-list"),
    "digest": P("string", max_length=40),
    "force": P("boolean"),
    "revert": P("string", fmt="pve-configid-list"),
    "skiplock": P("boolean"),
}
_Q = "/nodes/{node}/qemu/{vmid}"
_VM = {"node": NODE, "vmid": VMID}

ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint(
        "GET",
        "/nodes/{node}/qemu",
        {"full": P("boolean"), "node": NODE},
        returns=("status", "vmid"),
    ),
    Endpoint(
        "POST",
        "/nodes/{node}/qemu",
        {
            **VM_OPTIONS,
            "force": P("boolean"),
            "pool": P("string", fmt="pve-poolid"),
            "start": P("boolean"),
            "storage": P("string", fmt="pve-storage-id"),
            "template": P("boolean"),
        },
    ),
    Endpoint(
        "GET",
        f"{_Q}/config",
        {
            **_VM,
            "current": P("boolean"),
            "snapshot": P("string", fmt="pve-configid", max_length=40),
        },
        returns=("digest",),
    ),
    Endpoint("PUT", f"{_Q}/config", _CONFIG_WRITE),
    Endpoint(
        "POST",
        f"{_Q}/config",
        {**_CONFIG_WRITE, "background_delay": P("integer", minimum=1, maximum=30)},
    ),
    Endpoint("GET", f"{_Q}/pending", _VM, returns=("key",)),
    Endpoint("GET", f"{_Q}/status/current", _VM, returns=("ha", "status", "vmid")),
    Endpoint(
        "POST",
        f"{_Q}/status/start",
        {
            **_VM,
            "skiplock": P("boolean"),
            "timeout": P("integer", minimum=0),
            "machine": P("string", propstring=True),
            "force-cpu": P("string"),
        },
    ),
    Endpoint(
        "POST",
        f"{_Q}/status/stop",
        {
            **_VM,
            "keepActive": P("boolean"),
            "migratedfrom": P("string", fmt="pve-node"),
            "overrule-shutdown": P("boolean"),
            "skiplock": P("boolean"),
            "timeout": P("integer", minimum=0),
        },
    ),
    Endpoint(
        "POST",
        f"{_Q}/status/shutdown",
        {
            **_VM,
            "forceStop": P("boolean"),
            "keepActive": P("boolean"),
            "skiplock": P("boolean"),
            "timeout": P("integer", minimum=0),
        },
    ),
    Endpoint("POST", f"{_Q}/status/reboot", {**_VM, "timeout": P("integer", minimum=0)}),
    Endpoint(
        "POST",
        f"{_Q}/clone",
        {
            **_VM,
            "bwlimit": P("integer", minimum=0),
            "description": P("string"),
            "format": P("string", enum=("raw", "qcow2", "vmdk")),
            "full": P("boolean"),
            "name": P("string", fmt="dns-name"),
            "newid": VMID,
            "pool": P("string", fmt="pve-poolid"),
            "snapname": P("string", fmt="pve-configid", max_length=40),
            "storage": P("string", fmt="pve-storage-id"),
            "target": P("string", fmt="pve-node"),
        },
    ),
    Endpoint("POST", f"{_Q}/template", {**_VM, "disk": P("string", enum=DISKS)}),
    Endpoint(
        "DELETE",
        _Q,
        {
            **_VM,
            "destroy-unreferenced-disks": P("boolean"),
            "purge": P("boolean"),
            "skiplock": P("boolean"),
        },
    ),
    Endpoint(
        "PUT",
        f"{_Q}/resize",
        {
            **_VM,
            "digest": P("string", max_length=40),
            "disk": P("string", optional=False, enum=DISKS),
            "size": P("string", optional=False, pattern="\\+?\\d+(\\.\\d+)?[KMGT]?"),
            "skiplock": P("boolean"),
        },
    ),
    # the migration endpoints, served by handlers/migrate.py
    Endpoint(
        "GET",
        f"{_Q}/migrate",
        {**_VM, "target": P("string", fmt="pve-node")},
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
        f"{_Q}/migrate",
        {
            **_VM,
            "bwlimit": P("integer", minimum=0),
            "force": P("boolean"),
            "migration_network": P("string", fmt="CIDR"),
            "migration_type": P("string", enum=("secure", "insecure")),
            "online": P("boolean"),
            "target": P("string", optional=False, fmt="pve-node"),
            "targetstorage": P("string", fmt="storage-pair-list"),
            "with-local-disks": P("boolean"),
        },
    ),
)
