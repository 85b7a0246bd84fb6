"""A small cluster for the migration, HA, fault and snapshot tests: three hosts, shared and local
storage, one storage only pve1 has, a live-migratable and a fixed GPU mapping, and a VM for each
migration case."""

from __future__ import annotations

from typing import Any

from provisiond.core.topology import Topology

GPU = {"id": "10de:20f1", "name": "GA100 [A100 PCIe 40GB]", "iommuGroup": 1}


def _vm(vmid: int, name: str, storage: str = "shared-nfs", **kw: Any) -> dict[str, Any]:
    return {
        "vmid": vmid,
        "name": name,
        "host": "pve1",
        "status": "running",
        "storage": storage,
        "memory": "2GiB",
        "disks": [{"slot": "scsi0", "size": "8G"}],
        **kw,
    }


LAB: dict[str, Any] = {
    "apiVersion": "provisiond.dev/v1alpha1",
    "kind": "Topology",
    "metadata": {"name": "migrate-lab"},
    "spec": {
        "hosts": [
            {
                "name": "pve1",
                "cpus": 32,
                "memory": "256GiB",
                "ip": "10.0.0.1",
                "pciDevices": [
                    {"address": "0000:01:00.0", **GPU},
                    {"address": "0000:02:00.0", **GPU},
                    {"address": "0000:03:00.0", **GPU},
                ],
            },
            {
                "name": "pve2",
                "cpus": 32,
                "memory": "256GiB",
                "ip": "10.0.0.2",
                "pciDevices": [{"address": "0000:01:00.0", **GPU}],
            },
            {"name": "pve3", "cpus": 32, "memory": "256GiB", "ip": "10.0.0.3"},
        ],
        "storages": [
            {"name": "local-lvm", "type": "lvmthin", "size": "2TiB"},
            {"name": "shared-nfs", "type": "nfs", "shared": True, "size": "20TiB"},
            {"name": "only-pve1", "type": "dir", "size": "1TiB", "hosts": ["pve1"]},
        ],
        "pciMappings": [
            {
                "id": "gpu-live",
                "liveMigrationCapable": True,
                "map": [
                    {"host": "pve1", "path": "0000:01:00.0"},
                    {"host": "pve2", "path": "0000:01:00.0"},
                ],
            },
            {"id": "gpu-fixed", "map": [{"host": "pve1", "path": "0000:02:00.0"}]},
        ],
        "vms": [
            _vm(100, "web"),
            _vm(101, "db", "local-lvm", disks=[{"slot": "scsi0", "size": "16G"}]),
            _vm(102, "cold", "local-lvm", status="stopped"),
            _vm(
                103, "raw", status="stopped", hostpci=[{"slot": "hostpci0", "host": "0000:03:00.0"}]
            ),
            _vm(104, "fixed", hostpci=[{"slot": "hostpci0", "mapping": "gpu-fixed"}]),
            _vm(105, "live", hostpci=[{"slot": "hostpci0", "mapping": "gpu-live"}]),
            _vm(106, "pinned", "only-pve1", status="stopped"),
            _vm(107, "ha", hastate="started"),
            _vm(108, "locked", lock="backup"),
            _vm(109, "ha-off", status="stopped", hastate="stopped"),
        ],
    },
}


def lab() -> Topology:
    return Topology.model_validate(LAB)
