"""Parameters of the cluster-wide and per-node endpoints: version, resources, next id, status,
tasks, PCI mappings (read), pools, nodes, node status, PCI hardware, storage and task logs."""

from __future__ import annotations

from provisiond.sim.pve.params.schema import CF, NODE, OPTIONAL_VMID, TIMEFRAME, Endpoint, P

STORAGE_TYPES = (
    "btrfs",
    "cephfs",
    "cifs",
    "dir",
    "esxi",
    "glusterfs",
    "iscsi",
    "iscsidirect",
    "lvm",
    "lvmthin",
    "nfs",
    "pbs",
    "rbd",
    "zfs",
    "zfspool",
)

ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint("GET", "/version", {}, returns=("release", "repoid", "version")),
    Endpoint("GET", "/cluster/options", {}),
    Endpoint("GET", "/cluster/ha/groups", {}, returns=("group",)),
    Endpoint(
        "GET",
        "/cluster/resources",
        {"type": P("string", enum=("vm", "storage", "node", "sdn"))},
        returns=("id", "type"),
    ),
    Endpoint("GET", "/cluster/nextid", {"vmid": OPTIONAL_VMID}),
    Endpoint("GET", "/cluster/status", {}, returns=("id", "name", "type")),
    Endpoint("GET", "/cluster/tasks", {}, returns=("upid",)),
    Endpoint(
        "GET",
        "/cluster/mapping/pci",
        {"check-node": P("string", fmt="pve-node")},
        returns=("description", "id", "map"),
    ),
    Endpoint(
        "GET",
        "/cluster/mapping/pci/{id}",
        {"id": P("string", optional=False, fmt="pve-configid")},
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
    Endpoint("GET", "/nodes", {}, returns=("node", "status")),
    Endpoint(
        "GET",
        "/nodes/{node}/status",
        {"node": NODE},
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
            "node": NODE,
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
            "node": NODE,
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
            "node": NODE,
            "since": P("integer"),
            "source": P("string", enum=("archive", "active", "all")),
            "start": P("integer", minimum=0),
            "statusfilter": P("string", fmt="pve-task-status-type-list"),
            "typefilter": P("string"),
            "until": P("integer"),
            "userfilter": P("string"),
            "vmid": OPTIONAL_VMID,
        },
        returns=("id", "node", "pid", "pstart", "starttime", "type", "upid", "user"),
    ),
    Endpoint(
        "GET",
        "/nodes/{node}/tasks/{upid}/status",
        {"node": NODE, "upid": P("string", optional=False)},
        returns=("id", "node", "pid", "pstart", "starttime", "status", "type", "upid", "user"),
    ),
    Endpoint(
        "GET",
        "/nodes/{node}/tasks/{upid}/log",
        {
            "download": P("boolean"),
            "limit": P("integer", minimum=0),
            "node": NODE,
            "start": P("integer", minimum=0),
            "upid": P("string", optional=False),
        },
        returns=("n", "t"),
    ),
    # the reads common clients start with (handlers/info.py, handlers/pools.py)
    Endpoint(
        "GET", "/nodes/{node}/version", {"node": NODE}, returns=("release", "repoid", "version")
    ),
    Endpoint("GET", "/cluster/ha/status/current", {}, returns=("id", "node", "status", "type")),
    Endpoint("GET", "/cluster/ha/status/manager_status", {}),
    Endpoint("GET", "/nodes/{node}/lxc", {"node": NODE}, returns=("status", "vmid")),
    Endpoint(
        "GET",
        "/nodes/{node}/rrddata",
        {"cf": CF, "node": NODE, "timeframe": TIMEFRAME},
    ),
    Endpoint(
        "GET",
        "/pools/{poolid}",
        {
            "poolid": P("string", optional=False, fmt="pve-poolid"),
            "type": P("string", enum=("qemu", "lxc", "storage")),
        },
        returns=("members",),
    ),
    Endpoint(
        "PUT",
        "/pools/{poolid}",
        {
            "allow-move": P("boolean"),
            "comment": P("string"),
            "delete": P("boolean"),
            "poolid": P("string", optional=False, fmt="pve-poolid"),
            "storage": P("string", fmt="pve-storage-id-list"),
            "vms": P("string", fmt="pve-vmid-list"),
        },
    ),
    Endpoint("GET", "/storage", {"type": P("string", enum=STORAGE_TYPES)}, returns=("storage",)),
)
